"""Reading a solver prototxt as Caffe does (ReadSolverParamsFromTextFileOrDie and
UpgradeSolverAsNeeded): the deprecated ``solver_type`` enum becomes ``type``, and an unset
``snapshot_prefix`` is derived from the file's name."""
import logging
import os

from npcaffe import formats
from npcaffe.errors import PrototxtError
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

_SP = caffe_pb2.SolverParameter
#: the deprecated solver_type enum -> type name (Caffe's UpgradeSolverType)
_LEGACY_TYPES = {_SP.SGD: 'SGD', _SP.NESTEROV: 'Nesterov', _SP.ADAGRAD: 'AdaGrad',
                 _SP.RMSPROP: 'RMSProp', _SP.ADADELTA: 'AdaDelta', _SP.ADAM: 'Adam'}


def upgrade_solver_param(param, where='solver'):
    """Caffe's UpgradeSolverAsNeeded: the deprecated ``solver_type`` enum becomes ``type``."""
    if param.HasField('solver_type'):
        if param.HasField('type'):
            raise PrototxtError(f"{where}: the old solver_type field (enum) and the new type "
                                f"field (string) cannot both be given; keep type")
        param.type = _LEGACY_TYPES[param.solver_type]
        param.ClearField('solver_type')
    return param


def read_solver_param(path):
    """Read a solver prototxt as Caffe's ReadSolverParamsFromTextFileOrDie: upgrade
    ``solver_type``, and derive ``snapshot_prefix`` from the file name when it is unset (or
    append the file's stem when it names a folder)."""
    param = formats.read_text(path, caffe_pb2.SolverParameter())
    upgrade_solver_param(param, str(path))
    stem = os.path.splitext(str(path))[0]
    if not param.HasField('snapshot_prefix'):
        param.snapshot_prefix = stem
        log.info("snapshot_prefix was not specified and is set to %s", stem)
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, os.path.basename(stem))
        log.info("snapshot_prefix is a directory and is set to %s", param.snapshot_prefix)
    return param


def copy_param(message):
    """A copy of the SolverParameter ``message``."""
    out = type(message)()
    out.CopyFrom(message)
    return out


def describe(source):
    """How messages name the solver: its file, or 'solver parameters'."""
    return 'solver parameters' if isinstance(source, caffe_pb2.SolverParameter) else str(source)
