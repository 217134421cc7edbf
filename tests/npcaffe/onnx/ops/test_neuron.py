"""Elementwise layers equal npcaffe's formulas, including their special cases (Power's
constant case, Exp/Log bases, BNLL for large |x|, negative ReLU slopes)."""
import numpy as np
import pytest

from tests.npcaffe.onnx.util import check_one_layer, require_runtime

CASES = {
    'relu': ('ReLU', ''), 'leaky': ('ReLU', 'relu_param { negative_slope: 0.1 }'),
    'negative_slope': ('ReLU', 'relu_param { negative_slope: -0.5 }'),
    'prelu': ('PReLU', ''), 'prelu_shared': ('PReLU', 'prelu_param { channel_shared: true }'),
    'elu': ('ELU', 'elu_param { alpha: 0.7 }'), 'sigmoid': ('Sigmoid', ''),
    'tanh': ('TanH', ''), 'absval': ('AbsVal', ''),
    'power': ('Power', 'power_param { power: 2 scale: 0.5 shift: 4 }'),
    'power_one': ('Power', 'power_param { power: 1 scale: -2 shift: 1 }'),
    'power_const': ('Power', 'power_param { power: 3 scale: 0 shift: 2 }'),
    'power_zero': ('Power', 'power_param { power: 0 }'),
    'exp': ('Exp', ''), 'exp_base': ('Exp', 'exp_param { base: 2 scale: 0.5 shift: 1 }'),
    'log': ('Log', 'log_param { shift: 4 }'),
    'log_base': ('Log', 'log_param { base: 10 scale: 2 shift: 7 }'),
    'bnll': ('BNLL', ''), 'threshold': ('Threshold', 'threshold_param { threshold: 0.5 }'),
    'clip': ('Clip', 'clip_param { min: -1 max: 0.5 }'), 'swish': ('Swish', ''),
    'swish_beta': ('Swish', 'swish_param { beta: 2 }'), 'dropout': ('Dropout', ''),
}


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


@pytest.mark.parametrize('case', sorted(CASES))
def test_neuron_layer_matches_npcaffe(case):
    check_one_layer(*CASES[case])


def test_bnll_has_no_overflow_and_power_constant_by_hand():
    x, y = check_one_layer('BNLL', low=-200, high=200)
    np.testing.assert_allclose(y, np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
                               rtol=1e-6, atol=1e-6)
    assert np.isfinite(y).all()
    _, y = check_one_layer('Power', 'power_param { power: 3 scale: 0 shift: 2 }')
    np.testing.assert_array_equal(y, 8.0)
