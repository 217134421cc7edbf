"""Normalisation layers (:mod:`npcaffe.layers.normalization` has the formulas).

BatchNorm  stored statistics: mean = f m, var = f v with f = 1 / blob 2 (0 when blob 2 is 0);
           y = (x - mean) / sqrt(var + eps), as Sub and Div by per-channel constants (shaped
           (C, 1, ..., 1)); without use_global_stats the batch's mean and biased variance over
           every axis but 1 (ReduceMean).
Scale      y = x s (+ b); Bias y = x + b: the operand (learned blob or bottom 1) broadcasts from
           ``axis``, given trailing 1-dims (Reshape of the constant, Unsqueeze of a bottom).
LRN        ACROSS_CHANNELS -> LRN(size, alpha, beta, bias=k): ONNX's alpha/size * square sum is
           Caffe's. WITHIN_CHANNEL -> x (1 + alpha avepool_n(x^2))^-beta, the n x n average with
           pad (n-1)/2 and stride 1 (full n*n divisor: count_include_pad=1).
MVN        rows (N, C*H*W) across channels or (N*C, H*W): y = (x - mean) [/ (sqrt(var) + eps)].
"""
import numpy as np

from npcaffe.onnx.ops import register
from npcaffe.proto import caffe_pb2

_Region = caffe_pb2.LRNParameter


def _per_channel(array, ndim):
    """(C,) -> (C, 1, ..., 1) broadcasting on axis 1 of an ndim-D tensor."""
    return array.reshape((-1,) + (1,) * max(ndim - 2, 0))


@register("BatchNorm")
def batch_norm(ctx, layer, inputs, bottoms, tops):
    x, ndim = inputs[0], bottoms[0].num_axes
    if layer.use_global_stats:
        stored = layer.blobs[2].data.flat[0]
        factor = np.float32(0) if stored == 0 else np.float32(1) / stored
        mean = factor * layer.blobs[0].data
        std = np.sqrt(factor * layer.blobs[1].data + np.float32(layer.eps)).astype(np.float32)
        centred = ctx.node('Sub', [x, ctx.const(_per_channel(mean, ndim), 'mean')])
        return [ctx.node('Div', [centred, ctx.const(_per_channel(std, ndim), 'std')])]
    axes = [0] + list(range(2, ndim))
    mean = ctx.node('ReduceMean', [x], axes=axes, keepdims=1)
    centred = ctx.node('Sub', [x, mean])
    var = ctx.node('ReduceMean', [ctx.node('Mul', [centred, centred])], axes=axes, keepdims=1)
    std = ctx.node('Sqrt', [ctx.node('Add', [var, ctx.scalar(layer.eps, 'eps')])])
    return [ctx.node('Div', [centred, std])]


def _operand(ctx, layer, x_blob, value, operand_shape, axis, hint):
    """The operand (a constant array, or a tensor name of shape ``operand_shape``) with the
    trailing 1-dims that broadcast it from ``axis`` of ``x_blob``."""
    rank = len(operand_shape)
    trailing = 0 if rank == 0 else x_blob.num_axes - x_blob.canonical_axis(axis) - rank
    if not isinstance(value, str):
        return ctx.const(np.asarray(value).reshape(tuple(operand_shape) + (1,) * trailing), hint)
    if trailing == 0:
        return value
    return ctx.node('Unsqueeze', [value, ctx.ints(range(rank, rank + trailing), 'axes')])


@register("Scale")
def scale(ctx, layer, inputs, bottoms, tops):
    axis = layer.layer_param.scale_param.axis
    if len(inputs) > 1:
        s = _operand(ctx, layer, bottoms[0], inputs[1], bottoms[1].shape, axis, 'scale')
    else:
        s = _operand(ctx, layer, bottoms[0], layer.blobs[0].data, layer.blobs[0].shape, axis,
                     'scale')
    y = ctx.node('Mul', [inputs[0], s])
    if layer._bias_index is not None:
        b = layer.blobs[layer._bias_index]
        y = ctx.node('Add', [y, _operand(ctx, layer, bottoms[0], b.data, b.shape, axis, 'bias')])
    return [y]


@register("Bias")
def bias(ctx, layer, inputs, bottoms, tops):
    axis = layer.layer_param.bias_param.axis
    if len(inputs) > 1:
        b = _operand(ctx, layer, bottoms[0], inputs[1], bottoms[1].shape, axis, 'bias')
    else:
        b = _operand(ctx, layer, bottoms[0], layer.blobs[0].data, layer.blobs[0].shape, axis,
                     'bias')
    return [ctx.node('Add', [inputs[0], b])]


@register("LRN")
def lrn(ctx, layer, inputs, bottoms, tops):
    x, n = inputs[0], layer.size
    p = layer.layer_param.lrn_param
    if p.norm_region == _Region.ACROSS_CHANNELS:
        return [ctx.node('LRN', [x], size=n, alpha=layer.alpha, beta=layer.beta, bias=float(p.k))]
    half = (n - 1) // 2
    avg = ctx.node('AveragePool', [ctx.node('Mul', [x, x])], kernel_shape=[n, n],
                   pads=[half] * 4, strides=[1, 1], count_include_pad=1)
    base = ctx.node('Add', [ctx.node('Mul', [avg, ctx.scalar(layer.alpha, 'alpha')]),
                            ctx.scalar(1.0, 'one')])
    return [ctx.node('Mul', [x, ctx.node('Pow', [base, ctx.scalar(-layer.beta, 'beta')])])]


@register("MVN")
def mvn(ctx, layer, inputs, bottoms, tops):
    x = inputs[0]
    rows = ctx.reshape(x, [layer._dims[0], -1])
    mean = ctx.node('ReduceMean', [rows], axes=[1], keepdims=1)
    y = ctx.node('Sub', [rows, mean])
    if layer.normalize_variance:
        var = ctx.node('ReduceMean', [ctx.node('Mul', [y, y])], axes=[1], keepdims=1)
        std = ctx.node('Add', [ctx.node('Sqrt', [var]), ctx.scalar(layer.eps, 'eps')])
        y = ctx.node('Div', [y, std])
    return [ctx.reshape(y, ctx.shape(x) if ctx.dynamic else list(bottoms[0].shape))]
