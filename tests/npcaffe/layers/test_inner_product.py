"""Tests of npcaffe/layers/inner_product.py: values by hand, axis and transpose, accumulation of
parameter diffs, float64 gradient checks, errors, and the golden case recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe import filler
from npcaffe.errors import NetError, WeightShapeError
from tests.gradcheck import check_layer_gradient
from tests.golden import run_case_directly
from tests.npcaffe.layers.util import backward, make_layer, run

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def ip_layer(params):
    filler.set_seed(0)
    return make_layer('InnerProduct', f'inner_product_param {{ {params} {FILLERS} }}')


def test_by_hand():
    """x = [1, 2, 3], W = [[1, 0, -1], [2, 2, 2]], b = [0.5, -1]: y = [-2 + 0.5, 12 - 1]."""
    layer = make_layer('InnerProduct', 'inner_product_param { num_output: 2 '
                       'bias_filler { type: "constant" value: 0 } }')
    layer.blobs.add_blob(2, 3).data[...] = [[1, 0, -1], [2, 2, 2]]
    layer.blobs.add_blob(2).data[...] = [0.5, -1]
    _, top = run(layer, [[[1.0, 2.0, 3.0]]])
    np.testing.assert_array_equal(top[0].data, [[-1.5, 11.0]])


@pytest.mark.parametrize('params, shape, top_shape', [
    ('num_output: 4', (3, 2, 2, 2), (3, 4)),
    ('num_output: 4 axis: 2', (3, 2, 2, 2), (3, 2, 4)),
    ('num_output: 4 axis: -1', (3, 2, 5), (3, 2, 4)),
    ('num_output: 4 transpose: true', (3, 6), (3, 4)),
    ('num_output: 4 bias_term: false axis: 0', (3, 2), (4,)),
])
def test_matches_matrix_product(params, shape, top_shape):
    x = np.random.default_rng(0).standard_normal(shape)
    layer = ip_layer(params)
    _, top = run(layer, [x])
    assert top[0].shape == top_shape
    w = layer.blobs[0].data
    axis = layer.axis
    flat = x.reshape(int(np.prod(shape[:axis])), -1)
    expected = flat @ (w if layer.transpose else w.T)
    if layer.bias_term:
        expected = expected + layer.blobs[1].data
    np.testing.assert_allclose(top[0].data.reshape(expected.shape), expected, rtol=1e-13)
    k = flat.shape[1]
    assert layer.blobs[0].shape == ((k, 4) if layer.transpose else (4, k))


@pytest.mark.parametrize('params', [
    'num_output: 3',
    'num_output: 3 transpose: true',
    'num_output: 2 axis: 2 bias_term: false',
])
def test_gradient(params):
    x = np.random.default_rng(1).standard_normal((2, 3, 2, 2))
    check_layer_gradient(ip_layer(params), [x])


def test_parameter_diffs_accumulate():
    x = np.random.default_rng(2).standard_normal((4, 5))
    layer = ip_layer('num_output: 3')
    bottom, top = run(layer, [x])
    dy = np.random.default_rng(3).standard_normal((4, 3))
    backward(layer, bottom, top, [dy])
    np.testing.assert_allclose(layer.blobs[0].diff, dy.T @ x)
    np.testing.assert_allclose(layer.blobs[1].diff, dy.sum(axis=0))
    np.testing.assert_allclose(bottom[0].diff, dy @ layer.blobs[0].data)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * dy.T @ x)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * dy.sum(axis=0))
    layer.param_propagate_down = [False, False]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * dy.T @ x)


def test_float32_in_float32_out():
    layer = ip_layer('num_output: 3')
    bottom, top = run(layer, [np.ones((2, 4))], dtype=np.float32)
    assert top[0].data.dtype == np.float32 and layer.blobs[0].dtype == np.float32
    backward(layer, bottom, top, [np.ones((2, 3), np.float32)])
    assert bottom[0].diff.dtype == np.float32


def test_input_size_change_is_an_error():
    layer = ip_layer('num_output: 3')
    bottom, top = run(layer, [np.ones((2, 4))])
    bottom[0].reshape(5, 4)                       # a new batch size is fine
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 3)
    bottom[0].reshape(2, 6)
    with pytest.raises(NetError, match='input size 6'):
        layer.reshape(bottom, top)


@pytest.mark.parametrize('params, error, text', [
    ('axis: 1', NetError, 'num_output'),
    ('num_output: 2 axis: 4', NetError, 'axis 4'),
])
def test_bad_parameters(params, error, text):
    with pytest.raises(error, match=text):
        run(make_layer('InnerProduct', f'inner_product_param {{ {params} }}'), [np.ones((2, 3))])


def test_given_weights_are_checked():
    layer = make_layer('InnerProduct', 'inner_product_param { num_output: 2 }')
    layer.blobs.add_blob(3, 2)
    layer.blobs.add_blob(2)
    with pytest.raises(WeightShapeError, match=r'\(2, 3\)'):
        run(layer, [np.ones((1, 3))])


def test_golden_direct():
    run_case_directly('innerproduct')


def test_golden_net():
    from tests.golden import run_golden_case
    run_golden_case('innerproduct')
