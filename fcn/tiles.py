"""Segmenting images larger than memory in overlapping tiles, with the whole image's scores.

An FCN is a chain of convolutions, poolings, deconvolutions and crops: shifting its input by a
multiple of its total stride S shifts its output by the same amount, and an output pixel
depends only on the input pixels within the receptive field R around it. So a tile whose
origin is a multiple of S and that extends R pixels past a core region on every side (or to the
image's border) gives, in that core, exactly the scores of the whole-image forward (the zero
padding at the tile's cut edges reaches no core pixel). The image is cut into cores of
``tile`` x ``tile`` pixels (a multiple of S), each run with its margin of R (rounded up to S),
and the cores' scores are put together.

Both numbers come from the deploy prototxt's layer parameters (:func:`geometry`), layer by
layer along every path from the input (per blob: the receptive field r and the stride s in
input pixels; the most over a layer's bottoms):

    Convolution, Pooling:  r += (k_eff - 1) s,  s *= stride       (k_eff = d (k - 1) + 1)
    Deconvolution:         s /= stride,  r += (ceil(k_eff / stride) - 1) s_before
    other layers:          unchanged (elementwise, crop, ReLU, dropout, ...)

For FCN-8s: S = 32, R = 404 + the upsampling's reach. Memory: one tile's forward (with the
engine's ``reuse_memory`` where the backend has it) plus the image and its uint8 label; the
(classes, H, W) scores of a huge image are never held by ``Tiler.label``.

API: ``Tiler(segmenter, deploy, tile).scores(rgb)`` (classes, H, W) float32, as
``Segmenter.scores``; ``.label(rgb)`` the (H, W) uint8 argmax. ``fcn infer --tile N`` uses
the latter.
"""
import logging
import math

import numpy as np
from google.protobuf import text_format

from fcn import backend

log = logging.getLogger(__name__)

#: The default core of a tile, in input pixels: FCN-8s with a margin of 416 runs 1600 x 1600
#: tiles, about 2.5 GB with reuse_memory (weights included), inside the 4 GB asked for.
DEFAULT_TILE = 768

_WINDOWED = ('Convolution', 'Pooling')


def _pair(param, field, default):
    """The first value of a repeated field (or its _h form), ``default`` when absent."""
    values = list(getattr(param, field, []) or [])
    if values:
        return int(values[0])
    single = {'kernel_size': 'kernel_h', 'stride': 'stride_h', 'pad': 'pad_h'}.get(field)
    if single and param.HasField(single):
        return int(getattr(param, single))
    return default


def _kernel_stride(layer):
    """(effective kernel, stride) of a Convolution, Deconvolution or Pooling layer (square
    kernels: FCN's; the larger side of a rectangular one)."""
    if layer.type == 'Pooling':
        p = layer.pooling_param
        if p.global_pooling:
            raise ValueError(f"layer {layer.name!r}: global pooling has no finite receptive "
                             f"field; this net cannot be tiled")
        k = max(p.kernel_size or p.kernel_h, p.kernel_w or 0)
        s = max(p.stride or p.stride_h or 1, p.stride_w or 0)
        return k, s
    p = layer.convolution_param
    k = max(_pair(p, 'kernel_size', 1), p.kernel_w or 0)
    s = max(_pair(p, 'stride', 1), p.stride_w or 0)
    d = _pair(p, 'dilation', 1)
    return d * (k - 1) + 1, s


def geometry(deploy):
    """(receptive field, total stride) in input pixels of the net in the ``deploy`` prototxt
    (the most over its blobs), from its layer parameters (see the module docstring)."""
    param = backend.caffe.proto.caffe_pb2.NetParameter()
    with open(deploy) as f:
        text_format.Merge(f.read(), param)
    blobs = {name: (1, 1.0) for name in param.input}
    for layer in param.layer:
        if not layer.bottom:
            for top in layer.top:
                blobs[top] = (1, 1.0)
            continue
        r, s = max((blobs.get(b, (1, 1.0)) for b in layer.bottom), key=lambda rs: rs[0])
        if layer.type in _WINDOWED:
            k, stride = _kernel_stride(layer)
            r, s = r + (k - 1) * s, s * stride
        elif layer.type == 'Deconvolution':
            k, stride = _kernel_stride(layer)
            r, s = r + (math.ceil(k / stride) - 1) * s, s / stride
        for top in layer.top:
            blobs[top] = (r, s)
    field = max(r for r, _ in blobs.values())
    stride = max(s for _, s in blobs.values())
    return int(math.ceil(field)), max(1, int(round(stride)))


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def tile_windows(height, width, tile, margin, stride):
    """[(core, window)] covering the image, each a (y0, y1, x0, x1) box: the cores tile the
    image (``tile`` a multiple of ``stride``), each window is its core grown by ``margin`` and
    clipped to the image, its origin a multiple of ``stride``."""
    if tile % stride:
        raise ValueError(f"the tile {tile} must be a multiple of the net's stride {stride}")
    margin = _round_up(margin, stride)
    boxes = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            core = (y0, min(y0 + tile, height), x0, min(x0 + tile, width))
            window = (max(0, y0 - margin), min(height, core[1] + margin),
                      max(0, x0 - margin), min(width, core[3] + margin))
            boxes.append((core, window))
    return boxes


class Tiler:
    """Tiled segmentation with a ``fcn.segment.Segmenter`` built from ``deploy``.

    Args:
        segmenter: the Segmenter (its net, input, score blob and mean).
        deploy: its deploy prototxt (the receptive field and stride are read from it).
        tile: the core of a tile in input pixels, rounded up to the net's stride.
    """

    def __init__(self, segmenter, deploy, tile=DEFAULT_TILE):
        self.segmenter = segmenter
        self.field, self.stride = geometry(deploy)
        self.tile = _round_up(int(tile), self.stride)
        if getattr(segmenter.net, 'reuse_memory', None) is False:
            segmenter.net.reuse_memory = True       # npcaffe: each tile's inner blobs freed

    def _tile_scores(self, rgb):
        """Yield (core box, the core's (classes, h, w) scores) for every tile of ``rgb``."""
        boxes = tile_windows(rgb.shape[0], rgb.shape[1], self.tile, self.field, self.stride)
        log.info("%dx%d image in %d tiles of %d px (margin %d, stride %d)", rgb.shape[1],
                 rgb.shape[0], len(boxes), self.tile, _round_up(self.field, self.stride),
                 self.stride)
        for (cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1) in boxes:
            scores = self.segmenter.scores(rgb[wy0:wy1, wx0:wx1])
            yield (cy0, cy1, cx0, cx1), scores[:, cy0 - wy0:cy1 - wy0, cx0 - wx0:cx1 - wx0]
            del scores              # not held while the next tile runs

    def scores(self, rgb):
        """(classes, H, W) float32 scores of an RGB uint8 image, tile by tile: those of the
        whole-image forward (``segmenter.scores(rgb)``) up to float rounding."""
        out = None
        for (y0, y1, x0, x1), scores in self._tile_scores(rgb):
            if out is None:
                out = np.empty((scores.shape[0],) + rgb.shape[:2], np.float32)
            out[:, y0:y1, x0:x1] = scores
        return out

    def label(self, rgb):
        """(H, W) uint8 label (the argmax of :meth:`scores`) without holding all scores."""
        label = np.empty(rgb.shape[:2], np.uint8)
        for (y0, y1, x0, x1), scores in self._tile_scores(rgb):
            label[y0:y1, x0:x1] = scores.argmax(axis=0)
            del scores              # (a view of the whole window's scores)
        return label
