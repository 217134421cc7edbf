"""Tests of fcn/metrics.py: confusion matrix, metrics worked out by hand, ignore label."""
import json
import warnings
from fractions import Fraction as F

import numpy as np
import pytest

from fcn import metrics
from fcn.metrics import ConfusionMatrix, fast_hist, seg_metrics


# A 3-class example worked out on paper. Ten pixels, the last one ignored (255):
#   label 0 0 0 0 1 1 1 2 2 255
#   pred  0 0 0 1 1 1 2 2 0 1
# rows = ground truth, columns = prediction:
#           p0 p1 p2 | gt (row sum)
#   g0  [[  3, 1, 0],  4
#   g1   [  0, 2, 1],  3
#   g2   [  1, 0, 1]]  2
#   pred (column sums)   4  3  2     total 9, diagonal 3 + 2 + 1 = 6
# pixel accuracy = 6/9 = 2/3
# accuracy per class = 3/4, 2/3, 1/2           -> mean = (3/4 + 2/3 + 1/2) / 3 = 23/36
# IU = tp / (gt + pred - tp): 3/(4+4-3) = 3/5, 2/(3+3-2) = 1/2, 1/(2+2-1) = 1/3
#                                               -> mean IU = (3/5 + 1/2 + 1/3) / 3 = 43/90
# fwIU = (4 * 3/5 + 3 * 1/2 + 2 * 1/3) / 9 = (12/5 + 3/2 + 2/3) / 9 = (137/30) / 9 = 137/270
LABEL = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 255])
PRED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 1])
HIST = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 1]])


def test_fast_hist_by_hand():
    hist = fast_hist(LABEL, PRED, 3)
    assert hist.shape == (3, 3)
    assert hist.dtype == np.int64
    np.testing.assert_array_equal(hist, HIST)


def test_metrics_by_hand():
    m = seg_metrics(HIST)
    assert m.pixel_accuracy == pytest.approx(float(F(2, 3)), abs=1e-12)
    assert m.mean_accuracy == pytest.approx(float(F(23, 36)), abs=1e-12)
    assert m.mean_iu == pytest.approx(float(F(43, 90)), abs=1e-12)
    assert m.fw_iu == pytest.approx(float(F(137, 270)), abs=1e-12)
    np.testing.assert_allclose(m.iu, [3 / 5, 1 / 2, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(m.accuracy, [3 / 4, 2 / 3, 1 / 2], atol=1e-12)
    np.testing.assert_array_equal(m.gt_pixels, [4, 3, 2])
    np.testing.assert_array_equal(m.pred_pixels, [4, 3, 2])
    assert m.pixels == 9
    assert m.class_names == ('class0', 'class1', 'class2')


def test_fast_hist_ignores_labels_outside_range_any_shape():
    label = np.array([[0, 255], [-1, 1], [3, 2]])   # 255, -1, 3 are outside [0, 3)
    pred = np.array([[0, 2], [2, 1], [0, 2]])
    np.testing.assert_array_equal(fast_hist(label, pred, 3),
                                  [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    # pred at an ignored position may be anything; at a counted one it must be a class
    np.testing.assert_array_equal(fast_hist([255], [99], 3), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r'predicted values outside \[0, 3\): 7'):
        fast_hist([0, 1], [0, 7], 3)
    with pytest.raises(ValueError, match='elements'):
        fast_hist([0, 1], [0], 3)


def test_fast_hist_matches_a_pixel_loop_oracle():
    rng = np.random.default_rng(0)
    n = 5
    label = rng.integers(0, n, size=(7, 9))
    label[rng.random(label.shape) < 0.2] = 255
    pred = rng.integers(0, n, size=(7, 9))
    expected = np.zeros((n, n), dtype=np.int64)
    for g, p in zip(label.ravel(), pred.ravel()):  # the independent (slow) oracle
        if g != 255:
            expected[g, p] += 1
    np.testing.assert_array_equal(fast_hist(label, pred, n), expected)


def test_metrics_match_reference_fcn_formulas_on_random_data():
    rng = np.random.default_rng(1)
    hist = rng.integers(1, 50, size=(6, 6))
    m = seg_metrics(hist)
    # the reference FCN metrics.py formulas, every class present
    iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    assert m.pixel_accuracy == pytest.approx(np.diag(hist).sum() / hist.sum())
    assert m.mean_accuracy == pytest.approx(np.mean(np.diag(hist) / hist.sum(1)))
    assert m.mean_iu == pytest.approx(iu.mean())
    assert m.fw_iu == pytest.approx((freq * iu).sum())
    assert hist.dtype != np.float64 and m.iu.dtype == np.float64  # input left as it was


def test_absent_classes_no_warning_and_excluded_from_means():
    # 4 classes: class 2 only predicted (never in the ground truth), class 3 nowhere.
    label = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])
    # hist: g0 -> [1, 0, 1, 0], g1 -> [0, 2, 0, 0]; columns 1, 2, 1, 0
    # IU: 1/(2+1-1) = 1/2, 2/(2+2-2) = 1, 0/(0+1-0) = 0, class 3 NaN -> mean IU (1/2+1+0)/3 = 1/2
    # acc: 1/2, 1, NaN, NaN -> mean acc 3/4; fwIU = (2 * 1/2 + 2 * 1) / 4 = 3/4; pixel acc 3/4
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        hist = fast_hist(label, pred, 4)
        m = seg_metrics(hist)
        text = str(m)
        d = m.as_dict()
    np.testing.assert_array_equal(hist, [[1, 0, 1, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert m.iu[:3].tolist() == [0.5, 1.0, 0.0]
    assert np.isnan(m.iu[3])
    assert m.accuracy[:2].tolist() == [0.5, 1.0]
    assert np.isnan(m.accuracy[2]) and np.isnan(m.accuracy[3])
    assert m.mean_iu == pytest.approx(0.5)
    assert m.mean_accuracy == pytest.approx(0.75)
    assert m.fw_iu == pytest.approx(0.75)
    assert m.pixel_accuracy == pytest.approx(0.75)
    assert m.per_class_iu() == {'class0': 0.5, 'class1': 1.0, 'class2': 0.0, 'class3': None}
    assert 'nan' not in text.lower()
    assert d['per_class']['class3'] == {'iu': None, 'accuracy': None, 'gt_pixels': 0,
                                        'pred_pixels': 0}
    json.dumps(d, allow_nan=False)  # no NaN leaks into JSON


def test_empty_matrix_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        m = seg_metrics(np.zeros((3, 3), dtype=np.int64))
        str(m)
    assert all(np.isnan([m.pixel_accuracy, m.mean_accuracy, m.mean_iu, m.fw_iu]))
    assert m.pixels == 0


def test_seg_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match='square'):
        seg_metrics(np.zeros((2, 3)))
    with pytest.raises(ValueError, match='negative'):
        seg_metrics(np.array([[1, -1], [0, 1]]))
    with pytest.raises(ValueError, match='2 class names for 3 classes'):
        seg_metrics(HIST, names=['a', 'b'])


def test_confusion_matrix_accumulates_and_reports():
    cm = ConfusionMatrix(3, class_names=['sky', 'road', 'car'])
    first = cm.update(LABEL[:5], PRED[:5])
    cm.update(LABEL[5:].reshape(1, 5), PRED[5:])   # shapes may differ, element counts may not
    np.testing.assert_array_equal(first, [[3, 1, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(cm.hist, HIST)
    assert (cm.images, cm.ignored) == (2, 1)
    m = cm.compute()
    assert m.mean_iu == pytest.approx(43 / 90)
    text = str(cm)
    assert text.splitlines()[0] == '2 images, 9 pixels scored, 1 ignored'
    assert 'mean IU            47.78' in text      # 43/90 = 47.78 %
    assert 'fw IU              50.74' in text      # 137/270 = 50.74 %
    assert any(line.split()[:3] == ['sky', '60.00', '75.00'] for line in text.splitlines())
    assert any(line.split()[:3] == ['car', '33.33', '50.00'] for line in text.splitlines())
    cm.reset()
    assert cm.hist.sum() == 0 and cm.images == 0


def test_confusion_matrix_voc_names_and_errors():
    cm = ConfusionMatrix(21)
    assert cm.class_names[0] == 'background' and cm.class_names[15] == 'person'
    assert cm.class_names[-1] == 'tvmonitor' and len(metrics.VOC_CLASSES) == 21
    with pytest.raises(ValueError, match=r'label values outside \[0, 21\) and not the ignore '
                                         r'label 255: 21, 40'):
        cm.update(np.array([0, 21, 40, 255]), np.zeros(4, int))
    with pytest.raises(ValueError, match='predicted values'):
        cm.update(np.array([0, 1]), np.array([0, 21]))
    with pytest.raises(ValueError, match='elements'):
        cm.update(np.zeros((2, 2), int), np.zeros(3, int))
    assert cm.hist.sum() == 0  # failed updates count nothing
    with pytest.raises(ValueError, match='2 class names for 3 classes'):
        ConfusionMatrix(3, class_names=['a', 'b'])


def test_confusion_matrix_ignore_label_inside_the_class_range():
    cm = ConfusionMatrix(3, ignore_label=0)
    cm.update(np.array([0, 0, 1, 2]), np.array([2, 1, 1, 1]))
    np.testing.assert_array_equal(cm.hist, [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
    assert cm.ignored == 2
    strict = ConfusionMatrix(3, ignore_label=None)
    with pytest.raises(ValueError, match=r'label values outside \[0, 3\): 255'):
        strict.update(np.array([0, 255]), np.array([0, 0]))
