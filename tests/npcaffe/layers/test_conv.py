"""Tests of npcaffe/layers/conv.py (Convolution, Deconvolution): against pixel-by-pixel
definitions, hand-computed overlap sums, float64 gradient checks, parameter and shape errors,
and the golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe import filler
from npcaffe.blob import Blob
from npcaffe.errors import NetError, NotSupportedError, WeightShapeError
from npcaffe.layers import conv
from npcaffe.layers.base import TRAIN
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import backward, golden_tests, make_layer, run

GOLDEN = ['conv_k1', 'conv_k3_p1', 'conv_k5_s2_p2_g2', 'conv_dil2_nobias',
          'deconv_k3_s2_p1_bias', 'deconv_k4_s2']
FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv_layer(type_name, params, phase=TRAIN):
    """A Convolution/Deconvolution layer with gaussian weights and bias (seeded)."""
    filler.set_seed(0)
    return make_layer(type_name, f'convolution_param {{ {params} {FILLERS} }}', phase)


# -- definitions, pixel by pixel -----------------------------------------------------------------
def geometry(layer):
    return layer.kernel, layer.stride, layer.pad, layer.dilation


def reference_conv(x, w, b, group, kernel, stride, pad, dilation):
    """Cross-correlation by its definition, one output pixel at a time."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    cout = w.shape[0]
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cin_g, cout_g = c // group, cout // group
    out = np.zeros((n, cout, ho, wo))
    for o in range(cout):
        g = o // cout_g
        for y in range(ho):
            for z in range(wo):
                window = xp[:, g * cin_g:(g + 1) * cin_g,
                            y * sh:y * sh + dh * (kh - 1) + 1:dh,
                            z * sw:z * sw + dw * (kw - 1) + 1:dw]
                out[:, o, y, z] = np.sum(window * w[o], axis=(1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


def reference_deconv(x, w, b, group, kernel, stride, pad, dilation):
    """Transposed convolution by its definition: every input pixel scatters its weighted
    kernel into the (padded) output, which is then cropped by the pad."""
    n, cin, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    cout_g = w.shape[1]
    cout, cin_g = cout_g * group, cin // group
    hp, wp = sh * (h - 1) + dh * (kh - 1) + 1, sw * (wd - 1) + dw * (kw - 1) + 1
    out = np.zeros((n, cout, hp, wp))
    for ci in range(cin):
        g = ci // cin_g
        for y in range(h):
            for z in range(wd):
                for i in range(kh):
                    for j in range(kw):
                        out[:, g * cout_g:(g + 1) * cout_g, y * sh + i * dh, z * sw + j * dw] += \
                            x[:, ci, y, z, None] * w[ci, :, i, j]
    out = out[:, :, ph:hp - ph, pw:wp - pw]
    if b is not None:
        out += b[None, :, None, None]
    return out


CONV_CASES = [
    'num_output: 4 kernel_size: 3',
    'num_output: 4 kernel_size: 3 pad: 1',
    'num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2',
    'num_output: 3 kernel_size: 3 dilation: 2 bias_term: false',
    'num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0',
    'num_output: 2 kernel_size: 3 kernel_size: 1 stride: 1 stride: 2 pad: 0 pad: 1 '
    'dilation: 1 dilation: 2',
    'num_output: 4 kernel_size: 1',
    'num_output: 4 kernel_size: 1 group: 2 bias_term: false',
    'num_output: 4 kernel_size: 1 stride: 2',
    'num_output: 5 kernel_size: 5 stride: 3 pad: 2',
]


@pytest.mark.parametrize('params', CONV_CASES)
@pytest.mark.parametrize('band', [None, 1])
def test_convolution_matches_definition(params, band, monkeypatch):
    """Whole-image column buffer and one-row bands (band=1) both give the definition."""
    if band is not None:
        monkeypatch.setattr(conv, 'COL_BAND_ELEMENTS', band)
        monkeypatch.setattr(conv, 'BAND_MIN_COLUMNS', 1)
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 8))
    layer = conv_layer('Convolution', params)
    _, top = run(layer, [x])
    b = layer.blobs[1].data if layer.bias_term else None
    expected = reference_conv(x, layer.blobs[0].data, b, layer.group, *geometry(layer))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)


DECONV_CASES = [
    'num_output: 3 kernel_size: 3 stride: 2',
    'num_output: 3 kernel_size: 3 stride: 2 pad: 1',
    'num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2',
    'num_output: 2 kernel_size: 3 dilation: 2 bias_term: false',
    'num_output: 2 kernel_h: 4 kernel_w: 3 stride_h: 2 stride_w: 3',
    'num_output: 3 kernel_size: 8 stride: 4 pad: 2 bias_term: false',   # phase blocks
    'num_output: 3 kernel_size: 5 stride: 2',                            # partial blocks
    'num_output: 4 kernel_size: 1 group: 2',
    'num_output: 2 kernel_size: 16 stride: 8 pad: 4',                   # FCN's upscore8
]


@pytest.mark.parametrize('params', DECONV_CASES)
@pytest.mark.parametrize('band', [None, 1])
def test_deconvolution_matches_definition(params, band, monkeypatch):
    if band is not None:
        monkeypatch.setattr(conv, 'COL_BAND_ELEMENTS', band)
        monkeypatch.setattr(conv, 'BAND_MIN_COLUMNS', 1)
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 4))
    layer = conv_layer('Deconvolution', params)
    _, top = run(layer, [x])
    b = layer.blobs[1].data if layer.bias_term else None
    expected = reference_deconv(x, layer.blobs[0].data, b, layer.group, *geometry(layer))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)


# -- hand-computed -----------------------------------------------------------------------------
def test_deconvolution_overlap_sums_by_hand():
    """Caffe's test_deconvolution_layer style: ones in, ones weights, kernel 3, stride 2.

    A 3x3 input scatters 3x3 blocks of ones at (2h, 2w) into a 7x7 output. Along one axis,
    output position y is covered by the blocks starting at 0 (y 0-2), 2 (y 2-4), 4 (y 4-6):
    counts 1 1 2 1 2 1 1. The 2-D sum is the outer product: 4 where windows overlap in both
    directions (y, x in {2, 4}), 2 on the overlap rows/columns, 1 elsewhere; times the 2 input
    channels, plus the bias 0.5. With pad 1 the border row/column is cut: counts 1 2 1 2 1.
    """
    counts = np.array([1, 1, 2, 1, 2, 1, 1])
    for pad, sl in ((0, slice(None)), (1, slice(1, -1))):
        layer = make_layer('Deconvolution', f'convolution_param {{ num_output: 1 kernel_size: 3 '
                           f'stride: 2 pad: {pad} weight_filler {{ type: "constant" value: 1 }} '
                           f'bias_filler {{ type: "constant" value: 0.5 }} }}')
        _, top = run(layer, [np.ones((1, 2, 3, 3))])
        expected = 2 * np.outer(counts[sl], counts[sl]) + 0.5
        np.testing.assert_array_equal(top[0].data[0, 0], expected)
    assert expected[1, 1] == 8.5          # 4 overlapping windows x 2 channels + bias


def test_convolution_by_hand():
    """A 2x2 kernel of ones over 0..8 in a 3x3 image: window sums 0+1+3+4 = 8, 12, 20, 24;
    with pad 1 the corner windows see only their single in-image pixel."""
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    layer = make_layer('Convolution', 'convolution_param { num_output: 1 kernel_size: 2 '
                       'weight_filler { type: "constant" value: 1 } }')
    _, top = run(layer, [x])
    np.testing.assert_array_equal(top[0].data[0, 0], [[8, 12], [20, 24]])
    layer = make_layer('Convolution', 'convolution_param { num_output: 1 kernel_size: 2 pad: 1 '
                       'stride: 3 weight_filler { type: "constant" value: 1 } }')
    _, top = run(layer, [x])
    # outputs 2x2 at padded starts 0, 3: windows rows/cols {-1,0} and {2,3}
    np.testing.assert_array_equal(top[0].data[0, 0], [[0, 2], [6, 8]])


# -- gradients ------------------------------------------------------------------------------------
GRAD_CONV = [
    'num_output: 3 kernel_size: 3 pad: 1',
    'num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2',
    'num_output: 2 kernel_size: 2 dilation: 2 bias_term: false',
    'num_output: 2 kernel_h: 3 kernel_w: 1 stride_w: 2 stride_h: 1 pad_w: 1 pad_h: 0',
    'num_output: 4 kernel_size: 1 group: 2',
]


@pytest.mark.parametrize('params', GRAD_CONV)
def test_convolution_gradient(params):
    x = np.random.default_rng(2).standard_normal((2, 4, 5, 6))
    check_layer_gradient(conv_layer('Convolution', params), [x])


GRAD_DECONV = [
    'num_output: 3 kernel_size: 3 stride: 2 pad: 1',
    'num_output: 2 kernel_size: 4 stride: 2 bias_term: false',
    'num_output: 4 kernel_size: 3 stride: 2 group: 2',
    'num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_w: 1 pad_h: 0 '
    'dilation: 2',
    'num_output: 2 kernel_size: 1',
]


@pytest.mark.parametrize('params', GRAD_DECONV)
def test_deconvolution_gradient(params):
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 4))
    check_layer_gradient(conv_layer('Deconvolution', params), [x])


def test_gradient_in_bands(monkeypatch):
    """Banded backward (bands of one row, weight diff summed over bands) is still exact."""
    monkeypatch.setattr(conv, 'COL_BAND_ELEMENTS', 1)
    monkeypatch.setattr(conv, 'BAND_MIN_COLUMNS', 1)
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 5))
    check_layer_gradient(conv_layer('Convolution', 'num_output: 2 kernel_size: 3 pad: 1'), [x])
    check_layer_gradient(conv_layer('Deconvolution', 'num_output: 2 kernel_size: 3 stride: 2'),
                         [x])


@pytest.mark.parametrize('type_name', ['Convolution', 'Deconvolution'])
def test_parameter_diffs_accumulate(type_name):
    """Two backward passes without clearing double the parameter diffs (Caffe's +=); the bottom
    diff is overwritten; param_propagate_down False leaves the weight diff alone."""
    x = np.random.default_rng(5).standard_normal((2, 2, 4, 4))
    layer = conv_layer(type_name, 'num_output: 2 kernel_size: 3 stride: 2 pad: 1')
    bottom, top = run(layer, [x])
    dy = np.random.default_rng(6).standard_normal(top[0].shape)
    first = backward(layer, bottom, top, [dy])[0]
    wd, bd = layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * wd)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * bd)
    np.testing.assert_allclose(bottom[0].diff, first)
    np.testing.assert_allclose(bd, dy.sum(axis=(0, 2, 3)))
    layer.param_propagate_down = [False, True]
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * wd)
    np.testing.assert_allclose(layer.blobs[1].diff, 3 * bd)


def test_several_bottoms_share_the_weights():
    rng = np.random.default_rng(7)
    x0, x1 = rng.standard_normal((2, 1, 3, 5, 5))
    layer = conv_layer('Convolution', 'num_output: 2 kernel_size: 3')
    _, top = run(layer, [x0, x1], num_tops=2)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    for x, t in ((x0, top[0]), (x1, top[1])):
        np.testing.assert_allclose(t.data, reference_conv(x, w, b, 1, *geometry(layer)),
                                   rtol=1e-12, atol=1e-12)


def test_reshape_to_new_sizes():
    """The buffers kept on the layer follow input size changes (larger, then smaller)."""
    layer = conv_layer('Convolution', 'num_output: 2 kernel_size: 3 pad: 2 stride: 2')
    rng = np.random.default_rng(8)
    bottom, top = run(layer, [rng.standard_normal((1, 3, 4, 4))])
    for shape in ((2, 3, 9, 7), (1, 3, 3, 5)):
        x = rng.standard_normal(shape)
        bottom[0].reshape(shape)
        bottom[0].data[...] = x
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        expected = reference_conv(x, layer.blobs[0].data, layer.blobs[1].data, 1,
                                  *geometry(layer))
        np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('type_name', ['Convolution', 'Deconvolution'])
@pytest.mark.parametrize('kernel', [1, 3])
def test_float32_in_float32_out(type_name, kernel):
    x = np.random.default_rng(9).standard_normal((1, 2, 6, 6))
    layer = conv_layer(type_name, f'num_output: 2 kernel_size: {kernel} stride: 2')
    bottom, top = run(layer, [x], dtype=np.float32)
    assert layer.blobs[0].dtype == np.float32 and layer.blobs[1].dtype == np.float32
    assert top[0].data.dtype == np.float32
    backward(layer, bottom, top, [np.ones(top[0].shape, np.float32)])
    assert bottom[0].diff.dtype == np.float32 and layer.blobs[0].diff.dtype == np.float32


# -- errors ---------------------------------------------------------------------------------------
def test_kernel_larger_than_padded_input():
    layer = make_layer('Convolution', 'convolution_param { num_output: 1 kernel_size: 5 pad: 1 }',
                       name='conv_big')
    with pytest.raises(NetError) as err:
        run(layer, [np.zeros((1, 1, 2, 8))])
    message = str(err.value)
    for part in ("'conv_big'", 'height 2', 'pad 1', 'kernel 5'):
        assert part in message


def test_deconvolution_negative_size():
    layer = make_layer('Deconvolution', 'convolution_param { num_output: 1 kernel_size: 2 '
                       'pad: 3 }', name='up')
    with pytest.raises(NetError, match="'up'.*pad 3"):
        run(layer, [np.zeros((1, 1, 2, 2))])


@pytest.mark.parametrize('params, error, text', [
    ('num_output: 2 kernel_size: 3 axis: 2', NotSupportedError, 'axis'),
    ('num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3', NotSupportedError,
     'kernel_size'),
    ('num_output: 3 kernel_size: 3 group: 2', NetError, 'group'),
    ('kernel_size: 3', NetError, 'num_output'),
    ('num_output: 2', NetError, 'kernel_size'),
    ('num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3', NetError, 'kernel_h'),
    ('num_output: 2 kernel_h: 3', NetError, 'kernel_w'),
    ('num_output: 2 kernel_size: 3 stride: 0', NetError, 'stride'),
])
def test_bad_parameters(params, error, text):
    layer = make_layer('Convolution', f'convolution_param {{ {params} }}')
    with pytest.raises(error, match=text):
        run(layer, [np.zeros((1, 4, 6, 6))])


def test_five_axis_bottom_not_supported():
    layer = make_layer('Convolution', 'convolution_param { num_output: 2 kernel_size: 3 }')
    with pytest.raises(NotSupportedError, match='2-D'):
        run(layer, [np.zeros((1, 2, 4, 4, 4))])


def test_given_weights_are_checked():
    layer = make_layer('Convolution', 'convolution_param { num_output: 2 kernel_size: 3 }')
    layer.blobs.add_blob(2, 3, 3, 3)
    layer.blobs.add_blob(2)
    with pytest.raises(WeightShapeError, match=r'\(2, 4, 3, 3\)'):
        run(layer, [np.zeros((1, 4, 6, 6))])


def test_channel_change_after_setup():
    layer = conv_layer('Convolution', 'num_output: 2 kernel_size: 1')
    bottom, top = run(layer, [np.zeros((1, 3, 4, 4))])
    bottom[0].reshape(1, 5, 4, 4)
    with pytest.raises(NetError, match='3 input channels'):
        layer.reshape(bottom, top)


def test_in_place_refused():
    layer = conv_layer('Convolution', 'num_output: 2 kernel_size: 1')
    b = Blob((1, 2, 3, 3), np.float64)
    layer.setup([b], [b])
    with pytest.raises(NetError, match='in place'):
        layer.reshape([b], [b])


test_golden_direct, test_golden_net = golden_tests(GOLDEN)


# -- the faster paths (Winograd, flipped conv^T, weight-gradient orientation, threads) ----------
FAST_CASES = [
    'num_output: 4 kernel_size: 3 pad: 1',                  # Winograd forward and conv^T
    'num_output: 3 kernel_size: 3 bias_term: false',        # pad 0: conv^T pads by 2
    'num_output: 5 kernel_size: 3 pad: 2',                  # larger output than input
    'num_output: 4 kernel_size: 3 stride: 2 pad: 1',        # stride 2: im2col + col2im
    'num_output: 2 kernel_size: 3 dilation: 2 pad: 2',      # dilated: flipped, not Winograd
]


@pytest.fixture(params=[1, 3], ids=['one-thread', 'three-threads'])
def threads(request):
    from npcaffe import parallel
    before = parallel.num_threads()
    parallel.set_num_threads(request.param)
    yield request.param
    parallel.set_num_threads(before)


def use_compiled(flag, monkeypatch):
    """Winograd F(4x4)'s transforms by the compiled kernels (Numba is in the test extra) or,
    with False, on the NumPy path, for one test."""
    from npcaffe import winograd_jit
    monkeypatch.setattr(winograd_jit, '_enabled', flag)
    assert (winograd_jit.kernels() is not None) == flag


#: (Winograd tile, compiled transforms): F(2x2) has only the NumPy path.
TILE_PATHS = [(2, False), (4, False), (4, True)]
TILE_PATH_IDS = ['F2', 'F4-numpy', 'F4-compiled']


@pytest.mark.parametrize('tile, jit', TILE_PATHS, ids=TILE_PATH_IDS)
@pytest.mark.parametrize('params', FAST_CASES)
@pytest.mark.parametrize('shape', [(2, 4, 9, 8), (1, 3, 4, 7), (1, 2, 3, 3)])
def test_winograd_and_threads_match_definition(params, shape, tile, jit, threads,
                                               monkeypatch):
    """Winograd F(tile x tile, 3x3) forced on (any channel count), one-row bands (many pieces
    for the workers), F(4x4) with either transforms:
    forward against the definition, backward against finite differences."""
    use_compiled(jit, monkeypatch)
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_CHANNELS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_POSITIONS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_TILES', ((0, tile),))
    monkeypatch.setattr(conv, 'WINOGRAD_BAND_ELEMENTS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_BAND_MIN_TILES', 1)
    monkeypatch.setattr(conv, 'COL_BAND_ELEMENTS', 1)
    monkeypatch.setattr(conv, 'BAND_MIN_COLUMNS', 1)
    x = np.random.default_rng(7).standard_normal(shape)
    layer = conv_layer('Convolution', params)
    _, top = run(layer, [x])
    b = layer.blobs[1].data if layer.bias_term else None
    expected = reference_conv(x, layer.blobs[0].data, b, layer.group, *geometry(layer))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)
    if shape == (1, 3, 4, 7):
        check_layer_gradient(conv_layer('Convolution', params), [x])


@pytest.mark.parametrize('transposed_below', [0, 10**6])
def test_weight_gradient_orientations_agree(transposed_below, monkeypatch):
    """dW = dy @ col^T and dW^T = col @ dy^T give the same accumulated diff."""
    monkeypatch.setattr(conv, 'WEIGHT_GEMM_TRANSPOSED_BELOW', transposed_below)
    check_layer_gradient(conv_layer('Convolution', 'num_output: 3 kernel_size: 3 stride: 2'),
                         [np.random.default_rng(8).standard_normal((2, 3, 6, 5))])


def test_flipped_conv_transpose_only_where_it_saves_work():
    """fc6-like (7x7, no pad, a small map): the zero-padded full convolution would be larger
    than the column side, so conv^T stays GEMM + col2im; 3x3 pad 1 runs flipped."""
    big = conv_layer('Convolution', 'num_output: 2 kernel_size: 7')
    run(big, [np.zeros((1, 2, 9, 9))])
    assert big._flipped_geometry() is None
    same = conv_layer('Convolution', 'num_output: 2 kernel_size: 3 pad: 1')
    run(same, [np.zeros((1, 2, 9, 9))])
    assert same._flipped_geometry() == ((3, 3), (1, 1), (1, 1), (1, 1), (9, 9))


@pytest.mark.parametrize('tile, jit, bound', [(2, False, 2e-6), (4, False, 1e-5), (4, True, 1e-5)],
                         ids=TILE_PATH_IDS)
def test_winograd_float32_close_to_direct(tile, jit, bound, monkeypatch):
    """FCN-like magnitudes in float32 (inputs ~50, weights ~0.1, many channels): Winograd
    within ``bound`` of the largest output of the direct (im2col) result, far inside the
    golden tolerance (1e-4). Measured against the float64 product: F(2x2) 3.3e-7, F(4x4)
    4.4e-6 (float32 im2col + GEMM: 1.8e-7)."""
    from npcaffe import winograd
    from npcaffe.im2col import im2col
    use_compiled(jit, monkeypatch)
    variant = winograd.VARIANTS[tile]
    rng = np.random.default_rng(9)
    c, m, hw = 512, 8, (13, 11)
    x = rng.standard_normal((c,) + hw, dtype=np.float32) * 50
    w = rng.standard_normal((m, c, 3, 3), dtype=np.float32) * 0.1
    direct = (w.reshape(m, -1).astype(np.float64) @ im2col(x, (3, 3), pad=(1, 1)).astype(
        np.float64)).reshape((m,) + hw)
    out = np.empty(direct.shape, np.float32)
    th, tw = winograd.tiles(hw, variant)
    work = [np.empty(n, np.float32) for n in winograd.band_scratch_sizes(c, m, th, tw, variant)]
    winograd.conv_band(x, (1, 1), winograd.transform_weights(w, variant), out, 0, th, *work,
                       variant)
    error = np.abs(out - direct).max() / np.abs(direct).max()
    assert error <= bound, f"F({tile}x{tile}, 3x3): {error:.2g}"


@pytest.mark.parametrize('tile', [2, 4])
def test_winograd_transforms_reproduce_a_kernel(tile):
    """A^T [(G g G^T) * (B^T d B)] A is the 3x3 correlation of one a x a tile, by hand: a
    kernel with a single 1 at (1, 2) shifts the tile by (1, 2)."""
    from npcaffe import winograd
    variant = winograd.VARIANTS[tile]
    a = variant.a
    d = np.arange(a * a, dtype=np.float64).reshape(a, a)
    g = np.zeros((3, 3))
    g[1, 2] = 1
    at, bt, gm = (np.asarray(mat, np.float64) for mat in (variant.at, variant.bt, variant.g))
    y = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    np.testing.assert_allclose(y, d[1:1 + tile, 2:2 + tile], atol=1e-12)


@pytest.mark.parametrize('case', ['fcn32s_tiny', 'fcn8s_tiny'])
@pytest.mark.parametrize('tile, jit', TILE_PATHS, ids=TILE_PATH_IDS)
def test_winograd_on_every_3x3_layer_matches_caffe(case, tile, jit, monkeypatch):
    """The tiny FCNs with Winograd forced onto every 3x3 stride-1 convolution (forward, and the
    flipped conv^T of backward) against BVLC Caffe's recording, within FORMAT.md's
    tolerances. Measured worst relative errors, forward / backward: F(2x2) 8e-7 / 2.3e-6,
    F(4x4) 3.0e-6 / 1.9e-5 (tolerances 1e-4 / 1e-3)."""
    from tests.golden import run_golden_case
    use_compiled(jit, monkeypatch)
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_CHANNELS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_POSITIONS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_TILES', ((0, tile),))
    calls = []
    original = conv._BaseConvolution._winograd
    monkeypatch.setattr(conv._BaseConvolution, '_winograd', staticmethod(
        lambda *args, **kw: calls.append(1) or original(*args, **kw)))
    worst = run_golden_case(case, replay_max_pool_routing=True)
    assert calls, "Winograd never ran"
    assert worst['backward'] < 1e-4


def test_test_phase_keeps_winograd_weights_until_they_change(monkeypatch):
    """A TEST-phase layer transforms its weights once and reuses them; weights written in
    place (as a pycaffe script does) are seen at the next forward; a TRAIN-phase layer keeps
    nothing between passes."""
    from npcaffe import winograd
    from npcaffe.layers.base import TEST
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_CHANNELS', 1)
    monkeypatch.setattr(conv, 'WINOGRAD_MIN_POSITIONS', 1)
    transforms = []
    original = winograd.transform_weights
    monkeypatch.setattr(winograd, 'transform_weights',
                        lambda *args, **kw: transforms.append(1) or original(*args, **kw))
    x = np.random.default_rng(3).standard_normal((1, 2, 7, 6))
    layer = conv_layer('Convolution', 'num_output: 3 kernel_size: 3 pad: 1', phase=TEST)
    bottom, top = run(layer, [x])                       # transforms the weights

    def forward_matches_definition():
        layer.forward(bottom, top)
        expected = reference_conv(x, layer.blobs[0].data, layer.blobs[1].data, 1,
                                  *geometry(layer))
        np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)

    first = len(transforms)
    assert first > 0
    forward_matches_definition()
    forward_matches_definition()
    assert len(transforms) == first                     # reused
    layer.blobs[0].data[0, 1, 2, 0] += 1.0              # in place
    forward_matches_definition()
    assert len(transforms) > first                      # transformed again
    trained = conv_layer('Convolution', 'num_output: 3 kernel_size: 3 pad: 1', phase=TRAIN)
    run(trained, [x])
    assert trained._winograd_u == {}
    layer.keep_derived = False                          # as in a net with reuse_memory
    forward_matches_definition()
    assert layer._winograd_u == {}
