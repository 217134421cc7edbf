"""Shape layers: Flatten, Reshape (views of the bottom's data and diff, as Caffe's ShareData /
ShareDiff) and Tile (copies), with Caffe's shape rules."""
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.layers.shapes import (canonical_axis, copy_diff_unless_shared, refuse_in_place,
                                   share_view)
from npcaffe.proto import caffe_pb2


class _ViewLayer(Layer):
    """A layer whose top is a view of its bottom (data and diff), reshaped by ``reshape``."""

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)

    def forward(self, bottom, top):
        top[0].share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            copy_diff_unless_shared(top[0], bottom[0])

@register("Flatten")
class FlattenLayer(_ViewLayer):
    """Merges axes [axis, end_axis] (flatten_param.axis 1, end_axis -1) into one; the top is a
    view of the bottom (data and diff). No in-place use (as Caffe)."""

    def reshape(self, bottom, top):
        p = self.layer_param.flatten_param
        b = bottom[0]
        start = canonical_axis(self, b, p.axis, 'flatten_param.axis')
        end = canonical_axis(self, b, p.end_axis, 'flatten_param.end_axis')
        if end < start:
            raise NetError(f"layer {self.name!r}: flatten_param.end_axis ({p.end_axis}) comes "
                           f"before axis ({p.axis}) for a bottom of shape {b.shape}")
        top[0].reshape(b.shape[:start] + (b.count_range(start, end + 1),) + b.shape[end + 1:])
        share_view(top[0], b)

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
        share_view(top[0], b)

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
        self.axis = canonical_axis(self, b, self.layer_param.tile_param.axis, 'tile_param.axis')
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
