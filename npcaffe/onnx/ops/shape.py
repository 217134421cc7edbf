"""Shape and reduction layers: Flatten, Reshape, Tile, Softmax, Reduction, ArgMax.

Flatten/Reshape: with static shapes, Reshape to the top's shape as npcaffe computed it (Caffe's
0 / -1 / axis / num_axes rules applied once). Dynamic: the target is built in the graph from
Shape(x) for every dim Caffe copies (the axes outside [axis, axis + num_axes), and 0 entries);
-1 stays for ONNX to infer.
Softmax -> Softmax(axis) (opset >= 13: one axis, as Caffe's). Tile -> Tile.
Reduction over the axes from ``axis`` on: Reshape to shape[:axis] + (-1,), then ReduceSum /
ReduceL1 (ASUM) / ReduceSumSquare (SUMSQ) / ReduceMean over the last axis, times coeff.
ArgMax: Caffe breaks ties toward the larger index, so x is reversed along the axis, TopK
(largest, sorted) taken, and the index mapped back as dim - 1 - i, as float. Without an axis
the item's values are flattened (N, D) and the top is (N, 1 | 2, top_k) padded with 1-dims to
the bottom's rank (at least 3): indices, then values when out_max_val.
"""
from npcaffe.layers.shapes import canonical_axis
from npcaffe.onnx.ops import register
from npcaffe.proto import caffe_pb2

_Red = caffe_pb2.ReductionParameter


@register("Flatten")
def flatten(ctx, layer, inputs, bottoms, tops):
    x, b = inputs[0], bottoms[0]
    if not ctx.dynamic:
        return [ctx.reshape(x, list(tops[0].shape))]
    p = layer.layer_param.flatten_param
    start = canonical_axis(layer, b, p.axis)
    end = canonical_axis(layer, b, p.end_axis)
    parts = [ctx.shape(x, 0, start) if start else [], [-1]]
    if end + 1 < b.num_axes:
        parts.append(ctx.shape(x, end + 1))
    return [ctx.reshape(x, ctx.shape_vector(parts))]


@register("Reshape")
def reshape(ctx, layer, inputs, bottoms, tops):
    x, b = inputs[0], bottoms[0]
    if not ctx.dynamic:
        return [ctx.reshape(x, list(tops[0].shape))]
    p = layer.layer_param.reshape_param
    n = b.num_axes
    start = p.axis if p.axis >= 0 else n + p.axis + 1
    end = n if p.num_axes == -1 else start + p.num_axes
    parts = [ctx.shape(x, 0, start)] if start else []
    for i, d in enumerate(layer.dims):
        parts.append(ctx.shape(x, start + i, start + i + 1) if d == 0 else [d])
    if end < n:
        parts.append(ctx.shape(x, end))
    return [ctx.reshape(x, ctx.shape_vector(parts))]


@register("Tile")
def tile(ctx, layer, inputs, bottoms, tops):
    repeats = [1] * bottoms[0].num_axes
    repeats[layer.axis] = int(layer.layer_param.tile_param.tiles)
    return [ctx.node('Tile', [inputs[0], ctx.ints(repeats, 'repeats')])]


@register("Softmax")
def softmax(ctx, layer, inputs, bottoms, tops):
    axis = canonical_axis(layer, bottoms[0], layer.layer_param.softmax_param.axis)
    return [ctx.node('Softmax', inputs, axis=axis)]


@register("Reduction")
def reduction(ctx, layer, inputs, bottoms, tops):
    p = layer.layer_param.reduction_param
    axis = layer.axis
    rows = ctx.reshape(inputs[0], [0] * axis + [-1])
    if p.operation == _Red.SUM:
        y = ctx.node('ReduceSum', [rows, ctx.ints([axis], 'axes')], keepdims=0)
    else:
        op = {_Red.ASUM: 'ReduceL1', _Red.SUMSQ: 'ReduceSumSquare', _Red.MEAN: 'ReduceMean'}
        y = ctx.node(op[p.operation], [rows], axes=[axis], keepdims=0)
    if p.coeff != 1:
        y = ctx.node('Mul', [y, ctx.scalar(p.coeff, 'coeff')])
    return [y]


def _caffe_top_k(ctx, x, axis, dim, k):
    """(indices as float, values) of the k largest along ``axis``, ties to the larger index."""
    values, idx = ctx.node('TopK', [ctx.reverse(x, axis), ctx.ints([k], 'k')], outputs=2,
                           axis=axis, largest=1, sorted=1)
    last = ctx.node('Sub', [dim, ctx.ints([1], 'one')])
    index = ctx.node('Sub', [last, idx])
    return ctx.node('Cast', [index], to=ctx.onnx.TensorProto.FLOAT), values


@register("ArgMax")
def argmax(ctx, layer, inputs, bottoms, tops):
    x, b, k = inputs[0], bottoms[0], layer.top_k
    if layer.has_axis:
        index, values = _caffe_top_k(ctx, x, layer.axis, ctx.dim(x, layer.axis,
                                                                  b.shape[layer.axis]), k)
        return [values if layer.out_max_val else index]
    rows = ctx.reshape(x, [0, -1])                                      # (N, D)
    index, values = _caffe_top_k(ctx, rows, 1, ctx.dim(rows, 1, b.count_range(1)), k)
    y = ctx.node('Concat', [index, values], axis=1) if layer.out_max_val else index
    return [ctx.reshape(y, list(tops[0].shape))]
