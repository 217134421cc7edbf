"""Loss layers and Accuracy, with npcaffe's (Caffe's) forward formulas; every loss is a scalar.

Scores are viewed as (outer, C, inner) around the axis, labels (floats holding ints) as
(outer, 1, inner) cast to int64 (truncation, as static_cast<int>); an ignored label counts
nowhere and is replaced by 0 before indexing. The normaliser is Caffe's get_normalizer:
max(1, FULL = outer*inner | VALID = non-ignored count | BATCH_SIZE = outer | NONE = 1).

SoftmaxWithLoss  L = -sum log(max(p[label], FLT_MIN)) / normaliser, p = Softmax(axis 1 of the
                 3-D view); the optional second top is p in the scores' shape.
EuclideanLoss    L = sum((a - b)^2) / (2 N), N = a's first dim.
SigmoidCE        L = -sum [x (t - [x >= 0]) - log(1 + exp(-|x|))] / normaliser
                 (default BATCH_SIZE; ignore_label compared on int(t)).
Accuracy         correct where fewer than top_k classes, the true one included, fail
                 score >= true score, i.e. (count of score >= true score) <= top_k; top 0:
                 correct / max(1, valid count) (0 with no valid label); top 1: per class.
"""
import numpy as np

from npcaffe.layers.loss import normalization_mode
from npcaffe.onnx.ops import register
from npcaffe.proto import caffe_pb2

_Mode = caffe_pb2.LossParameter
FLT_MIN = float(np.finfo(np.float32).tiny)


def _float(ctx, x):
    return ctx.node('Cast', [x], to=ctx.onnx.TensorProto.FLOAT)


def _labels(ctx, label, outer, ignore_label):
    """(safe int64 labels (outer, 1, inner), valid mask as float or None)."""
    labels = ctx.node('Cast', [ctx.reshape(label, [outer, 1, -1])],
                      to=ctx.onnx.TensorProto.INT64)
    if ignore_label is None:
        return labels, None
    valid = ctx.node('Not', [ctx.node('Equal', [labels, ctx.ints([ignore_label], 'ignore')])])
    safe = ctx.node('Where', [valid, labels, ctx.ints([0], 'zero')])
    return safe, _float(ctx, valid)


def _masked_sum(ctx, x, mask):
    return ctx.node('ReduceSum', [x if mask is None else ctx.node('Mul', [x, mask])],
                    keepdims=0)


def _normalizer(ctx, mode, outer, labels, valid):
    """Caffe's max(1, normaliser) as a float scalar tensor."""
    if mode == _Mode.BATCH_SIZE:
        return ctx.scalar(max(1, outer), 'normalizer')
    if mode == _Mode.NONE:
        return ctx.scalar(1.0, 'normalizer')
    if mode == _Mode.VALID and valid is not None:
        count = ctx.node('ReduceSum', [valid], keepdims=0)
    else:                                           # FULL, or VALID with nothing ignored
        count = _float(ctx, ctx.node('Size', [labels]))
    return ctx.node('Max', [count, ctx.scalar(1.0, 'one')])


def _ignore(loss_param):
    return loss_param.ignore_label if loss_param.HasField('ignore_label') else None


@register("SoftmaxWithLoss")
def softmax_with_loss(ctx, layer, inputs, bottoms, tops):
    outer, classes, _ = layer._dims
    lp = layer.layer_param.loss_param
    prob = ctx.node('Softmax', [ctx.reshape(inputs[0], [outer, classes, -1])], axis=1)
    labels, valid = _labels(ctx, inputs[1], outer, _ignore(lp))
    picked = ctx.node('GatherElements', [prob, labels], axis=1)
    log_p = ctx.node('Log', [ctx.node('Max', [picked, ctx.scalar(FLT_MIN, 'flt_min')])])
    total = ctx.node('Neg', [_masked_sum(ctx, log_p, valid)])
    loss = ctx.node('Div', [total, _normalizer(ctx, normalization_mode(lp), outer, labels,
                                                valid)])
    outs = [loss]
    if len(tops) > 1:
        shape = ctx.shape(inputs[0]) if ctx.dynamic else list(bottoms[0].shape)
        outs.append(ctx.reshape(prob, shape))
    return outs


@register("EuclideanLoss")
def euclidean_loss(ctx, layer, inputs, bottoms, tops):
    a, b = inputs
    diff = ctx.node('Sub', [a, ctx.reshape(b, ctx.shape(a))])
    total = ctx.node('ReduceSumSquare', [diff], keepdims=0)
    num = bottoms[0].shape[0] if bottoms[0].num_axes else 1
    return [ctx.node('Div', [total, ctx.scalar(2.0 * num, 'two_n')])]


@register("SigmoidCrossEntropyLoss")
def sigmoid_cross_entropy_loss(ctx, layer, inputs, bottoms, tops):
    x = inputs[0]
    t = ctx.reshape(inputs[1], ctx.shape(x))
    pos = _float(ctx, ctx.node('GreaterOrEqual', [x, ctx.scalar(0.0, 'zero')]))
    tail = ctx.node('Exp', [ctx.node('Neg', [ctx.node('Abs', [x])])])
    log1p = ctx.node('Log', [ctx.node('Add', [tail, ctx.scalar(1.0, 'one')])])
    per_item = ctx.node('Sub', [ctx.node('Mul', [x, ctx.node('Sub', [t, pos])]), log1p])
    valid = None
    if layer.ignore_label is not None:
        as_int = ctx.node('Cast', [t], to=ctx.onnx.TensorProto.INT64)
        valid = _float(ctx, ctx.node('Not', [ctx.node(
            'Equal', [as_int, ctx.ints([layer.ignore_label], 'ignore')])]))
    total = ctx.node('Neg', [_masked_sum(ctx, per_item, valid)])
    outer = bottoms[0].shape[0] if bottoms[0].num_axes else 1
    return [ctx.node('Div', [total, _normalizer(ctx, layer.normalization, outer, x, valid)])]


@register("Accuracy")
def accuracy(ctx, layer, inputs, bottoms, tops):
    outer, classes, _ = layer._dims
    scores = ctx.reshape(inputs[0], [outer, classes, -1])
    labels, valid = _labels(ctx, inputs[1], outer, layer.ignore_label)
    true_score = ctx.node('GatherElements', [scores, labels], axis=1)    # (outer, 1, inner)
    at_least = ctx.node('ReduceSum', [_float(ctx, ctx.node('GreaterOrEqual',
                                                            [scores, true_score])),
                                      ctx.ints([1], 'axes')], keepdims=1)
    correct = _float(ctx, ctx.node('LessOrEqual', [at_least,
                                                   ctx.scalar(layer.top_k, 'top_k')]))
    if valid is not None:
        correct = ctx.node('Mul', [correct, valid])
    count = (_float(ctx, ctx.node('Size', [labels])) if valid is None
             else ctx.node('ReduceSum', [valid], keepdims=0))
    at_least_one = ctx.node('Max', [count, ctx.scalar(1.0, 'one')])
    outs = [ctx.node('Div', [ctx.node('ReduceSum', [correct], keepdims=0), at_least_one])]
    if len(tops) > 1:
        classes_ids = ctx.const(np.arange(classes, dtype=np.int64).reshape(1, classes, 1), 'classes')
        onehot = _float(ctx, ctx.node('Equal', [labels, classes_ids]))   # (outer, C, inner)
        axes = ctx.ints([0, 2], 'axes')
        seen = onehot if valid is None else ctx.node('Mul', [onehot, valid])
        nums = ctx.node('ReduceSum', [seen, axes], keepdims=0)
        hits = ctx.node('ReduceSum', [ctx.node('Mul', [onehot, correct]), axes], keepdims=0)
        outs.append(ctx.node('Div', [hits, ctx.node('Max', [nums, ctx.scalar(1.0, 'one')])]))
    return outs
