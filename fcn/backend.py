"""The toolkit's one import point for Caffe.

Everything in layers/, surgery.py, score.py, solve.py and infer.py reaches the engine through
``from backend import caffe``, never through ``npcaffe`` directly, so the same code runs on
BVLC pycaffe where that is installed.

The engine is chosen by ``use(name)`` (the ``--backend`` flag of the command-line tools) or by
the ``FCN_BACKEND`` environment variable: ``npcaffe`` (the default, this repository's NumPy
engine) or ``caffe`` (BVLC pycaffe). The choice is made on first access of ``backend.caffe``
and cannot change afterwards within one process.
"""
import importlib
import os

BACKENDS = ('npcaffe', 'caffe')
_chosen = None
_module = None


class BackendError(RuntimeError):
    """The requested Caffe backend is unknown or cannot be imported."""


def use(name):
    """Select the backend ``name`` (one of BACKENDS) before the first ``backend.caffe``."""
    global _chosen
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if _module is not None and name != _chosen:
        raise BackendError(f"backend {_chosen!r} is already in use; "
                           f"choose {name!r} before anything imports Caffe")
    _chosen = name


def add_argument(parser):
    """Add the ``--backend`` option every command-line tool shares."""
    parser.add_argument('--backend', choices=BACKENDS,
                        help='Caffe to run on: npcaffe (default) or caffe (BVLC pycaffe); '
                             'or set FCN_BACKEND')


def name():
    """The name of the backend that is (or will be) used."""
    return _chosen or os.environ.get('FCN_BACKEND') or 'npcaffe'


def load():
    """Import and return the selected backend module."""
    global _module, _chosen
    if _module is None:
        chosen = name()
        if chosen not in BACKENDS:
            raise BackendError(f"FCN_BACKEND={chosen!r} is not a backend; "
                               f"choose one of {', '.join(BACKENDS)}")
        try:
            _module = importlib.import_module(chosen)
        except ImportError as exc:
            hint = (" (BVLC pycaffe is not installed here; leave FCN_BACKEND unset to use npcaffe)"
                    if chosen == 'caffe' else '')
            raise BackendError(f"cannot import backend {chosen!r}: {exc}{hint}") from exc
        _chosen = chosen
    return _module


def __getattr__(attr):
    if attr == 'caffe':
        return load()
    raise AttributeError(f"module 'backend' has no attribute {attr!r}")
