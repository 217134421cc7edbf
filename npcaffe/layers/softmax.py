"""Softmax and SoftmaxWithLoss (the FCN training loss).

Both view the scores as (outer, C, inner) around ``softmax_param.axis`` (default 1):
outer = count(0, axis), inner = count(axis + 1); for FCN scores (N, 21, H, W) that is
(N, 21, H*W) and one label per pixel.

Softmax:  y = exp(x - max_c x) / sum_c exp(x - max_c x)  (the max keeps exp from overflowing);
          dx = (dy - sum_c(dy * y)) * y.  May run in place.

SoftmaxWithLoss (bottoms: scores, labels as floats holding ints; tops: loss [, prob]):
          L = -sum over non-ignored positions of log(max(p[label], FLT_MIN)) / normalizer,
          dx = w (p - onehot(label)) / normalizer, 0 at ignored positions (w = loss weight).
          loss_param: ignore_label (only when set), normalization FULL / VALID (default) /
          BATCH_SIZE / NONE, or the legacy ``normalize`` when normalization is unset
          (true = VALID, false = BATCH_SIZE; FCN uses ``normalize: false`` and ignore 255, a sum
          over pixels). The optional second top holds the probabilities (it shares the buffer
          backward reads, as Caffe's ShareData). A label outside [0, C) that is not the ignore
          label raises NetError (Caffe would read out of bounds).
"""
from npcaffe.arraymod import xp
from npcaffe.blob import Blob
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.layers.loss import LossLayer, get_normalizer, int_labels, normalization_mode

#: Caffe clamps probabilities at FLT_MIN before the log, for float and double alike
FLT_MIN = float(xp.finfo(xp.float32).tiny)


def softmax_dims(layer, blob, axis):
    """(outer, C, inner) of ``blob`` around ``axis``; NetError naming the layer if out of range."""
    try:
        axis = blob.canonical_axis(axis)
    except IndexError as exc:
        raise NetError(f"layer {layer.name!r} ({layer.type}): softmax_param.axis: {exc}") from None
    return blob.count_range(0, axis), blob.shape[axis], blob.count_range(axis + 1)


def softmax_into(x3, out3):
    """out3 = softmax of x3 (outer, C, inner) along axis 1; out3 may be x3."""
    peak = x3.max(axis=1, keepdims=True)        # (outer, 1, inner)
    xp.subtract(x3, peak, out=out3)
    xp.exp(out3, out=out3)
    out3 /= out3.sum(axis=1, keepdims=True)


@register("Softmax")
class SoftmaxLayer(Layer):
    """y = softmax(x) along softmax_param.axis (default 1), computed stably; in-place allowed."""

    exact_bottoms = 1
    exact_tops = 1

    def reshape(self, bottom, top):
        self._dims = softmax_dims(self, bottom[0], self.layer_param.softmax_param.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        softmax_into(bottom[0].data.reshape(self._dims), top[0].data.reshape(self._dims))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data.reshape(self._dims)
        dy = top[0].diff.reshape(self._dims)
        dot = xp.einsum('ocn,ocn->on', dy, y)[:, None, :]   # sum_c dy * y, (outer, 1, inner)
        dx = bottom[0].diff.reshape(self._dims)              # may be dy itself (in place)
        xp.subtract(dy, dot, out=dx)
        dx *= y


@register("SoftmaxWithLoss")
class SoftmaxWithLossLayer(LossLayer):
    """Multinomial logistic loss of softmax(scores) against integer labels; see module doc."""

    exact_tops = None
    min_tops = 1
    max_tops = 2

    def setup(self, bottom, top):
        lp = self.layer_param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField('ignore_label') else None
        self.normalization = normalization_mode(lp)
        self._prob_blob = Blob((), bottom[0].dtype)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self._dims = softmax_dims(self, bottom[0], self.layer_param.softmax_param.axis)
        outer, classes, inner = self._dims
        if outer * inner != bottom[1].count:
            raise NetError(
                f"layer {self.name!r} (SoftmaxWithLoss): number of labels ({bottom[1].count}, "
                f"shape {bottom[1].shape}) must match number of predictions ({outer * inner}): "
                f"for scores (N, C, H, W) and axis 1 the label count must be N*H*W")
        if len(top) > 1:
            top[1].reshape(bottom[0].shape)
        else:
            self._prob_blob.reshape(bottom[0].shape)

    def _prob(self, top):
        blob = top[1] if len(top) > 1 else self._prob_blob
        return blob.data.reshape(self._dims)

    def _labels(self, bottom):
        """(safe labels, valid mask or None), both (outer, 1, inner); ignored -> label 0."""
        outer, classes, inner = self._dims
        raw = bottom[1].data.reshape(outer, 1, inner)
        labels = int_labels(raw)
        valid = None if self.ignore_label is None else labels != self.ignore_label
        bad = (labels < 0) | (labels >= classes)
        if valid is not None:
            bad &= valid
        if bad.any():
            where = int(xp.flatnonzero(bad)[0])
            ignore = ('' if self.ignore_label is None
                      else f" and is not the ignore_label {self.ignore_label}")
            raise NetError(f"layer {self.name!r} (SoftmaxWithLoss): label value "
                           f"{raw.reshape(-1)[where]!r} at label index {where} is outside "
                           f"[0, {classes}){ignore}")
        if valid is not None:
            labels[~valid] = 0
        return labels, valid

    def forward(self, bottom, top):
        outer, classes, inner = self._dims
        prob = self._prob(top)
        softmax_into(bottom[0].data.reshape(self._dims), prob)
        labels, valid = self._labels(bottom)
        picked = xp.take_along_axis(prob, labels, axis=1)          # (outer, 1, inner)
        log_p = xp.log(xp.maximum(picked, picked.dtype.type(FLT_MIN)))
        if valid is None:
            loss, count = -log_p.sum(), labels.size
        else:
            loss, count = -log_p.sum(where=valid), int(valid.sum())
        normalizer = get_normalizer(self.normalization, outer, inner, count, self.name)
        top[0].data[...] = loss / log_p.dtype.type(normalizer)

    def backward(self, top, propagate_down, bottom):
        self._refuse_label_gradient(propagate_down)
        if not propagate_down[0]:
            return
        outer, classes, inner = self._dims
        dx = bottom[0].diff.reshape(self._dims)
        dx[...] = self._prob(top)
        labels, valid = self._labels(bottom)
        picked = xp.take_along_axis(dx, labels, axis=1)
        if valid is None:
            picked -= 1
        else:
            picked -= valid
        xp.put_along_axis(dx, labels, picked, axis=1)
        count = labels.size if valid is None else int(valid.sum())
        normalizer = get_normalizer(self.normalization, outer, inner, count, self.name)
        scale = self.top_loss_weight(top) / dx.dtype.type(normalizer)
        if valid is None:
            dx *= scale
        else:
            dx *= valid * scale                                     # (outer, 1, inner)
