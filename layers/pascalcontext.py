"""PASCAL-Context data layer (prototxt ``module: "layers.pascalcontext"``): VOC2010 images with
the 59-class labels of Mottaghi et al., mapped from the full labelling as the reference
``PASCALContextSegDataLayer`` (fcn.berkeleyvision.org) does, with checked parameters.

Layout::

    VOC_DIR/VOC2010/ImageSets/Main/<split>.txt   ids (train 4,998, val 5,105)
    VOC_DIR/VOC2010/JPEGImages/<id>.jpg
    CONTEXT_DIR/labels.txt                       the full labelling, ``idx: name`` (459 lines)
    CONTEXT_DIR/59_labels.txt                    the 59 classes, ``idx: name``
    CONTEXT_DIR/trainval/<id>.mat                variable LabelMap: a labels.txt line number

The mapping (``context_mapping``): names lose their spaces; the 59 names diningtable, bedcloth
and clothes become table, bedclothes and cloth (the full labelling's names); the k-th name of
59_labels.txt (k = 1..59) is given to the pixels whose LabelMap is the 1-based line of that name
in labels.txt; every other pixel is 0, background -- a trained class: there is no void (255).

Tops: ``data`` (1, 3, H, W) float32 BGR minus (104.007, 116.669, 122.679), in float32;
``label`` (1, 1, H, W) 0..59.
"""
import os

import numpy as np

from layers.images import COMMON_PARAMS, DataError, PairSource, SegDataLayer, load_image, read_split
from layers.params import Param, mean_values, path, string
from layers.siftflow import read_mat_label
from layers.voc import _ReferenceOrder

__all__ = ['PASCALContextSegDataLayer', 'ContextSource', 'CONTEXT_MEAN', 'read_label_names',
           'context_mapping', 'map_labels']

CONTEXT_MEAN = (104.007, 116.669, 122.679)
RENAMED = {'diningtable': 'table', 'bedcloth': 'bedclothes', 'clothes': 'cloth'}


def read_label_names(names_path):
    """The names of an ``idx: name`` file in line order, spaces removed (DataError naming it)."""
    try:
        with open(names_path, encoding='utf-8') as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{names_path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{names_path}: cannot read the label names ({exc})") from None
    names = []
    for number, line in enumerate(lines, 1):
        if ':' not in line:
            raise DataError(f"{names_path}, line {number}: {line!r} is not 'idx: name'")
        names.append(line.split(':', 1)[1].replace(' ', ''))
    return names


def context_mapping(labels_400, labels_59):
    """(LabelMap value per task class 1..59) as an int array: the 1-based position in
    ``labels_400`` of each (renamed) 59-class name. ValueError naming a missing name."""
    values = []
    for name in labels_59:
        name = RENAMED.get(name, name)
        try:
            values.append(labels_400.index(name) + 1)
        except ValueError:
            raise ValueError(f"the 59-class name {name!r} is not in the full label list") \
                from None
    return np.array(values, dtype=np.int64)


def map_labels(label_map, mapping):
    """(H, W) uint8 task labels 0..59 of a full-labelling LabelMap."""
    label = np.zeros(label_map.shape, dtype=np.uint8)
    for k, value in enumerate(mapping, 1):
        label[label_map == value] = k
    return label


class ContextSource(PairSource):
    """The samples of a PASCAL-Context split."""

    def __init__(self, voc_dir, context_dir, split, mean):
        self.voc = os.path.join(voc_dir, 'VOC2010')
        self.context_dir = context_dir
        self.mean = mean
        full = os.path.join(context_dir, 'labels.txt')
        task = os.path.join(context_dir, '59_labels.txt')
        labels_59 = read_label_names(task)
        if len(labels_59) != 59:
            raise DataError(f"{task}: {len(labels_59)} class names, not 59")
        try:
            self.mapping = context_mapping(read_label_names(full), labels_59)
        except ValueError as exc:
            raise DataError(f"{full}: {exc} (from {task})") from None
        self.ids = read_split(os.path.join(self.voc, 'ImageSets', 'Main', f'{split}.txt'))

    def paths(self, sample_id):
        return (os.path.join(self.voc, 'JPEGImages', f'{sample_id}.jpg'),
                os.path.join(self.context_dir, 'trainval', f'{sample_id}.mat'))

    def read_label(self, label_path):
        return map_labels(read_mat_label(label_path, 'LabelMap'), self.mapping)

    def load(self, sample_id):
        image_path, label_path = self.paths(sample_id)
        image = load_image(image_path, self.mean, np.float32)     # (3, H, W)
        label = self.read_label(label_path)                       # (H, W)
        if image.shape[1:] != label.shape:
            raise DataError(f"image {image_path} is {image.shape[2]}x{image.shape[1]} "
                            f"(width x height) but its label {label_path} is "
                            f"{label.shape[1]}x{label.shape[0]}")
        return image, label


class PASCALContextSegDataLayer(_ReferenceOrder, SegDataLayer):
    """PASCAL-Context (image, 59-class label) pairs, one per forward.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``voc_dir`` (required): the folder holding ``VOC2010/``;
    - ``context_dir`` (required): the PASCAL-Context folder (labels.txt, 59_labels.txt,
      trainval/);
    - ``split`` (required): ``VOC2010/ImageSets/Main/<split>.txt``, e.g. ``train``, ``val``;
    - ``mean`` (default (104.007, 116.669, 122.679), the reference's): BGR means;
    - ``randomize`` (default True): random order, only for a split whose name contains
      ``train`` and only in the TRAIN phase; ``seed`` (default None); ``prefetch`` (default 2).

    Prototxt::

        layer {
          name: "data" type: "Python" top: "data" top: "label"
          python_param {
            module: "layers.pascalcontext" layer: "PASCALContextSegDataLayer"
            param_str: "{'voc_dir': '/data/pascal', 'context_dir': '/data/pascal-context', 'split': 'train', 'seed': 1337}"
          }
        }
    """

    PARAMS = {
        'voc_dir': Param(path, required=True, doc='folder holding VOC2010/'),
        'context_dir': Param(path, required=True, doc='PASCAL-Context folder'),
        'split': Param(string, required=True, doc='VOC2010/ImageSets/Main/<split>.txt'),
        **COMMON_PARAMS,
        'mean': Param(mean_values, default=CONTEXT_MEAN, doc='(B, G, R) means'),
    }

    def make_source(self, params):
        return ContextSource(params['voc_dir'], params['context_dir'], params['split'],
                             params['mean'])
