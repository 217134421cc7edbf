"""Tests of npcaffe/layers/loss.py: EuclideanLoss, SigmoidCrossEntropyLoss, Accuracy and the
normalisation rules; values by hand, float64 gradient checks, golden cases from BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.errors import NetError
from npcaffe.layers.loss import get_normalizer, normalization_mode
from npcaffe.proto import caffe_pb2
from tests.gradcheck import check_layer_gradient
from tests.golden import run_golden_case as run_golden
from tests.npcaffe.layers.util import backward, make_layer, run

Mode = caffe_pb2.LossParameter


# -- normalisation rules -----------------------------------------------------------------------
@pytest.mark.parametrize('fields, default, want', [
    ({}, None, Mode.VALID),
    ({}, Mode.BATCH_SIZE, Mode.BATCH_SIZE),
    ({'normalize': True}, None, Mode.VALID),
    ({'normalize': False}, None, Mode.BATCH_SIZE),
    ({'normalize': False}, Mode.BATCH_SIZE, Mode.BATCH_SIZE),
    ({'normalize': True}, Mode.BATCH_SIZE, Mode.VALID),
    ({'normalization': Mode.FULL, 'normalize': False}, None, Mode.FULL),
    ({'normalization': Mode.NONE}, Mode.BATCH_SIZE, Mode.NONE),
])
def test_normalization_mode(fields, default, want):
    assert normalization_mode(caffe_pb2.LossParameter(**fields), default) == want


@pytest.mark.parametrize('mode, want', [
    (Mode.FULL, 12), (Mode.VALID, 5), (Mode.BATCH_SIZE, 2), (Mode.NONE, 1)])
def test_get_normalizer(mode, want):
    assert get_normalizer(mode, 2, 6, 5) == want


def test_get_normalizer_is_at_least_one():
    assert get_normalizer(Mode.VALID, 2, 6, 0) == 1.0


# -- EuclideanLoss -----------------------------------------------------------------------------
def test_euclidean_loss_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [1.0, 1.0], [0.0, 1.0]])
    # squared differences 1 + 0 + 4 + 9 + 0 + 1 = 15; N = 3 -> 15 / 6
    layer = make_layer('EuclideanLoss')
    bottom, top = run(layer, [a, b])
    assert float(top[0].data) == pytest.approx(2.5)
    da, db = backward(layer, bottom, top, [np.array(3.0)])
    np.testing.assert_allclose(da, 3.0 * (a - b) / 3)
    np.testing.assert_allclose(db, -3.0 * (a - b) / 3)
    assert layer.allow_force_backward(1)


def test_euclidean_loss_gradient_both_bottoms():
    rng = np.random.default_rng(0)
    check_layer_gradient(make_layer('EuclideanLoss'),
                         [rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 4))],
                         top_weights=[np.array(0.6)])


def test_euclidean_loss_dimension_mismatch():
    with pytest.raises(NetError, match="'l'"):
        run(make_layer('EuclideanLoss'), [np.zeros((3, 4)), np.zeros((3, 5))])
    with pytest.raises(NetError, match='first dimension'):
        run(make_layer('EuclideanLoss'), [np.zeros((3, 4)), np.zeros((4, 3))])


# -- SigmoidCrossEntropyLoss -------------------------------------------------------------------
def naive_sigmoid_ce(x, t):
    s = 1 / (1 + np.exp(-x))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


def test_sigmoid_ce_default_normalizes_by_batch():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 4)), rng.random((3, 4))
    layer = make_layer('SigmoidCrossEntropyLoss')
    bottom, top = run(layer, [x, t])
    np.testing.assert_allclose(top[0].data, naive_sigmoid_ce(x, t).sum() / 3, rtol=1e-12)
    dx = backward(layer, bottom, top, [np.array(2.0)], propagate=[True, False])[0]
    np.testing.assert_allclose(dx, 2.0 * (1 / (1 + np.exp(-x)) - t) / 3, rtol=1e-12)


def test_sigmoid_ce_ignore_label_valid_by_hand():
    # x = 0 gives log 2 per element whatever the target; 2 of 6 targets ignored
    x = np.zeros((2, 3))
    t = np.array([[1, 0, -1], [1, -1, 0]], float)
    layer = make_layer('SigmoidCrossEntropyLoss',
                       'loss_param { ignore_label: -1 normalization: VALID }')
    bottom, top = run(layer, [x, t])
    assert float(top[0].data) == pytest.approx(4 * np.log(2) / 4)
    dx = backward(layer, bottom, top, [np.array(1.0)], propagate=[True, False])[0]
    np.testing.assert_allclose(dx, [[-0.5 / 4, 0.5 / 4, 0], [-0.5 / 4, 0, 0.5 / 4]])


def test_sigmoid_ce_is_stable_for_large_inputs():
    x = np.array([[100.0, -100.0, 800.0, -800.0]], np.float32)
    t = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    _, top = run(make_layer('SigmoidCrossEntropyLoss'), [x, t], dtype=np.float32)
    assert top[0].data.dtype == np.float32
    assert float(top[0].data) == pytest.approx(1600.0, rel=1e-6)


@pytest.mark.parametrize('loss_param', ['', 'ignore_label: 1 normalization: VALID',
                                        'normalization: FULL', 'normalize: true'])
def test_sigmoid_ce_gradient(loss_param):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 2))
    t = rng.integers(0, 2, (2, 3, 2)).astype(float)
    check_layer_gradient(make_layer('SigmoidCrossEntropyLoss', f'loss_param {{ {loss_param} }}'),
                         [x, t], check_bottoms=[0], top_weights=[np.array(1.5)])


def test_sigmoid_ce_refuses_label_gradient():
    layer = make_layer('SigmoidCrossEntropyLoss')
    bottom, top = run(layer, [np.zeros((2, 2)), np.zeros((2, 2))])
    with pytest.raises(NetError, match='label'):
        backward(layer, bottom, top, [np.array(1.0)], propagate=[True, True])


# -- Accuracy ----------------------------------------------------------------------------------
# scores (4 items, 4 classes) with ties; labels
ACC_SCORES = np.array([
    [0.1, 0.5, 0.5, 0.0],    # label 1: tied with class 2 -> two classes >= it
    [0.9, 0.2, 0.3, 0.1],    # label 0: the best
    [0.3, 0.3, 0.3, 0.3],    # label 3: everything ties -> four classes >= it
    [0.2, 0.1, 0.4, 0.3],    # label 1: the worst
])
ACC_LABELS = np.array([1, 0, 3, 1], float)


@pytest.mark.parametrize('params, want', [
    ('', 1 / 4),                               # only item 1 (ties count against)
    ('accuracy_param { top_k: 2 }', 2 / 4),    # items 0 and 1
    ('accuracy_param { top_k: 3 }', 2 / 4),
    ('accuracy_param { top_k: 4 }', 4 / 4),
    ('accuracy_param { top_k: 2 ignore_label: 3 }', 2 / 3),
    ('accuracy_param { ignore_label: 1 }', 1 / 2),
])
def test_accuracy_top_k_ties_and_ignore(params, want):
    _, top = run(make_layer('Accuracy', params), [ACC_SCORES, ACC_LABELS])
    assert top[0].shape == ()
    assert float(top[0].data) == pytest.approx(want)


def test_accuracy_per_class_top():
    layer = make_layer('Accuracy', 'accuracy_param { top_k: 2 ignore_label: 3 }')
    _, top = run(layer, [ACC_SCORES, ACC_LABELS], num_tops=2)
    # class 0: 1/1; class 1: item 0 right, item 3 wrong -> 1/2; class 2: no labels -> 0;
    # class 3: ignored -> 0
    np.testing.assert_allclose(top[1].data, [1.0, 0.5, 0.0, 0.0])


def test_accuracy_spatial_axis():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((2, 3, 4, 5))
    labels = rng.integers(0, 3, (2, 1, 4, 5)).astype(float)
    _, top = run(make_layer('Accuracy'), [scores, labels])
    assert float(top[0].data) == pytest.approx(np.mean(scores.argmax(1) == labels[:, 0]))


def test_accuracy_all_ignored_is_zero():
    _, top = run(make_layer('Accuracy', 'accuracy_param { ignore_label: 0 }'),
                 [ACC_SCORES, np.zeros(4)])
    assert float(top[0].data) == 0.0


def test_accuracy_errors():
    with pytest.raises(NetError, match='top_k'):
        run(make_layer('Accuracy', 'accuracy_param { top_k: 5 }'), [ACC_SCORES, ACC_LABELS])
    with pytest.raises(NetError, match="'l'.*7"):
        run(make_layer('Accuracy'), [ACC_SCORES, np.array([0, 1, 7, 2.0])])
    with pytest.raises(NetError, match='number of labels'):
        run(make_layer('Accuracy'), [ACC_SCORES, np.zeros(3)])


def test_accuracy_takes_no_gradient():
    layer = make_layer('Accuracy')
    assert not layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    assert not layer.is_loss and layer.loss_weight(0) == 0.0


# -- golden cases recorded with BVLC Caffe -----------------------------------------------------
@pytest.mark.parametrize('case', ['euclidean_loss', 'sigmoid_ce_loss', 'accuracy_topk_ignore'])
def test_golden(case):
    run_golden(case)
