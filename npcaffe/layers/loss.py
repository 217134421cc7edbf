"""Loss layers and Accuracy (Caffe's LossLayer family), and the loss normalisation rules.

Every loss layer writes a scalar top (shape ``()``) and reads its loss weight in backward from
``top[0].diff`` (the net stores the weight there, as Caffe does). The label bottom (index 1)
never takes a gradient unless the layer says otherwise (EuclideanLoss).

==========================  ================================================================
EuclideanLoss               L = sum((a - b)^2) / (2 N), N = a.shape[0]; gradient to a and b
SigmoidCrossEntropyLoss     L = -sum over non-ignored i of [t_i log s(x_i) + (1-t_i) log(1-s(x_i))]
                            / normalizer (default BATCH_SIZE); gradient (s(x) - t) to x only
Accuracy                    fraction of non-ignored positions whose label is among the top_k
                            scores (ties count against); optional per-class accuracy top
==========================  ================================================================

The normaliser (Caffe's ``get_normalizer``) is one of FULL = outer*inner, VALID = number of
non-ignored positions, BATCH_SIZE = outer, NONE = 1, and is never below 1. The legacy
``normalize`` flag is used only when ``normalization`` is not set: ``normalize: true`` means
VALID, ``false`` means BATCH_SIZE. SoftmaxWithLoss (in :mod:`npcaffe.layers.softmax`) shares these
rules through :class:`LossLayer`.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.proto import caffe_pb2

_Mode = caffe_pb2.LossParameter

#: Caffe's get_normalizer: mode -> normaliser(outer_num, inner_num, valid_count)
_NORMALIZERS = {
    _Mode.FULL: lambda outer, inner, valid: outer * inner,
    _Mode.VALID: lambda outer, inner, valid: valid,
    _Mode.BATCH_SIZE: lambda outer, inner, valid: outer,
    _Mode.NONE: lambda outer, inner, valid: 1,
}


def normalization_mode(loss_param, default=None):
    """The normalisation mode of a LossParameter, with Caffe's legacy ``normalize`` rule.

    ``normalization`` wins when set; else ``normalize`` (true -> VALID, false -> BATCH_SIZE);
    else ``default`` (None: the proto default VALID, as SoftmaxWithLoss; SigmoidCrossEntropyLoss
    passes BATCH_SIZE).
    """
    if loss_param.HasField('normalization'):
        return loss_param.normalization
    if loss_param.HasField('normalize'):
        return _Mode.VALID if loss_param.normalize else _Mode.BATCH_SIZE
    return loss_param.normalization if default is None else default


def get_normalizer(mode, outer_num, inner_num, valid_count, layer_name=''):
    """Caffe's LossLayer normaliser: max(1, FULL/VALID/BATCH_SIZE/NONE count)."""
    try:
        rule = _NORMALIZERS[mode]
    except KeyError:
        raise NotSupportedError(f"layer {layer_name!r}: loss_param.normalization = {mode} is not "
                                f"a known mode (FULL, VALID, BATCH_SIZE, NONE)") from None
    return max(1.0, float(rule(outer_num, inner_num, valid_count)))


def int_labels(values):
    """Label values (floats holding ints) as int64, truncated toward zero like static_cast<int>."""
    with xp.errstate(invalid='ignore'):
        return values.astype(xp.int64)


class LossLayer(Layer):
    """Base of the loss layers: two bottoms (prediction, target), one scalar top.

    Top 0 gets loss weight 1 by default (``is_loss``); bottom 1 (the label) takes no forced
    gradient. ``reshape`` checks that both bottoms have the same first dimension, as Caffe's
    LossLayer::Reshape does.
    """

    is_loss = True
    exact_bottoms = 2
    exact_tops = 1
    no_force_backward = (1,)

    def reshape(self, bottom, top):
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            raise NetError(f"layer {self.name!r} ({self.type}): the data and label should have "
                           f"the same first dimension, got shapes {bottom[0].shape} and "
                           f"{bottom[1].shape}")
        top[0].reshape(())

    @staticmethod
    def top_loss_weight(top):
        """The loss weight Caffe stores in the top's diff before backward."""
        return top[0].diff.flat[0]

    def _refuse_label_gradient(self, propagate_down):
        if len(propagate_down) > 1 and propagate_down[1]:
            raise NetError(f"layer {self.name!r}: {self.type} cannot backpropagate to its label "
                           f"input (bottom 1)")


@register("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """L = sum((a - b)^2) / (2 N), N = a.shape[0] (Caffe's num).

    Bottoms: a, b of equal count per item (``count(1)``). Backward: da = w (a - b) / N,
    db = -w (a - b) / N with w the loss weight; both bottoms may take a gradient (forced too).
    """

    no_force_backward = ()

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count_range(1) != bottom[1].count_range(1):
            raise NetError(f"layer {self.name!r} (EuclideanLoss): inputs must have the same "
                           f"dimension, got shapes {bottom[0].shape} and {bottom[1].shape}")

    def forward(self, bottom, top):
        a = bottom[0].data
        self._diff = a - bottom[1].data.reshape(a.shape)
        flat = self._diff.reshape(-1)
        num = bottom[0].shape[0] if bottom[0].shape else 1
        top[0].data[...] = xp.dot(flat, flat) / num / 2

    def backward(self, top, propagate_down, bottom):
        num = bottom[0].shape[0] if bottom[0].shape else 1
        weight = self.top_loss_weight(top)
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                alpha = sign * weight / num
                bottom[i].diff[...] = (alpha * self._diff).reshape(bottom[i].shape)


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """Cross entropy of sigmoid(x) against targets t in [0, 1], with loss_param.

    Forward, in the stable form Caffe uses (per element, skipping ``t == ignore_label`` when
    ``ignore_label`` is set; the comparison is on int(t)):
        l = x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))
        L = -sum l / normalizer,   normalizer from loss_param (default BATCH_SIZE = shape[0],
        outer = shape[0], inner = count(1))
    Backward to x only: (sigmoid(x) - t) w / normalizer, 0 at ignored targets.
    """

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField('ignore_label') else None
        self.normalization = normalization_mode(lp, default=_Mode.BATCH_SIZE)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            raise NetError(f"layer {self.name!r} (SigmoidCrossEntropyLoss): inputs must have the "
                           f"same count, got shapes {bottom[0].shape} and {bottom[1].shape}")

    def _valid(self, target):
        if self.ignore_label is None:
            return None
        return int_labels(target) != self.ignore_label

    def forward(self, bottom, top):
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape)
        pos = (x >= 0).astype(x.dtype)
        # x - 2 x [x >= 0] = -|x|
        per_item = x * (t - pos) - xp.log1p(xp.exp(-xp.abs(x)))
        valid = self._valid(t)
        if valid is None:
            loss = -per_item.sum()
            valid_count = x.size
        else:
            loss = -per_item.sum(where=valid)
            valid_count = int(valid.sum())
        outer = x.shape[0] if x.shape else 1
        self._normalizer = get_normalizer(self.normalization, outer, x.size // max(outer, 1),
                                          valid_count, self.name)
        self._sigmoid = 0.5 * xp.tanh(0.5 * x) + 0.5   # as Caffe's SigmoidLayer
        top[0].data[...] = loss / self._normalizer

    def backward(self, top, propagate_down, bottom):
        self._refuse_label_gradient(propagate_down)
        if not propagate_down[0]:
            return
        x = bottom[0].data
        t = bottom[1].data.reshape(x.shape)
        diff = bottom[0].diff
        xp.subtract(self._sigmoid, t, out=diff)
        valid = self._valid(t)
        if valid is not None:
            diff *= valid
        diff *= self.top_loss_weight(top) / diff.dtype.type(self._normalizer)


@register("Accuracy")
class AccuracyLayer(Layer):
    """Top-k accuracy of scores (bottom 0) against integer labels (bottom 1); no gradient.

    accuracy_param: top_k (1), axis (1), ignore_label (unset). Scores are read as
    (outer, C, inner) around ``axis``; there must be outer*inner labels. A position is correct
    when fewer than top_k classes score >= the true class's score, other than the true class
    itself (so ties count against, as Caffe's ``num_better_predictions``). Top 0: correct /
    non-ignored count (0 if none). Optional top 1, shape (C,): per-class accuracy (0 for a
    class with no non-ignored label).
    """

    exact_bottoms = 2
    min_tops = 1
    max_tops = 2
    no_force_backward = (0, 1)

    def setup(self, bottom, top):
        ap = self.layer_param.accuracy_param
        self.top_k = int(ap.top_k)
        self.ignore_label = ap.ignore_label if ap.HasField('ignore_label') else None

    def reshape(self, bottom, top):
        scores = bottom[0]
        if bottom[1].count and self.top_k > scores.count // bottom[1].count:
            raise NetError(f"layer {self.name!r} (Accuracy): top_k = {self.top_k} must be at most "
                           f"the number of classes ({scores.count // bottom[1].count})")
        try:
            axis = scores.canonical_axis(self.layer_param.accuracy_param.axis)
        except IndexError as exc:
            raise NetError(f"layer {self.name!r} (Accuracy): {exc}") from None
        outer, inner = scores.count_range(0, axis), scores.count_range(axis + 1)
        if outer * inner != bottom[1].count:
            raise NetError(f"layer {self.name!r} (Accuracy): number of labels "
                           f"({bottom[1].count}) must match number of predictions "
                           f"({outer * inner}) for scores of shape {scores.shape}, axis {axis}")
        self._dims = (outer, scores.shape[axis], inner)
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape((scores.shape[axis],))

    def forward(self, bottom, top):
        outer, classes, inner = self._dims
        scores = bottom[0].data.reshape(outer, classes, inner)
        labels = int_labels(bottom[1].data.reshape(outer, 1, inner))
        valid = (labels != self.ignore_label) if self.ignore_label is not None else None
        check = labels if valid is None else labels[valid]
        bad = (check < 0) | (check >= classes)
        if bad.any():
            raise NetError(f"layer {self.name!r} (Accuracy): label value "
                           f"{int(check[bad][0])} is outside [0, {classes})")
        safe = labels if valid is None else xp.where(valid, labels, 0)
        true_score = xp.take_along_axis(scores, safe, axis=1)          # (outer, 1, inner)
        ranked_at_least = (scores >= true_score).sum(axis=1, keepdims=True)
        correct = ranked_at_least <= self.top_k                       # (outer, 1, inner)
        if valid is not None:
            correct &= valid
        count = labels.size if valid is None else int(valid.sum())
        top[0].data[...] = (correct.sum() / count) if count else 0
        if len(top) > 1:
            flat = safe.reshape(-1)
            weights = None if valid is None else valid.reshape(-1)
            nums = xp.bincount(flat, weights=weights, minlength=classes)
            hits = xp.bincount(flat, weights=correct.reshape(-1), minlength=classes)
            with xp.errstate(invalid='ignore', divide='ignore'):
                top[1].data[...] = xp.where(nums > 0, hits / xp.maximum(nums, 1), 0)
