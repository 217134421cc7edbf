"""Where the engine computes: Caffe's mode (CPU or GPU) and GPU device, for one process.

pycaffe scripts begin with ``caffe.set_mode_gpu(); caffe.set_device(0)``. npcaffe has no GPU
engine yet, so by default those calls log one warning per process and the engine keeps running
on the CPU; with the environment variable ``NPCAFFE_STRICT_GPU=1`` they raise
NotSupportedError instead (for runs that must not fall back silently)::

    import npcaffe as caffe
    caffe.set_mode_gpu()          # WARNING ... running on the CPU
    caffe.set_device(0)
    caffe.device.mode()           # 'CPU': the mode in effect
    caffe.device.requested_mode() # 'GPU': what the script asked for

Contract for a GPU engine to come: ``gpu_available()`` says whether one can run; when it is
true, ``set_mode_gpu()`` makes ``mode()`` 'GPU' and ``set_device(n)`` selects device ``n``.
"""
import logging
import operator
import os

from npcaffe.errors import NotSupportedError

log = logging.getLogger(__name__)

CPU, GPU = 'CPU', 'GPU'
STRICT_ENV = 'NPCAFFE_STRICT_GPU'

_state = {'mode': CPU, 'requested': CPU, 'device': 0, 'warned': False}


def gpu_available():
    """Whether the engine can compute on a GPU (never, until a GPU engine exists)."""
    return False


def _strict():
    return os.environ.get(STRICT_ENV, '') == '1'


def _no_gpu(what):
    """Refuse (strict) or warn once and stay on the CPU."""
    if _strict():
        raise NotSupportedError(f"{what}: npcaffe runs on the CPU only, there is no GPU backend "
                                f"yet ({STRICT_ENV}=1 makes this an error; unset it to run on "
                                f"the CPU, or use BVLC pycaffe for GPU runs)")
    if not _state['warned']:
        _state['warned'] = True
        log.warning("%s: npcaffe has no GPU backend yet, running on the CPU "
                    "(set %s=1 to make this an error)", what, STRICT_ENV)


def set_mode_cpu():
    """Compute on the CPU."""
    _state['mode'] = _state['requested'] = CPU


def set_mode_gpu():
    """Compute on the GPU where there is one; otherwise warn once (or raise, strict) and keep
    the CPU."""
    _state['requested'] = GPU
    if gpu_available():
        _state['mode'] = GPU
        return
    _no_gpu("caffe.set_mode_gpu()")
    _state['mode'] = CPU


def set_device(device_id):
    """Select GPU ``device_id`` (an int >= 0, as Caffe's SetDevice takes); without a GPU, warn
    once (or raise, strict) and keep the CPU."""
    try:
        device_id = operator.index(device_id)
    except TypeError:
        raise TypeError(f"device id must be an int, got {type(device_id).__name__} "
                        f"{device_id!r}") from None
    if device_id < 0:
        raise ValueError(f"device id must be >= 0, got {device_id}")
    if not gpu_available():
        _no_gpu(f"caffe.set_device({device_id})")
    _state['device'] = device_id


def mode():
    """The mode in effect: 'CPU' or 'GPU'."""
    return _state['mode']


def requested_mode():
    """The mode the last set_mode_cpu/set_mode_gpu call asked for."""
    return _state['requested']


def device():
    """The device id last given to set_device (0 until then)."""
    return _state['device']
