"""Elementwise layers, with npcaffe's formulas (:mod:`npcaffe.layers.neuron`):

ReLU       Relu, or LeakyRelu(alpha = negative_slope)
PReLU      PRelu, slopes (C, 1, ..., 1) or one shared slope
ELU        Elu(alpha);  Sigmoid, TanH, AbsVal: Sigmoid, Tanh, Abs
Power      (shift + scale x)^power; the constant shift^power (1 if power is 0) when
           power * scale == 0, as Caffe
Exp        exp(x scale ln b) * exp(shift ln b) (base b; -1 means e)
Log        ln(shift + scale x) / ln b
BNLL       max(x, 0) + log(1 + exp(-|x|)), the overflow-free softplus
Threshold  float(x > threshold);  Clip: Clip(min, max);  Swish: x sigmoid(beta x)
Dropout    identity (TEST phase)
"""
from npcaffe.onnx.ops import register


def _simple(op_type, **attrs):
    def convert(ctx, layer, inputs, bottoms, tops):
        return [ctx.node(op_type, inputs, **attrs)]
    return convert


register("Sigmoid")(_simple('Sigmoid'))
register("TanH")(_simple('Tanh'))
register("AbsVal")(_simple('Abs'))


@register("Dropout")
def dropout(ctx, layer, inputs, bottoms, tops):
    return [inputs[0]]


@register("ReLU")
def relu(ctx, layer, inputs, bottoms, tops):
    if layer.negative_slope == 0:
        return [ctx.node('Relu', inputs)]
    return [ctx.node('LeakyRelu', inputs, alpha=layer.negative_slope)]


@register("PReLU")
def prelu(ctx, layer, inputs, bottoms, tops):
    a = layer.blobs[0].data
    a = a.reshape(1) if layer.channel_shared else a.reshape((-1,) + (1,) * (bottoms[0].num_axes - 2))
    return [ctx.node('PRelu', [inputs[0], ctx.const(a, 'slope')])]


@register("ELU")
def elu(ctx, layer, inputs, bottoms, tops):
    return [ctx.node('Elu', inputs, alpha=layer.alpha)]


def _affine(ctx, x, scale, shift):
    """scale x + shift, skipping the identity steps."""
    if scale != 1:
        x = ctx.node('Mul', [x, ctx.scalar(scale, 'scale')])
    if shift != 0:
        x = ctx.node('Add', [x, ctx.scalar(shift, 'shift')])
    return x


@register("Power")
def power(ctx, layer, inputs, bottoms, tops):
    x = inputs[0]
    if layer.diff_scale == 0:
        value = 1.0 if layer.power == 0 else layer.shift ** layer.power
        return [ctx.node('Expand', [ctx.scalar(value, 'value'), ctx.shape(x)])]
    base = _affine(ctx, x, layer.scale, layer.shift)
    if layer.power == 1:
        return [base if base != x else ctx.node('Identity', [x])]
    return [ctx.node('Pow', [base, ctx.scalar(layer.power, 'power')])]


@register("Exp")
def exp(ctx, layer, inputs, bottoms, tops):
    y = ctx.node('Exp', [_affine(ctx, inputs[0], layer.inner_scale, 0)])
    return [_affine(ctx, y, layer.outer_scale, 0)]


@register("Log")
def log(ctx, layer, inputs, bottoms, tops):
    y = ctx.node('Log', [_affine(ctx, inputs[0], layer.scale, layer.shift)])
    return [_affine(ctx, y, 1.0 / layer.log_base, 0)]


@register("BNLL")
def bnll(ctx, layer, inputs, bottoms, tops):
    x = inputs[0]
    tail = ctx.node('Exp', [ctx.node('Neg', [ctx.node('Abs', [x])])])
    log1p = ctx.node('Log', [ctx.node('Add', [tail, ctx.scalar(1.0, 'one')])])
    return [ctx.node('Add', [ctx.node('Relu', [x]), log1p])]


@register("Threshold")
def threshold(ctx, layer, inputs, bottoms, tops):
    above = ctx.node('Greater', [inputs[0], ctx.scalar(layer.threshold, 'threshold')])
    return [ctx.node('Cast', [above], to=ctx.onnx.TensorProto.FLOAT)]


@register("Clip")
def clip(ctx, layer, inputs, bottoms, tops):
    return [ctx.node('Clip', [inputs[0], ctx.scalar(layer.min, 'min'),
                              ctx.scalar(layer.max, 'max')])]


@register("Swish")
def swish(ctx, layer, inputs, bottoms, tops):
    x = inputs[0]
    return [ctx.node('Mul', [x, ctx.node('Sigmoid', [_affine(ctx, x, layer.beta, 0)])])]
