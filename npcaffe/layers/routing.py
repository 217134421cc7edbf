"""Routing layers: Split, Concat, Slice, Crop, Silence (BVLC Caffe's semantics; Caffe's layer
sources are the specification).

Split, and Concat/Slice with a single partner blob, make their top a view of the bottom's data
*and* diff, as Caffe's ShareData / ShareDiff do: writing the top writes the bottom.
"""
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.layers.shapes import (axis_or_legacy, axis_slice, canonical_axis,
                                   copy_diff_unless_shared, refuse_in_place, share_view)


@register("Split")
class SplitLayer(Layer):
    """Copies one bottom to N tops that share its data (the net inserts these where a blob
    feeds several layers). Backward: bottom diff = sum of the top diffs."""

    exact_bottoms = 1
    min_tops = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)

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
        axis = self.axis = axis_or_legacy(self, p, 'concat_dim', bottom[0], 'Concat')
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
            share_view(top[0], bottom[0])

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        out = top[0].data
        start = 0
        for b in bottom:
            stop = start + b.shape[self.axis]
            out[axis_slice(self.axis, start, stop)] = b.data
            start = stop

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            if propagate_down[0]:
                copy_diff_unless_shared(top[0], bottom[0])
            return
        start = 0
        for b, down in zip(bottom, propagate_down):
            stop = start + b.shape[self.axis]
            if down:
                b.diff[...] = top[0].diff[axis_slice(self.axis, start, stop)]
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
        axis = self.axis = axis_or_legacy(self, p, 'slice_dim', bottom[0], 'Slice')
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
            share_view(top[0], bottom[0])

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        for t, a, b in zip(top, self.bounds, self.bounds[1:]):
            t.data[...] = bottom[0].data[axis_slice(self.axis, a, b)]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if len(top) == 1:
            copy_diff_unless_shared(top[0], bottom[0])
            return
        diff = bottom[0].diff
        for t, a, b in zip(top, self.bounds, self.bounds[1:]):
            diff[axis_slice(self.axis, a, b)] = t.diff

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
        axis = canonical_axis(self, src, p.axis, 'crop_param.axis')
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