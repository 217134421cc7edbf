"""Tests of npcaffe/layers/softmax.py: Softmax and SoftmaxWithLoss.

Hand-worked ignore_label/normalisation cases on a 1x3x2x2 example, float64 gradient checks,
bad labels, and the golden cases recorded with BVLC Caffe.

The helpers ``make_layer``, ``run`` and ``backward`` are shared with tests/layers/test_loss.py
and tests/layers/test_normalization.py.
"""
import numpy as np
import pytest

from npcaffe.errors import NetError
from tests.golden import run_golden_case as run_golden
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import backward, make_layer, run




# -- Softmax -----------------------------------------------------------------------------------
def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize('axis', [1, -1, 0])
def test_softmax_matches_formula(axis):
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 2))
    _, top = run(make_layer('Softmax', f'softmax_param {{ axis: {axis} }}'), [x])
    np.testing.assert_allclose(top[0].data, np_softmax(x, axis), rtol=1e-12)


def test_softmax_is_stable_and_keeps_float32():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]], np.float32)
    _, top = run(make_layer('Softmax'), [x], dtype=np.float32)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-7)


@pytest.mark.parametrize('axis', [1, 2, -1])
def test_softmax_gradient(axis):
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    check_layer_gradient(make_layer('Softmax', f'softmax_param {{ axis: {axis} }}'), [x])


def test_softmax_in_place_matches_out_of_place():
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    layer = make_layer('Softmax')
    bottom, top = run(layer, [x])
    want_y, want_dx = top[0].data.copy(), backward(layer, bottom, top, [dy])[0]
    layer = make_layer('Softmax')
    bottom, top = run(layer, [x], in_place=True)
    np.testing.assert_allclose(top[0].data, want_y, rtol=1e-14)
    np.testing.assert_allclose(backward(layer, bottom, top, [dy])[0], want_dx, rtol=1e-13)


def test_softmax_bad_axis_names_layer():
    with pytest.raises(NetError, match="'l'"):
        run(make_layer('Softmax', 'softmax_param { axis: 4 }'), [np.zeros((2, 3))])


# -- SoftmaxWithLoss: a 1x3x2x2 example worked out by hand ------------------------------------
# Per pixel (row-major over H, W) the class probabilities and the label:
#   pixel 0: p = (0.5, 0.25, 0.25), label 0   -> -log 0.5
#   pixel 1: p = (0.2, 0.6, 0.2),   label 1   -> -log 0.6
#   pixel 2: p = (0.3, 0.3, 0.4),   label 255 (ignored when ignore_label: 255)
#   pixel 3: p = (0.1, 0.1, 0.8),   label 2   -> -log 0.8
# Scores are log p, so the softmax gives p back. Summed loss over the valid pixels:
#   S = -(log 0.5 + log 0.6 + log 0.8) = -log 0.24 = 1.427116...
# Normalisers: FULL = N*H*W = 4, VALID = 3 non-ignored, BATCH_SIZE = N = 1, NONE = 1.
PROBS = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]])
SCORES = np.log(PROBS).T.reshape(1, 3, 2, 2)
LABELS = np.array([0, 1, 255, 2], float).reshape(1, 1, 2, 2)
SUM = -np.log(0.24)
# (p - onehot) per pixel, 0 at the ignored pixel; laid out as (1, 3, 2, 2)
P_MINUS_ONEHOT = (PROBS - np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]])) \
    * np.array([[1], [1], [0], [1]])
GRAD_NUMERATOR = P_MINUS_ONEHOT.T.reshape(1, 3, 2, 2)


@pytest.mark.parametrize('loss_param, normalizer', [
    ('normalization: FULL', 4),
    ('normalization: VALID', 3),
    ('', 3),                          # VALID is the default
    ('normalization: BATCH_SIZE', 1),
    ('normalization: NONE', 1),
    ('normalize: true', 3),           # legacy flag: VALID
    ('normalize: false', 1),          # legacy flag: BATCH_SIZE (FCN's setting)
    ('normalization: FULL normalize: true', 4),   # normalization wins over normalize
])
def test_softmax_loss_ignore_label_by_hand(loss_param, normalizer):
    layer = make_layer('SoftmaxWithLoss', f'loss_param {{ ignore_label: 255 {loss_param} }}')
    bottom, top = run(layer, [SCORES, LABELS])
    assert top[0].shape == ()
    np.testing.assert_allclose(top[0].data, SUM / normalizer, rtol=1e-12)
    dx = backward(layer, bottom, top, [np.array(2.0)], propagate=[True, False])[0]
    np.testing.assert_allclose(dx, 2.0 * GRAD_NUMERATOR / normalizer, rtol=1e-12, atol=1e-15)


def test_softmax_loss_full_counts_ignored_pixels_in_the_normaliser():
    layer = make_layer('SoftmaxWithLoss', 'loss_param { ignore_label: 255 normalization: FULL }')
    bottom, top = run(layer, [SCORES, LABELS])
    assert float(top[0].data) == pytest.approx(SUM / 4)


def test_softmax_loss_all_ignored_gives_zero_not_nan():
    layer = make_layer('SoftmaxWithLoss', 'loss_param { ignore_label: 255 }')
    labels = np.full((1, 1, 2, 2), 255.0)
    bottom, top = run(layer, [SCORES, labels])
    assert float(top[0].data) == 0.0           # normaliser max(1, 0) = 1
    dx = backward(layer, bottom, top, [np.array(1.0)], propagate=[True, False])[0]
    assert not dx.any()


def test_softmax_loss_clamps_at_flt_min():
    scores = np.array([[0.0, -1e4]], np.float32)     # p[1] underflows to 0
    labels = np.array([1.0], np.float32)
    _, top = run(make_layer('SoftmaxWithLoss'), [scores, labels], dtype=np.float32)
    assert float(top[0].data) == pytest.approx(-np.log(np.finfo(np.float32).tiny), rel=1e-6)


def test_softmax_loss_second_top_is_probabilities():
    layer = make_layer('SoftmaxWithLoss', 'loss_param { ignore_label: 255 }')
    bottom, top = run(layer, [SCORES, LABELS], num_tops=2)
    assert top[1].shape == SCORES.shape
    np.testing.assert_allclose(top[1].data, np.exp(SCORES), rtol=1e-12)
    assert layer.loss_weight(0) == 1.0 and layer.loss_weight(1) == 0.0


def test_softmax_loss_labels_truncate_like_static_cast():
    labels = np.array([0.9, 1.2, 255.5, 2.999]).reshape(1, 1, 2, 2)
    _, top = run(make_layer('SoftmaxWithLoss', 'loss_param { ignore_label: 255 }'),
                 [SCORES, labels])
    np.testing.assert_allclose(top[0].data, SUM / 3, rtol=1e-12)


@pytest.mark.parametrize('labels, value', [
    ([0, 1, 255, 2], '255.0'),     # 255 without ignore_label
    ([0, 3, 1, 2], '3.0'),
    ([0, -1, 1, 2], '-1.0'),
])
def test_softmax_loss_label_out_of_range_names_layer_and_value(labels, value):
    labels = np.array(labels, float).reshape(1, 1, 2, 2)
    with pytest.raises(NetError, match=rf"'l'.*{value}"):
        run(make_layer('SoftmaxWithLoss'), [SCORES, labels])


def test_softmax_loss_label_count_mismatch():
    with pytest.raises(NetError, match='number of labels'):
        run(make_layer('SoftmaxWithLoss'), [SCORES, np.zeros((1, 1, 2, 3))])


def test_softmax_loss_refuses_label_gradient():
    layer = make_layer('SoftmaxWithLoss')
    bottom, top = run(layer, [SCORES, np.zeros((1, 1, 2, 2))])
    with pytest.raises(NetError, match='label'):
        backward(layer, bottom, top, [np.array(1.0)], propagate=[True, True])
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    assert layer.is_loss


@pytest.mark.parametrize('loss_param', [
    '', 'ignore_label: 2', 'ignore_label: 0 normalization: FULL',
    'ignore_label: 1 normalize: false', 'normalization: NONE'])
def test_softmax_loss_gradient(loss_param):
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((2, 3, 2, 3))
    labels = rng.integers(0, 3, (2, 1, 2, 3)).astype(float)
    layer = make_layer('SoftmaxWithLoss', f'loss_param {{ {loss_param} }}')
    check_layer_gradient(layer, [scores, labels], check_bottoms=[0],
                         top_weights=[np.array(0.7)])


def test_softmax_loss_gradient_other_axis_with_prob_top():
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((2, 3, 4))            # classes on the last axis
    labels = rng.integers(0, 4, (2, 3)).astype(float)
    layer = make_layer('SoftmaxWithLoss', 'softmax_param { axis: -1 }')
    bottom, top = check_layer_gradient(layer, [scores, labels], num_tops=2, check_bottoms=[0],
                                       top_weights=[np.array(1.3), np.zeros(scores.shape)])
    layer.forward(bottom, top)       # the check leaves the last perturbed forward behind
    np.testing.assert_allclose(top[1].data, np_softmax(scores, -1), rtol=1e-12)


def test_softmax_loss_float32_fcn_shape_stays_float32():
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((1, 21, 50, 40)).astype(np.float32)
    labels = rng.integers(0, 21, (1, 1, 50, 40)).astype(np.float32)
    labels[0, 0, :5] = 255
    layer = make_layer('SoftmaxWithLoss', 'loss_param { ignore_label: 255 normalize: false }')
    bottom, top = run(layer, [scores, labels], dtype=np.float32)
    dx = backward(layer, bottom, top, [np.float32(1)], propagate=[True, False])[0]
    assert top[0].data.dtype == np.float32 and dx.dtype == np.float32
    s64 = scores.astype(np.float64)
    p = np_softmax(s64, 1)
    lab = labels[0, 0].astype(int)
    valid = lab != 255
    picked = np.take_along_axis(p[0], np.where(valid, lab, 0)[None], 0)[0]
    np.testing.assert_allclose(top[0].data, -np.log(picked[valid]).sum(), rtol=1e-5)
    assert not dx[0, :, :5].any()


# -- golden cases recorded with BVLC Caffe -----------------------------------------------------
@pytest.mark.parametrize('case', ['softmax_axis1', 'softmaxloss_full',
                                  'softmaxloss_unnormalized_ignore', 'softmaxloss_valid_ignore'])
def test_golden(case):
    run_golden(case)
