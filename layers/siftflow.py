"""SIFT Flow data layer (prototxt ``module: "layers.siftflow"``): images with a semantic and a
geometric labelling, as the reference ``SIFTFlowSegDataLayer`` (fcn.berkeleyvision.org) gives
them, with checked parameters.

Layout (``S`` = ``spatial_envelope_256x256_static_8outdoorcategories``)::

    SIFTFLOW_DIR/<split>.txt                 ids, e.g. trainval (2,486) and test (200)
    SIFTFLOW_DIR/Images/S/<id>.jpg           256x256 RGB
    SIFTFLOW_DIR/SemanticLabels/S/<id>.mat   variable S: 0 = void, 1..33 = classes
    SIFTFLOW_DIR/GeoLabels/S/<id>.mat        variable S: -1 and 0 = void, 1..3 = sky,
                                             horizontal, vertical

Tops: ``data`` (1, 3, H, W) float32 BGR minus the SIFT Flow mean (114.578, 115.294, 108.353),
subtracted in float32 as the reference does; ``sem`` (1, 1, H, W): classes 0..32, void 255 (the
raw value minus 1 in uint8); ``geo`` (1, 1, H, W): 0..2, void 255 (-1 first set to 0, then minus
1). A raw value outside 0..33 (semantic) or -1..3 (geometric) is an error naming the file.
"""
import os

import numpy as np

from layers.images import COMMON_PARAMS, DataError, PairSource, SegDataLayer, load_image, read_split
from layers.params import Param, mean_values, path, string
from layers.voc import _ReferenceOrder

__all__ = ['SIFTFlowSegDataLayer', 'SIFTFlowSource', 'SIFTFLOW_MEAN', 'SCENES',
           'read_mat_label', 'semantic_label', 'geometric_label']

SIFTFLOW_MEAN = (114.578, 115.294, 108.353)
SCENES = 'spatial_envelope_256x256_static_8outdoorcategories'
SEMANTIC_CLASSES = 33
GEOMETRIC_CLASSES = 3


def read_mat_label(mat_path, key):
    """The (H, W) array ``key`` of the .mat file at ``mat_path`` (DataError naming it)."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(mat_path)
    except FileNotFoundError:
        raise DataError(f"{mat_path}: no such file") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{mat_path}: cannot read the .mat file ({exc})") from None
    if key not in mat:
        found = ', '.join(k for k in mat if not k.startswith('__')) or 'none'
        raise DataError(f"{mat_path}: no variable {key!r} in the .mat file (found: {found})")
    label = np.asarray(mat[key])
    if label.ndim != 2:
        raise DataError(f"{mat_path}: {key} has shape {label.shape}, not (H, W)")
    return label


def _check_range(raw, low, high, mat_path, what):
    values = np.unique(raw)
    bad = values[(values < low) | (values > high) | (values != np.round(values))]
    if bad.size:
        shown = ', '.join(str(v) for v in bad[:8].tolist())
        raise DataError(f"{mat_path}: {what} label value(s) {shown} outside {low}..{high}")


def semantic_label(raw, mat_path='<array>'):
    """SIFT Flow semantic labels 0..33 -> uint8 0..32, 0 (void) -> 255."""
    _check_range(raw, 0, SEMANTIC_CLASSES, mat_path, 'semantic')
    return (raw.astype(np.uint8) - np.uint8(1)).astype(np.uint8)    # uint8 wrap: 0 -> 255


def geometric_label(raw, mat_path='<array>'):
    """SIFT Flow geometric labels -1..3 -> uint8 0..2, -1 and 0 (void) -> 255."""
    _check_range(raw, -1, GEOMETRIC_CLASSES, mat_path, 'geometric')
    raw = np.where(raw == -1, 0, raw)
    return (raw.astype(np.uint8) - np.uint8(1)).astype(np.uint8)


class SIFTFlowSource(PairSource):
    """The samples of a SIFT Flow split: (image, semantic label, geometric label)."""

    def __init__(self, siftflow_dir, split, mean):
        self.root = siftflow_dir
        self.mean = mean
        self.ids = read_split(os.path.join(siftflow_dir, f'{split}.txt'))

    def paths(self, sample_id):
        return (os.path.join(self.root, 'Images', SCENES, f'{sample_id}.jpg'),
                os.path.join(self.root, 'SemanticLabels', SCENES, f'{sample_id}.mat'),
                os.path.join(self.root, 'GeoLabels', SCENES, f'{sample_id}.mat'))

    def load(self, sample_id):
        image_path, sem_path, geo_path = self.paths(sample_id)
        image = load_image(image_path, self.mean, np.float32)             # (3, H, W)
        sem = semantic_label(read_mat_label(sem_path, 'S'), sem_path)      # (H, W)
        geo = geometric_label(read_mat_label(geo_path, 'S'), geo_path)     # (H, W)
        for label, label_path in ((sem, sem_path), (geo, geo_path)):
            if image.shape[1:] != label.shape:
                raise DataError(f"image {image_path} is {image.shape[2]}x{image.shape[1]} "
                                f"(width x height) but {label_path} is "
                                f"{label.shape[1]}x{label.shape[0]}")
        return image, sem, geo


class SIFTFlowSegDataLayer(_ReferenceOrder, SegDataLayer):
    """SIFT Flow images with semantic and geometric labels, one per forward.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``siftflow_dir`` (required): the folder of the layout above;
    - ``split`` (required): ``<split>.txt``, e.g. ``trainval`` or ``test``;
    - ``mean`` (default (114.578, 115.294, 108.353), the reference's): BGR means subtracted;
    - ``randomize`` (default True): random order, only for a split whose name contains
      ``train`` and only in the TRAIN phase; ``seed`` (default None); ``prefetch`` (default 2).

    Tops: ``data`` (1, 3, H, W), ``sem`` (1, 1, H, W) 0..32 / 255, ``geo`` (1, 1, H, W)
    0..2 / 255. Prototxt::

        layer {
          name: "data" type: "Python" top: "data" top: "sem" top: "geo"
          python_param {
            module: "layers.siftflow" layer: "SIFTFlowSegDataLayer"
            param_str: "{'siftflow_dir': '/data/sift-flow', 'split': 'trainval', 'seed': 1337}"
          }
        }
    """

    PARAMS = {
        'siftflow_dir': Param(path, required=True, doc='SIFT Flow folder'),
        'split': Param(string, required=True, doc='name of <split>.txt, e.g. trainval'),
        **COMMON_PARAMS,
        'mean': Param(mean_values, default=SIFTFLOW_MEAN,
                      doc='(B, G, R) means; default the SIFT Flow mean of the reference'),
    }

    def top_names(self, params):
        return ('data', 'sem', 'geo')

    def make_source(self, params):
        return SIFTFlowSource(params['siftflow_dir'], params['split'], params['mean'])
