"""Normalisation layers: LRN, BatchNorm, Scale, Bias, MVN.

==========  ===================================================================================
LRN         y = x * scale^-beta over 4-D (N, C, H, W) input, lrn_param local_size n (5, odd),
            alpha (1), beta (0.75), k (1), norm_region:
              ACROSS_CHANNELS  scale = k + alpha/n * sum of x^2 over channels c-(n-1)/2..c+(n-1)/2
              WITHIN_CHANNEL   scale = 1 + alpha * avepool(x^2), the n x n average pooling with
                               pad (n-1)/2 and stride 1 that Caffe builds internally (shift 1,
                               k unused). Its divisor is the window clipped to H + pad, which at
                               stride 1 and pad (n-1)/2 is always the full n*n.
            dx = dy scale^-beta - 2 alpha' beta x * S(dy y / scale), S the same window sum
            (self-adjoint) and alpha' the factor in front of the window sum (alpha/n, alpha/n^2).
BatchNorm   y = (x - mean_c) / sqrt(var_c + eps) per channel c (axis 1; 1 channel for 1-D input),
            statistics over the batch and spatial axes. batch_norm_param use_global_stats
            (default: TEST uses the stored statistics, TRAIN the batch's),
            moving_average_fraction maf (0.999), eps (1e-5). Blobs: [mean sum (C), variance sum
            (C), scale factor (1)]; stored statistics are blob / factor (0 if the factor is 0).
            TRAIN updates them: factor = maf * factor + 1, mean_blob = mean + maf * mean_blob,
            var_blob = m/(m-1) var + maf * var_blob (m = count / C). The three blobs are not
            learned: their ParamSpecs get lr_mult 0 (added when missing; a non-zero one is an
            error), as Caffe does. In-place allowed.
Scale       y = x * s (+ b), s broadcast over bottom 0 from scale_param.axis (1) over num_axes (1,
            -1 = to the end) axes; s is a learned blob (filler, default constant 1) or bottom 1
            (then its shape fixes the axes); bias_term adds a learned b (bias_filler, default 0).
            In-place allowed.
Bias        y = x + b, b a learned blob (bias_param axis 1, num_axes 1, filler) or bottom 1.
MVN         y = (x - mean) / (std + eps) per (n, c) row of a 4-D blob, or per n with
            across_channels; mvn_param normalize_variance (true), across_channels (false),
            eps (1e-9) added after the square root.
==========  ===================================================================================

Parameter gradients are accumulated (+=) into the blobs' diffs where ``param_propagate_down``.
"""

from npcaffe.arraymod import xp
from npcaffe import filler
from npcaffe.blob import Blob
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer, TEST
from npcaffe.proto import caffe_pb2

def _window_sum(a, size, axis):
    """Sum of ``a`` over the centred window of odd ``size`` along ``axis``, zero-padded."""
    half = (size - 1) // 2
    n = a.shape[axis]
    out = a.copy()
    for off in range(1, half + 1):
        if off >= n:
            break
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(0, n - off), slice(off, n)
        lo, hi = tuple(lo), tuple(hi)
        out[lo] += a[hi]      # neighbour below the window centre
        out[hi] += a[lo]      # neighbour above
    return out

def _across_channels(a, size):
    return _window_sum(a, size, 1)

def _within_channel(a, size):
    return _window_sum(_window_sum(a, size, 2), size, 3)

_Region = caffe_pb2.LRNParameter
#: norm_region -> (window sum, shift of the scale, factor on the window sum given alpha, k, n)
_LRN_REGIONS = {
    _Region.ACROSS_CHANNELS: (_across_channels, lambda alpha, k, n: (k, alpha / n)),
    _Region.WITHIN_CHANNEL: (_within_channel, lambda alpha, k, n: (1.0, alpha / (n * n))),
}

@register("LRN")
class LRNLayer(Layer):
    """Local response normalisation, as Caffe's lrn_layer.cpp (see the module doc)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 != 1:
            raise NetError(f"layer {self.name!r} (LRN): local_size must be odd, got {self.size}")
        try:
            self._window, shift_and_factor = _LRN_REGIONS[p.norm_region]
        except KeyError:
            raise NotSupportedError(f"layer {self.name!r} (LRN): lrn_param.norm_region = "
                                    f"{p.norm_region} is not supported") from None
        self.beta = float(p.beta)
        self.alpha = float(p.alpha)
        self._shift, self._factor = shift_and_factor(self.alpha, float(p.k), self.size)

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            raise NetError(f"layer {self.name!r} (LRN): input must have 4 axes (num, channels, "
                           f"height, width), got shape {bottom[0].shape}")
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        dt = x.dtype.type
        scale = self._window(x * x, self.size)
        scale *= dt(self._factor)
        scale += dt(self._shift)
        self._scale = scale
        top[0].data[...] = x * scale ** dt(-self.beta)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dt = top[0].data.dtype.type
        y, dy, scale = top[0].data, top[0].diff, self._scale
        # in place the input is gone; it is y * scale^beta
        x = y * scale ** dt(self.beta) if top[0] is bottom[0] else bottom[0].data
        ratio = self._window(dy * y / scale, self.size)
        ratio *= x
        ratio *= dt(2 * self._factor * self.beta)
        bottom[0].diff[...] = dy * scale ** dt(-self.beta) - ratio

@register("BatchNorm")
class BatchNormLayer(Layer):
    """Batch normalisation without the affine part (Caffe's BatchNorm; see the module doc)."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.batch_norm_param
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        self.use_global_stats = (p.use_global_stats if p.HasField('use_global_stats')
                                 else self.phase == TEST)
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        if not self.blobs:
            dt = self.param_dtype(bottom)
            for shape in ((self.channels,), (self.channels,), (1,)):
                self.blobs.append(Blob(shape, dt))    # zero-filled
        # the statistics are not learned: lr_mult 0 for each, as Caffe forces
        specs = self.layer_param.param
        for i in range(len(self.blobs)):
            if i == len(specs):
                specs.add().lr_mult = 0.0
            elif specs[i].lr_mult != 0:
                raise NetError(f"layer {self.name!r} (BatchNorm): cannot configure batch "
                               f"normalization statistics as layer parameters (param {i} has "
                               f"lr_mult {specs[i].lr_mult}; it must be 0)")
        self.param_propagate_down = [False] * len(self.blobs)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        channels = 1 if len(shape) == 1 else (shape[1] if len(shape) > 1 else None)
        if channels != self.channels:
            raise NetError(f"layer {self.name!r} (BatchNorm): expected {self.channels} channels "
                           f"on axis 1, got shape {shape}")
        num = shape[0]
        self._dims = (num, self.channels, bottom[0].count // max(num * self.channels, 1))
        top[0].reshape(shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self._dims)
        y = top[0].data.reshape(self._dims)
        dt = x.dtype.type
        if self.use_global_stats:
            stored = self.blobs[2].data.flat[0]
            factor = dt(0) if stored == 0 else dt(1) / stored
            mean = factor * self.blobs[0].data
            var = factor * self.blobs[1].data
        else:
            mean = x.mean(axis=(0, 2))
        xp.subtract(x, mean[:, None], out=y)
        if not self.use_global_stats:
            var = xp.einsum('ncs,ncs->c', y, y) / dt(y.shape[0] * y.shape[2])
            self.blobs[2].data[...] = dt(self.maf) * self.blobs[2].data + dt(1)
            self.blobs[0].data[...] = mean + dt(self.maf) * self.blobs[0].data
            m = bottom[0].count // self.channels
            correction = dt(m / (m - 1)) if m > 1 else dt(1)
            self.blobs[1].data[...] = correction * var + dt(self.maf) * self.blobs[1].data
        self._std = xp.sqrt(var + dt(self.eps)).astype(x.dtype)   # (C,)
        y /= self._std[:, None]
        # later in-place layers may overwrite the top; backward needs the normalised values
        self._x_norm = None if self.use_global_stats else y.copy()

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self._dims)
        dx = bottom[0].diff.reshape(self._dims)          # may be dy itself (in place)
        std = self._std[:, None]
        if self.use_global_stats:
            xp.divide(dy, std, out=dx)
            return
        # dx = (dy - mean(dy) - mean(dy * y) * y) / std, means over batch and spatial axes
        y = self._x_norm
        m = dy.dtype.type(dy.shape[0] * dy.shape[2])
        sum_dy_y = xp.einsum('ncs,ncs->c', dy, y)[:, None]
        sum_dy = dy.sum(axis=(0, 2))[:, None]
        result = dy - (y * sum_dy_y + sum_dy) / m
        result /= std
        dx[...] = result

def _param_shape(layer, bottom, axis, num_axes, what):
    """Shape of a learned operand: bottom's axes [axis, axis + num_axes) (-1: to the end)."""
    try:
        axis = bottom.canonical_axis(axis)
    except IndexError as exc:
        raise NetError(f"layer {layer.name!r} ({layer.type}): {what}.axis: {exc}") from None
    if num_axes < -1:
        raise NetError(f"layer {layer.name!r} ({layer.type}): {what}.num_axes must be "
                       f"non-negative, or -1 to extend to the end of bottom[0]; got {num_axes}")
    if num_axes >= 0 and bottom.num_axes < axis + num_axes:
        raise NetError(f"layer {layer.name!r} ({layer.type}): the {what} blob's shape extends "
                       f"past bottom[0]'s shape {bottom.shape} (axis {axis}, num_axes {num_axes})")
    return bottom.shape[axis:] if num_axes == -1 else bottom.shape[axis:axis + num_axes]

def _broadcast_dims(layer, bottom, operand, axis):
    """(outer, dim, inner) viewing ``bottom`` so that ``operand`` broadcasts on the middle axis.

    As Caffe, a scalar operand (0 axes) uses axis 0; otherwise its shape must equal bottom's
    axes [axis, axis + operand.num_axes).
    """
    nax = operand.num_axes
    if nax == 0:
        axis = 0
    else:
        try:
            axis = bottom.canonical_axis(axis)
        except IndexError as exc:
            raise NetError(f"layer {layer.name!r} ({layer.type}): axis: {exc}") from None
    if bottom.shape[axis:axis + nax] != operand.shape:
        raise NetError(f"layer {layer.name!r} ({layer.type}): shape {operand.shape} does not match "
                       f"bottom[0] shape {bottom.shape} at axes {axis}..{axis + nax - 1}")
    return bottom.count_range(0, axis), operand.count, bottom.count_range(axis + nax)

def _sum_to_operand(g3):
    """Sum an (outer, dim, inner) array over outer and inner: (dim,)."""
    return g3.sum(axis=(0, 2))

@register("Bias")
class BiasLayer(Layer):
    """y = x + b; b learned (bias_param filler, default constant 0) or bottom 1. In-place allowed.

    Backward: dx = dy; db = sum of dy over the axes b is broadcast along (accumulated for the
    learned blob, written for bottom 1).
    """

    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.bias_param
        if len(bottom) == 1 and not self.blobs:
            shape = _param_shape(self, bottom[0], p.axis, p.num_axes, 'bias_param')
            blob = Blob(shape, self.param_dtype(bottom))
            filler.fill(blob, p.filler)
            self.blobs.append(blob)
        self.param_propagate_down = [True] * len(self.blobs)

    def _bias(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        self._dims = _broadcast_dims(self, bottom[0], self._bias(bottom),
                                     self.layer_param.bias_param.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        b = self._bias(bottom).data.reshape(1, self._dims[1], 1)
        xp.add(bottom[0].data.reshape(self._dims), b, out=top[0].data.reshape(self._dims))

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self._dims)
        bias = self._bias(bottom)
        if len(bottom) > 1 and propagate_down[1]:
            bias.diff[...] = _sum_to_operand(dy).reshape(bias.shape)
        elif len(bottom) == 1 and self.param_propagate_down and self.param_propagate_down[0]:
            bias.diff[...] += _sum_to_operand(dy).reshape(bias.shape)
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff[...] = top[0].diff

@register("Scale")
class ScaleLayer(Layer):
    """y = x * s (+ b), see the module doc. In-place allowed.

    Blobs: [s] (one bottom) then [b] if bias_term; with two bottoms only [b]. Backward:
    dx = dy * s; ds = sum of dy * x over the broadcast axes (accumulated into the learned s,
    written into bottom 1); db = sum of dy. (Caffe overwrites rather than accumulates the learned
    s's diff in some shape cases; here it always accumulates, as the solver expects.)
    """

    min_bottoms = 1
    max_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.scale_param
        dt = self.param_dtype(bottom)
        if len(bottom) == 1 and not self.blobs:
            shape = _param_shape(self, bottom[0], p.axis, p.num_axes, 'scale_param')
            blob = Blob(shape, dt)
            fill_param = p.filler
            if not p.HasField('filler'):    # identity by default
                fill_param = caffe_pb2.FillerParameter(type='constant', value=1)
            filler.fill(blob, fill_param)
            self.blobs.append(blob)
        self._bias_index = None
        if p.bias_term:
            if len(self.blobs) + len(bottom) < 3:      # the bias blob is not there yet
                num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
                shape = _param_shape(self, bottom[0], p.axis, num_axes, 'scale_param')
                blob = Blob(shape, dt)
                filler.fill(blob, p.bias_filler)
                self.blobs.append(blob)
            self._bias_index = len(self.blobs) - 1
        self.param_propagate_down = [True] * len(self.blobs)
        self._saved = None

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        axis = self.layer_param.scale_param.axis
        self._dims = _broadcast_dims(self, bottom[0], self._scale(bottom), axis)
        if self._bias_index is not None:
            self._bias_dims = _broadcast_dims(self, bottom[0], self.blobs[self._bias_index], axis)
        top[0].reshape(bottom[0].shape)

    def _scale_grad_wanted(self, bottom, propagate_down=None):
        if len(bottom) > 1:
            return True if propagate_down is None else bool(propagate_down[1])
        return not self.param_propagate_down or bool(self.param_propagate_down[0])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self._dims)
        if top[0] is bottom[0] and self._scale_grad_wanted(bottom):
            # backward needs the input for the scale's gradient; keep it before overwriting
            if self._saved is None or self._saved.shape != x.shape:
                self._saved = xp.empty_like(x)
            self._saved[...] = x
        s = self._scale(bottom).data.reshape(1, self._dims[1], 1)
        xp.multiply(x, s, out=top[0].data.reshape(self._dims))
        if self._bias_index is not None:
            b = self.blobs[self._bias_index].data.reshape(1, self._bias_dims[1], 1)
            y = top[0].data.reshape(self._bias_dims)
            y += b

    def backward(self, top, propagate_down, bottom):
        if self._bias_index is not None and self.param_propagate_down[self._bias_index]:
            bias = self.blobs[self._bias_index]
            dy_b = top[0].diff.reshape(self._bias_dims)
            bias.diff[...] += _sum_to_operand(dy_b).reshape(bias.shape)
        scale = self._scale(bottom)
        dy = top[0].diff.reshape(self._dims)
        if self._scale_grad_wanted(bottom, propagate_down):
            x = self._saved if top[0] is bottom[0] else bottom[0].data.reshape(self._dims)
            grad = xp.einsum('odi,odi->d', dy, x).reshape(scale.shape)
            if len(bottom) > 1:
                scale.diff[...] = grad
            else:
                scale.diff[...] += grad
        if propagate_down[0]:
            s = scale.data.reshape(1, self._dims[1], 1)
            xp.multiply(dy, s, out=bottom[0].diff.reshape(self._dims))

@register("MVN")
class MVNLayer(Layer):
    """Mean-variance normalisation per row (see the module doc); in-place allowed.

    Backward (normalize_variance): dx = (dy - mean(dy) - y mean(dy y)) / (std + eps);
    otherwise dx = dy - mean(dy); means over each row.
    """

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)

    def reshape(self, bottom, top):
        try:
            num, channels = bottom[0].num, bottom[0].channels
        except ValueError as exc:
            raise NetError(f"layer {self.name!r} (MVN): {exc}") from None
        rows = num if self.across_channels else num * channels
        self._dims = (rows, bottom[0].count // max(rows, 1))
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self._dims)
        y = top[0].data.reshape(self._dims)
        dt = x.dtype.type
        mean = x.mean(axis=1, keepdims=True)
        xp.subtract(x, mean, out=y)
        if self.normalize_variance:
            var = xp.einsum('rd,rd->r', y, y)[:, None] / dt(self._dims[1])
            self._std = xp.sqrt(var) + dt(self.eps)
            y /= self._std

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff.reshape(self._dims)
        dx = bottom[0].diff.reshape(self._dims)          # may be dy itself (in place)
        dt = dy.dtype.type
        n = dt(self._dims[1])
        if self.normalize_variance:
            y = top[0].data.reshape(self._dims)
            sum_dy_y = xp.einsum('rd,rd->r', dy, y)[:, None]
            result = dy - (y * sum_dy_y + dy.sum(axis=1, keepdims=True)) / n
            result /= self._std
        else:
            result = dy - dy.sum(axis=1, keepdims=True) / n
        dx[...] = result
