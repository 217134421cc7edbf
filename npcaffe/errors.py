"""Exception types of the engine. Each message names the file, line, layer or value at fault."""


def prefix_message(exc, where):
    """Prefix ``exc``'s message with ``where`` (a file, a layer) in place and return it, so the
    exception keeps its type (pycaffe lets a Python layer's own exception reach the caller)."""
    text = str(exc.args[0]) if exc.args else ''
    if not text.startswith(str(where)):
        detail = text if isinstance(exc, CaffeError) else \
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        exc.args = (f"{where}: {detail}",) + tuple(exc.args[1:])
    return exc


class CaffeError(Exception):
    """Base class of every error npcaffe raises on purpose."""


class PrototxtError(CaffeError, ValueError):
    """A prototxt cannot be parsed (syntax error, unknown field) or upgraded."""


class ModelFileError(CaffeError, ValueError):
    """A binary file (caffemodel, solverstate) is empty, truncated or not a Caffe protobuf."""


class NetError(CaffeError, ValueError):
    """A net is inconsistent: unknown bottom, duplicate top, wrong number of blobs, bad shape."""


class UnknownLayerTypeError(NetError, KeyError):
    """A layer type that no registered layer implements."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


class WeightShapeError(NetError):
    """Weights whose shapes do not match the net they are copied into."""


class NotSupportedError(CaffeError, NotImplementedError):
    """A Caffe feature this engine does not implement (names the field or mode)."""


class TrainingDivergedError(CaffeError, FloatingPointError):
    """The loss (or a weight about to be snapshotted) became NaN or infinite."""


class SnapshotError(CaffeError, OSError):
    """Snapshots cannot be written where snapshot_prefix points."""
