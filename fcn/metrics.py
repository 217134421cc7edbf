"""Segmentation scores from a confusion matrix: pixel accuracy, mean accuracy, mean IU, fwIU.

Pure NumPy; nothing here touches Caffe. The metrics are those of the FCN paper (Long,
Shelhamer, Darrell, sec. 5) and of the reference ``score.py``: with ``n_ij`` the number of
pixels of ground-truth class ``i`` predicted as class ``j`` and ``t_i = sum_j n_ij``,

- pixel accuracy            ``sum_i n_ii / sum_i t_i``
- mean accuracy             ``mean_i n_ii / t_i``
- mean IU                   ``mean_i n_ii / (t_i + sum_j n_ji - n_ii)``
- frequency-weighted IU     ``(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)``

A class that is neither in the ground truth nor predicted has no IU (NaN) and is left out of
the means; a class that is predicted but absent from the ground truth has IU 0 (it counts
against mean IU) and no accuracy (NaN, left out of mean accuracy). No RuntimeWarning is
emitted for these cases.

Example::

    >>> import numpy as np
    >>> cm = ConfusionMatrix(3, ignore_label=255)
    >>> image_hist = cm.update(np.array([0, 1, 2, 255]), np.array([0, 1, 1, 0]))
    >>> round(cm.compute().pixel_accuracy, 4)
    0.6667

``fcn score`` (``fcn.score``) applies these to folders of label PNGs.
"""
import dataclasses
import logging
import math

import numpy as np

__all__ = ['VOC_CLASSES', 'class_names', 'fast_hist', 'seg_metrics', 'SegMetrics',
           'ConfusionMatrix']

log = logging.getLogger(__name__)

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
               'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')


def class_names(n):
    """Default names for ``n`` classes: VOC's 21 names when n == 21, else 'class0', 'class1'..."""
    if n == len(VOC_CLASSES):
        return VOC_CLASSES
    return tuple(f'class{i}' for i in range(n))


_default_names = class_names  # for ConfusionMatrix, whose argument shadows the name


def fast_hist(label, pred, n):
    """Return the (n, n) int64 confusion matrix of ``label`` against ``pred``.

    Row = ground-truth class, column = predicted class. ``label`` and ``pred`` are integer arrays
    with the same number of elements (any shapes; they are flattened). Positions whose label lies
    outside [0, n) -- the ignore value 255, say -- are not counted. Predictions at counted
    positions must lie in [0, n) (else ``ValueError``). One ``np.bincount``, no pixel loop.
    """
    label = np.asarray(label).ravel()
    pred = np.asarray(pred).ravel()
    if label.size != pred.size:
        raise ValueError(f"label has {label.size} elements but prediction has {pred.size}")
    k = (label >= 0) & (label < n)
    lab = label[k].astype(np.int64)
    prd = pred[k].astype(np.int64)
    if prd.size and (prd.min() < 0 or prd.max() >= n):
        bad = np.unique(prd[(prd < 0) | (prd >= n)])
        raise ValueError(f"predicted values outside [0, {n}): {_some(bad)}")
    return np.bincount(n * lab + prd, minlength=n * n).reshape(n, n)


def _some(values, limit=5):
    """'1, 2, 3' -- at most ``limit`` values, with a count of the rest."""
    values = [int(v) for v in values]
    text = ', '.join(str(v) for v in values[:limit])
    return text + (f' (and {len(values) - limit} more)' if len(values) > limit else '')


@dataclasses.dataclass(frozen=True)
class SegMetrics:
    """Scores of one confusion matrix. Fractions in [0, 1]; NaN where undefined.

    ``iu``/``accuracy`` are per-class (n,) float arrays: ``iu[i]`` is NaN for a class absent from
    both ground truth and prediction, ``accuracy[i]`` is NaN for a class absent from the ground
    truth. ``gt_pixels``/``pred_pixels`` are per-class pixel counts (the matrix's row/column sums).
    """
    pixel_accuracy: float
    mean_accuracy: float
    mean_iu: float
    fw_iu: float
    iu: np.ndarray
    accuracy: np.ndarray
    gt_pixels: np.ndarray
    pred_pixels: np.ndarray
    class_names: tuple

    @property
    def pixels(self):
        """Number of scored (non-ignored) pixels."""
        return int(self.gt_pixels.sum())

    def per_class_iu(self):
        """``{class name: IU}``, None for a class absent from ground truth and prediction."""
        return {name: _float_or_none(v) for name, v in zip(self.class_names, self.iu)}

    def as_dict(self):
        """A JSON-ready dict (NaN becomes None)."""
        return {
            'pixel_accuracy': _float_or_none(self.pixel_accuracy),
            'mean_accuracy': _float_or_none(self.mean_accuracy),
            'mean_iu': _float_or_none(self.mean_iu),
            'fw_iu': _float_or_none(self.fw_iu),
            'pixels': self.pixels,
            'per_class': {name: {'iu': _float_or_none(iu), 'accuracy': _float_or_none(acc),
                                 'gt_pixels': int(gt), 'pred_pixels': int(pr)}
                          for name, iu, acc, gt, pr in zip(self.class_names, self.iu,
                                                           self.accuracy, self.gt_pixels,
                                                           self.pred_pixels)},
        }

    def __str__(self):
        def pct(v):
            return '-' if math.isnan(v) else f'{100.0 * v:.2f}'

        lines = [f'pixel accuracy   {pct(self.pixel_accuracy):>7}',
                 f'mean accuracy    {pct(self.mean_accuracy):>7}',
                 f'mean IU          {pct(self.mean_iu):>7}',
                 f'fw IU            {pct(self.fw_iu):>7}',
                 f'pixels           {self.pixels:>7}',
                 '']
        width = max([5] + [len(n) for n in self.class_names])
        lines.append(f"{'class':<{width}}  {'IU':>7}  {'acc':>7}  {'gt px':>10}  {'pred px':>10}")
        for name, iu, acc, gt, pr in zip(self.class_names, self.iu, self.accuracy,
                                         self.gt_pixels, self.pred_pixels):
            lines.append(f'{name:<{width}}  {pct(iu):>7}  {pct(acc):>7}  {int(gt):>10}  '
                         f'{int(pr):>10}')
        return '\n'.join(lines)


def _float_or_none(v):
    v = float(v)
    return None if math.isnan(v) else v


def _masked_mean(values, mask):
    """Mean of ``values[mask]``; NaN (without a warning) when the mask is empty."""
    return float(values[mask].mean()) if mask.any() else math.nan


def seg_metrics(hist, names=None):
    """Return the ``SegMetrics`` of an (n, n) confusion matrix (rows = ground truth).

    ``names`` are the n class names (default ``class_names(n)``). Pure: ``hist`` is not changed.
    An empty matrix (no pixels) gives NaN for every score. Emits no RuntimeWarning.
    """
    hist = np.asarray(hist)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"a confusion matrix is square (n, n), not shape {hist.shape}")
    if hist.size and hist.min() < 0:
        raise ValueError("a confusion matrix holds counts; found a negative entry")
    n = hist.shape[0]
    names = class_names(n) if names is None else tuple(names)
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} classes")
    hist = hist.astype(np.float64)
    tp = np.diag(hist)
    gt = hist.sum(axis=1)         # (n,) ground-truth pixels per class
    pred = hist.sum(axis=0)       # (n,) predicted pixels per class
    union = gt + pred - tp
    total = gt.sum()
    has_gt = gt > 0
    has_union = union > 0         # false only for classes absent from both
    with np.errstate(divide='ignore', invalid='ignore'):
        accuracy = np.where(has_gt, tp / np.where(has_gt, gt, 1), np.nan)
        iu = np.where(has_union, tp / np.where(has_union, union, 1), np.nan)
    fw_iu = float((gt[has_gt] * iu[has_gt]).sum() / total) if total > 0 else math.nan
    return SegMetrics(
        pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
        mean_accuracy=_masked_mean(accuracy, has_gt),
        mean_iu=_masked_mean(iu, has_union),
        fw_iu=fw_iu,
        iu=iu, accuracy=accuracy,
        gt_pixels=gt.astype(np.int64), pred_pixels=pred.astype(np.int64),
        class_names=names)


class ConfusionMatrix:
    """Accumulates a confusion matrix over many (label, prediction) pairs.

    ``ConfusionMatrix(num_classes, class_names=None, ignore_label=255)``. ``update(label, pred)``
    adds one image (or batch): integer arrays with equal numbers of elements. Label pixels equal
    to ``ignore_label`` are skipped; any other label value outside [0, num_classes), and any
    prediction outside it, is a ``ValueError`` (a wrong class count should not pass silently).
    ``compute()`` returns ``SegMetrics``; ``str(cm)`` is a readable table.

    Example::

        cm = ConfusionMatrix(21)
        for label, score in pairs:          # label (H, W), score (21, H, W)
            cm.update(label, score.argmax(0))
        print(cm)                            # or cm.compute().mean_iu
    """

    def __init__(self, num_classes, class_names=None, ignore_label=255):
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, not {num_classes}")
        self.num_classes = num_classes
        self.class_names = (_default_names(num_classes) if class_names is None
                            else tuple(class_names))
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        self.ignore_label = ignore_label
        self.reset()

    def reset(self):
        """Forget everything counted so far."""
        self.hist = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.images = 0
        self.ignored = 0

    def update(self, label, pred):
        """Count ``label`` (ground truth) against ``pred``; returns this image's (n, n) matrix."""
        label = np.asarray(label).ravel()
        pred = np.asarray(pred).ravel()
        if label.size != pred.size:
            raise ValueError(f"label has {label.size} elements but prediction has {pred.size}")
        n = self.num_classes
        outside = (label < 0) | (label >= n)
        if self.ignore_label is not None:
            ignored = label == self.ignore_label
            bad = outside & ~ignored
        else:
            ignored = np.zeros(label.shape, dtype=bool)
            bad = outside
        if bad.any():
            ignore = ('' if self.ignore_label is None
                      else f' and not the ignore label {self.ignore_label}')
            raise ValueError(f"label values outside [0, {n}){ignore}: "
                             f"{_some(np.unique(label[bad]))}")
        if ignored.any() and 0 <= self.ignore_label < n:  # an in-range ignore value
            keep = ~ignored
            label, pred = label[keep], pred[keep]
        hist = fast_hist(label, pred, n)
        self.hist += hist
        self.images += 1
        self.ignored += int(ignored.sum())
        return hist

    def compute(self):
        """The ``SegMetrics`` of everything counted so far."""
        return seg_metrics(self.hist, self.class_names)

    def __str__(self):
        return (f'{self.images} images, {int(self.hist.sum())} pixels scored, '
                f'{self.ignored} ignored\n{self.compute()}')
