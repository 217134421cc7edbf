"""Tests of npcaffe/layers/reduction.py (Reduction, ArgMax): shapes worked out by hand (argmax ties),
float64 gradient checks and the golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.errors import NetError, NotSupportedError
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import golden_tests, make_layer, run

RNG = np.random.default_rng(99)

test_golden_direct, test_golden_net = golden_tests(['argmax_axis1'])


def arange(*shape):
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


# -- Reduction -------------------------------------------------------------------------------


@pytest.mark.parametrize('op,fn', [
    ('SUM', lambda r: r.sum(-1)),
    ('ASUM', lambda r: np.abs(r).sum(-1)),
    ('SUMSQ', lambda r: (r * r).sum(-1)),
    ('MEAN', lambda r: r.mean(-1)),
])
@pytest.mark.parametrize('axis', [0, 1, -1])
def test_reduction(op, fn, axis):
    x = RNG.standard_normal((2, 3, 4))
    params = f'reduction_param {{ operation: {op} axis: {axis} coeff: 1.5 }}'
    _, top = run(make_layer('Reduction', params), [x])
    ax = axis % 3
    assert top[0].shape == x.shape[:ax]
    np.testing.assert_allclose(top[0].data, 1.5 * fn(x.reshape(x.shape[:ax] + (-1,))))
    check_layer_gradient(make_layer('Reduction', params), [x])


def test_reduction_default_is_sum_of_everything():
    _, top = run(make_layer('Reduction'), [arange(2, 3)])
    assert top[0].shape == ()
    assert float(top[0].data) == 15.0


# -- ArgMax ------------------------------------------------------------------------------------
def test_argmax_axis_and_values():
    x = np.array([[[3.0, 1.0], [5.0, 0.0], [4.0, 2.0]]])  # (1, 3, 2)
    _, top = run(make_layer('ArgMax', 'argmax_param { axis: 1 }'), [x])
    np.testing.assert_array_equal(top[0].data, [[[1, 2]]])
    _, top = run(make_layer('ArgMax', 'argmax_param { axis: 1 out_max_val: true top_k: 2 }'),
                 [x])
    np.testing.assert_array_equal(top[0].data, [[[5, 2], [4, 1]]])


def test_argmax_ties_give_the_larger_index_first():
    """Caffe partial_sorts (value, index) pairs with greater<>: equal values, larger index."""
    x = np.array([[2.0, 7.0, 7.0, 1.0, 7.0]])
    _, top = run(make_layer('ArgMax'), [x])
    np.testing.assert_array_equal(top[0].data.ravel(), [4])
    _, top = run(make_layer('ArgMax', 'argmax_param { top_k: 4 }'), [x])
    np.testing.assert_array_equal(top[0].data.ravel(), [4, 2, 1, 0])
    _, top = run(make_layer('ArgMax', 'argmax_param { axis: 1 top_k: 3 }'), [x])
    np.testing.assert_array_equal(top[0].data.ravel(), [4, 2, 1])


def test_argmax_without_axis_shapes():
    x = RNG.standard_normal((2, 3, 2))
    flat = x.reshape(2, -1)
    _, top = run(make_layer('ArgMax', 'argmax_param { top_k: 2 }'), [x])
    assert top[0].shape == (2, 1, 2)
    np.testing.assert_array_equal(top[0].data[:, 0], np.argsort(-flat, axis=1)[:, :2])
    _, top = run(make_layer('ArgMax', 'argmax_param { top_k: 2 out_max_val: true }'),
                 [x[..., None]])
    assert top[0].shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(top[0].data[:, 1, :, 0], -np.sort(-flat, axis=1)[:, :2])
    _, top = run(make_layer('ArgMax'), [x[:, :, 0]])
    assert top[0].shape == (2, 1, 1)


def test_argmax_errors():
    with pytest.raises(NetError, match="'l'.*top_k"):
        run(make_layer('ArgMax', 'argmax_param { axis: 1 top_k: 4 }'), [np.ones((1, 3))])
    layer = make_layer('ArgMax')
    bottom, top = run(layer, [np.ones((1, 3))])
    with pytest.raises(NotSupportedError, match="'l'"):
        layer.backward(top, [True], bottom)
