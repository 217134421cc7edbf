"""Tests of npcaffe/layers/reshape.py (Flatten, Reshape, Tile): shapes worked out by hand (reshape's 0/-1, views),
float64 gradient checks and the golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.errors import NetError
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import golden_tests, make_layer, run

RNG = np.random.default_rng(99)

test_golden_direct, test_golden_net = golden_tests(['flatten', 'reshape_0_m1'])


def arange(*shape):
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


# -- Flatten / Reshape: views ------------------------------------------------------------------
def _view_layer_checks(layer, x, want_shape):
    """The top has want_shape, is a view of the bottom's data and diff, and backward passes the
    top diff through unchanged."""
    bottom, top = run(layer, [x])
    assert top[0].shape == want_shape
    np.testing.assert_array_equal(top[0].data, x.reshape(want_shape))
    assert np.shares_memory(top[0].data, bottom[0].data)
    dy = RNG.standard_normal(want_shape)
    top[0].diff[...] = dy
    assert np.shares_memory(top[0].diff, bottom[0].diff)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, dy.reshape(x.shape))


@pytest.mark.parametrize('params,want', [
    ('', (2, 60)),
    ('flatten_param { axis: 2 }', (2, 3, 20)),
    ('flatten_param { axis: 1 end_axis: 2 }', (2, 12, 5)),
    ('flatten_param { axis: 0 end_axis: -2 }', (24, 5)),
    ('flatten_param { axis: -1 }', (2, 3, 4, 5)),
])
def test_flatten(params, want):
    _view_layer_checks(make_layer('Flatten', params), arange(2, 3, 4, 5), want)


def test_flatten_refuses_in_place_and_bad_axes():
    with pytest.raises(NetError, match='in-place'):
        run(make_layer('Flatten'), [np.ones((2, 3))], in_place=True)
    with pytest.raises(NetError, match="'l'.*end_axis"):
        run(make_layer('Flatten', 'flatten_param { axis: 2 end_axis: 1 }'), [np.ones((2, 3, 4))])


@pytest.mark.parametrize('params,want', [
    ('reshape_param { shape { dim: 0 dim: -1 dim: 2 } }', (2, 30, 2)),
    ('reshape_param { shape { dim: -1 } }', (120,)),
    ('reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 } }', (2, 3, 4, 5)),
    ('reshape_param { shape { dim: 4 dim: 0 dim: -1 } }', (4, 3, 10)),  # 0 copies axis 1
    ('reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 }', (2, 3, 2, 2, 5)),
    ('reshape_param { shape { dim: 1 } axis: 0 num_axes: 0 }', (1, 2, 3, 4, 5)),
    ('reshape_param { shape { dim: 1 } axis: -1 num_axes: 0 }', (2, 3, 4, 5, 1)),
    ('reshape_param { shape { dim: -1 } axis: 1 }', (2, 60)),
    ('reshape_param { shape { dim: -1 } axis: -3 }', (2, 3, 20)),  # -3: from axis 2 on
    ('reshape_param { shape { dim: 0 dim: -1 } axis: -3 }', (2, 3, 4, 5)),
    ('reshape_param { shape { dim: 0 dim: 1 dim: -1 } axis: 1 num_axes: 2 }', (2, 3, 1, 4, 5)),
])
def test_reshape_zero_and_minus_one(params, want):
    """Caffe's rules: a 0 copies the bottom dim at (axis + its position); one -1 is inferred;
    axis -1 is after the last axis; num_axes 0 inserts."""
    _view_layer_checks(make_layer('Reshape', params), arange(2, 3, 4, 5), want)


@pytest.mark.parametrize('params,match', [
    ('reshape_param { shape { dim: -1 dim: -1 } }', 'more than one -1'),
    ('reshape_param { shape { dim: 7 dim: -1 } }', 'not divisible'),
    ('reshape_param { shape { dim: 7 dim: 3 } }', 'gives shape'),
    ('reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 } }', 'no axis 4'),
    ('reshape_param { shape { dim: 0 dim: 0 } axis: 3 }', 'no axis 4'),
    ('reshape_param { shape { dim: 1 } axis: 5 }', 'axis 5 is out of range'),
    ('reshape_param { shape { dim: 1 } axis: 3 num_axes: 2 }', 'out of range'),
    ('reshape_param { shape { dim: -2 dim: 60 } }', 'below -1'),
])
def test_reshape_errors(params, match):
    with pytest.raises(NetError, match=f"'l'.*{match}"):
        run(make_layer('Reshape', params), [arange(2, 3, 4, 5)])


def test_reshape_refuses_in_place():
    with pytest.raises(NetError, match='in-place'):
        run(make_layer('Reshape', 'reshape_param { shape { dim: -1 } }'), [np.ones(3)],
            in_place=True)


def test_reshape_follows_a_new_bottom_shape():
    layer = make_layer('Reshape', 'reshape_param { shape { dim: 0 dim: -1 } }')
    bottom, top = run(layer, [arange(2, 3, 4)])
    bottom[0].reshape(5, 2, 2)
    bottom[0].data[...] = arange(5, 2, 2)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, arange(5, 4))


# -- Tile ------------------------------------------------------------------------------------


@pytest.mark.parametrize('params,want', [
    ('tile_param { tiles: 2 }', lambda x: np.tile(x, (1, 2, 1))),
    ('tile_param { axis: 0 tiles: 3 }', lambda x: np.tile(x, (3, 1, 1))),
    ('tile_param { axis: -1 tiles: 2 }', lambda x: np.tile(x, (1, 1, 2))),
])
def test_tile(params, want):
    x = arange(2, 3, 2)
    _, top = run(make_layer('Tile', params), [x])
    np.testing.assert_array_equal(top[0].data, want(x))
    check_layer_gradient(make_layer('Tile', params), [RNG.standard_normal((2, 3, 2))])


def test_tile_needs_positive_tiles():
    with pytest.raises(NetError, match="'l'.*tiles"):
        run(make_layer('Tile'), [np.ones((1, 2))])
    with pytest.raises(NetError, match="'l'.*tiles"):
        run(make_layer('Tile', 'tile_param { tiles: 0 }'), [np.ones((1, 2))])
