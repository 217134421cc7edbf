"""Exception types of the engine. Each message names the file, line, layer or value at fault."""


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
