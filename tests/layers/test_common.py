"""Tests of npcaffe/layers/common.py: shape rules worked out by hand (crop offsets, reshape's
0/-1, slice points, eltwise MAX ties, argmax ties), float64 gradient checks, views, and the
golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.blob import Blob
from npcaffe.errors import NetError, NotSupportedError
from tests.gradcheck import check_layer_gradient
from tests.layers.util import backward, golden_tests, make_layer, run

RNG = np.random.default_rng(99)

GOLDEN = ['crop_axis1_offsets', 'crop_axis2_off3', 'eltwise_max', 'eltwise_prod',
          'eltwise_sum_coeff', 'concat_axis1', 'slice_concat', 'flatten', 'reshape_0_m1',
          'argmax_axis1']


test_golden_direct, test_golden_net = golden_tests(GOLDEN)


def arange(*shape):
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


# -- Split -----------------------------------------------------------------------------------
def test_split_shares_data_and_sums_diffs():
    layer = make_layer('Split')
    x = arange(2, 3)
    bottom, top = run(layer, [x], num_tops=3)
    for t in top:
        assert t.data.shape == (2, 3)
        assert np.shares_memory(t.data, bottom[0].data)
    bottom[0].data[0, 0] = 42
    assert all(t.data[0, 0] == 42 for t in top)
    (dx,) = backward(layer, bottom, top, [np.ones((2, 3)), 2 * np.ones((2, 3)), x])
    np.testing.assert_array_equal(dx, 3 + x)


def test_split_gradient():
    check_layer_gradient(make_layer('Split'), [RNG.standard_normal((2, 3))], num_tops=2)


def test_split_refuses_in_place():
    layer = make_layer('Split')
    b = Blob((2,), np.float64)
    with pytest.raises(NetError, match='in-place'):
        layer.setup([b], [Blob((), np.float64), b])


# -- Concat / Slice ----------------------------------------------------------------------------
@pytest.mark.parametrize('params,shapes,out', [
    ('', [(2, 1, 3), (2, 4, 3)], (2, 5, 3)),
    ('concat_param { axis: 0 }', [(1, 2), (3, 2), (2, 2)], (6, 2)),
    ('concat_param { axis: -1 }', [(2, 1), (2, 3)], (2, 4)),
    ('concat_param { concat_dim: 2 }', [(1, 2, 2), (1, 2, 1)], (1, 2, 3)),
])
def test_concat_forward_and_gradient(params, shapes, out):
    xs = [RNG.standard_normal(s) for s in shapes]
    _, top = run(make_layer('Concat', params), xs)
    axis = [i for i in range(len(out)) if out[i] != shapes[0][i]][0]
    np.testing.assert_array_equal(top[0].data, np.concatenate(xs, axis))
    check_layer_gradient(make_layer('Concat', params), xs)


def test_concat_errors():
    with pytest.raises(NetError, match="'l'.*axis or concat_dim"):
        run(make_layer('Concat', 'concat_param { axis: 1 concat_dim: 1 }'),
            [np.ones((1, 2)), np.ones((1, 2))])
    with pytest.raises(NetError, match=r"'l'.*\(1, 2, 3\).*\(1, 2, 4\)"):
        run(make_layer('Concat'), [np.ones((1, 2, 3)), np.ones((1, 2, 4))])


def test_concat_single_bottom_is_a_view():
    x = arange(2, 3)
    layer = make_layer('Concat')
    bottom, top = run(layer, [x])
    assert np.shares_memory(top[0].data, bottom[0].data)
    np.testing.assert_array_equal(top[0].data, x)


def test_slice_points_by_hand():
    x = arange(2, 6)
    layer = make_layer('Slice', 'slice_param { axis: 1 slice_point: 1 slice_point: 4 }')
    bottom, top = run(layer, [x], num_tops=3)
    assert [t.shape for t in top] == [(2, 1), (2, 3), (2, 2)]
    np.testing.assert_array_equal(top[0].data, [[0], [6]])
    np.testing.assert_array_equal(top[1].data, [[1, 2, 3], [7, 8, 9]])
    np.testing.assert_array_equal(top[2].data, [[4, 5], [10, 11]])
    (dx,) = backward(layer, bottom, top, [np.full((2, 1), 1.0), np.full((2, 3), 2.0),
                                          np.full((2, 2), 3.0)])
    np.testing.assert_array_equal(dx, [[1, 2, 2, 2, 3, 3]] * 2)


def test_slice_equal_parts_and_legacy_slice_dim():
    x = arange(6, 2)
    _, top = run(make_layer('Slice', 'slice_param { slice_dim: 0 }'), [x], num_tops=3)
    assert [t.shape for t in top] == [(2, 2)] * 3
    np.testing.assert_array_equal(top[2].data, x[4:])


@pytest.mark.parametrize('params,ntop', [('slice_param { axis: 1 slice_point: 2 }', 2),
                                         ('slice_param { axis: -1 }', 2),
                                         ('slice_param { axis: 0 slice_point: 1 '
                                          'slice_point: 2 }', 3)])
def test_slice_gradient(params, ntop):
    check_layer_gradient(make_layer('Slice', params), [RNG.standard_normal((3, 4, 2))],
                         num_tops=ntop)


@pytest.mark.parametrize('params,ntop,match', [
    ('slice_param { slice_point: 2 }', 3, "1 slice_point"),
    ('slice_param { slice_point: 3 slice_point: 2 }', 3, "increasing"),
    ('slice_param { slice_point: 4 }', 2, "increasing"),
    ('slice_param { slice_point: 0 }', 2, "increasing"),
    ('', 3, "evenly"),
    ('slice_param { axis: 1 slice_dim: 1 }', 2, "axis or slice_dim"),
])
def test_slice_errors(params, ntop, match):
    with pytest.raises(NetError, match=f"'l'.*{match}"):
        run(make_layer('Slice', params), [np.ones((1, 4))], num_tops=ntop)


# -- Crop --------------------------------------------------------------------------------------
def test_crop_offsets_by_hand():
    """FCN-style: crop a (1, 2, 7, 6) score map to (1, 1, 3, 2) at offsets 2 (H), 3 (W)."""
    x = arange(1, 2, 7, 6)
    ref = np.zeros((1, 1, 3, 2))
    layer = make_layer('Crop', 'crop_param { offset: 2 offset: 3 }')
    bottom, top = run(layer, [x, ref])
    assert top[0].shape == (1, 2, 3, 2)  # axes < 2 keep bottom 0's size
    np.testing.assert_array_equal(top[0].data[0, 0], [[15, 16], [21, 22], [27, 28]])
    np.testing.assert_array_equal(top[0].data[0, 1], x[0, 1, 2:5, 3:5])
    dy = arange(1, 2, 3, 2) + 1
    dx, dref = backward(layer, bottom, top, [dy], propagate=[True, False])
    want = np.zeros_like(x)
    want[:, :, 2:5, 3:5] = dy
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_array_equal(dref, 0)


def test_crop_single_offset_applies_to_every_cropped_axis():
    x = arange(2, 3, 5, 5)
    _, top = run(make_layer('Crop', 'crop_param { axis: 1 offset: 1 }'),
                 [x, np.zeros((1, 2, 2, 3))])
    np.testing.assert_array_equal(top[0].data, x[:, 1:3, 1:3, 1:4])


def test_crop_no_offset_and_negative_axis():
    x = arange(1, 2, 4, 4)
    _, top = run(make_layer('Crop', 'crop_param { axis: -1 }'), [x, np.zeros((1, 1, 1, 2))])
    np.testing.assert_array_equal(top[0].data, x[:, :, :, :2])


def test_crop_gradient_and_no_force_backward():
    layer = make_layer('Crop', 'crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }')
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    check_layer_gradient(layer, [RNG.standard_normal((1, 4, 5, 3)), np.zeros((1, 2, 2, 3))],
                         check_bottoms=[0])


def test_crop_that_cannot_fit_names_layer_shapes_and_offset():
    layer = make_layer('Crop', 'crop_param { offset: 3 }', name='score')
    with pytest.raises(NetError) as err:
        run(layer, [np.zeros((1, 21, 8, 8)), np.zeros((1, 3, 6, 6))])
    msg = str(err.value)
    for part in ("'score'", '(1, 21, 8, 8)', '(1, 3, 6, 6)', 'offset 3', 'too small',
                 'padding'):
        assert part in msg, (part, msg)


def test_crop_offset_count_and_rank_errors():
    with pytest.raises(NetError, match="'l'.*2 offsets"):
        run(make_layer('Crop', 'crop_param { offset: 1 offset: 1 }'),
            [np.zeros((1, 2, 5, 5, 5)), np.zeros((1, 2, 2, 2, 2))])
    with pytest.raises(NetError, match="'l'.*same number of axes"):
        run(make_layer('Crop'), [np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 2))])


# -- Eltwise -----------------------------------------------------------------------------------
def test_eltwise_sum_coeff_and_gradient():
    xs = [RNG.standard_normal((2, 3)) for _ in range(3)]
    params = 'eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }'
    _, top = run(make_layer('Eltwise', params), xs)
    np.testing.assert_allclose(top[0].data, 0.5 * xs[0] - 2 * xs[1] + xs[2])
    check_layer_gradient(make_layer('Eltwise', params), xs)
    check_layer_gradient(make_layer('Eltwise'), xs[:2])


@pytest.mark.parametrize('stable', ['true', 'false'])
def test_eltwise_prod_gradient(stable):
    xs = [RNG.standard_normal((2, 3)) + 3 for _ in range(3)]
    params = f'eltwise_param {{ operation: PROD stable_prod_grad: {stable} }}'
    _, top = run(make_layer('Eltwise', params), xs)
    np.testing.assert_allclose(top[0].data, xs[0] * xs[1] * xs[2])
    check_layer_gradient(make_layer('Eltwise', params), xs)


def test_eltwise_max_gradient():
    xs = [RNG.permutation(18).reshape(3, 6).astype(float) + 0.5 * k for k in range(3)]
    check_layer_gradient(make_layer('Eltwise', 'eltwise_param { operation: MAX }'), xs)


def test_eltwise_max_ties_follow_caffe():
    """Caffe: bottoms 0 and 1 compare with ``x0 > x1`` (a tie goes to 1); bottoms 2.. win only
    when strictly greater than the running max."""
    layer = make_layer('Eltwise', 'eltwise_param { operation: MAX }')
    x0 = [1.0, 5.0, 2.0, 3.0]
    x1 = [1.0, 4.0, 2.0, 3.0]
    x2 = [0.0, 5.0, 2.0, 7.0]
    bottom, top = run(layer, [x0, x1, x2])
    np.testing.assert_array_equal(top[0].data, [1, 5, 2, 7])
    d0, d1, d2 = backward(layer, bottom, top, [[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_array_equal(d0, [0, 20, 0, 0])
    np.testing.assert_array_equal(d1, [10, 0, 30, 0])
    np.testing.assert_array_equal(d2, [0, 0, 0, 40])


def test_eltwise_errors():
    with pytest.raises(NetError, match="'l'.*one coeff per bottom"):
        run(make_layer('Eltwise', 'eltwise_param { coeff: 1 }'), [[1.0], [2.0]])
    with pytest.raises(NetError, match="'l'.*only for SUM"):
        run(make_layer('Eltwise', 'eltwise_param { operation: PROD coeff: 1 coeff: 2 }'),
            [[1.0], [2.0]])
    with pytest.raises(NetError, match=r"'l'.*\(2,\).*\(3,\)"):
        run(make_layer('Eltwise'), [[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(NetError, match='at least 2 bottom'):
        make_layer('Eltwise').check_blob_counts(1, 1)


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


# -- Silence / Tile / Reduction ------------------------------------------------------------------
def test_silence_zeroes_diffs():
    layer = make_layer('Silence')
    bottom = [Blob((2,), np.float64), Blob((3,), np.float64)]
    layer.check_blob_counts(2, 0)
    layer.setup(bottom, [])
    layer.reshape(bottom, [])
    layer.forward(bottom, [])
    for b in bottom:
        b.diff[...] = 7
    layer.backward([], [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 0)
    np.testing.assert_array_equal(bottom[1].diff, 7)


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
