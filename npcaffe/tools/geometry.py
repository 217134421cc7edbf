"""Receptive field, stride and offset of every blob of a net, relative to its input.

For each spatial axis of a blob (H, W of N, C, H, W), measured in pixels of the input blob the
blob descends from:

* ``stride`` (the "jump"): input pixels between two neighbouring pixels of the blob;
* ``offset``: input coordinate of the centre of the blob's pixel 0 (negative when it lies in
  the padding: FCN's conv1_1 pad 100 puts it at -99);
* ``rf``: receptive field, the span of input pixels one pixel of the blob depends on.

They are composed layer by layer from the input (stride 1, offset 0, rf 1). The offset and
stride come from coord_map's per-layer affine map ``top = a * bottom + b`` (the same maps that
compute FCN's crop offsets): the centre of top pixel 0 lies at bottom coordinate ``-b / a``,
so ``offset += (-b / a) * stride`` and ``stride /= a``. The receptive field grows with the
kernel: Convolution and Pooling add ``(k_eff - 1) * stride`` (k_eff = d(k - 1) + 1, the
bottom's stride); a Deconvolution of stride s, where one top pixel sums at most
``ceil(k_eff / s)`` neighbouring bottom pixels, adds ``(ceil(k_eff / s) - 1) * stride`` (the
bottom's stride) while its stride divides by s. Global pooling sees the whole bottom. Crop
shifts the offset by its crop offset. Pixel-wise layers (ReLU, Eltwise, Concat and Softmax on
the channel axis, ...) keep the geometry; where several bottoms meet, the receptive fields are
united. Every other layer (InnerProduct, Flatten, Reshape, losses) ends the geometry: its tops
have none.

A crop offset is the difference of two offsets divided by the stride: in FCN-32s, ``upscore``
starts 19 input pixels before ``data`` (offset -19), so ``score`` crops it at 19.
All values are exact ``Fraction``s.
"""
import math
from dataclasses import dataclass
from fractions import Fraction

# coord_map's per-layer maps are the one definition of the layer geometry; they are written
# for NetSpec Functions, so _MapView presents a LayerParameter the way they read one.
from npcaffe.coord_map import PASS_THROUGH_LAYERS, CoordMapError
from npcaffe.coord_map import layer_geometry as _coord_geometry, layer_map

__all__ = ['Geometry', 'blob_geometry', 'layer_geometry_params', 'format_number']

_SPATIAL_TYPES = frozenset(['Convolution', 'Deconvolution', 'Pooling'])
# Layers that act on one axis only: pixel-wise when that axis is not spatial (axis < 2).
_AXIS_FIELDS = {'Softmax': ('softmax_param', 'axis', None),
                'Concat': ('concat_param', 'axis', 'concat_dim'),
                'Slice': ('slice_param', 'axis', 'slice_dim'),
                'ArgMax': ('argmax_param', 'axis', None)}
_PIXELWISE = PASS_THROUGH_LAYERS | {'Split', 'Silence'}


@dataclass(frozen=True)
class Geometry:
    """Geometry of one blob: tuples with one Fraction per spatial axis, and the input blob
    (``source``) they are measured in."""
    rf: tuple
    stride: tuple
    offset: tuple
    source: str

    @classmethod
    def identity(cls, source, axes):
        """An input blob's own geometry: rf 1, stride 1, offset 0 on ``axes`` axes."""
        one, zero = (Fraction(1),) * axes, (Fraction(0),) * axes
        return cls(one, one, zero, source)

    @property
    def axes(self):
        return len(self.rf)

    def span(self):
        """(first, last) input coordinate of pixel 0's receptive field, per axis."""
        return (tuple(o - (r - 1) / 2 for o, r in zip(self.offset, self.rf)),
                tuple(o + (r - 1) / 2 for o, r in zip(self.offset, self.rf)))


def format_number(values):
    """A per-axis tuple as text: ``'212'`` when the axes agree, ``'212x196'`` otherwise;
    fractions as decimals (``'-98.5'``), at most 3 places."""
    def one(v):
        v = Fraction(v)
        if v.denominator == 1:
            return str(v.numerator)
        return f"{float(v):.3f}".rstrip('0').rstrip('.')
    texts = [one(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else 'x'.join(texts)


# ------------------------------------------------------------------------------------------
# a LayerParameter as coord_map reads a NetSpec Function
def _pair_or_list(msg, h_field, w_field, repeated, default):
    """Caffe's rule: kernel_h/kernel_w (both) override the repeated/scalar field."""
    if msg.HasField(h_field) or msg.HasField(w_field):
        return [getattr(msg, h_field), getattr(msg, w_field)]
    value = getattr(msg, repeated)
    if hasattr(value, 'extend'):
        return list(value) or [default]
    return [value] if msg.HasField(repeated) else [default]


def layer_geometry_params(layer):
    """The NetSpec-style ``params`` dict of a LayerParameter's geometry, as coord_map reads
    it (``{'convolution_param': {'kernel_size': [3], 'stride': [1], ...}}``); legacy
    kernel_h/kernel_w, stride_h/stride_w and pad_h/pad_w become per-axis lists."""
    if layer.type in ('Convolution', 'Deconvolution'):
        cp = layer.convolution_param
        params = {'stride': _pair_or_list(cp, 'stride_h', 'stride_w', 'stride', 1),
                  'pad': _pair_or_list(cp, 'pad_h', 'pad_w', 'pad', 0),
                  'dilation': list(cp.dilation) or [1], 'axis': cp.axis}
        if cp.kernel_size or cp.HasField('kernel_h') or cp.HasField('kernel_w'):
            params['kernel_size'] = _pair_or_list(cp, 'kernel_h', 'kernel_w', 'kernel_size', 0)
        return {'convolution_param': params}
    if layer.type == 'Pooling':
        pp = layer.pooling_param
        params = {'stride': _pair_or_list(pp, 'stride_h', 'stride_w', 'stride', 1),
                  'pad': _pair_or_list(pp, 'pad_h', 'pad_w', 'pad', 0),
                  'global_pooling': pp.global_pooling}
        if pp.HasField('kernel_size') or pp.HasField('kernel_h') or pp.HasField('kernel_w'):
            params['kernel_size'] = _pair_or_list(pp, 'kernel_h', 'kernel_w', 'kernel_size', 0)
        return {'pooling_param': params}
    if layer.type == 'Crop':
        cp = layer.crop_param
        return {'crop_param': {'axis': cp.axis, 'offset': list(cp.offset) or [0]}}
    return {}


class _MapView:
    """Duck-types net_spec.Function for coord_map: ``type_name``, ``params``, a name."""

    def __init__(self, layer, params=None):
        self.type_name = layer.type
        self.params = layer_geometry_params(layer) if params is None else params
        self.tops = []
        self._netspec_name = layer.name


# ------------------------------------------------------------------------------------------
def _broadcast(values, axes):
    values = tuple(values)
    return values * axes if len(values) == 1 else values


def _spatial_step(layer, g, bottom_shape):
    """Geometry of the top of a Convolution/Deconvolution/Pooling with bottom geometry g."""
    view = _MapView(layer)
    if layer.type == 'Pooling' and layer.pooling_param.global_pooling:
        size = tuple(Fraction(d) for d in bottom_shape[2:])
        return Geometry(tuple(r + (h - 1) * s for r, h, s in zip(g.rf, size, g.stride)),
                        tuple(s * h for s, h in zip(g.stride, size)),
                        tuple(o + (h - 1) / 2 * s for o, h, s in zip(g.offset, size, g.stride)),
                        g.source)
    try:
        m = layer_map(view)
        axis, stride, k_eff, _ = _coord_geometry(view)
    except CoordMapError:
        return None
    if axis != 1:
        return None
    n = g.axes
    a, b = _broadcast(m.a, n), _broadcast(m.b, n)
    stride, k_eff = _broadcast(stride, n), _broadcast(k_eff, n)
    if len(a) != n or len(k_eff) != n:
        return None
    if layer.type == 'Deconvolution':
        grow = [Fraction(math.ceil(k / s)) - 1 for k, s in zip(k_eff, stride)]
    else:
        grow = [k - 1 for k in k_eff]
    return Geometry(tuple(r + e * j for r, e, j in zip(g.rf, grow, g.stride)),
                    tuple(j / x for j, x in zip(g.stride, a)),
                    tuple(o + (-y / x) * j for o, x, y, j in zip(g.offset, a, b, g.stride)),
                    g.source)


def _crop_step(layer, g, bottom_shape):
    """Geometry of a Crop's top: bottom 0's, shifted by the offsets of the spatial axes."""
    ndim = len(bottom_shape)
    axis = layer.crop_param.axis % ndim
    offsets = list(layer.crop_param.offset) or [0]
    shift = []
    for i in range(2, ndim):
        if i < axis:
            shift.append(0)
        else:
            shift.append(offsets[0] if len(offsets) == 1 else offsets[i - axis])
    return Geometry(g.rf, g.stride,
                    tuple(o + k * j for o, k, j in zip(g.offset, shift, g.stride)), g.source)


def _union(geometries):
    """The geometry of a pixel-wise layer over several bottoms: one source and stride, the
    receptive fields united. None if they disagree on source or stride."""
    first = geometries[0]
    if any(g.source != first.source or g.stride != first.stride or g.axes != first.axes
           for g in geometries):
        return None
    if all(g == first for g in geometries):
        return first
    spans = [g.span() for g in geometries]
    lo = [min(s[0][i] for s in spans) for i in range(first.axes)]
    hi = [max(s[1][i] for s in spans) for i in range(first.axes)]
    return Geometry(tuple(h - l + 1 for l, h in zip(lo, hi)), first.stride,
                    tuple((l + h) / 2 for l, h in zip(lo, hi)), first.source)


def _is_pixelwise(layer, shape):
    if layer.type in _PIXELWISE:
        return True
    if layer.type in _AXIS_FIELDS and shape:
        msg_name, field, legacy = _AXIS_FIELDS[layer.type]
        msg = getattr(layer, msg_name)
        if layer.type == 'ArgMax' and not msg.HasField('axis'):
            return False        # arg max over the flattened C*H*W
        axis = getattr(msg, legacy) if legacy and msg.HasField(legacy) else getattr(msg, field)
        return axis % len(shape) < 2
    return False


def blob_geometry(layers, shapes):
    """``{blob: Geometry or None}`` for the tops of ``layers`` (LayerParameters in net order,
    without Split layers) given ``shapes`` (``{blob: shape tuple}`` of the built net).

    A layer without bottoms starts each of its tops of 3 or more axes as an input (its own
    source). An in-place layer's blob keeps one geometry (pixel-wise layers do not change it).
    Blobs of fewer than 3 axes, and tops of layers without geometry, map to None.
    """
    geom = {}
    for layer in layers:
        tops = list(layer.top)
        if not layer.bottom:
            for top in tops:
                shape = shapes.get(top)
                geom[top] = Geometry.identity(top, len(shape) - 2) \
                    if shape is not None and len(shape) >= 3 else None
            continue
        bottoms = [geom.get(b) for b in layer.bottom]
        bshape = shapes.get(layer.bottom[0])
        for top in tops:
            tshape = shapes.get(top)
            if tshape is None or len(tshape) < 3:
                geom[top] = None
            elif layer.type in _SPATIAL_TYPES or layer.type == 'Crop':
                step = _spatial_step if layer.type in _SPATIAL_TYPES else _crop_step
                g = step(layer, bottoms[0], bshape) \
                    if bottoms[0] is not None and bshape is not None else None
                geom[top] = g if g is not None and g.axes == len(tshape) - 2 else None
            elif _is_pixelwise(layer, bshape):
                # the bottoms of the top's height and width (not a Scale's (N, C) factors)
                same = [g for g, b in zip(bottoms, layer.bottom)
                        if g is not None and shapes.get(b) is not None
                        and tuple(shapes[b][2:]) == tuple(tshape[2:])]
                geom[top] = _union(same) if same else None
            else:
                geom[top] = None
    return geom
