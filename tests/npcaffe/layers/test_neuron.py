"""Tests of npcaffe/layers/neuron.py: formulas by hand, in-place use, float64 gradient checks,
and the golden cases recorded with BVLC Caffe.

``run_case_directly`` (tests/golden.py) runs a golden case's layers on the recorded inputs
without a Net, so each layer is checked against Caffe on its own as well as inside a Net.
"""
import numpy as np
import pytest

from npcaffe import filler
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.layers.neuron import DropoutLayer
from npcaffe.proto import caffe_pb2
from tests.gradcheck import check_layer_gradient, make_blobs
from tests.npcaffe.layers.util import backward, golden_tests, make_layer, run


def away_from(x, points, margin=0.05):
    """Move entries of x within ``margin`` of any of ``points`` away (for kinks in gradchecks)."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, margin, -margin) * 2
    return x




GOLDEN = ['relu_leaky', 'elu', 'sigmoid', 'tanh', 'absval', 'power', 'prelu', 'prelu_shared']


test_golden_direct, test_golden_net = golden_tests(GOLDEN)


# -- the pointwise layers: formulas, gradients, in place -----------------------------------------
RNG = np.random.default_rng(1234)
X = away_from(RNG.standard_normal((2, 3, 2, 3)) * 1.5, [0.0])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# (type, params, input, expected forward as a function of x)
POINTWISE = [
    ('ReLU', '', X, lambda x: np.maximum(x, 0)),
    ('ReLU', 'relu_param { negative_slope: 0.1 }', X, lambda x: np.where(x > 0, x, 0.1 * x)),
    ('ReLU', 'relu_param { negative_slope: -0.5 }', X, lambda x: np.where(x > 0, x, -0.5 * x)),
    ('Sigmoid', '', X, _sigmoid),
    ('TanH', '', X, np.tanh),
    ('AbsVal', '', X, np.abs),
    ('Power', 'power_param { power: 2 scale: 0.5 shift: 3 }', X, lambda x: (3 + 0.5 * x) ** 2),
    ('Power', 'power_param { power: 3 scale: -1.5 }', X, lambda x: (-1.5 * x) ** 3),
    ('Power', 'power_param { power: 0.5 scale: 0.3 shift: 2 }', X,
     lambda x: np.sqrt(2 + 0.3 * x)),
    ('Power', 'power_param { power: 1 scale: 2 shift: -1 }', X, lambda x: 2 * x - 1),
    ('Power', 'power_param { power: 0 scale: 2 shift: 5 }', X, lambda x: np.ones_like(x)),
    ('Power', 'power_param { power: 2 scale: 0 shift: 5 }', X, lambda x: np.full_like(x, 25)),
    ('Exp', '', X, np.exp),
    ('Exp', 'exp_param { base: 2 scale: 0.5 shift: 1 }', X, lambda x: 2 ** (1 + 0.5 * x)),
    ('Log', 'log_param { shift: 5 }', X, lambda x: np.log(5 + x)),
    ('Log', 'log_param { base: 10 scale: 2 shift: 12 }', X, lambda x: np.log10(12 + 2 * x)),
    ('ELU', '', X, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    ('ELU', 'elu_param { alpha: 0.7 }', X, lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    ('BNLL', '', X * 10, lambda x: np.log1p(np.exp(x))),
    ('Clip', 'clip_param { min: -0.5 max: 0.8 }', away_from(X, [-0.5, 0.8]),
     lambda x: np.clip(x, -0.5, 0.8)),
    ('Swish', '', X, lambda x: x * _sigmoid(x)),
    ('Swish', 'swish_param { beta: 1.7 }', X, lambda x: x * _sigmoid(1.7 * x)),
]
POINTWISE_IDS = [f"{t}-{i}" for i, (t, *_) in enumerate(POINTWISE)]


@pytest.mark.parametrize('type_name,params,x,expected', POINTWISE, ids=POINTWISE_IDS)
def test_pointwise_forward(type_name, params, x, expected):
    _, top = run(make_layer(type_name, params), [x])
    # parameters are float32 in caffe.proto (0.1 is 0.100000001...), hence 1e-6
    np.testing.assert_allclose(top[0].data, expected(x), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('type_name,params,x,expected', POINTWISE, ids=POINTWISE_IDS)
def test_pointwise_gradient(type_name, params, x, expected):
    check_layer_gradient(make_layer(type_name, params), [x])


IN_PLACE = [case for case in POINTWISE if case[0] != 'AbsVal']   # AbsVal refuses it (below)


@pytest.mark.parametrize('type_name,params,x,expected', IN_PLACE,
                         ids=[i for i, c in zip(POINTWISE_IDS, POINTWISE) if c[0] != 'AbsVal'])
def test_pointwise_in_place_matches(type_name, params, x, expected):
    """In place (top is bottom) gives the same top and bottom diff as out of place."""
    dy = np.random.default_rng(5).standard_normal(x.shape)
    layer = make_layer(type_name, params)
    bottom, top = run(layer, [x])
    (want,) = backward(layer, bottom, top, [dy])
    layer = make_layer(type_name, params)
    bottom, top = run(layer, [x], in_place=True)
    got_y = top[0].data.copy()
    (got,) = backward(layer, bottom, top, [dy])
    np.testing.assert_allclose(got_y, expected(x), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('type_name,params,x,expected', POINTWISE, ids=POINTWISE_IDS)
def test_pointwise_keeps_float32(type_name, params, x, expected):
    layer = make_layer(type_name, params)
    bottom, top = run(layer, [x], dtype=np.float32)
    assert top[0].data.dtype == np.float32
    (dx,) = backward(layer, bottom, top, [np.ones(x.shape)])
    assert dx.dtype == np.float32
    np.testing.assert_allclose(top[0].data, expected(x), rtol=2e-5, atol=2e-5)


def test_relu_hand_values():
    layer = make_layer('ReLU', 'relu_param { negative_slope: 0.25 }')
    bottom, top = run(layer, [[-4.0, 0.0, 2.0]])
    np.testing.assert_array_equal(top[0].data, [-1.0, 0.0, 2.0])
    (dx,) = backward(layer, bottom, top, [[1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(dx, [0.25, 0.25, 1.0])  # x = 0 takes the negative slope


def test_power_caffe_corner_gradients():
    """power * scale == 0: gradient 0; power == 1: gradient is the constant scale."""
    for params, want in (('power_param { power: 0 scale: 3 shift: 1 }', 0.0),
                         ('power_param { power: 2 scale: 0 shift: 1 }', 0.0),
                         ('power_param { power: 1 scale: 3 shift: 1 }', 3.0)):
        layer = make_layer('Power', params)
        bottom, top = run(layer, [[1.0, -2.0]])
        (dx,) = backward(layer, bottom, top, [[1.0, 2.0]])
        np.testing.assert_array_equal(dx, np.array([1.0, 2.0]) * want)


def test_exp_log_reject_bad_base():
    with pytest.raises(NetError, match="'l'.*base"):
        run(make_layer('Exp', 'exp_param { base: -2 }'), [[1.0]])
    with pytest.raises(NetError, match="'l'.*base"):
        run(make_layer('Log', 'log_param { base: 0 }'), [[1.0]])


def test_absval_refuses_in_place():
    with pytest.raises(NetError, match="'l'.*in-place"):
        run(make_layer('AbsVal'), [[1.0, -1.0]], in_place=True)


def test_bnll_large_inputs_are_finite():
    layer = make_layer('BNLL')
    bottom, top = run(layer, [[-800.0, 0.0, 800.0]])
    np.testing.assert_allclose(top[0].data, [0.0, np.log(2), 800.0])
    (dx,) = backward(layer, bottom, top, [[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(dx, [0.0, 0.5, 1.0])


def test_threshold_forward_and_no_backward():
    layer = make_layer('Threshold', 'threshold_param { threshold: 0.5 }')
    bottom, top = run(layer, [[0.2, 0.5, 0.7, -3.0]])
    np.testing.assert_array_equal(top[0].data, [0, 0, 1, 0])  # strictly greater
    backward(layer, bottom, top, [[1, 1, 1, 1]], propagate=[False])
    with pytest.raises(NotSupportedError, match="'l'"):
        backward(layer, bottom, top, [[1, 1, 1, 1]])


def test_clip_gradient_is_one_on_the_closed_interval():
    layer = make_layer('Clip', 'clip_param { min: -1 max: 1 }')
    bottom, top = run(layer, [[-2.0, -1.0, 0.3, 1.0, 2.0]])
    np.testing.assert_array_equal(top[0].data, [-1, -1, 0.3, 1, 1])
    (dx,) = backward(layer, bottom, top, [np.full(5, 2.0)])
    np.testing.assert_array_equal(dx, [0, 2, 2, 2, 0])


def test_clip_needs_min_and_max():
    with pytest.raises(NetError, match='clip_param'):
        run(make_layer('Clip', 'clip_param { min: 0 }'), [[1.0]])


# -- Dropout -------------------------------------------------------------------------------------
def test_dropout_test_phase_is_identity():
    x = RNG.standard_normal((2, 5))
    for in_place in (False, True):
        layer = make_layer('Dropout', 'dropout_param { dropout_ratio: 0.3 }', TEST)
        bottom, top = run(layer, [x], in_place=in_place)
        np.testing.assert_array_equal(top[0].data, x)
        (dx,) = backward(layer, bottom, top, [2 * x])
        np.testing.assert_array_equal(dx, 2 * x)


@pytest.mark.parametrize('in_place', [False, True])
def test_dropout_train_mask_and_scale(in_place):
    p = 0.25
    x = np.abs(RNG.standard_normal((40, 50))) + 0.1
    filler.set_seed(3)
    layer = make_layer('Dropout', f'dropout_param {{ dropout_ratio: {p} }}', TRAIN)
    bottom, top = run(layer, [x], in_place=in_place)
    y = top[0].data.copy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p))
    assert abs(kept.mean() - (1 - p)) < 0.03
    dy = RNG.standard_normal(x.shape)
    (dx,) = backward(layer, bottom, top, [dy])
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0))


def test_dropout_mask_follows_the_seed():
    x = np.ones((10, 10))
    outs = []
    for _ in range(2):
        filler.set_seed(11)
        _, top = run(make_layer('Dropout', '', TRAIN), [x])
        outs.append(top[0].data.copy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert set(np.unique(outs[0])) <= {0.0, 2.0}


class _SeededDropout(DropoutLayer):
    """Dropout that reseeds before every forward, so that the mask is fixed for a gradcheck."""

    def forward(self, bottom, top):
        filler.set_seed(42)
        super().forward(bottom, top)


def test_dropout_train_gradient():
    lp = caffe_pb2.LayerParameter(name='d', type='Dropout')
    lp.dropout_param.dropout_ratio = 0.4
    check_layer_gradient(_SeededDropout(lp, TRAIN), [RNG.standard_normal((3, 4, 5))])


def test_dropout_rejects_ratio_one():
    with pytest.raises(NetError, match='dropout_ratio'):
        run(make_layer('Dropout', 'dropout_param { dropout_ratio: 1 }', TRAIN), [[1.0]])


# -- PReLU ---------------------------------------------------------------------------------------
def _prelu_expected(x, a):
    a = np.asarray(a).reshape((-1,) + (1,) * (x.ndim - 2)) if np.ndim(a) else a
    return np.where(x > 0, x, a * x)


def test_prelu_default_filler_and_shapes():
    x = RNG.standard_normal((2, 3, 2, 2))
    layer = make_layer('PReLU')
    _, top = run(layer, [x])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    np.testing.assert_allclose(top[0].data, np.where(x > 0, x, 0.25 * x))
    shared = make_layer('PReLU', 'prelu_param { channel_shared: true }')
    run(shared, [x])
    assert shared.blobs[0].shape == ()


@pytest.mark.parametrize('params', ['prelu_param { filler { type: "uniform" min: 0.1 max: 0.6 } }',
                                    'prelu_param { channel_shared: true '
                                    'filler { type: "constant" value: 0.3 } }'])
def test_prelu_gradient(params):
    filler.set_seed(0)
    x = away_from(RNG.standard_normal((2, 3, 3, 2)), [0.0])
    check_layer_gradient(make_layer('PReLU', params), [x])


def test_prelu_2d_bottom_gradient():
    x = away_from(RNG.standard_normal((4, 3)), [0.0])
    check_layer_gradient(make_layer('PReLU'), [x])


def test_prelu_in_place_and_accumulation():
    x = away_from(RNG.standard_normal((2, 3, 2, 2)), [0.0])
    dy = RNG.standard_normal(x.shape)
    ref = make_layer('PReLU', 'prelu_param { filler { type: "constant" value: 0.2 } }')
    bottom, top = run(ref, [x])
    for p in ref.blobs:
        p.diff[...] = 0
    (want,) = backward(ref, bottom, top, [dy])
    want_slope = ref.blobs[0].diff.copy()
    np.testing.assert_allclose(want_slope, np.where(x <= 0, dy * x, 0).sum(axis=(0, 2, 3)))

    layer = make_layer('PReLU', 'prelu_param { filler { type: "constant" value: 0.2 } }')
    bottom, top = run(layer, [x], in_place=True)
    np.testing.assert_allclose(top[0].data, _prelu_expected(x, [0.2] * 3))
    layer.blobs[0].diff[...] = 0
    (got,) = backward(layer, bottom, top, [dy])
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(layer.blobs[0].diff, want_slope)
    # parameter diffs accumulate (+=), bottom diffs are overwritten
    r = make_layer('PReLU', 'prelu_param { filler { type: "constant" value: 0.2 } }')
    bottom, top = run(r, [x])
    r.blobs[0].diff[...] = 0
    backward(r, bottom, top, [dy])
    (again,) = backward(r, bottom, top, [dy])
    np.testing.assert_allclose(r.blobs[0].diff, 2 * want_slope)
    np.testing.assert_allclose(again, want)


def test_prelu_keeps_loaded_weights_and_checks_their_count():
    layer = make_layer('PReLU')
    layer.blobs.add_blob(3).data[...] = [0.1, 0.2, 0.3]
    x = -np.ones((1, 3, 1, 1))
    _, top = run(layer, [x])
    np.testing.assert_allclose(top[0].data.ravel(), [-0.1, -0.2, -0.3])
    bad = make_layer('PReLU')
    bad.blobs.add_blob(4)
    with pytest.raises(NetError, match="'l'.*4"):
        run(bad, [x])


def test_neuron_layers_check_blob_counts():
    layer = make_layer('ReLU')
    with pytest.raises(NetError, match='exactly 1 bottom'):
        layer.check_blob_counts(2, 1)


def test_make_blobs_helper_is_float64():
    assert make_blobs([[1.0]])[0].dtype == np.float64
