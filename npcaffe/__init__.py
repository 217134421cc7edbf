"""npcaffe: Caffe's nets, file formats and numerics on NumPy, with the pycaffe API.

Use it where a script says ``import caffe``::

    import npcaffe as caffe
    net = caffe.Net('deploy.prototxt', 'weights.caffemodel', caffe.TEST)
    out = net.forward(data=image_batch)

or leave the script as it is: ``npcaffe.install_as_caffe()`` makes ``import caffe`` (and
``caffe.io``, ``caffe.proto.caffe_pb2``, ...) give npcaffe (npcaffe.alias), and
``python -m npcaffe.cli.run_script SCRIPT ARGS...`` runs a pycaffe script that way.
"""
import logging as _logging
import sys as _sys

from npcaffe.blob import Blob
from npcaffe.errors import (CaffeError, ModelFileError, NetError, NotSupportedError,
                            PrototxtError, SnapshotError, TrainingDivergedError,
                            UnknownLayerTypeError, WeightShapeError)
from npcaffe import filler as _filler
from npcaffe.filler import set_seed as _set_seed
from npcaffe.layers import layer_type_list
from npcaffe.layers.base import TEST, TRAIN, Layer
from npcaffe.net import Net
from npcaffe.proto import caffe_pb2
# pycaffe's generator API; ``npcaffe.layers`` is NetSpec's layer factory, as ``caffe.layers``
# (the engine's layer package stays importable as ``npcaffe.layers.<family>``).
from npcaffe import coord_map, device, net_spec
from npcaffe.device import set_device, set_mode_cpu, set_mode_gpu
# pycaffe's multi-worker API (npcaffe.distributed: the workers are the ranks of an MPI job)
from npcaffe import distributed
from npcaffe.distributed import (NCCL, set_multiprocess, set_solver_count, set_solver_rank,
                                 solver_count, solver_rank)
from npcaffe.net_spec import NetSpec, layers, params, to_proto

__version__ = '1.0.0'
_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def install_as_caffe():
    """Make ``import caffe`` and pycaffe's submodules give npcaffe in this process (see
    npcaffe.alias); returns npcaffe. CaffeError if another caffe is already imported."""
    from npcaffe import alias
    return alias.install(_sys.modules[__name__])


def set_random_seed(seed):
    """Seed the engine's random numbers (fillers, dropout masks)."""
    _set_seed(seed)


def get_random_state():
    """npcaffe only: the state of the engine's random numbers (JSON-able), so that a resumed
    run draws the same dropout masks as an uninterrupted one."""
    return _filler.get_state()


def set_random_state(state):
    """npcaffe only: continue the engine's random numbers from :func:`get_random_state`."""
    _filler.set_state(state)


def has_nccl():
    """Whether ``caffe.NCCL`` can join several workers in this process: true when an MPI
    launcher started it and mpi4py is installed (npcaffe's workers are MPI ranks; there is no
    GPU NCCL yet). Checked without importing MPI; see npcaffe.distributed."""
    return distributed.launched_by_mpi() and distributed.has_mpi()


def _lazy(name):
    import importlib
    return importlib.import_module(f'npcaffe.{name}')


def __getattr__(attr):
    # Optional parts (solvers, io, draw, Classifier, Detector) load on first use.
    lazy = {
        'io': ('io', None), 'draw': ('draw', None), 'hdf5': ('hdf5', None),
        'Classifier': ('classifier', 'Classifier'), 'Detector': ('detector', 'Detector'),
        'get_solver': ('solver', 'get_solver'), 'SGDSolver': ('solver', 'SGDSolver'),
        'NesterovSolver': ('solver', 'NesterovSolver'),
        'AdaGradSolver': ('solver', 'AdaGradSolver'),
        'RMSPropSolver': ('solver', 'RMSPropSolver'),
        'AdaDeltaSolver': ('solver', 'AdaDeltaSolver'), 'AdamSolver': ('solver', 'AdamSolver'),
        'solver_type_list': ('solver', 'solver_type_list'),
    }
    if attr in lazy:
        module, name = lazy[attr]
        mod = _lazy(module)
        return mod if name is None else getattr(mod, name)
    raise AttributeError(f"module 'npcaffe' has no attribute {attr!r}")


__all__ = ['Blob', 'CaffeError', 'Classifier', 'Detector', 'Layer', 'ModelFileError', 'NCCL',
           'Net', 'NetError', 'NetSpec', 'NotSupportedError', 'PrototxtError', 'SnapshotError', 'TEST',
           'TRAIN', 'TrainingDivergedError', 'UnknownLayerTypeError', 'WeightShapeError',
           'caffe_pb2', 'coord_map', 'device', 'get_random_state', 'get_solver', 'has_nccl',
           'install_as_caffe', 'io', 'layer_type_list', 'layers', 'net_spec', 'params',
           'set_device', 'set_mode_cpu', 'set_mode_gpu', 'set_multiprocess', 'set_random_seed',
           'set_random_state', 'set_solver_count', 'set_solver_rank', 'solver_count',
           'solver_rank', 'solver_type_list', 'to_proto', 'distributed']
