"""Pooling with Caffe's output size and AVE divisor.

Caffe (round_mode CEIL)::

    Ho = ceil((H + 2p - k) / s) + 1;  if p > 0 and (Ho - 1) s >= H + p: Ho -= 1
    AVE divisor = min(start + k, H + p) - start, start = ho s - p   (per axis)

Static shapes: Ho is computed here and reached with floor-mode ONNX pooling and an explicit end
pad e = max(0, (Ho - 1) s + k - H - p) (ONNX floor((H + p + e - k) / s) + 1 == Ho). MaxPool
ignores padding, as Caffe's window clipped to the input. AVE: while e <= p every window lies
inside [-p, H + p), so the divisor is the full k (AveragePool count_include_pad=1); when e > p
(the ceil-mode overhang) x is zero-padded by p on both sides first and pooled with end pad
e - p and count_include_pad=0, whose divisor is the window clipped to the padded input: Caffe's.

Dynamic shapes: ceil_mode=1 with pads p, whose ONNX rule (the last window must start inside
the input or its left padding) and AVE divisor (window clipped to H + p) are Caffe's.
global_pooling -> GlobalMaxPool / GlobalAveragePool. STOCHASTIC pooling and the MAX mask top
are refused.
"""
from npcaffe.layers.pool import pooled_size
from npcaffe.onnx.ops import refuse, register
from npcaffe.proto import caffe_pb2

_P = caffe_pb2.PoolingParameter


@register("Pooling")
def pooling(ctx, layer, inputs, bottoms, tops):
    if layer.method not in (_P.MAX, _P.AVE):
        raise refuse(layer, "pool: STOCHASTIC has no ONNX equivalent here; use MAX or AVE")
    if len(tops) > 1:
        raise refuse(layer, "the second (arg max mask) top of MAX pooling is not exported")
    x = inputs[0]
    is_max = layer.method == _P.MAX
    if layer.global_pooling:
        return [ctx.node('GlobalMaxPool' if is_max else 'GlobalAveragePool', [x])]
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.pad
    attrs = dict(kernel_shape=[kh, kw], strides=[sh, sw])
    if ctx.dynamic:
        attrs.update(pads=[ph, pw, ph, pw], ceil_mode=int(layer.ceil_mode))
        if is_max:
            return [ctx.node('MaxPool', [x], **attrs)]
        return [ctx.node('AveragePool', [x], count_include_pad=1, **attrs)]
    h, w = bottoms[0].shape[2:]
    ends = []
    for size, k, s, p in ((h, kh, sh, ph), (w, kw, sw, pw)):
        out = pooled_size(size, k, s, p, layer.ceil_mode)
        ends.append(max(0, (out - 1) * s + k - size - p))
    if is_max:
        return [ctx.node('MaxPool', [x], pads=[ph, pw] + ends, **attrs)]
    if ends[0] <= ph and ends[1] <= pw:
        return [ctx.node('AveragePool', [x], pads=[ph, pw] + ends, count_include_pad=1,
                         **attrs)]
    padded = ctx.node('Pad', [x, ctx.ints([0, 0, ph, pw, 0, 0, ph, pw], 'pads')])
    over = [max(0, ends[0] - ph), max(0, ends[1] - pw)]
    return [ctx.node('AveragePool', [padded], pads=[0, 0] + over, count_include_pad=0, **attrs)]
