"""Blob shapes of a NetParameter by Caffe's own size rules, without running the net.

``blob_shapes(net, {'data': (1, 3, 375, 500)})`` returns ``{top: shape}`` for every top of a
net built from the layer types the FCN family uses. It checks what Caffe's Reshape checks
(positive sizes, Crop windows inside their bottom, equal Eltwise shapes) and raises ShapeError
naming the layer otherwise — a quick way to see that a generated net's crops line up for any
input size, before any engine exists.

Rules (BVLC master, FCN_FACTS.md), per spatial axis, k_eff = d(k - 1) + 1:

- Convolution: floor((H + 2p - k_eff) / s) + 1
- Deconvolution: s(H - 1) + k_eff - 2p
- Pooling (CEIL): ceil((H + 2p - k) / s) + 1, minus 1 if p > 0 and (out - 1)s >= H + p;
  FLOOR: floor(...) + 1; global_pooling: 1
- Crop: axes >= axis take bottom[1]'s sizes, requiring offset + size <= bottom[0]'s
- Eltwise: all bottoms equal; ReLU, Dropout, Scale, LRN, ...: the bottom's shape
"""

__all__ = ['blob_shapes', 'ShapeError']

_SAME_SHAPE = frozenset(['AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'ELU', 'Exp', 'Log',
                         'LRN', 'MVN', 'Power', 'PReLU', 'ReLU', 'Scale', 'Sigmoid', 'Softmax',
                         'TanH', 'Threshold'])


class ShapeError(ValueError):
    """A layer whose output would be empty or that Caffe's Reshape would reject."""


def _spatial(values, default, count, what):
    """A repeated per-axis field as ``count`` ints (one value applies to every axis)."""
    values = list(values) or [default]
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ShapeError(f"{what} has {len(values)} values for {count} spatial axes")
    return values


def _conv_geometry(layer, shape):
    cp = layer.convolution_param
    axis = cp.axis % len(shape)
    count = len(shape) - axis - 1
    name = f"layer {layer.name!r}"
    if cp.HasField('kernel_h') or cp.HasField('kernel_w'):
        ks = [cp.kernel_h, cp.kernel_w]
    else:
        ks = _spatial(cp.kernel_size, None, count, f"{name} kernel_size")
    if cp.HasField('pad_h') or cp.HasField('pad_w'):
        pad = [cp.pad_h, cp.pad_w]
    else:
        pad = _spatial(cp.pad, 0, count, f"{name} pad")
    if cp.HasField('stride_h') or cp.HasField('stride_w'):
        stride = [cp.stride_h or 1, cp.stride_w or 1]
    else:
        stride = _spatial(cp.stride, 1, count, f"{name} stride")
    dilation = _spatial(cp.dilation, 1, count, f"{name} dilation")
    if None in ks:
        raise ShapeError(f"{name} has no kernel_size")
    k_eff = [d * (k - 1) + 1 for k, d in zip(ks, dilation)]
    return axis, k_eff, stride, pad


def _convolution(layer, bottoms):
    (shape,) = bottoms
    axis, k_eff, stride, pad = _conv_geometry(layer, shape)
    spatial = []
    for h, k, s, p in zip(shape[axis + 1:], k_eff, stride, pad):
        if h + 2 * p < k:
            raise ShapeError(f"layer {layer.name!r}: kernel extent {k} exceeds the padded "
                             f"input size {h + 2 * p}")
        spatial.append((h + 2 * p - k) // s + 1)
    return [tuple(shape[:axis]) + (layer.convolution_param.num_output,) + tuple(spatial)]


def _deconvolution(layer, bottoms):
    (shape,) = bottoms
    axis, k_eff, stride, pad = _conv_geometry(layer, shape)
    spatial = [s * (h - 1) + k - 2 * p
               for h, k, s, p in zip(shape[axis + 1:], k_eff, stride, pad)]
    return [tuple(shape[:axis]) + (layer.convolution_param.num_output,) + tuple(spatial)]


def _pooling(layer, bottoms):
    (shape,) = bottoms
    pp = layer.pooling_param
    if len(shape) != 4:
        raise ShapeError(f"layer {layer.name!r}: Pooling needs a 4-D bottom, got {shape}")
    if pp.global_pooling:
        return [tuple(shape[:2]) + (1, 1)]
    ks = [pp.kernel_h, pp.kernel_w] if pp.HasField('kernel_h') else [pp.kernel_size] * 2
    pad = [pp.pad_h, pp.pad_w] if pp.HasField('pad_h') or pp.HasField('pad_w') else [pp.pad] * 2
    stride = ([pp.stride_h, pp.stride_w] if pp.HasField('stride_h') or pp.HasField('stride_w')
              else [pp.stride] * 2)
    ceil = pp.round_mode == pp.CEIL
    spatial = []
    for h, k, s, p in zip(shape[2:], ks, stride, pad):
        span = h + 2 * p - k
        out = (-(-span // s) if ceil else span // s) + 1
        if any(pad) and (out - 1) * s >= h + p:
            out -= 1  # the last window must start inside the image (or its left padding)
        spatial.append(out)
    return [tuple(shape[:2]) + tuple(spatial)]


def _crop(layer, bottoms):
    source, target = bottoms
    axis = layer.crop_param.axis % len(source)
    offsets = _spatial(layer.crop_param.offset, 0, len(source) - axis,
                       f"layer {layer.name!r} offset")
    out = list(source[:axis])
    for i, offset in zip(range(axis, len(source)), offsets):
        if offset + target[i] > source[i]:
            raise ShapeError(f"layer {layer.name!r}: crop of size {target[i]} at offset {offset} "
                             f"leaves bottom {layer.bottom[0]!r} (size {source[i]}) on axis {i}")
        out.append(target[i])
    return [tuple(out)]


def _eltwise(layer, bottoms):
    if any(b != bottoms[0] for b in bottoms):
        raise ShapeError(f"layer {layer.name!r}: Eltwise bottoms differ in shape: {bottoms}")
    return [bottoms[0]]


def _loss(layer, bottoms):
    return [()]


_RULES = {'Convolution': _convolution, 'Deconvolution': _deconvolution, 'Pooling': _pooling,
          'Crop': _crop, 'Eltwise': _eltwise, 'SoftmaxWithLoss': _loss}


def blob_shapes(net, inputs=None):
    """``{top name: shape tuple}`` for every top of ``net`` (a NetParameter), in layer order.

    Input layers take their ``input_param`` shape unless ``inputs`` names the top; the tops
    of other source layers (Python, Data) must be given in ``inputs``. Raises ShapeError for an
    empty output or a shape Caffe rejects, NotImplementedError for a layer type without a rule.
    """
    inputs = dict(inputs or {})
    shapes = {}
    for layer in net.layer:
        if not layer.bottom:
            for i, top in enumerate(layer.top):
                if top in inputs:
                    shapes[top] = tuple(inputs[top])
                elif layer.type == 'Input' and layer.input_param.shape:
                    dims = layer.input_param.shape[min(i, len(layer.input_param.shape) - 1)].dim
                    shapes[top] = tuple(dims)
                else:
                    raise ShapeError(f"layer {layer.name!r} ({layer.type}): give the shape of "
                                     f"its top {top!r} in inputs")
            continue
        missing = [b for b in layer.bottom if b not in shapes]
        if missing:
            raise ShapeError(f"layer {layer.name!r}: unknown bottom(s) {missing}")
        bottoms = [shapes[b] for b in layer.bottom]
        if layer.type in _SAME_SHAPE:
            tops = [bottoms[0]]
        elif layer.type in _RULES:
            tops = _RULES[layer.type](layer, bottoms)
        else:
            raise NotImplementedError(f"layer {layer.name!r}: no shape rule for type "
                                      f"{layer.type!r}")
        for top, shape in zip(layer.top, tops):
            if any(d < 1 for d in shape):
                raise ShapeError(f"layer {layer.name!r} ({layer.type}) would make top {top!r} "
                                 f"of shape {shape} from {bottoms}")
            shapes[top] = shape
    return shapes
