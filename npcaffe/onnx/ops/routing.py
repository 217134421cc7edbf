"""Routing layers: Split (the same tensor for every top), Silence (nothing), Concat, Slice
(ONNX Split at slice_point), Crop and Eltwise.

Crop: out[i] = in[i + offset] on the axes >= crop_param.axis, sized like bottom 1 -> Slice with
starts = offsets. Static shapes: ends = offsets + bottom 1's dims. Dynamic: ends =
offsets + Shape(bottom 1)[axis:], computed inside the graph, so an FCN crops correctly at any
input size.

Eltwise: SUM = sum_i coeff_i x_i (Mul skipped for a coefficient of 1), PROD = Mul chain,
MAX = Max (forward values equal whatever the tie rule).
"""
from npcaffe.layers.shapes import axis_or_legacy, canonical_axis
from npcaffe.onnx.ops import register
from npcaffe.proto import caffe_pb2

_Op = caffe_pb2.EltwiseParameter


@register("Split")
def split(ctx, layer, inputs, bottoms, tops):
    return [inputs[0]] * len(tops)


@register("Silence")
def silence(ctx, layer, inputs, bottoms, tops):
    return []


@register("Concat")
def concat(ctx, layer, inputs, bottoms, tops):
    if len(inputs) == 1:
        return [inputs[0]]
    p = layer.layer_param.concat_param
    axis = axis_or_legacy(layer, p, 'concat_dim', bottoms[0], 'Concat')
    return [ctx.node('Concat', inputs, axis=axis)]


@register("Slice")
def slice_layer(ctx, layer, inputs, bottoms, tops):
    if len(tops) == 1:
        return [inputs[0]]
    sizes = [b - a for a, b in zip(layer.bounds, layer.bounds[1:])]
    outs = ctx.node('Split', [inputs[0], ctx.ints(sizes, 'split')], outputs=len(sizes),
                    axis=layer.axis)
    return list(outs)


@register("Crop")
def crop(ctx, layer, inputs, bottoms, tops):
    start_axis = canonical_axis(layer, bottoms[0], layer.layer_param.crop_param.axis)
    offsets = [s.start for s in layer.index[start_axis:]]
    axes = list(range(start_axis, bottoms[0].num_axes))
    if ctx.dynamic:
        ends = ctx.node('Add', [ctx.ints(offsets, 'offsets'),
                                ctx.shape(inputs[1], start_axis)])
    else:
        ends = ctx.ints([o + n for o, n in zip(offsets, bottoms[1].shape[start_axis:])], 'ends')
    return [ctx.node('Slice', [inputs[0], ctx.ints(offsets, 'starts'), ends,
                               ctx.ints(axes, 'axes')])]


@register("Eltwise")
def eltwise(ctx, layer, inputs, bottoms, tops):
    if layer.op == _Op.PROD:
        y = inputs[0]
        for x in inputs[1:]:
            y = ctx.node('Mul', [y, x])
        return [y]
    if layer.op == _Op.MAX:
        return [ctx.node('Max', inputs)]
    terms = [x if c == 1 else ctx.node('Mul', [x, ctx.scalar(c, 'coeff')])
             for x, c in zip(inputs, layer.coeffs)]
    y = terms[0]
    for t in terms[1:]:
        y = ctx.node('Add', [y, t])
    return [y]
