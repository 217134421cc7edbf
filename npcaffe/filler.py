"""Weight fillers (Caffe's FillerParameter): constant, uniform, gaussian, positive_unitball,
xavier, msra, bilinear. They initialise parameters of nets built without weights.

Randomness comes from :func:`rng`, seeded by ``npcaffe.set_random_seed`` (not bit-equal to
Caffe's generator; the distributions and their parameters are Caffe's).
"""
import math

from npcaffe.arraymod import xp
from npcaffe.errors import NotSupportedError
from npcaffe.proto import caffe_pb2

_rng = xp.random.default_rng()


def set_seed(seed):
    """Reseed the engine's random generator (fillers, dropout masks)."""
    global _rng
    _rng = xp.random.default_rng(seed)


def rng():
    return _rng


def get_state():
    """The engine generator's state (JSON-able), to continue its draws later exactly."""
    return _rng.bit_generator.state


def set_state(state):
    """Continue the engine generator's draws from :func:`get_state`'s value."""
    _rng.bit_generator.state = state


def _fans(shape):
    """Caffe's fan_in = count / shape[0], fan_out = count / shape[1]."""
    count = math.prod(shape)
    fan_in = count // shape[0] if shape and shape[0] else count
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _variance_n(param, shape):
    fan_in, fan_out = _fans(shape)
    norm = param.variance_norm
    if norm == caffe_pb2.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if norm == caffe_pb2.FillerParameter.FAN_OUT:
        return fan_out
    return fan_in


def bilinear_kernel(size):
    """A (size, size) bilinear upsampling kernel, as Caffe's bilinear filler and FCN's
    upsample_filt: f = ceil(size/2), c = (2f - 1 - f%2) / (2f), w = (1-|x/f - c|)(1-|y/f - c|)."""
    f = math.ceil(size / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    og = xp.arange(size, dtype=xp.float64)
    w1 = 1 - xp.abs(og / f - c)
    return xp.outer(w1, w1)


def fill(blob, param=None):
    """Fill ``blob.data`` as the FillerParameter ``param`` says (default constant 0)."""
    if param is None:
        param = caffe_pb2.FillerParameter()
    data = blob.data
    shape = data.shape
    kind = param.type
    g = rng()
    if kind == 'constant':
        data[...] = param.value
    elif kind == 'uniform':
        data[...] = g.uniform(param.min, param.max, shape)
    elif kind == 'gaussian':
        data[...] = g.normal(param.mean, param.std, shape)
        if param.sparse >= 0:
            num_outputs = shape[0] if shape else 1
            keep = g.random(shape) < param.sparse / max(num_outputs, 1)
            data *= keep
    elif kind == 'positive_unitball':
        flat = g.uniform(0, 1, (shape[0], -1) if shape else (1, 1)).reshape(shape[0], -1)
        data[...] = (flat / flat.sum(axis=1, keepdims=True)).reshape(shape)
    elif kind == 'xavier':
        scale = math.sqrt(3.0 / _variance_n(param, shape))
        data[...] = g.uniform(-scale, scale, shape)
    elif kind == 'msra':
        data[...] = g.normal(0.0, math.sqrt(2.0 / _variance_n(param, shape)), shape)
    elif kind == 'bilinear':
        if len(shape) != 4 or shape[2] != shape[3]:
            raise ValueError(f"the bilinear filler needs a 4-D blob with square kernels, "
                             f"got shape {shape}")
        data[...] = bilinear_kernel(shape[3])
    else:
        raise NotSupportedError(f"filler type {kind!r} is not supported (known: constant, "
                                f"uniform, gaussian, positive_unitball, xavier, msra, bilinear)")
    return blob
