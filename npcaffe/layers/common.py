"""Shape and routing layers: Split, Concat, Slice, Crop, Eltwise, Flatten, Reshape, Silence,
Tile, Reduction, ArgMax (BVLC Caffe's semantics; Caffe's layer sources are the specification).

Layers that only change a shape (Flatten, Reshape, and Split/Concat/Slice with a single
partner blob) make their top a view of the bottom's data *and* diff, as Caffe's ShareData /
ShareDiff do: writing the top writes the bottom.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.proto import caffe_pb2


def _canonical_axis(layer, blob, axis, field='axis'):
    """``axis`` in [0, num_axes) (negative counts from the end); NetError naming the layer."""
    n = blob.num_axes
    if not -n <= axis < n:
        raise NetError(f"layer {layer.name!r}: {field} {axis} is out of range for a bottom of "
                       f"shape {blob.shape} ({n} axes)")
    return axis % n


def _axis_or_legacy(layer, param, legacy, blob, what):
    """Caffe's rule for Concat/Slice: ``axis`` or the deprecated ``<legacy>`` (non-negative),
    never both."""
    has_legacy = param.HasField(legacy)
    if has_legacy and param.HasField('axis'):
        raise NetError(f"layer {layer.name!r}: {what} takes either axis or {legacy}, not both")
    if has_legacy:
        axis = int(getattr(param, legacy))
        if axis >= blob.num_axes:
            raise NetError(f"layer {layer.name!r}: {legacy} {axis} is out of range for a bottom "
                           f"of shape {blob.shape}")
        return axis
    return _canonical_axis(layer, blob, param.axis)


def _index(axis, start, stop):
    """Index tuple that takes [start, stop) along ``axis``."""
    return (slice(None),) * axis + (slice(start, stop),)


def _share(top, bottom):
    """Make ``top`` a view of ``bottom``'s data and diff (Caffe's ShareData + ShareDiff)."""
    top.share_data(bottom)
    top.share_diff(bottom)


def _copy_diff_unless_shared(top, bottom):
    """Backward of a view layer: the diff is shared already unless something re-allocated it."""
    if not xp.may_share_memory(top.diff, bottom.diff):
        bottom.diff[...] = top.diff.reshape(bottom.shape)


def _no_in_place(layer, bottom, top):
    if any(t is b for t in top for b in bottom):
        raise NetError(f"layer {layer.name!r}: {layer.type} does not allow in-place "
                       f"computation (a top is also a bottom); give the top its own name")


@register("Split")
class SplitLayer(Layer):
    """Copies one bottom to N tops that share its data (the net inserts these where a blob
    feeds several layers). Backward: bottom diff = sum of the top diffs."""

    exact_bottoms = 1
    min_tops = 1

    def setup(self, bottom, top):
        _no_in_place(self, bottom, top)

    def reshape(self, bottom, top):
        for t in top:
            t.reshape(bottom[0].shape)
            t.share_data(bottom[0])

    def forward(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff
        for t in top[1:]:
            diff += t.diff


@register("Concat")
class ConcatLayer(Layer):
    """Joins the bottoms along ``axis`` (concat_param.axis 1, or legacy concat_dim); all other
    dims must agree. Backward: each bottom takes its slice of the top diff."""

    min_bottoms = 1
    exact_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.concat_param
        axis = self.axis = _axis_or_legacy(self, p, 'concat_dim', bottom[0], 'Concat')
        shape = list(bottom[0].shape)

        def others(s):
            return s[:axis] + s[axis + 1:]

        for i, b in enumerate(bottom[1:], 1):
            if b.num_axes != len(shape) or others(b.shape) != others(bottom[0].shape):
                raise NetError(f"layer {self.name!r}: Concat inputs must have the same shape "
                               f"except at axis {axis}; bottom 0 has {bottom[0].shape}, "
                               f"bottom {i} has {b.shape}")
            shape[axis] += b.shape[axis]
        top[0].reshape(shape)
        if len(bottom) == 1:
            _share(top[0], bottom[0])

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        out = top[0].data
        start = 0
        for b in bottom:
            stop = start + b.shape[self.axis]
            out[_index(self.axis, start, stop)] = b.data
            start = stop

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            if propagate_down[0]:
                _copy_diff_unless_shared(top[0], bottom[0])
            return
        start = 0
        for b, down in zip(bottom, propagate_down):
            stop = start + b.shape[self.axis]
            if down:
                b.diff[...] = top[0].diff[_index(self.axis, start, stop)]
            start = stop


@register("Slice")
class SliceLayer(Layer):
    """Cuts the bottom along ``axis`` (slice_param.axis 1, or legacy slice_dim) at
    ``slice_point``s (N-1 strictly increasing points for N tops), or into N equal parts when
    no points are given. Backward: the top diffs are copied back into their places."""

    exact_bottoms = 1
    min_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.slice_param
        axis = self.axis = _axis_or_legacy(self, p, 'slice_dim', bottom[0], 'Slice')
        size = bottom[0].shape[axis]
        points = [int(s) for s in p.slice_point]
        if points:
            if len(points) != len(top) - 1:
                raise NetError(f"layer {self.name!r}: {len(points)} slice_point(s) need "
                               f"{len(points) + 1} tops, but there are {len(top)}")
            bounds = [0] + points + [size]
            if any(b <= a for a, b in zip(bounds, bounds[1:])):
                raise NetError(f"layer {self.name!r}: slice_point {points} must be strictly "
                               f"increasing, positive and below the size {size} of axis {axis}")
        else:
            if size % len(top):
                raise NetError(f"layer {self.name!r}: {len(top)} tops do not evenly divide "
                               f"axis {axis} of size {size} (bottom shape {bottom[0].shape}); "
                               f"give slice_point")
            step = size // len(top)
            bounds = list(range(0, size + 1, step))
        self.bounds = bounds
        for t, a, b in zip(top, bounds, bounds[1:]):
            shape = list(bottom[0].shape)
            shape[axis] = b - a
            t.reshape(shape)
        if len(top) == 1:
            _share(top[0], bottom[0])

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        for t, a, b in zip(top, self.bounds, self.bounds[1:]):
            t.data[...] = bottom[0].data[_index(self.axis, a, b)]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if len(top) == 1:
            _copy_diff_unless_shared(top[0], bottom[0])
            return
        diff = bottom[0].diff
        for t, a, b in zip(top, self.bounds, self.bounds[1:]):
            diff[_index(self.axis, a, b)] = t.diff


@register("Crop")
class CropLayer(Layer):
    """Crops bottom 0 to the shape of bottom 1 on the axes >= ``axis`` (crop_param.axis 2):
    out[i] = in[i + offset]. ``offset`` is empty (0), one value for every cropped axis, or one
    per cropped axis. Bottom 1 only gives the shape and takes no gradient."""

    exact_bottoms = 2
    exact_tops = 1
    no_force_backward = (1,)

    def reshape(self, bottom, top):
        p = self.layer_param.crop_param
        src, ref = bottom[0], bottom[1]
        if src.num_axes != ref.num_axes:
            raise NetError(f"layer {self.name!r}: Crop bottoms must have the same number of "
                           f"axes; got {src.shape} and {ref.shape}")
        axis = _canonical_axis(self, src, p.axis, 'crop_param.axis')
        offsets = [int(o) for o in p.offset]
        ncrop = src.num_axes - axis
        if len(offsets) > 1 and len(offsets) != ncrop:
            raise NetError(f"layer {self.name!r}: crop_param has {len(offsets)} offsets; give "
                           f"one, or one per axis from axis {axis} on ({ncrop})")
        if len(offsets) <= 1:
            offsets = (offsets or [0]) * ncrop
        shape = src.shape[:axis] + ref.shape[axis:]
        for i, (off, want) in enumerate(zip(offsets, ref.shape[axis:]), axis):
            if off + want > src.shape[i]:
                raise NetError(
                    f"layer {self.name!r}: cannot crop {want} values at offset {off} from "
                    f"axis {i} of size {src.shape[i]} (bottom 0 shape {src.shape}, bottom 1 "
                    f"shape {ref.shape}, offsets {offsets}): the input is too small for the "
                    f"reference, or the padding or crop offset is wrong")
        self.index = (slice(None),) * axis + tuple(
            slice(o, o + n) for o, n in zip(offsets, ref.shape[axis:]))
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data[self.index]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            diff[...] = 0
            diff[self.index] = top[0].diff


_EltwiseOp = caffe_pb2.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    """Elementwise PROD, SUM (default; optional ``coeff`` per bottom) or MAX of >= 2 bottoms of
    one shape.

    Backward: SUM dx_i = coeff_i dy; PROD dx_i = dy * prod_{j != i} x_j (stable_prod_grad, the
    default) or dy * y / x_i; MAX routes dy to the bottom that won. MAX ties follow Caffe's
    loop exactly: between bottoms 0 and 1 a tie goes to bottom 1 (it tests ``x0 > x1``), later
    bottoms win only when strictly greater.
    """

    min_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        self.op = p.operation
        if len(p.coeff) not in (0, len(bottom)):
            raise NetError(f"layer {self.name!r}: Eltwise takes one coeff per bottom "
                           f"({len(bottom)}), got {len(p.coeff)}")
        if len(p.coeff) and self.op != _EltwiseOp.SUM:
            raise NetError(f"layer {self.name!r}: Eltwise takes coeff only for SUM, not "
                           f"{_EltwiseOp.EltwiseOp.Name(self.op)}")
        self.coeffs = [float(c) for c in p.coeff] or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self._forward, self._backward = {
            _EltwiseOp.PROD: (self._forward_prod, self._backward_prod),
            _EltwiseOp.SUM: (self._forward_sum, self._backward_sum),
            _EltwiseOp.MAX: (self._forward_max, self._backward_max),
        }[self.op]

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise NetError(f"layer {self.name!r}: Eltwise bottoms must have one shape; "
                               f"bottom 0 has {bottom[0].shape}, bottom {i} has {b.shape}")
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self._forward([b.data for b in bottom])

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, down in enumerate(propagate_down):
            if down:
                bottom[i].diff[...] = self._backward(i, dy, bottom, top)

    # -- per operation -----------------------------------------------------------------------
    def _forward_prod(self, xs):
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        return y

    def _backward_prod(self, i, dy, bottom, top):
        if self.stable_prod_grad:
            others = [b.data for j, b in enumerate(bottom) if j != i]
            prod = others[0].copy()
            for x in others[1:]:
                prod *= x
            return dy * prod
        return dy * (top[0].data / bottom[i].data)

    def _forward_sum(self, xs):
        t = xs[0].dtype.type
        y = xs[0] * t(self.coeffs[0])
        for x, c in zip(xs[1:], self.coeffs[1:]):
            y += x * t(c) if c != 1 else x
        return y

    def _backward_sum(self, i, dy, bottom, top):
        c = self.coeffs[i]
        return dy if c == 1 else dy * dy.dtype.type(c)

    def _forward_max(self, xs):
        first = xs[0] > xs[1]
        y = xp.where(first, xs[0], xs[1])
        self.argmax = xp.where(first, 0, 1).astype(xp.int32)
        for k, x in enumerate(xs[2:], 2):
            wins = x > y
            y = xp.where(wins, x, y)
            self.argmax[wins] = k
        return y

    def _backward_max(self, i, dy, bottom, top):
        return xp.where(self.argmax == i, dy, 0).astype(dy.dtype)


class _ViewLayer(Layer):
    """A layer whose top is a view of its bottom (data and diff), reshaped by ``reshape``."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        _no_in_place(self, bottom, top)

    def forward(self, bottom, top):
        top[0].share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            _copy_diff_unless_shared(top[0], bottom[0])


@register("Flatten")
class FlattenLayer(_ViewLayer):
    """Merges axes [axis, end_axis] (flatten_param.axis 1, end_axis -1) into one; the top is a
    view of the bottom (data and diff). No in-place use (as Caffe)."""

    def reshape(self, bottom, top):
        p = self.layer_param.flatten_param
        b = bottom[0]
        start = _canonical_axis(self, b, p.axis, 'flatten_param.axis')
        end = _canonical_axis(self, b, p.end_axis, 'flatten_param.end_axis')
        if end < start:
            raise NetError(f"layer {self.name!r}: flatten_param.end_axis ({p.end_axis}) comes "
                           f"before axis ({p.axis}) for a bottom of shape {b.shape}")
        top[0].reshape(b.shape[:start] + (b.count_range(start, end + 1),) + b.shape[end + 1:])
        _share(top[0], b)



@register("Reshape")
class ReshapeLayer(_ViewLayer):
    """Gives the bottom a new shape without copying; the top is a view (data and diff).

    reshape_param.shape replaces axes [axis, axis + num_axes) of the bottom (axis 0; num_axes
    -1 = to the end; a negative axis counts from the end, -1 meaning *after* the last axis).
    In ``shape``, 0 copies the bottom's dim at the same position (counted from ``axis``) and one
    -1 is inferred so that the count is unchanged. E.g. (2, 3, 4, 5) with shape {0, -1, 2} gives
    (2, 30, 2). No in-place use (as Caffe).
    """

    def setup(self, bottom, top):
        super().setup(bottom, top)
        dims = [int(d) for d in self.layer_param.reshape_param.shape.dim]
        if dims.count(-1) > 1:
            raise NetError(f"layer {self.name!r}: reshape_param.shape {dims} has more than one "
                           f"-1; at most one dim can be inferred")
        if any(d < -1 for d in dims):
            raise NetError(f"layer {self.name!r}: reshape_param.shape {dims} has a dim below "
                           f"-1 (0 copies a dim, -1 infers one)")
        self.dims = dims

    def reshape(self, bottom, top):
        p = self.layer_param.reshape_param
        b = bottom[0]
        n = b.num_axes
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise NetError(f"layer {self.name!r}: reshape_param.axis {p.axis} is out of range "
                           f"for a bottom of shape {b.shape}")
        if p.num_axes < -1:
            raise NetError(f"layer {self.name!r}: reshape_param.num_axes must be >= 0, or -1 "
                           f"for all, got {p.num_axes}")
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise NetError(f"layer {self.name!r}: reshape_param axis + num_axes = {end} is out "
                           f"of range for a bottom of shape {b.shape}")
        new = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= n:
                    raise NetError(f"layer {self.name!r}: reshape_param.shape {self.dims} has "
                                   f"a 0 at position {i} but the bottom {b.shape} has no axis "
                                   f"{start + i} to copy")
                d = b.shape[start + i]
            new.append(d)
        shape = list(b.shape[:start]) + new + list(b.shape[end:])
        if -1 in new:
            k = start + new.index(-1)
            known = 1
            for j, d in enumerate(shape):
                if j != k:
                    known *= d
            if known == 0 or b.count % known:
                raise NetError(f"layer {self.name!r}: the bottom count {b.count} (shape "
                               f"{b.shape}) is not divisible by the product {known} of the "
                               f"given dims of reshape_param.shape {self.dims}")
            shape[k] = b.count // known
        count = 1
        for d in shape:
            count *= d
        if count != b.count:
            raise NetError(f"layer {self.name!r}: reshape_param.shape {self.dims} gives shape "
                           f"{tuple(shape)} of {count} values, but the bottom {b.shape} has "
                           f"{b.count}")
        top[0].reshape(shape)
        _share(top[0], b)



@register("Silence")
class SilenceLayer(Layer):
    """Takes bottoms and produces nothing (so that unused tops are not net outputs).
    Backward: zero diffs for the bottoms that need one."""

    min_bottoms = 1
    exact_tops = 0

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0


@register("Tile")
class TileLayer(Layer):
    """Repeats the bottom ``tiles`` times along ``axis`` (tile_param.axis 1, tiles required):
    shape[axis] *= tiles, the whole block [axis:] repeated. Backward: sum over the copies."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.tile_param
        if not p.HasField('tiles'):
            raise NetError(f"layer {self.name!r}: Tile needs tile_param.tiles")
        if p.tiles <= 0:
            raise NetError(f"layer {self.name!r}: tile_param.tiles must be positive, "
                           f"got {p.tiles}")
        self.tiles = int(p.tiles)

    def reshape(self, bottom, top):
        b = bottom[0]
        self.axis = _canonical_axis(self, b, self.layer_param.tile_param.axis, 'tile_param.axis')
        shape = list(b.shape)
        shape[self.axis] *= self.tiles
        top[0].reshape(shape)

    def _blocks(self, blob_shape):
        outer = 1
        for d in blob_shape[:self.axis]:
            outer *= d
        return outer

    def forward(self, bottom, top):
        b = bottom[0]
        outer = self._blocks(b.shape)
        src = b.data.reshape(outer, 1, -1)  # (outer, 1, inner)
        top[0].data.reshape(outer, self.tiles, -1)[...] = src

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            b = bottom[0]
            outer = self._blocks(b.shape)
            dy = top[0].diff.reshape(outer, self.tiles, -1)  # (outer, tiles, inner)
            b.diff.reshape(outer, -1)[...] = dy.sum(axis=1)


_ReductionOp = caffe_pb2.ReductionParameter


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
        self.axis = _canonical_axis(self, b, p.axis, 'reduction_param.axis')
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
            self.axis = _canonical_axis(self, b, p.axis, 'argmax_param.axis')
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
