"""Crop offsets from layer geometry: pycaffe's ``caffe.coord_map``.

Every spatial layer maps the coordinates of its bottom to those of its top by an affine map
per spatial axis, ``top = a * bottom + b`` (a scale and a shift, in bottom pixels' units):

==========================  ==========================================================
Convolution, Pooling        a = 1/s,  b = (p - (k_eff - 1)/2) / s,  k_eff = d(k - 1) + 1
Deconvolution               a = s,    b = (k_eff - 1)/2 - p
Crop                        a = 1,    b = -offset   (only its first bottom is followed)
pass-through (ReLU, ...)    identity, on any axis
anything else (Concat, ...) no map: the walk cannot go through it
==========================  ==========================================================

``coord_map_from_to(top_from, top_to)`` walks back from both tops, composing the maps, to
their common ancestor; composing the map to ``top_to`` with the inverse of the map to
``top_from`` gives the map between them. ``crop(top_from, top_to)`` turns that into a Crop
layer: the scale must be 1 and the offset ``-b`` a non-negative integer on every axis.

All arithmetic is exact (``fractions.Fraction``); ``coord_map_from_to`` returns numpy arrays
like pycaffe. The map's ``axis`` is the convolution's channel axis (1 for N, C, H, W), so
the Crop layer's ``axis`` is one more. Errors are ``CoordMapError`` (a ValueError) with a
message that names the layers at fault; the subclasses also derive from what pycaffe raises
(RuntimeError for unconnected tops, AssertionError for an impossible crop).
"""
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import CaffeError
from .net_spec import Function, Top, layers as L

__all__ = ['crop', 'crop_offsets', 'coord_map_from_to', 'coord_map', 'compose', 'inverse', 'stride',
           'PASS_THROUGH_LAYERS', 'CoordMapError', 'UndefinedMapError', 'AxisMismatchError',
           'NoCommonAncestorError', 'CropError']

PASS_THROUGH_LAYERS = frozenset([  # pycaffe's list, plus Clip and Swish
    'AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Clip', 'Dropout', 'Eltwise', 'ELU', 'Exp', 'Log',
    'LRN', 'MVN', 'Power', 'PReLU', 'ReLU', 'Scale', 'Sigmoid', 'Split', 'Swish', 'TanH',
    'Threshold'])
"""Layer types whose output pixel i depends on input pixel i only (identity map)."""

_GEOMETRY_TYPES = {'Convolution': 'convolution_param', 'Im2col': 'convolution_param',
                   'Deconvolution': 'convolution_param', 'Pooling': 'pooling_param'}
_LEGACY_FIELDS = ('kernel_h', 'kernel_w', 'pad_h', 'pad_w', 'stride_h', 'stride_w')


class CoordMapError(CaffeError, ValueError):
    """The coordinates of two tops cannot be related, or not by a valid crop."""


class UndefinedMapError(CoordMapError):
    """A layer type with no coordinate map (Concat, InnerProduct, global pooling, ...)."""


class AxisMismatchError(CoordMapError):
    """Two maps on a path act on different axes."""


class NoCommonAncestorError(CoordMapError, RuntimeError):
    """The walks back from the two tops meet at no common top."""


class CropError(CoordMapError, AssertionError):
    """The map between the tops is not a crop: scale != 1, or a negative or fractional offset."""


# pycaffe's names
UndefinedMapException = UndefinedMapError
AxisMismatchException = AxisMismatchError


def _describe(obj):
    """``layer 'name' (Type)`` for a Top or Function: its NetSpec name where it has one."""
    fn = obj.fn if isinstance(obj, Top) else obj
    name = getattr(obj, '_netspec_name', None)
    if name is None and fn.tops:
        name = getattr(fn.tops[0], '_netspec_name', None)
    if name is None:
        name = getattr(fn, '_netspec_name', None)
    return f"layer {name!r} ({fn.type_name})" if name else f"an unnamed {fn.type_name} layer"


def _top_label(top):
    name = getattr(top, '_netspec_name', None)
    return f"top {name!r}" if name else f"a top of {_describe(top)}"


@dataclass(frozen=True)
class _Map:
    """``top = a * bottom + b`` per axis from ``axis`` on (None: any axis); a, b tuples of
    Fractions, of length 1 (all axes alike) or one per spatial axis."""
    axis: object
    a: tuple
    b: tuple


_IDENTITY = _Map(None, (Fraction(1),), (Fraction(0),))


def _per_axis(*vectors):
    """Broadcast tuples of length 1 or n to length n (numpy's rule for these shapes)."""
    n = max(len(v) for v in vectors)
    out = []
    for v in vectors:
        if len(v) not in (1, n):
            raise CoordMapError(f"per-axis values of lengths {sorted({len(u) for u in vectors})} "
                                f"cannot be combined (different numbers of spatial axes)")
        out.append(v * n if len(v) == 1 else v)
    return out


def _vector(value, what):
    """A layer parameter (scalar or list) as a tuple of Fractions."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise CoordMapError(f"{what} is empty")
    return tuple(Fraction(v) for v in values)


def layer_geometry(fn):
    """(axis, stride, effective kernel, pad) of a Convolution/Deconvolution/Pooling Function."""
    params = fn.params.get(_GEOMETRY_TYPES[fn.type_name], fn.params)
    legacy = [f for f in _LEGACY_FIELDS if f in params or f in fn.params]
    if legacy:
        raise CoordMapError(f"{_describe(fn)} sets {', '.join(legacy)}: computing crops "
                            f"supports only kernel_size, stride, pad and dilation")
    if params.get('global_pooling'):
        raise UndefinedMapError(f"{_describe(fn)} pools globally, which has no coordinate map")
    if 'kernel_size' not in params:
        raise CoordMapError(f"{_describe(fn)} has no kernel_size")
    kernel = _vector(params['kernel_size'], f"kernel_size of {_describe(fn)}")
    dilation = _vector(params.get('dilation', 1), f"dilation of {_describe(fn)}")
    stride = _vector(params.get('stride', 1), f"stride of {_describe(fn)}")
    pad = _vector(params.get('pad', 0), f"pad of {_describe(fn)}")
    kernel, dilation = _per_axis(kernel, dilation)
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    return params.get('axis', 1), stride, k_eff, pad


def layer_map(fn):
    """The _Map of one layer (from its bottoms to its tops); UndefinedMapError if it has none."""
    kind = fn.type_name
    if kind in ('Convolution', 'Pooling', 'Im2col'):
        axis, stride, k_eff, pad = layer_geometry(fn)
        stride, k_eff, pad = _per_axis(stride, k_eff, pad)
        return _Map(axis, tuple(1 / s for s in stride),
                    tuple((p - (k - 1) / 2) / s for s, k, p in zip(stride, k_eff, pad)))
    if kind == 'Deconvolution':
        axis, stride, k_eff, pad = layer_geometry(fn)
        stride, k_eff, pad = _per_axis(stride, k_eff, pad)
        return _Map(axis, stride, tuple((k - 1) / 2 - p for k, p in zip(k_eff, pad)))
    if kind in PASS_THROUGH_LAYERS:
        return _IDENTITY
    if kind == 'Crop':
        params = fn.params.get('crop_param', fn.params)
        offset = _vector(params.get('offset', 0), f"offset of {_describe(fn)}")
        return _Map(params.get('axis', 2) - 1, (Fraction(1),), tuple(-o for o in offset))
    raise UndefinedMapError(f"{_describe(fn)} has no coordinate map (only convolution, "
                            f"pooling, deconvolution, crop and pass-through layers have one)")


def _compose(base, nxt):
    """The map ``base`` after ``nxt``: scales multiply, nxt's shift is scaled by base's."""
    if base.axis is None:
        axis = nxt.axis
    elif nxt.axis is None or base.axis == nxt.axis:
        axis = base.axis
    else:
        raise AxisMismatchError(f"maps on axes {base.axis} and {nxt.axis} cannot be composed")
    a1, b1, a2, b2 = _per_axis(base.a, base.b, nxt.a, nxt.b)
    return _Map(axis, tuple(x * y for x, y in zip(a1, a2)),
                tuple(x * y + z for x, y, z in zip(a1, b2, b1)))


def _inverse(m):
    """The inverse map: de-scale and un-shift."""
    return _Map(m.axis, tuple(1 / a for a in m.a), tuple(-b / a for b, a in zip(m.b, m.a)))


def _bottoms(top):
    """The tops a walk goes on to: all bottoms, but only the first (cropped) one of a Crop."""
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == 'Crop' else inputs


def _walk_back(start, blocked):
    """Yield (top, map from top to ``start``) breadth-first from ``start`` back to the inputs.

    Appends to ``blocked`` a description of each layer where the walk stopped because it has
    no map. A top reached by two paths with different maps means misaligned branches (an
    Eltwise of unaligned tops): that raises CoordMapError.
    """
    maps = {start: _IDENTITY}
    via = {start: None}  # the layer through which each top was first reached
    queue = deque([start])
    while queue:
        top = queue.popleft()
        yield top, maps[top]
        bottoms = _bottoms(top)
        if not bottoms:
            continue
        try:
            step = _compose(maps[top], layer_map(top.fn))
        except UndefinedMapError as exc:
            blocked.append(str(exc))
            continue
        for bottom in bottoms:
            if bottom not in maps:
                maps[bottom], via[bottom] = step, top
                queue.append(bottom)
            elif not _same(maps[bottom], step):
                raise CoordMapError(
                    f"{_top_label(bottom)} reaches {_top_label(start)} by two paths with "
                    f"different coordinate maps: {_fmt(maps[bottom])} through "
                    f"{_describe(via[bottom])}, {_fmt(step)} through {_describe(top)}; "
                    f"the branches that merge between them are misaligned")


def _same(m1, m2):
    """Whether two maps agree (an axis of None agrees with any; length-1 vectors broadcast)."""
    if None not in (m1.axis, m2.axis) and m1.axis != m2.axis:
        return False
    try:
        a1, b1, a2, b2 = _per_axis(m1.a, m1.b, m2.a, m2.b)
    except CoordMapError:
        return False
    return a1 == a2 and b1 == b2


def _fmt(m):
    return f"a={_fmt_vec(m.a)}, b={_fmt_vec(m.b)}"


def _fmt_vec(v):
    text = [str(x) for x in v]
    return text[0] if len(text) == 1 else '(' + ', '.join(text) + ')'


def _map_between(top_from, top_to):
    """The exact _Map taking coordinates of ``top_from`` to those of ``top_to``."""
    for what, top in (('top_from', top_from), ('top_to', top_to)):
        if not isinstance(top, Top):
            raise TypeError(f"{what} must be a Top, not {type(top).__name__}")
    blocked = []
    from_maps = dict(_walk_back(top_from, blocked))
    for top, to_map in _walk_back(top_to, blocked):
        if top in from_maps:
            return _compose(to_map, _inverse(from_maps[top]))
    stops = sorted(set(blocked))
    reason = ("; the walk stopped at: " + "; ".join(stops)) if stops else \
        "; they come from different inputs"
    raise NoCommonAncestorError(
        f"cannot relate the coordinates of {_top_label(top_from)} and {_top_label(top_to)}: "
        f"no common ancestor is reachable through spatial layers{reason}")


def coord_map_from_to(top_from, top_to):
    """(axis, a, b): coordinates of ``top_to`` = a * coordinates of ``top_from`` + b.

    ``axis`` is the first non-spatial axis before the mapped ones (1 for N, C, H, W; None when
    only pass-through layers lie between), ``a`` and ``b`` float arrays with one entry, or one
    per spatial axis. Raises CoordMapError (NoCommonAncestorError when the tops are not
    connected through mappable layers).
    """
    m = _map_between(top_from, top_to)
    return m.axis, np.array(m.a, dtype=float), np.array(m.b, dtype=float)


def crop_offsets(top_from, top_to):
    """(crop axis, offsets): the Crop parameters that crop ``top_from`` to ``top_to``.

    The crop axis is the map's axis + 1 (2 for N, C, H, W, also when only pass-through layers
    lie between); offsets are non-negative ints, one or one per axis. Raises CropError when the
    tops differ in scale, when ``top_to`` reaches beyond ``top_from`` (negative offset) or when
    the offset is fractional, naming both tops.
    """
    m = _map_between(top_from, top_to)
    pair = f"{_top_label(top_from)} to {_top_label(top_to)}"
    if any(a != 1 for a in m.a):
        raise CropError(f"cannot crop {pair}: their coordinates differ in scale by "
                        f"{_fmt_vec(m.a)} (the crop needs equal strides; check the upsampling "
                        f"factor of the deconvolution)")
    if any(b > 0 for b in m.b):
        raise CropError(f"cannot crop {pair}: the target reaches {_fmt_vec(m.b)} pixel(s) before "
                        f"the start of the cropped top, so the offset would be negative "
                        f"(pad the input more, as FCN's conv1_1 pad 100 does)")
    if any(b.denominator != 1 for b in m.b):
        raise CropError(f"cannot crop {pair}: the offset {_fmt_vec(tuple(-b for b in m.b))} "
                        f"is not a whole number of pixels (the tops are misaligned by a "
                        f"fraction of a pixel; check kernel sizes and pads)")
    axis = 1 if m.axis is None else m.axis
    return axis + 1, [int(-b) for b in m.b]


def crop(top_from, top_to):
    """A Crop layer (``L.Crop(top_from, top_to, crop_param=dict(axis=..., offset=[...]))``) that
    crops ``top_from`` to the extent of ``top_to``, its offsets computed from the geometry."""
    axis, offsets = crop_offsets(top_from, top_to)
    return L.Crop(top_from, top_to, crop_param=dict(axis=axis, offset=offsets))


def stride(top, reference):
    """How many pixels of ``reference`` one pixel of ``top`` spans (an int, e.g. 32 for VGG16's
    pool5 relative to the data). Raises CoordMapError unless it is a whole number, alike on
    every axis."""
    m = _map_between(top, reference)
    if len(set(m.a)) != 1 or m.a[0].denominator != 1:
        raise CoordMapError(f"{_top_label(top)} is not a whole-number stride of "
                            f"{_top_label(reference)} (scale {_fmt_vec(m.a)})")
    return int(m.a[0])


def coord_map(fn):
    """pycaffe's per-layer map of a Function (or a Top's Function): (axis, a, b), a and b
    float arrays. Raises UndefinedMapError for layers without one."""
    if isinstance(fn, Top):
        fn = fn.fn
    if not isinstance(fn, Function):
        raise TypeError(f"coord_map takes a Function or Top, not {type(fn).__name__}")
    m = layer_map(fn)
    return m.axis, np.array(m.a, dtype=float), np.array(m.b, dtype=float)


def compose(base_map, next_map):
    """Compose two (axis, a, b) maps as pycaffe does: (ax, a1 * a2, a1 * b2 + b1)."""
    return _unexact(_compose(_exact(base_map), _exact(next_map)))


def inverse(coord_map_):
    """Invert an (axis, a, b) map: (ax, 1 / a, -b / a)."""
    return _unexact(_inverse(_exact(coord_map_)))


def _exact(m):
    axis, a, b = m
    return _Map(axis, tuple(Fraction(float(x)) for x in np.atleast_1d(a)),
                tuple(Fraction(float(x)) for x in np.atleast_1d(b)))


def _unexact(m):
    return m.axis, np.array(m.a, dtype=float), np.array(m.b, dtype=float)
