"""PASCAL VOC and SBD segmentation data layers (prototxt ``module: "layers.voc"``).

The reference FCN layers (``voc_layers.py`` of fcn.berkeleyvision.org) with the same parameters,
preprocessing and order of samples, but with their ``param_str`` read as data (a Python literal
or JSON dict, checked; see ``layers.params``) instead of ``eval``-ed, and images loaded ahead in a
background thread. Tops: ``data`` (1, 3, H, W) float32, BGR, mean subtracted; ``label``
(1, 1, H, W) class indices (255 = VOC's border / ignore) as float.
"""
import os

from layers.images import (COMMON_PARAMS, PairSource, SegDataLayer, check_label_values,
                           read_label_image, read_sbd_label, read_split)
from layers.params import Param, path, positive_integer, string

__all__ = ['VOCSegDataLayer', 'SBDDSegDataLayer', 'VOCSource', 'SBDSource']

VOC_CLASSES = 21      # background + 20 object classes
VOC_BORDER = 255      # VOC's border / "void" label (the loss ignores it)
NUM_CLASSES_PARAM = Param(positive_integer, default=VOC_CLASSES,
                          doc='labels hold 0 .. num_classes - 1 or 255; default 21 (VOC)')


class _CheckedLabels:
    """Label values must lie in [0, num_classes) or be the border value 255 (an error naming
    the file otherwise, instead of a failure deep in the loss layer)."""

    num_classes = VOC_CLASSES

    def check_label(self, label, label_path):
        check_label_values(label, label_path, self.num_classes, VOC_BORDER)


class VOCSource(_CheckedLabels, PairSource):
    """VOC tree: ``ImageSets/Segmentation/<split>.txt``, ``JPEGImages/<id>.jpg``,
    ``SegmentationClass/<id>.png``."""

    def __init__(self, voc_dir, split, mean, num_classes=VOC_CLASSES):
        self.voc_dir = voc_dir
        self.mean = mean
        self.num_classes = num_classes
        self.ids = read_split(os.path.join(voc_dir, 'ImageSets', 'Segmentation', f'{split}.txt'))

    def paths(self, sample_id):
        return (os.path.join(self.voc_dir, 'JPEGImages', f'{sample_id}.jpg'),
                os.path.join(self.voc_dir, 'SegmentationClass', f'{sample_id}.png'))

    def read_label(self, label_path):
        return read_label_image(label_path).astype('uint8', copy=False)


class SBDSource(_CheckedLabels, PairSource):
    """SBD ``dataset`` folder: ``<split>.txt``, ``img/<id>.jpg``, ``cls/<id>.mat``."""

    def __init__(self, sbdd_dir, split, mean, num_classes=VOC_CLASSES):
        self.sbdd_dir = sbdd_dir
        self.mean = mean
        self.num_classes = num_classes
        self.ids = read_split(os.path.join(sbdd_dir, f'{split}.txt'))

    def paths(self, sample_id):
        return (os.path.join(self.sbdd_dir, 'img', f'{sample_id}.jpg'),
                os.path.join(self.sbdd_dir, 'cls', f'{sample_id}.mat'))

    def read_label(self, label_path):
        return read_sbd_label(label_path)


class _ReferenceOrder:
    """The reference layers' rule: a split whose name does not contain 'train' is read in
    order, whatever ``randomize`` says ("make eval deterministic"); so is any split in the TEST
    phase."""

    def random_allowed(self, params):
        return 'train' in params['split'] and super().random_allowed(params)


class VOCSegDataLayer(_ReferenceOrder, SegDataLayer):
    """PASCAL VOC (input image, label image) pairs, one per forward, at their own size.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``voc_dir`` (required): the VOC year folder, holding ``JPEGImages``, ``SegmentationClass``
      and ``ImageSets/Segmentation/<split>.txt``;
    - ``split`` (required): the split list's name, e.g. ``train``, ``val``, ``seg11valid``;
    - ``num_classes`` (default 21): label values must lie in 0 .. num_classes - 1 or be 255
      (the border); another value is an error naming the label file;
    - ``mean`` (required): (B, G, R) means subtracted, e.g. (104.00699, 116.66877, 122.67892);
    - ``randomize`` (default True): random order -- only for a split whose name contains
      ``train`` and only in the TRAIN phase; otherwise list order, wrapping around;
    - ``seed`` (default None): seed of the random order (None: different each run);
    - ``prefetch`` (default 2): samples loaded ahead in a background thread (0: none).

    Tops: ``data`` (1, 3, H, W) float32 BGR minus mean; ``label`` (1, 1, H, W), the PNG's
    palette indices (0..20, 255 = border) as float. Prototxt::

        layer {
          name: "data" type: "Python" top: "data" top: "label"
          python_param {
            module: "layers.voc" layer: "VOCSegDataLayer"
            param_str: "{'voc_dir': '/data/VOC2012', 'split': 'val', 'seed': 1337, 'mean': (104.00699, 116.66877, 122.67892)}"
          }
        }
    """

    PARAMS = {
        'voc_dir': Param(path, required=True, doc='VOC year folder, e.g. /data/VOC2012'),
        'split': Param(string, required=True,
                       doc='name of ImageSets/Segmentation/<split>.txt, e.g. val'),
        'num_classes': NUM_CLASSES_PARAM,
        **COMMON_PARAMS,
    }

    def make_source(self, params):
        return VOCSource(params['voc_dir'], params['split'], self.mean, params['num_classes'])


class SBDDSegDataLayer(_ReferenceOrder, SegDataLayer):
    """SBD (Hariharan et al., "Semantic Boundaries Dataset") image/label pairs, one per forward.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``sbdd_dir`` (required): SBD's ``dataset`` folder, holding ``img/<id>.jpg``,
      ``cls/<id>.mat`` (``GTcls.Segmentation``) and ``<split>.txt``;
    - ``split`` (required): the split list's name, e.g. ``train``, ``val``;
    - ``num_classes`` (default 21): label values must lie in 0 .. num_classes - 1 (or be 255);
    - ``mean`` (required): (B, G, R) means subtracted, e.g. (104.00699, 116.66877, 122.67892);
    - ``randomize`` (default True): random order -- only for a split whose name contains
      ``train`` and only in the TRAIN phase; otherwise list order, wrapping around;
    - ``seed`` (default None): seed of the random order (None: different each run);
    - ``prefetch`` (default 2): samples loaded ahead in a background thread (0: none).

    Tops: ``data`` (1, 3, H, W) float32 BGR minus mean; ``label`` (1, 1, H, W) class indices
    (0..20; SBD has no border label) as float. Prototxt::

        layer {
          name: "data" type: "Python" top: "data" top: "label"
          python_param {
            module: "layers.voc" layer: "SBDDSegDataLayer"
            param_str: "{'sbdd_dir': '/data/sbdd/dataset', 'split': 'train', 'seed': 1337, 'mean': (104.00699, 116.66877, 122.67892)}"
          }
        }
    """

    PARAMS = {
        'sbdd_dir': Param(path, required=True, doc="SBD 'dataset' folder"),
        'split': Param(string, required=True, doc='name of <split>.txt, e.g. train'),
        'num_classes': NUM_CLASSES_PARAM,
        **COMMON_PARAMS,
    }

    def make_source(self, params):
        return SBDSource(params['sbdd_dir'], params['split'], self.mean, params['num_classes'])
