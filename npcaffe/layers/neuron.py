"""Neuron layers: elementwise maps of one bottom to one top of the same shape (Caffe's
NeuronLayer family).

Every layer here keeps the dtype of its input and may run in place (``top[0] is bottom[0]``)
wherever BVLC Caffe allows it (AbsVal does not). The simple pointwise layers share
:class:`PointwiseLayer`: a layer gives ``value(x)`` and ``slope(x, y)`` (dy/dx), and says
whether its slope needs the input ``x`` or can be computed from the output ``y`` alone. When it
needs ``x`` and runs in place, the input is kept before it is overwritten (Caffe reads the
overwritten bottom instead, which is wrong for Power, Log, ... in place; here it is right).

Layers (Caffe type name: formula, parameters with defaults):

==========  =====================================================================
ReLU        y = max(x, 0) + negative_slope * min(x, 0)       (negative_slope 0)
Sigmoid     y = 1 / (1 + exp(-x))            computed as 0.5 tanh(x/2) + 0.5
TanH        y = tanh(x)
AbsVal      y = |x|, dy/dx = sign(x) (0 at 0); no in-place use (as Caffe)
Power       y = (shift + scale x)^power                (power 1, scale 1, shift 0)
Exp         y = base^(shift + scale x); base -1 means e  (base -1, scale 1, shift 0)
Log         y = log_base(shift + scale x); base -1 means e
ELU         y = x if x > 0 else alpha (exp(x) - 1)                        (alpha 1)
BNLL        y = log(1 + exp(x))
Threshold   y = 1 if x > threshold else 0; no gradient               (threshold 0)
Clip        y = min(max(x, min), max); dy/dx = 1 on [min, max]     (min, max required)
Swish       y = x sigmoid(beta x)                                          (beta 1)
Dropout     TRAIN: y = x mask / (1 - p), mask ~ Bernoulli(1 - p); TEST: y = x
PReLU       y = max(x, 0) + a_c min(x, 0), one learned slope a_c per channel (axis 1)
==========  =====================================================================
"""
import math

from npcaffe.arraymod import xp
from npcaffe import filler
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer, TRAIN
from npcaffe.parallel import elementwise


class NeuronLayer(Layer):
    """One bottom, one top of the bottom's shape (Caffe's NeuronLayer)."""

    exact_bottoms = 1
    exact_tops = 1
    #: False for layers that Caffe refuses to run in place (AbsVal)
    allow_in_place = True

    def setup(self, bottom, top):
        if not self.allow_in_place and top[0] is bottom[0]:
            raise NetError(f"layer {self.name!r}: {self.type} does not allow in-place "
                           f"computation (its top is its bottom); give the top its own name")

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)


class PointwiseLayer(NeuronLayer):
    """y = value(x) elementwise; dx = dy * slope(x, y).

    Subclasses define ``value(x)`` and ``slope(x, y)``. ``slope_needs_input`` says whether
    ``slope`` reads ``x``; if it does not, it receives ``x=None`` when the layer runs in place
    (the input is gone) and must work from ``y``. If it does, the input is copied before an
    in-place forward overwrites it.
    """

    slope_needs_input = False
    _saved_x = None

    def forward(self, bottom, top):
        x = bottom[0].data
        in_place = top[0] is bottom[0]
        self._saved_x = x.copy() if (in_place and self.slope_needs_input) else None
        top[0].data[...] = self.value(x)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if top[0] is bottom[0]:
            x = self._saved_x  # None when the slope needs only y
        else:
            x = bottom[0].data
        # elementwise with out=: safe when the diffs are one array (in place)
        xp.multiply(top[0].diff, self.slope(x, top[0].data), out=bottom[0].diff)

    def value(self, x):
        raise NotImplementedError

    def slope(self, x, y):
        raise NotImplementedError


@register("ReLU")
class ReLULayer(PointwiseLayer):
    """y = max(x, 0) + negative_slope * min(x, 0); dy/dx = 1 if x > 0 else negative_slope.

    For negative_slope >= 0, x > 0 exactly where y > 0, so the slope is read from y and in-place
    use costs no copy (FCN's ReLUs all run in place). With negative_slope 0, forward and
    backward run without temporaries, large blobs split over the worker threads.
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.negative_slope = float(self.layer_param.relu_param.negative_slope)
        self.slope_needs_input = self.negative_slope < 0

    def forward(self, bottom, top):
        if self.negative_slope == 0:  # the common case, without temporaries, on the workers
            elementwise(lambda x, y: xp.maximum(x, 0, out=y), bottom[0].data, top[0].data)
        else:
            super().forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        if self.negative_slope == 0 and propagate_down[0]:
            # dx = dy where y > 0 (exactly where x > 0), else 0; in place or not
            elementwise(lambda dy, y, dx: xp.multiply(dy, y > 0, out=dx),
                        top[0].diff, top[0].data, bottom[0].diff)
        else:
            super().backward(top, propagate_down, bottom)

    def value(self, x):
        return xp.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    def slope(self, x, y):
        ref = y if x is None else x
        if self.negative_slope == 0:
            return ref > 0
        return xp.where(ref > 0, 1, self.negative_slope).astype(ref.dtype)


@register("Sigmoid")
class SigmoidLayer(PointwiseLayer):
    """y = 1 / (1 + exp(-x)) (as Caffe: 0.5 tanh(0.5 x) + 0.5); dy/dx = y (1 - y)."""

    def value(self, x):
        return 0.5 * xp.tanh(0.5 * x) + 0.5

    def slope(self, x, y):
        return y * (1 - y)


@register("TanH")
class TanHLayer(PointwiseLayer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def value(self, x):
        return xp.tanh(x)

    def slope(self, x, y):
        return 1 - y * y


@register("AbsVal")
class AbsValLayer(PointwiseLayer):
    """y = |x|; dy/dx = sign(x) (0 at 0). Caffe refuses in-place use of AbsVal."""

    allow_in_place = False
    slope_needs_input = True

    def value(self, x):
        return xp.abs(x)

    def slope(self, x, y):
        return xp.sign(x)


@register("Power")
class PowerLayer(PointwiseLayer):
    """y = (shift + scale x)^power; dy/dx = power scale (shift + scale x)^(power - 1).

    As Caffe: when power * scale == 0 the output is the constant shift^power (1 if power is 0)
    and the gradient is 0; when power == 1 the gradient is the constant scale.
    """

    slope_needs_input = True

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = self.power * self.scale
        # a constant slope needs no input
        self.slope_needs_input = not (self.diff_scale == 0 or self.power == 1)

    def value(self, x):
        if self.diff_scale == 0:
            const = 1.0 if self.power == 0 else self.shift ** self.power
            return xp.full(x.shape, const, x.dtype)
        base = x * x.dtype.type(self.scale) + x.dtype.type(self.shift)
        return base if self.power == 1 else xp.power(base, x.dtype.type(self.power))

    def slope(self, x, y):
        if not self.slope_needs_input:
            return y.dtype.type(self.diff_scale)
        t = x.dtype.type
        base = x * t(self.scale) + t(self.shift)
        if self.power == 2:
            return t(self.diff_scale) * base
        return t(self.diff_scale) * xp.power(base, t(self.power - 1))


def _log_base(base, layer, field):
    """ln(base); base -1 means e (Caffe's Exp/Log convention); other bases must be > 0."""
    if base == -1:
        return 1.0
    if base <= 0:
        raise NetError(f"layer {layer.name!r}: {field}.base must be -1 (for e) or positive, "
                       f"got {base}")
    return math.log(base)


@register("Exp")
class ExpLayer(PointwiseLayer):
    """y = base^(shift + scale x) = exp(shift ln base) exp(scale ln(base) x);
    dy/dx = y scale ln(base). base -1 (the default) means e."""

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.exp_param
        log_base = _log_base(float(p.base), self, 'exp_param')
        self.inner_scale = log_base * float(p.scale)
        self.outer_scale = 1.0 if p.shift == 0 else math.exp(log_base * float(p.shift))

    def value(self, x):
        t = x.dtype.type
        y = xp.exp(x * t(self.inner_scale))
        return y if self.outer_scale == 1 else y * t(self.outer_scale)

    def slope(self, x, y):
        return y * y.dtype.type(self.inner_scale)


@register("Log")
class LogLayer(PointwiseLayer):
    """y = log_base(shift + scale x) = ln(shift + scale x) / ln(base);
    dy/dx = scale / (ln(base) (shift + scale x)). base -1 (the default) means e."""

    slope_needs_input = True

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.log_param
        self.log_base = _log_base(float(p.base), self, 'log_param')
        self.scale, self.shift = float(p.scale), float(p.shift)

    def _inner(self, x):
        t = x.dtype.type
        return x * t(self.scale) + t(self.shift)

    def value(self, x):
        return xp.log(self._inner(x)) * x.dtype.type(1.0 / self.log_base)

    def slope(self, x, y):
        return x.dtype.type(self.scale / self.log_base) / self._inner(x)


@register("ELU")
class ELULayer(PointwiseLayer):
    """y = x if x > 0 else alpha (exp(x) - 1); dy/dx = 1 if x > 0 else y + alpha.

    For alpha >= 0, x > 0 exactly where y > 0, so the slope is read from y (in place for free).
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.alpha = float(self.layer_param.elu_param.alpha)
        self.slope_needs_input = self.alpha < 0

    def value(self, x):
        t = x.dtype.type
        return xp.maximum(x, 0) + t(self.alpha) * (xp.exp(xp.minimum(x, 0)) - 1)

    def slope(self, x, y):
        t = y.dtype.type
        if x is None:
            return xp.where(y > 0, t(1), y + t(self.alpha))
        return xp.where(x > 0, t(1), t(self.alpha) * xp.exp(xp.minimum(x, 0)))


@register("BNLL")
class BNLLLayer(PointwiseLayer):
    """y = log(1 + exp(x)) (binomial normal log likelihood, computed stably);
    dy/dx = sigmoid(x), with x clamped at 50 as Caffe."""

    slope_needs_input = True

    def value(self, x):
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def slope(self, x, y):
        e = xp.exp(xp.minimum(x, x.dtype.type(50)))
        return e / (e + 1)


@register("Threshold")
class ThresholdLayer(NeuronLayer):
    """y = 1 if x > threshold else 0 (threshold 0). Caffe has no backward for it."""

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.threshold = float(self.layer_param.threshold_param.threshold)

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = x > x.dtype.type(self.threshold)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise NotSupportedError(f"layer {self.name!r}: Threshold has no backward (as in "
                                    f"Caffe); no layer below it may need a gradient")


@register("Clip")
class ClipLayer(PointwiseLayer):
    """y = min(max(x, min), max); dy/dx = 1 where min <= x <= max, else 0."""

    slope_needs_input = True

    def setup(self, bottom, top):
        super().setup(bottom, top)
        p = self.layer_param.clip_param
        if not (p.HasField('min') and p.HasField('max')):
            raise NetError(f"layer {self.name!r}: Clip needs clip_param {{ min: ... max: ... }}")
        self.min, self.max = float(p.min), float(p.max)
        if self.min > self.max:
            raise NetError(f"layer {self.name!r}: clip_param.min ({self.min}) is greater than "
                           f"clip_param.max ({self.max})")

    def value(self, x):
        t = x.dtype.type
        return xp.clip(x, t(self.min), t(self.max))

    def slope(self, x, y):
        t = x.dtype.type
        return ((x >= t(self.min)) & (x <= t(self.max))).astype(x.dtype)


@register("Swish")
class SwishLayer(PointwiseLayer):
    """y = x s, s = sigmoid(beta x) (beta 1); dy/dx = beta y + s (1 - beta y).

    s is kept from the forward pass (as Caffe's internal sigmoid blob), so in-place use needs
    no copy of x.
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.beta = float(self.layer_param.swish_param.beta)

    def value(self, x):
        t = x.dtype.type
        self._sig = t(0.5) * xp.tanh(t(0.5 * self.beta) * x) + t(0.5)
        return x * self._sig

    def slope(self, x, y):
        by = y * y.dtype.type(self.beta)
        return by + self._sig * (1 - by)


@register("Dropout")
class DropoutLayer(NeuronLayer):
    """Dropout (dropout_ratio p = 0.5).

    TRAIN: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) drawn from ``npcaffe.filler.rng()``
    at every forward and kept for backward: dx = dy * mask / (1 - p).
    TEST: y = x, dx = dy.
    (BVLC Caffe's DropoutParameter has only dropout_ratio; the ``scale_train`` field of some
    forks is not in its proto.)
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.ratio = float(self.layer_param.dropout_param.dropout_ratio)
        if not 0 <= self.ratio < 1:
            raise NetError(f"layer {self.name!r}: dropout_param.dropout_ratio must be in "
                           f"[0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)
        self._mask = None

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.phase == TRAIN:
            keep = filler.rng().random(x.shape, dtype=xp.float32) < 1.0 - self.ratio
            self._mask = keep.astype(x.dtype) * x.dtype.type(self.scale)
            top[0].data[...] = x * self._mask
        elif top[0] is not bottom[0]:
            top[0].data[...] = x

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.phase == TRAIN:
            bottom[0].diff[...] = top[0].diff * self._mask
        elif top[0] is not bottom[0]:
            bottom[0].diff[...] = top[0].diff


@register("PReLU")
class PReLULayer(NeuronLayer):
    """Parametric ReLU: y = max(x, 0) + a_c min(x, 0), c the index along axis 1.

    Parameters: prelu_param.filler (default constant 0.25) and channel_shared (false). The slope
    blob has shape (C,), or () when channel_shared. Gradients:
    dx = dy (1 if x > 0 else a_c); da_c += sum of dy x over the elements of channel c with
    x <= 0 (over all channels when shared). In place, the input is kept before it is
    overwritten (as Caffe's bottom_memory_).
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        if bottom[0].num_axes < 2:
            raise NetError(f"layer {self.name!r}: PReLU needs a bottom of at least 2 axes, "
                           f"got shape {bottom[0].shape}")
        p = self.layer_param.prelu_param
        self.channel_shared = bool(p.channel_shared)
        channels = bottom[0].shape[1]
        if not self.blobs:
            self.blobs.dtype = self.param_dtype(bottom)
            slope = self.blobs.add_blob(*(() if self.channel_shared else (channels,)))
            if p.HasField('filler'):
                filler.fill(slope, p.filler)
            else:
                slope.data[...] = 0.25
        want = 1 if self.channel_shared else channels
        if self.blobs[0].count != want:
            raise NetError(f"layer {self.name!r}: PReLU slope blob has {self.blobs[0].count} "
                           f"values but needs {want} (channel_shared: "
                           f"{str(self.channel_shared).lower()}, {channels} channels)")
        self.param_propagate_down = [True]
        self._saved_x = None

    def reshape(self, bottom, top):
        if bottom[0].num_axes < 2:
            raise NetError(f"layer {self.name!r}: PReLU needs a bottom of at least 2 axes, "
                           f"got shape {bottom[0].shape}")
        super().reshape(bottom, top)

    def _slopes(self, x):
        """The slopes broadcast against x: () when shared, else (C, 1, ..., 1)."""
        a = self.blobs[0].data.astype(x.dtype, copy=False)
        if self.channel_shared:
            return a.reshape(())
        return a.reshape((-1,) + (1,) * (x.ndim - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        self._saved_x = x.copy() if top[0] is bottom[0] else None
        top[0].data[...] = xp.where(x > 0, x, x * self._slopes(x))

    def backward(self, top, propagate_down, bottom):
        x = self._saved_x if top[0] is bottom[0] else bottom[0].data
        dy = top[0].diff
        if self.param_propagate_down and self.param_propagate_down[0]:
            neg = xp.where(x <= 0, dy * x, 0)
            if self.channel_shared:
                self.blobs[0].diff[...] += neg.sum()
            else:
                axes = (0,) + tuple(range(2, x.ndim))
                self.blobs[0].diff[...] += neg.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * xp.where(x > 0, 1, self._slopes(x)).astype(x.dtype)
