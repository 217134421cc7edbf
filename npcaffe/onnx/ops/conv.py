"""Convolution, Deconvolution and InnerProduct.

* Convolution -> Conv: Caffe's weights (Cout, Cin/g, kh, kw) are ONNX's layout; pads
  [ph, pw, ph, pw], strides, dilations, group; out = floor((H + 2p - (d(k-1)+1)) / s) + 1 in
  both. Several bottoms each get their own Conv with the same weights.
* Deconvolution -> ConvTranspose: Caffe's weights (Cin, Cout/g, kh, kw) are again ONNX's
  layout; out = s(H-1) + d(k-1) + 1 - 2p (no output_padding) in both.
* InnerProduct: Flatten(axis) (M, K) then Gemm with W (N, K) transposed (or W (K, N) as is
  when ``transpose``) and the bias; for axis > 1 the result is reshaped to shape[:axis] + (N,).
"""
from npcaffe.onnx.ops import register


def _conv_attrs(layer):
    (ph, pw), (sh, sw), (dh, dw) = layer.pad, layer.stride, layer.dilation
    return dict(kernel_shape=list(layer.kernel), pads=[ph, pw, ph, pw], strides=[sh, sw],
                dilations=[dh, dw], group=layer.group)


def _convolve(op_type):
    def convert(ctx, layer, inputs, bottoms, tops):
        weights = [ctx.const(layer.blobs[0].data, 'weight')]
        if layer.bias_term:
            weights.append(ctx.const(layer.blobs[1].data, 'bias'))
        return [ctx.node(op_type, [x] + weights, **_conv_attrs(layer)) for x in inputs]
    return convert


register("Convolution")(_convolve('Conv'))
register("Deconvolution")(_convolve('ConvTranspose'))


@register("InnerProduct")
def inner_product(ctx, layer, inputs, bottoms, tops):
    axis = layer.axis
    flat = ctx.node('Flatten', [inputs[0]], axis=axis)                  # (M, K)
    args = [flat, ctx.const(layer.blobs[0].data, 'weight')]
    if layer.bias_term:
        args.append(ctx.const(layer.blobs[1].data, 'bias'))
    y = ctx.node('Gemm', args, transB=0 if layer.transpose else 1)      # (M, N)
    if axis == 1:
        return [y]
    lead = ctx.shape(inputs[0], 0, axis) if ctx.dynamic else list(bottoms[0].shape[:axis])
    return [ctx.reshape(y, ctx.shape_vector([lead, [layer.num_output]]))]
