"""Reductions: Reduction (SUM, ASUM, SUMSQ, MEAN over the trailing axes from ``axis``) and
ArgMax (top-k indices, optionally with values), as Caffe computes them."""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.proto import caffe_pb2

_ReductionOp = caffe_pb2.ReductionParameter
from npcaffe.layers.shapes import canonical_axis


@register("Reduction")
class ReductionLayer(Layer):
    """Reduces all axes from ``axis`` on (reduction_param.axis 0) to one number per leading
    index, times ``coeff`` (1): SUM, ASUM (sum |x|), SUMSQ (sum x^2), MEAN. Top shape =
    bottom shape[:axis] (a scalar for axis 0).
    Backward: dx = coeff dy (SUM), coeff dy / n (MEAN), coeff dy sign(x) (ASUM),
    2 coeff dy x (SUMSQ)."""

    exact_bottoms = 1
    exact_tops = 1

    _OPS = {
        _ReductionOp.SUM: (lambda x: x.sum(axis=1), lambda x: 1),
        _ReductionOp.MEAN: (lambda x: x.sum(axis=1), lambda x: 1),
        _ReductionOp.ASUM: (lambda x: xp.abs(x).sum(axis=1), lambda x: xp.sign(x)),
        _ReductionOp.SUMSQ: (lambda x: (x * x).sum(axis=1), lambda x: 2 * x),
    }

    def setup(self, bottom, top):
        p = self.layer_param.reduction_param
        if p.operation not in self._OPS:
            raise NotSupportedError(f"layer {self.name!r}: reduction_param.operation "
                                    f"{p.operation} is not supported")
        self.reduce, self.local_grad = self._OPS[p.operation]
        self.is_mean = p.operation == _ReductionOp.MEAN

    def reshape(self, bottom, top):
        b = bottom[0]
        p = self.layer_param.reduction_param
        self.axis = canonical_axis(self, b, p.axis, 'reduction_param.axis')
        self.num = b.count_range(0, self.axis)
        self.dim = b.count_range(self.axis)
        self.coeff = float(p.coeff) / (self.dim if self.is_mean and self.dim else 1)
        top[0].reshape(b.shape[:self.axis])

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        y = self.reduce(x)
        if self.coeff != 1:
            y = y * x.dtype.type(self.coeff)
        top[0].data.reshape(-1)[...] = y

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        b = bottom[0]
        x = b.data.reshape(self.num, self.dim)
        dy = top[0].diff.reshape(self.num, 1) * x.dtype.type(self.coeff)
        b.diff.reshape(self.num, self.dim)[...] = dy * self.local_grad(x)

@register("ArgMax")
class ArgMaxLayer(Layer):
    """Indices (or values) of the ``top_k`` (1) largest values; no backward (as Caffe).

    With ``axis``: along that axis; the top is the bottom's shape with top_k at ``axis``,
    holding indices, or the values if ``out_max_val``.
    Without: over each item's flattened dims; the top is (N, 1, top_k) padded with 1s to the
    bottom's rank (at least 3), or (N, 2, top_k, ...) with indices then values if out_max_val.
    Order as Caffe's partial_sort of (value, index) pairs with greater<>: by value descending,
    and ties go to the *larger* index first. Indices are stored as floats.
    """

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        self.has_axis = p.HasField('axis')
        if self.top_k < 1:
            raise NetError(f"layer {self.name!r}: argmax_param.top_k must be >= 1, "
                           f"got {self.top_k}")

    def reshape(self, bottom, top):
        b = bottom[0]
        p = self.layer_param.argmax_param
        if self.has_axis:
            self.axis = canonical_axis(self, b, p.axis, 'argmax_param.axis')
            dim = b.shape[self.axis]
            shape = list(b.shape)
            shape[self.axis] = self.top_k
        else:
            dim = b.count_range(1)
            shape = [1] * max(b.num_axes, 3)
            shape[0] = b.shape[0]
            shape[2] = self.top_k
            if self.out_max_val:
                shape[1] = 2
        if self.top_k > dim:
            raise NetError(f"layer {self.name!r}: argmax_param.top_k ({self.top_k}) exceeds the "
                           f"{dim} values it chooses from (bottom shape {b.shape})")
        top[0].reshape(shape)

    def _top_k(self, x):
        """x (..., dim) -> (indices, values), each (..., top_k), in Caffe's order."""
        dim = x.shape[-1]
        rev = x[..., ::-1]  # ties then favour the larger original index
        if self.top_k == 1:
            order = xp.argmax(rev, axis=-1)[..., None]
        else:
            order = xp.argsort(-rev, axis=-1, kind='stable')[..., :self.top_k]
        return dim - 1 - order, xp.take_along_axis(rev, order, axis=-1)

    def forward(self, bottom, top):
        b = bottom[0]
        x = b.data
        out = top[0].data
        if self.has_axis:
            outer = b.count_range(0, self.axis)
            dim = b.shape[self.axis]
            rows = x.reshape(outer, dim, -1).transpose(0, 2, 1)  # (outer, inner, dim)
            idx, val = self._top_k(rows)
            res = val if self.out_max_val else idx
            out.reshape(outer, self.top_k, -1)[...] = res.transpose(0, 2, 1)
        else:
            idx, val = self._top_k(x.reshape(b.shape[0], -1))  # (N, top_k)
            flat = out.reshape(b.shape[0], -1)
            flat[:, :self.top_k] = idx
            if self.out_max_val:
                flat[:, self.top_k:2 * self.top_k] = val

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            raise NotSupportedError(f"layer {self.name!r}: ArgMax has no backward (as in "
                                    f"Caffe); no layer below it may need a gradient")