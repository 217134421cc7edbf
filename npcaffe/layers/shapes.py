"""Axis arithmetic and blob sharing used by the routing and shape layers."""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError


def canonical_axis(layer, blob, axis, field='axis'):
    """``axis`` in [0, num_axes) (negative counts from the end); NetError naming the layer."""
    n = blob.num_axes
    if not -n <= axis < n:
        raise NetError(f"layer {layer.name!r}: {field} {axis} is out of range for a bottom of "
                       f"shape {blob.shape} ({n} axes)")
    return axis % n


def axis_or_legacy(layer, param, legacy, blob, what):
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
    return canonical_axis(layer, blob, param.axis)


def axis_slice(axis, start, stop):
    """Index tuple that takes [start, stop) along ``axis``."""
    return (slice(None),) * axis + (slice(start, stop),)


def share_view(top, bottom):
    """Make ``top`` a view of ``bottom``'s data and diff (Caffe's ShareData + ShareDiff)."""
    top.share_data(bottom)
    top.share_diff(bottom)


def copy_diff_unless_shared(top, bottom):
    """Backward of a view layer: the diff is shared already unless something re-allocated it."""
    if not xp.may_share_memory(top.diff, bottom.diff):
        bottom.diff[...] = top.diff.reshape(bottom.shape)


def refuse_in_place(layer, bottom, top):
    if any(t is b for t in top for b in bottom):
        raise NetError(f"layer {layer.name!r}: {layer.type} does not allow in-place "
                       f"computation (a top is also a bottom); give the top its own name")
