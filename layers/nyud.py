"""NYUDv2 data layer (prototxt ``module: "layers.nyud"``): color, depth, HHA and the 40-class
labels of Gupta et al., the tops the reference ``NYUDSegDataLayer`` (fcn.berkeleyvision.org)
produces, chosen and ordered by ``tops``, with checked parameters.

Layout (the prepared ``nyud.tar.gz`` of the reference)::

    NYUD_DIR/<split>.txt                 ids, e.g. 5001 (train 381, val 414, test 654;
                                         the nets read trainval = train + val)
    NYUD_DIR/data/images/img_<id>.png    RGB
    NYUD_DIR/data/depth/img_<id>.png     depth (16-bit PNG)
    NYUD_DIR/data/hha/img_<id>.png       HHA encoding (3 channels, stored as RGB)
    NYUD_DIR/segmentation/img_<id>.mat   variable ``segmentation``: 0 = void, 1..40 = classes

Tops (each (1, C, H, W) float32):

- ``color``: (1, 3, H, W), RGB -> BGR, minus (116.190, 97.203, 92.318);
- ``depth``: (1, 1, H, W), natural log of the stored depth value, minus 7.844 (a depth of 0 or
  below has no logarithm and is an error naming the file, where the reference gives -inf);
- ``hha``: (1, 3, H, W), the channels in file order (no swap), minus (132.431, 94.076, 118.477);
- ``label``: (1, 1, H, W), classes 0..39 and void 255 (the raw value minus 1 in uint8).

Means are subtracted in float32 as the reference does; all tops of a sample must have one size.
"""
import os

import numpy as np

from layers.images import COMMON_PARAMS, DataError, PairSource, SegDataLayer, load_image, read_split
from layers.images import _open_image
from layers.params import Param, mean_values, path, string
from layers.siftflow import read_mat_label
from layers.voc import _ReferenceOrder

__all__ = ['NYUDSegDataLayer', 'NYUDSource', 'NYUD_MEAN', 'HHA_MEAN', 'LOG_DEPTH_MEAN', 'TOPS',
           'nyud_label', 'load_depth', 'load_hha']

NYUD_MEAN = (116.190, 97.203, 92.318)
HHA_MEAN = (132.431, 94.076, 118.477)
LOG_DEPTH_MEAN = 7.844
NYUD_CLASSES = 40
TOPS = ('color', 'depth', 'hha', 'label')


def nyud_label(raw, mat_path='<array>'):
    """NYUDv2 labels 0..40 -> uint8 0..39, 0 (void) -> 255."""
    values = np.unique(raw)
    bad = values[(values < 0) | (values > NYUD_CLASSES) | (values != np.round(values))]
    if bad.size:
        raise DataError(f"{mat_path}: label value(s) {', '.join(map(str, bad[:8].tolist()))} "
                        f"outside 0..{NYUD_CLASSES}")
    return (raw.astype(np.uint8) - np.uint8(1)).astype(np.uint8)


def load_depth(depth_path, mean=LOG_DEPTH_MEAN):
    """(1, H, W) float32: log(depth) - mean, in float32 (DataError for depth <= 0)."""
    image = _open_image(depth_path)
    with image:
        depth = np.array(image, dtype=np.float32)
    if depth.ndim != 2:
        raise DataError(f"{depth_path}: a depth image has one channel, not shape {depth.shape}")
    if depth.size and depth.min() <= 0:
        raise DataError(f"{depth_path}: {int((depth <= 0).sum())} pixels of depth <= 0 (no "
                        f"logarithm); the prepared NYUDv2 depth has no holes")
    logd = np.log(depth) - np.float32(mean)
    return logd[np.newaxis].astype(np.float32)                 # (1, H, W)


def load_hha(hha_path, mean=HHA_MEAN):
    """(3, H, W) float32: the HHA PNG's channels in file order, minus ``mean``, in float32."""
    image = _open_image(hha_path)
    with image:
        if image.mode != 'RGB':
            raise DataError(f"{hha_path}: an HHA image is 3-channel (RGB mode), not {image.mode}")
        hha = np.array(image, dtype=np.float32)                  # (H, W, 3)
    hha -= np.asarray(mean, dtype=np.float32)
    return np.ascontiguousarray(hha.transpose(2, 0, 1))          # (3, H, W)


class NYUDSource(PairSource):
    """The samples of an NYUDv2 split: one array per name of ``tops``."""

    def __init__(self, nyud_dir, split, tops, mean, hha_mean, depth_mean):
        self.root = nyud_dir
        self.tops = tuple(tops)
        self.mean = mean
        self.hha_mean = hha_mean
        self.depth_mean = depth_mean
        self.ids = read_split(os.path.join(nyud_dir, f'{split}.txt'))

    def path(self, top, sample_id):
        if top == 'label':
            return os.path.join(self.root, 'segmentation', f'img_{sample_id}.mat')
        folder = {'color': 'images', 'depth': 'depth', 'hha': 'hha'}[top]
        return os.path.join(self.root, 'data', folder, f'img_{sample_id}.png')

    def paths(self, sample_id):
        return tuple(self.path(top, sample_id) for top in self.tops)

    def check_label_file(self, label_path):
        """Labels are .mat files: nothing to check from a header."""

    def load_top(self, top, sample_id):
        p = self.path(top, sample_id)
        if top == 'color':
            return load_image(p, self.mean, np.float32)               # (3, H, W)
        if top == 'depth':
            return load_depth(p, self.depth_mean)                     # (1, H, W)
        if top == 'hha':
            return load_hha(p, self.hha_mean)                         # (3, H, W)
        return nyud_label(read_mat_label(p, 'segmentation'), p)      # (H, W)

    def load(self, sample_id):
        arrays = tuple(self.load_top(top, sample_id) for top in self.tops)
        size = arrays[0].shape[-2:]
        for top, array in zip(self.tops, arrays):
            if array.shape[-2:] != size:
                raise DataError(f"{self.path(top, sample_id)} is {array.shape[-1]}x"
                                f"{array.shape[-2]} but {self.path(self.tops[0], sample_id)} "
                                f"is {size[1]}x{size[0]} (width x height)")
        return arrays


def _tops(value):
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"expected a list of tops from {', '.join(TOPS)}, got {value!r}")
    bad = [t for t in value if t not in TOPS]
    if bad:
        raise ValueError(f"unknown top(s) {', '.join(map(repr, bad))}; choose from "
                         f"{', '.join(TOPS)}")
    if len(set(value)) != len(value):
        raise ValueError(f"a top is named twice in {list(value)}")
    return tuple(value)


def _number(value):
    """A number (not a bool) -> float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


class NYUDSegDataLayer(_ReferenceOrder, SegDataLayer):
    """NYUDv2 color / depth / HHA / label tops, one sample per forward.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``nyud_dir`` (required): the folder of the layout above;
    - ``split`` (required): ``<split>.txt``, e.g. ``trainval``, ``test``;
    - ``tops`` (required): the tops in prototxt order, from ``color``, ``depth``, ``hha``,
      ``label``, e.g. ``['color', 'hha', 'label']``;
    - ``mean`` (default (116.190, 97.203, 92.318)), ``hha_mean`` (default (132.431, 94.076,
      118.477)), ``depth_mean`` (default 7.844): the reference's;
    - ``randomize`` (default True): random order, only for a split whose name contains
      ``train`` and only in the TRAIN phase; ``seed`` (default None); ``prefetch`` (default 2).

    Prototxt::

        layer {
          name: "data" type: "Python" top: "color" top: "depth" top: "label"
          python_param {
            module: "layers.nyud" layer: "NYUDSegDataLayer"
            param_str: "{'nyud_dir': '/data/nyud', 'split': 'trainval', 'tops': ['color', 'depth', 'label'], 'seed': 1337}"
          }
        }
    """

    PARAMS = {
        'nyud_dir': Param(path, required=True, doc='NYUDv2 folder'),
        'split': Param(string, required=True, doc='name of <split>.txt, e.g. trainval'),
        'tops': Param(_tops, required=True, doc=f"list of tops from {', '.join(TOPS)}"),
        **COMMON_PARAMS,
        'mean': Param(mean_values, default=NYUD_MEAN, doc='(B, G, R) means of color'),
        'hha_mean': Param(mean_values, default=HHA_MEAN, doc='means of the HHA channels'),
        'depth_mean': Param(_number, default=LOG_DEPTH_MEAN,
                            doc='mean of log depth'),
    }

    def top_names(self, params):
        return params['tops']

    def make_source(self, params):
        return NYUDSource(params['nyud_dir'], params['split'], params['tops'], params['mean'],
                          params['hha_mean'], params['depth_mean'])
