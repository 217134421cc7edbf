"""Tests of npcaffe/layers/pool.py: Caffe's window rules written as plain loops, ceil-mode sizes
with the pad correction, AVE divisors and MAX ties worked out by hand, the mask top, global
pooling, float64 gradient checks, errors, and the golden cases recorded with BVLC Caffe."""
import tracemalloc

import numpy as np
import pytest

from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.layers.pool import pooled_size
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import backward, golden_tests, make_layer, run

GOLDEN = ['pool_ave_k3_s2_p1', 'pool_global_ave', 'pool_max_k2_s2_odd', 'pool_max_k3_s2_p1']


def pool_layer(params, phase=TRAIN):
    return make_layer('Pooling', f'pooling_param {{ {params} }}', phase)


# -- Caffe's loops, one output at a time (the oracle) ---------------------------------------------
def caffe_pool(x, dy, method, kernel, stride, pad, ceil_mode=True):
    """Forward and backward of Caffe's PoolingLayer, transcribed window by window: returns
    (top, bottom diff, mask)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    ho, wo = (pooled_size(h, kh, sh, ph, ceil_mode), pooled_size(w, kw, sw, pw, ceil_mode))
    top = np.zeros((n, c, ho, wo))
    mask = np.full((n, c, ho, wo), -1.0)
    dx = np.zeros_like(x)
    for y in range(ho):
        for z in range(wo):
            hs, ws = y * sh - ph, z * sw - pw
            if method == 'MAX':
                he, we = min(hs + kh, h), min(ws + kw, w)
                hs, ws = max(hs, 0), max(ws, 0)
                for a in range(n):
                    for b in range(c):
                        best, where = -np.finfo(np.float32).max, None
                        for i in range(hs, he):
                            for j in range(ws, we):
                                if x[a, b, i, j] > best:          # strict: first max wins
                                    best, where = x[a, b, i, j], (i, j)
                        top[a, b, y, z] = best
                        mask[a, b, y, z] = where[0] * w + where[1]
                        dx[a, b, where[0], where[1]] += dy[a, b, y, z]
            else:
                he, we = min(hs + kh, h + ph), min(ws + kw, w + pw)
                size = (he - hs) * (we - ws)
                hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                top[:, :, y, z] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
                dx[:, :, hs:he, ws:we] += dy[:, :, y, z, None, None] / size
    return top, dx, mask


GEOMETRIES = [  # kernel, stride, pad, input (H, W)
    ((2, 2), (2, 2), (0, 0), (5, 7)),        # ceil: the last window hangs over
    ((3, 3), (2, 2), (1, 1), (6, 6)),
    ((3, 3), (2, 2), (1, 1), (7, 8)),
    ((2, 2), (2, 2), (1, 1), (5, 5)),        # the pad correction removes a window
    ((3, 2), (1, 2), (1, 0), (4, 5)),
    ((3, 3), (3, 3), (0, 0), (7, 7)),
    ((2, 2), (3, 3), (0, 0), (8, 7)),        # stride > kernel: gaps
    ((5, 5), (1, 1), (2, 2), (4, 4)),        # kernel larger than the input
]


def ties_input(shape, seed):
    """Values with many exact ties (ReLU zeros and repeats), as real nets produce."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.integers(-3, 3, shape), 0).astype(np.float64)


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('geometry', GEOMETRIES)
@pytest.mark.parametrize('round_mode', ['CEIL', 'FLOOR'])
def test_matches_caffe_loops(method, geometry, round_mode):
    kernel, stride, pad, hw = geometry
    if round_mode == 'FLOOR' and pooled_size(hw[0], kernel[0], stride[0], pad[0], False) <= 0:
        pytest.skip('no output in FLOOR mode')
    x = ties_input((2, 3) + hw, 0)
    params = (f'pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {stride[0]} '
              f'stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]} round_mode: {round_mode}')
    tops = 2 if method == 'MAX' else 1
    layer = pool_layer(params)
    bottom, top = run(layer, [x], num_tops=tops)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    expected, dx, mask = caffe_pool(x, dy, method, kernel, stride, pad, round_mode == 'CEIL')
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)
    if method == 'MAX':
        np.testing.assert_array_equal(top[1].data, mask)
    got = backward(layer, bottom, top, [dy] + [np.zeros(top[0].shape)] * (tops - 1))[0]
    np.testing.assert_allclose(got, dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('geometry', [((2, 2), (7, 9)), ((3, 2), (8, 7)), ((2, 2), (6, 8))])
@pytest.mark.parametrize('round_mode', ['CEIL', 'FLOOR'])
def test_tiled_max_on_the_workers(geometry, round_mode, monkeypatch):
    """Windows that tile the input (kernel == stride, no pad: the separable forward and the
    write-only backward), split over channels on three workers, with ties."""
    from npcaffe import parallel
    from npcaffe.layers import pool
    monkeypatch.setattr(pool, 'PARALLEL_MIN_ELEMENTS', 1)
    before = parallel.num_threads()
    parallel.set_num_threads(3)
    try:
        kernel, hw = geometry
        x = ties_input((2, 7) + hw, 3)
        layer = pool_layer(f'pool: MAX kernel_h: {kernel[0]} kernel_w: {kernel[1]} '
                           f'stride_h: {kernel[0]} stride_w: {kernel[1]} round_mode: {round_mode}')
        bottom, top = run(layer, [x], num_tops=2)
        dy = np.random.default_rng(4).standard_normal(top[0].shape)
        expected, dx, mask = caffe_pool(x, dy, 'MAX', kernel, kernel, (0, 0),
                                        round_mode == 'CEIL')
        np.testing.assert_array_equal(top[0].data, expected)
        np.testing.assert_array_equal(top[1].data, mask)
        bottom[0].diff[...] = np.nan                # every entry must be written
        top[0].diff[...] = dy
        layer.backward(top, [True], bottom)
        np.testing.assert_array_equal(bottom[0].diff, dx)
    finally:
        parallel.set_num_threads(before)


# -- sizes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('size, kernel, stride, pad, ceil_mode, expected', [
    (5, 2, 2, 0, True, 3),     # ceil(3/2)+1 = 3: the last window holds only row 4
    (5, 2, 2, 0, False, 2),    # floor(3/2)+1 = 2
    (6, 3, 2, 1, True, 4),     # ceil(5/2)+1 = 4; (4-1)*2 = 6 < 6+1, no correction
    (7, 3, 2, 1, True, 4),     # ceil(6/2)+1 = 4; 6 < 8
    (5, 2, 2, 1, True, 3),     # ceil(5/2)+1 = 4, but (4-1)*2 = 6 >= 5+1: corrected to 3
    (4, 2, 2, 1, False, 3),    # floor(4/2)+1 = 3; (3-1)*2 = 4 < 5
    (2, 3, 2, 0, True, 1),     # kernel past the input: ceil(-1/2)+1 = 1, as Caffe's float ceil
    (2, 5, 2, 0, True, 0),     # ceil(-3/2)+1 = 0: no output
    (500, 2, 2, 0, True, 250),
    (573, 2, 2, 0, True, 287),
])
def test_pooled_size(size, kernel, stride, pad, ceil_mode, expected):
    assert pooled_size(size, kernel, stride, pad, ceil_mode) == expected


# -- by hand -------------------------------------------------------------------------------------
def test_max_ceil_mode_odd_input_by_hand():
    """5x5 holding 0..24, kernel 2, stride 2 -> 3x3. Windows start at rows/cols 0, 2, 4; the
    last one holds only row/column 4. Max of rows {r, r+1} x cols {c, c+1} is the bottom-right
    entry 5*(r+1) + (c+1), clipped to 4."""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    _, top = run(pool_layer('pool: MAX kernel_size: 2 stride: 2'), [x])
    np.testing.assert_array_equal(top[0].data[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])


def test_ave_divisor_counts_padding_not_overhang():
    """4x4 ones, kernel 3, stride 2, pad 1 -> 3x3 (ceil(3/2)+1 = 3; (3-1)*2 = 4 < 4+1).
    Along an axis, window starts -1, 1, 3:
      start -1: in-input rows 0..1 (2 rows), size min(2, 4+1) - (-1) = 3 (the pad row counts);
      start  1: rows 1..3 (3 rows), size 3;
      start  3: row 3 (1 row), size min(6, 5) - 3 = 2 (the overhang past H + pad does not).
    So the per-axis factors are 2/3, 3/3, 1/2 and the output is their outer product."""
    _, top = run(pool_layer('pool: AVE kernel_size: 3 stride: 2 pad: 1'), [np.ones((1, 1, 4, 4))])
    factors = np.array([2 / 3, 1, 1 / 2])
    np.testing.assert_allclose(top[0].data[0, 0], np.outer(factors, factors), rtol=1e-15)


def test_ave_divisor_3x3_padded():
    """3x3 ones, kernel 3, stride 2, pad 1 -> 2x2; every window holds 2x2 inputs and 3x3 = 9
    positions counting the padding: 4/9 everywhere."""
    _, top = run(pool_layer('pool: AVE kernel_size: 3 stride: 2 pad: 1'), [np.ones((1, 1, 3, 3))])
    np.testing.assert_allclose(top[0].data[0, 0], np.full((2, 2), 4 / 9), rtol=1e-15)


def test_max_ties_go_to_the_first_maximum():
    """All-zero input (ReLU zeros), kernel 3, stride 2, pad 1 on 4x4 -> 3x3 windows starting
    at -1, 1, 3 along each axis; their first in-input rows (padding skipped) are 0, 1, 3, so
    each output's diff goes to the window's top-left input entry (r, c), r, c in {0, 1, 3}.
    A tie inside [[1, 3], [3, 2]] goes to the first 3 in row-major order."""
    layer = pool_layer('pool: MAX kernel_size: 3 stride: 2 pad: 1')
    bottom, top = run(layer, [np.zeros((1, 1, 4, 4))], num_tops=1)
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dx = backward(layer, bottom, top, [dy])[0][0, 0]
    expected = np.zeros((4, 4))
    for y, r in enumerate((0, 1, 3)):
        for z, c in enumerate((0, 1, 3)):
            expected[r, c] += dy[0, 0, y, z]
    np.testing.assert_array_equal(dx, expected)

    layer = pool_layer('pool: MAX kernel_size: 2 stride: 2')
    bottom, top = run(layer, [np.array([[[[1.0, 3.0], [3.0, 2.0]]]])], num_tops=2)
    assert top[1].data.ravel().tolist() == [1.0]          # index h*W + w of the first 3
    dx = backward(layer, bottom, top, [np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1))])[0]
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])


def test_test_phase_backward_recomputes_the_arg_max():
    """TEST forward keeps no arg max; backward recomputes it and agrees with TRAIN."""
    x = ties_input((2, 2, 7, 6), 3)
    dy = np.random.default_rng(4).standard_normal((2, 2, 4, 4))
    results = []
    for phase in (TEST, TRAIN):
        layer = pool_layer('pool: MAX kernel_size: 3 stride: 2 pad: 1', phase)
        bottom, top = run(layer, [x])
        results.append((top[0].data.copy(), backward(layer, bottom, top, [dy])[0]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_max_forward_keeps_only_the_arg_max():
    """Besides its top, a TRAIN MAX forward keeps one byte per output (the arg max for
    backward); the work arrays of the arg max search are freed (24 MiB over FCN's pools)."""
    x = np.random.default_rng(0).standard_normal((1, 8, 256, 256), dtype=np.float32)
    layer = pool_layer('pool: MAX kernel_size: 2 stride: 2')
    tracemalloc.start()
    try:
        bottom, top = run(layer, [x], dtype=np.float32)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    outputs = top[0].count
    assert held - bottom[0].data.nbytes - top[0].data.nbytes < 1.5 * outputs
    dx = backward(layer, bottom, top, [np.ones(top[0].shape, np.float32)])[0]
    assert dx.sum() == outputs


# -- global pooling ------------------------------------------------------------------------------
def test_global_pooling():
    x = ties_input((2, 3, 4, 5), 5)
    x[0, 0] = 0                                 # an all-tie plane
    dy = np.random.default_rng(6).standard_normal((2, 3, 1, 1))
    for method in ('MAX', 'AVE'):
        layer = pool_layer(f'pool: {method} global_pooling: true')
        bottom, top = run(layer, [x], num_tops=2 if method == 'MAX' else 1)
        assert top[0].shape == (2, 3, 1, 1)
        expected, dx, mask = caffe_pool(x, dy, method, (4, 5), (1, 1), (0, 0))
        np.testing.assert_allclose(top[0].data, expected, rtol=1e-13)
        diffs = [dy] + ([np.zeros_like(dy)] if method == 'MAX' else [])
        np.testing.assert_allclose(backward(layer, bottom, top, diffs)[0], dx, rtol=1e-13)
        if method == 'MAX':
            np.testing.assert_array_equal(top[1].data, mask)
            assert mask[0, 0, 0, 0] == 0


def test_global_pooling_follows_the_input_size():
    layer = pool_layer('pool: AVE global_pooling: true')
    bottom, top = run(layer, [np.ones((1, 2, 3, 3))])
    bottom[0].reshape(1, 2, 6, 4)
    bottom[0].data[...] = 2
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (1, 2, 1, 1)
    np.testing.assert_allclose(top[0].data, 2)


# -- gradients -----------------------------------------------------------------------------------
def distinct_input(shape, seed):
    """Entries at least 0.1 apart (a shuffled ramp), so finite differences never swap a max."""
    values = np.random.default_rng(seed).permutation(np.prod(shape)) * 0.1
    return values.reshape(shape)


@pytest.mark.parametrize('params', [
    'pool: MAX kernel_size: 3 stride: 2 pad: 1',
    'pool: MAX kernel_size: 2 stride: 2',
    'pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0',
    'pool: MAX global_pooling: true',
    'pool: AVE kernel_size: 3 stride: 2 pad: 1',
    'pool: AVE kernel_size: 2 stride: 2',
    'pool: AVE kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 1 pad_w: 1 round_mode: FLOOR',
    'pool: AVE global_pooling: true',
])
def test_gradient(params):
    check_layer_gradient(pool_layer(params), [distinct_input((2, 2, 5, 6), 7)])


# -- other modes ----------------------------------------------------------------------------------
def test_stochastic_test_phase():
    """Caffe's TEST rule: sum x^2 / sum x per window: [[1, 2], [3, 0]] -> 14/6; a window
    summing to 0 gives 0."""
    x = np.array([[[[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]]])
    layer = pool_layer('pool: STOCHASTIC kernel_size: 2 stride: 2', TEST)
    bottom, top = run(layer, [x])
    np.testing.assert_allclose(top[0].data[0, 0], [[14 / 6, 0.0]])
    with pytest.raises(NotSupportedError, match='STOCHASTIC'):
        backward(layer, bottom, top, [np.ones(top[0].shape)])
    with pytest.raises(NotSupportedError, match='STOCHASTIC'):
        run(pool_layer('pool: STOCHASTIC kernel_size: 2 stride: 2', TRAIN), [x])


def test_float32_in_float32_out():
    x = np.random.default_rng(8).standard_normal((1, 2, 5, 5))
    for method in ('MAX', 'AVE'):
        layer = pool_layer(f'pool: {method} kernel_size: 3 stride: 2 pad: 1')
        bottom, top = run(layer, [x], dtype=np.float32)
        assert top[0].data.dtype == np.float32
        backward(layer, bottom, top, [np.ones(top[0].shape, np.float32)])
        assert bottom[0].diff.dtype == np.float32


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('params, text', [
    ('pool: MAX kernel_size: 2 pad: 2', 'smaller than the kernel'),
    ('pool: MAX kernel_size: 3 kernel_h: 3 kernel_w: 3', 'kernel_size'),
    ('pool: MAX kernel_h: 3', 'kernel_size'),
    ('pool: MAX', 'kernel_size'),
    ('pool: AVE global_pooling: true kernel_size: 2', 'global_pooling'),
    ('pool: AVE global_pooling: true pad: 1', 'global_pooling'),
    ('pool: STOCHASTIC kernel_size: 3 pad: 1', 'padding'),
    ('pool: MAX kernel_size: 3 pad: 1 pad_h: 1 pad_w: 1', 'pad'),
    ('pool: MAX kernel_size: 3 stride_h: 2', 'stride'),
    ('pool: MAX kernel_size: 3 stride: 0', 'stride'),
    ('pool: MAX kernel_size: 5 stride: 2 round_mode: FLOOR', 'too small'),
])
def test_bad_parameters(params, text):
    with pytest.raises(NetError, match=text):
        run(pool_layer(params, TEST), [np.zeros((1, 1, 3, 3))])


def test_mask_top_only_for_max():
    with pytest.raises(NetError, match='mask'):
        run(pool_layer('pool: AVE kernel_size: 2'), [np.zeros((1, 1, 4, 4))], num_tops=2)


def test_four_axes_required():
    with pytest.raises(NetError, match='4 axes'):
        run(pool_layer('pool: MAX kernel_size: 2'), [np.zeros((1, 4, 4))])


def test_too_small_input_names_the_layer():
    layer = make_layer('Pooling', 'pooling_param { pool: MAX kernel_size: 5 stride: 2 }',
                       name='pool9')
    with pytest.raises(NetError, match=r"'pool9'.*height 2.*kernel 5"):
        run(layer, [np.zeros((1, 1, 2, 2))])


test_golden_direct, test_golden_net = golden_tests(GOLDEN)
