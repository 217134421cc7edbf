"""Tests of npcaffe/layers/routing.py (Split, Concat, Slice, Crop, Silence): shapes worked out by hand (crop offsets, slice points),
float64 gradient checks and the golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.blob import Blob
from npcaffe.errors import NetError
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import backward, golden_tests, make_layer, run

RNG = np.random.default_rng(99)

test_golden_direct, test_golden_net = golden_tests(['crop_axis1_offsets', 'crop_axis2_off3', 'concat_axis1', 'slice_concat'])


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


# -- Silence --------------------------------------------------------------------------------


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
