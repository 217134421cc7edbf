"""Tests of npcaffe/layers/normalization.py: LRN, BatchNorm, Scale, Bias, MVN.

Loop-by-loop references of Caffe's formulas, hand-worked corners (BatchNorm's zero scale
factor, running statistics), in-place use, float64 gradient checks, and the golden cases
recorded with BVLC Caffe.
"""
import numpy as np
import pytest

from npcaffe.errors import NetError
from npcaffe.layers.base import TEST, TRAIN
from tests.gradcheck import check_layer_gradient
from tests.golden import run_golden_case as run_golden
from tests.npcaffe.layers.util import backward, make_layer, run


def rng(seed):
    return np.random.default_rng(seed)


def f32(value):
    """A layer parameter as Caffe stores it (proto float), for the references."""
    return float(np.float32(value))


# -- LRN ---------------------------------------------------------------------------------------
def lrn_across_reference(x, size, alpha, beta, k):
    """Caffe's ACROSS_CHANNELS formula, one channel at a time."""
    n, c, h, w = x.shape
    half = (size - 1) // 2
    scale = np.empty_like(x)
    for ci in range(c):
        lo, hi = max(0, ci - half), min(c, ci + half + 1)
        scale[:, ci] = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
    return x * scale ** -beta


def lrn_within_reference(x, size, alpha, beta):
    """Caffe's WITHIN_CHANNEL net: AVE pooling of x^2 (pad (size-1)/2, stride 1, divisor the
    window clipped to H + pad and W + pad), then (1 + alpha * pooled)^-beta, times x."""
    n, c, h, w = x.shape
    pad = (size - 1) // 2
    pooled = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            hs, ws = i - pad, j - pad
            he, we = min(hs + size, h + pad), min(ws + size, w + pad)
            pool_size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            pooled[:, :, i, j] = (x[:, :, hs:he, ws:we] ** 2).sum(axis=(2, 3)) / pool_size
    return x * (1 + alpha * pooled) ** -beta


def test_lrn_across_channels_matches_reference():
    x = rng(0).standard_normal((2, 7, 3, 2))
    layer = make_layer('LRN', 'lrn_param { local_size: 5 alpha: 0.3 beta: 0.75 k: 2 }')
    _, top = run(layer, [x])
    np.testing.assert_allclose(top[0].data, lrn_across_reference(x, 5, f32(0.3), 0.75, 2.0),
                               rtol=1e-12)


def test_lrn_within_channel_matches_reference():
    x = rng(1).standard_normal((1, 2, 5, 4))
    # k is not used within a channel (Caffe's internal Power layer has shift 1)
    layer = make_layer('LRN', 'lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 7 '
                              'norm_region: WITHIN_CHANNEL }')
    _, top = run(layer, [x])
    np.testing.assert_allclose(top[0].data, lrn_within_reference(x, 3, 0.5, f32(0.6)), rtol=1e-12)


def test_lrn_by_hand_single_channel_window():
    # local_size 1 across channels: y = x (k + alpha x^2)^-beta
    x = np.array([2.0, -1.0]).reshape(1, 2, 1, 1)
    _, top = run(make_layer('LRN', 'lrn_param { local_size: 1 alpha: 1 beta: 0.5 k: 1 }'), [x])
    np.testing.assert_allclose(top[0].data.ravel(), [2 / np.sqrt(5), -1 / np.sqrt(2)])


@pytest.mark.parametrize('params, shape', [
    ('lrn_param { local_size: 5 alpha: 0.4 beta: 0.75 k: 1.5 }', (2, 6, 2, 3)),
    ('lrn_param { local_size: 3 alpha: 0.8 beta: 0.75 }', (1, 2, 2, 2)),
    ('lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL }',
     (1, 2, 4, 3)),
    ('lrn_param { local_size: 5 alpha: 2 beta: 1.2 norm_region: WITHIN_CHANNEL }', (2, 1, 3, 5)),
])
def test_lrn_gradient(params, shape):
    check_layer_gradient(make_layer('LRN', params), [rng(2).standard_normal(shape)])


@pytest.mark.parametrize('region', ['ACROSS_CHANNELS', 'WITHIN_CHANNEL'])
def test_lrn_in_place_matches_out_of_place(region):
    params = f'lrn_param {{ local_size: 3 alpha: 0.7 norm_region: {region} }}'
    x, dy = rng(3).standard_normal((2, 4, 3, 3)), rng(4).standard_normal((2, 4, 3, 3))
    layer = make_layer('LRN', params)
    bottom, top = run(layer, [x])
    want_y, want_dx = top[0].data.copy(), backward(layer, bottom, top, [dy])[0]
    layer = make_layer('LRN', params)
    bottom, top = run(layer, [x], in_place=True)
    np.testing.assert_allclose(top[0].data, want_y, rtol=1e-14)
    np.testing.assert_allclose(backward(layer, bottom, top, [dy])[0], want_dx, rtol=1e-10)


def test_lrn_errors():
    with pytest.raises(NetError, match='odd'):
        run(make_layer('LRN', 'lrn_param { local_size: 4 }'), [np.zeros((1, 4, 2, 2))])
    with pytest.raises(NetError, match='4 axes'):
        run(make_layer('LRN'), [np.zeros((4, 2))])


# -- BatchNorm ---------------------------------------------------------------------------------
def set_blobs(layer, mean, var, factor):
    for blob, value in zip(layer.blobs, (mean, var, [factor])):
        blob.data[...] = value


def test_batchnorm_global_stats_by_hand():
    x = rng(5).standard_normal((2, 3, 2, 2))
    mean, var = np.array([1.0, -2.0, 0.5]), np.array([4.0, 1.0, 0.25])
    layer = make_layer('BatchNorm', 'batch_norm_param { eps: 0.001 }', phase=TEST)
    bottom, top = run(layer, [np.zeros_like(x)])
    set_blobs(layer, 2 * mean, 2 * var, 2.0)          # stored sums / factor 2
    bottom[0].data[...] = x
    layer.forward(bottom, top)
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + f32(0.001))
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    dy = rng(6).standard_normal(x.shape)
    dx = backward(layer, bottom, top, [dy])[0]
    np.testing.assert_allclose(dx, dy / np.sqrt(var[:, None, None] + f32(0.001)), rtol=1e-12)
    np.testing.assert_array_equal(layer.blobs[2].data, [2.0])     # TEST leaves them alone


def test_batchnorm_zero_scale_factor_means_zero_statistics():
    # Caffe: scale_factor = blobs[2][0] == 0 ? 0 : 1 / blobs[2][0] -> mean 0, variance 0
    x = rng(7).standard_normal((2, 3, 2, 2))
    layer = make_layer('BatchNorm', phase=TEST)
    bottom, top = run(layer, [np.zeros_like(x)])
    set_blobs(layer, [5.0, 6.0, 7.0], [8.0, 9.0, 10.0], 0.0)
    bottom[0].data[...] = x
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x / np.sqrt(f32(1e-5)), rtol=1e-12)
    assert np.isfinite(top[0].data).all()


def test_batchnorm_train_normalises_and_updates_running_sums():
    x = rng(8).standard_normal((4, 3, 2, 1)) * 3 + 1
    layer = make_layer('BatchNorm', 'batch_norm_param { moving_average_fraction: 0.9 }',
                       phase=TRAIN)
    bottom, top = run(layer, [np.zeros_like(x)])
    set_blobs(layer, [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 2.0)
    bottom[0].data[...] = x
    layer.forward(bottom, top)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    want = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + f32(1e-5))
    np.testing.assert_allclose(top[0].data, want, rtol=1e-10)
    m = 8                                                  # count / channels
    np.testing.assert_allclose(layer.blobs[0].data, mean + f32(0.9) * np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(layer.blobs[1].data,
                               m / (m - 1) * var + f32(0.9) * np.array([4.0, 5.0, 6.0]))
    np.testing.assert_allclose(layer.blobs[2].data, [f32(0.9) * 2.0 + 1])


def test_batchnorm_phase_default_and_override():
    x = rng(9).standard_normal((2, 3, 2, 2))
    assert make_layer('BatchNorm', phase=TEST).phase == TEST
    for phase, params, want_global in ((TEST, '', True), (TRAIN, '', False),
                                       (TRAIN, 'use_global_stats: true', True),
                                       (TEST, 'use_global_stats: false', False)):
        layer = make_layer('BatchNorm', f'batch_norm_param {{ {params} }}', phase=phase)
        run(layer, [x])
        assert layer.use_global_stats is want_global


def test_batchnorm_statistics_get_lr_mult_zero():
    layer = make_layer('BatchNorm', phase=TRAIN)
    run(layer, [np.zeros((2, 3))])
    assert [p.lr_mult for p in layer.layer_param.param] == [0, 0, 0]
    assert [b.shape for b in layer.blobs] == [(3,), (3,), (1,)]
    assert layer.param_propagate_down == [False, False, False]
    layer = make_layer('BatchNorm', 'param { lr_mult: 0 } param { lr_mult: 1 }', phase=TRAIN)
    with pytest.raises(NetError, match="'l'.*lr_mult"):
        run(layer, [np.zeros((2, 3))])


@pytest.mark.parametrize('shape', [(3, 2, 2, 3), (4, 3), (5,)])
def test_batchnorm_train_gradient(shape):
    layer = make_layer('BatchNorm', phase=TRAIN)
    check_layer_gradient(layer, [rng(10).standard_normal(shape)], check_params=False)


def test_batchnorm_global_gradient():
    layer = make_layer('BatchNorm', phase=TEST)
    x = rng(11).standard_normal((2, 3, 2))
    bottom, top = run(layer, [x])
    # give the layer non-trivial statistics, then check against them
    layer2 = make_layer('BatchNorm', phase=TEST)
    layer2.blobs = layer.blobs
    set_blobs(layer2, [0.5, -1.0, 2.0], [3.0, 0.5, 1.0], 1.5)
    check_layer_gradient(layer2, [x], check_params=False)


@pytest.mark.parametrize('phase', [TRAIN, TEST])
def test_batchnorm_in_place_matches_out_of_place(phase):
    x, dy = rng(12).standard_normal((3, 2, 4)), rng(13).standard_normal((3, 2, 4))
    results = []
    for in_place in (False, True):
        layer = make_layer('BatchNorm', phase=phase)
        bottom, top = run(layer, [np.zeros_like(x)], in_place=in_place)
        set_blobs(layer, [0.5, 1.0], [2.0, 3.0], 1.0)
        bottom[0].data[...] = x
        layer.forward(bottom, top)
        y = top[0].data.copy()
        results.append((y, backward(layer, bottom, top, [dy])[0], layer.blobs[1].data.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# -- Scale ---------------------------------------------------------------------------------------
def test_scale_defaults_identity_and_bias_zero():
    x = rng(14).standard_normal((2, 3, 2))
    layer = make_layer('Scale', 'scale_param { bias_term: true }')
    _, top = run(layer, [x])
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    np.testing.assert_array_equal(layer.blobs[0].data, 1)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    np.testing.assert_allclose(top[0].data, x)


def test_scale_by_hand_axis_and_num_axes():
    x = np.arange(12.0).reshape(2, 3, 2)
    layer = make_layer('Scale', 'scale_param { axis: 1 num_axes: 2 bias_term: true }')
    bottom, top = run(layer, [x])
    s = np.arange(6.0).reshape(3, 2)
    b = -np.ones((3, 2))
    layer.blobs[0].data[...], layer.blobs[1].data[...] = s, b
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x * s + b)


@pytest.mark.parametrize('params, shape, blob_shapes', [
    ('scale_param { bias_term: true filler { type: "gaussian" } '
     'bias_filler { type: "gaussian" } }', (2, 3, 2, 2), [(3,), (3,)]),
    ('scale_param { axis: 0 num_axes: -1 filler { type: "gaussian" } }', (2, 3, 2), [(2, 3, 2)]),
    ('scale_param { num_axes: 0 bias_term: true filler { value: 0.5 } '
     'bias_filler { value: 0.2 } }', (2, 3), [(), ()]),
    ('scale_param { axis: -1 filler { type: "gaussian" } }', (2, 3, 4), [(4,)]),
    ('scale_param { axis: 1 num_axes: 2 filler { type: "gaussian" } }', (2, 3, 2, 2), [(3, 2)]),
])
def test_scale_gradient(params, shape, blob_shapes):
    layer = make_layer('Scale', params)
    check_layer_gradient(layer, [rng(15).standard_normal(shape)])
    assert [b.shape for b in layer.blobs] == blob_shapes


@pytest.mark.parametrize('params, shapes, blob_shapes', [
    ('scale_param { axis: 0 }', [(2, 3, 2), (2, 3)], []),
    ('scale_param { axis: 1 bias_term: true bias_filler { type: "gaussian" } }',
     [(2, 3, 2, 2), (3, 2)], [(3, 2)]),
    ('scale_param { axis: 1 }', [(2, 3, 2), ()], []),
])
def test_scale_second_bottom_gradient(params, shapes, blob_shapes):
    layer = make_layer('Scale', params)
    check_layer_gradient(layer, [rng(16).standard_normal(s) for s in shapes])
    assert [b.shape for b in layer.blobs] == blob_shapes


def test_scale_in_place_matches_out_of_place():
    params = 'scale_param { bias_term: true filler { value: 1.5 } bias_filler { value: 0.5 } }'
    x, dy = rng(17).standard_normal((2, 3, 4)), rng(18).standard_normal((2, 3, 4))
    results = []
    for in_place in (False, True):
        layer = make_layer('Scale', params)
        bottom, top = run(layer, [x], in_place=in_place)
        for b in layer.blobs:
            b.diff[...] = 0
        y = top[0].data.copy()
        dx = backward(layer, bottom, top, [dy])[0]
        results.append((y, dx, layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_scale_param_diffs_accumulate():
    x, dy = rng(19).standard_normal((2, 3, 2)), rng(20).standard_normal((2, 3, 2))
    layer = make_layer('Scale', 'scale_param { bias_term: true }')
    bottom, top = run(layer, [x])
    for b in layer.blobs:
        b.diff[...] = 0
    backward(layer, bottom, top, [dy])
    once = [b.diff.copy() for b in layer.blobs]
    backward(layer, bottom, top, [dy])
    for b, d in zip(layer.blobs, once):
        np.testing.assert_allclose(b.diff, 2 * d)
    np.testing.assert_allclose(once[0], (dy * x).sum(axis=(0, 2)))
    np.testing.assert_allclose(once[1], dy.sum(axis=(0, 2)))


def test_scale_fixed_skips_param_gradient():
    x, dy = rng(21).standard_normal((1, 2, 3)), rng(22).standard_normal((1, 2, 3))
    layer = make_layer('Scale', 'scale_param { filler { value: 0.01 } }')
    bottom, top = run(layer, [x], in_place=True)
    layer.blobs[0].diff[...] = 0
    layer.param_propagate_down = [False]          # lr_mult 0, as FCN at-once
    layer.forward(bottom, top)
    dx = backward(layer, bottom, top, [dy])[0]
    np.testing.assert_allclose(dx, 0.01 * dy)
    assert not layer.blobs[0].diff.any()


def test_scale_shape_errors():
    with pytest.raises(NetError, match="'l'"):
        run(make_layer('Scale', 'scale_param { axis: 1 }'), [np.zeros((2, 3)), np.zeros(4)])
    with pytest.raises(NetError, match='extends past'):
        run(make_layer('Scale', 'scale_param { axis: 1 num_axes: 3 }'), [np.zeros((2, 3))])


# -- Bias ----------------------------------------------------------------------------------------
def test_bias_by_hand():
    x = np.zeros((2, 3, 2))
    layer = make_layer('Bias')
    bottom, top = run(layer, [x])
    layer.blobs[0].data[...] = [1.0, 2.0, 3.0]
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data[1, :, 0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize('params, shapes', [
    ('bias_param { filler { type: "gaussian" } }', [(2, 3, 2)]),
    ('bias_param { axis: 0 num_axes: -1 filler { type: "gaussian" } }', [(2, 3)]),
    ('bias_param { axis: 0 }', [(2, 3, 2), (2, 3)]),
    ('bias_param { axis: 2 }', [(2, 3, 4), (4,)]),
])
def test_bias_gradient(params, shapes):
    check_layer_gradient(make_layer('Bias', params), [rng(23).standard_normal(s) for s in shapes])


def test_bias_in_place():
    x, dy = rng(24).standard_normal((2, 3, 2)), rng(25).standard_normal((2, 3, 2))
    layer = make_layer('Bias', 'bias_param { filler { value: 2 } }')
    bottom, top = run(layer, [x], in_place=True)
    np.testing.assert_allclose(top[0].data, x + 2)
    layer.blobs[0].diff[...] = 0
    dx = backward(layer, bottom, top, [dy])[0]
    np.testing.assert_allclose(dx, dy)
    np.testing.assert_allclose(layer.blobs[0].diff, dy.sum(axis=(0, 2)))


# -- MVN -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('across', [False, True])
def test_mvn_by_formula(across):
    x = rng(26).standard_normal((2, 3, 2, 2)) * 2 + 1
    layer = make_layer('MVN', f'mvn_param {{ across_channels: {str(across).lower()} eps: 0.01 }}')
    _, top = run(layer, [x])
    axes = (1, 2, 3) if across else (2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    np.testing.assert_allclose(top[0].data, (x - mean) / (std + f32(0.01)), rtol=1e-12)


def test_mvn_mean_only_by_hand():
    x = np.array([1.0, 2.0, 6.0, 3.0]).reshape(1, 1, 2, 2)
    _, top = run(make_layer('MVN', 'mvn_param { normalize_variance: false }'), [x])
    np.testing.assert_allclose(top[0].data.ravel(), [-2.0, -1.0, 3.0, 0.0])


@pytest.mark.parametrize('params', [
    '', 'mvn_param { across_channels: true }', 'mvn_param { normalize_variance: false }',
    'mvn_param { normalize_variance: false across_channels: true }'])
def test_mvn_gradient(params):
    check_layer_gradient(make_layer('MVN', params), [rng(27).standard_normal((2, 3, 2, 2))],
                         rtol=1e-5, atol=1e-6)


def test_mvn_in_place_matches_out_of_place():
    x, dy = rng(28).standard_normal((2, 2, 3)), rng(29).standard_normal((2, 2, 3))
    results = []
    for in_place in (False, True):
        layer = make_layer('MVN')
        bottom, top = run(layer, [x], in_place=in_place)
        results.append((top[0].data.copy(), backward(layer, bottom, top, [dy])[0]))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


# -- golden cases recorded with BVLC Caffe -------------------------------------------------------
@pytest.mark.parametrize('case', ['lrn_across5', 'lrn_within', 'batchnorm_global_stats',
                                  'batchnorm_train_stats', 'scale_bias_axis1',
                                  'scale_fixed_atonce', 'scale_two_bottoms', 'bias_layer'])
def test_golden(case):
    run_golden(case)
