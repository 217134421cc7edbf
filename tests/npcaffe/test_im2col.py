"""Tests of npcaffe/im2col.py: im2col against a pixel-by-pixel definition, col2im as its exact
adjoint (both the per-offset and the phase-block paths), banded use, and the size formulas."""
import numpy as np
import pytest

from npcaffe import im2col as m


@pytest.fixture(params=['offsets', 'phases'])
def col2im_path(request, monkeypatch):
    """Run a test with col2im's per-offset adds, then with its phase blocks for every kernel."""
    if request.param == 'phases':
        monkeypatch.setattr(m, 'PHASE_MIN_OFFSETS', 1)
    return request.param

# (kernel, stride, pad, dilation)
GEOMETRIES = [
    ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 2), (2, 3), (1, 0), (1, 1)),
    ((5, 5), (2, 2), (2, 2), (1, 1)),
    ((3, 3), (1, 2), (2, 1), (2, 3)),     # dilation: per-offset col2im
    ((4, 4), (2, 2), (1, 1), (1, 1)),     # stride divides the kernel: phase blocks
    ((1, 1), (1, 1), (0, 0), (1, 1)),
    ((7, 5), (3, 2), (3, 0), (1, 1)),     # partial phase blocks
    ((2, 2), (3, 3), (0, 0), (1, 1)),     # stride > kernel
    ((16, 16), (8, 8), (4, 4), (1, 1)),   # FCN's upscore8 geometry (phase blocks by default)
]


def naive_im2col(img, kernel, stride, pad, dilation):
    """col[(c*kh + i)*kw + j, ho*Wo + wo] = padded[c, ho*sh + i*dh, wo*sw + j*dw], one by one."""
    c, h, w = img.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    ho = m.conv_out_size(h, kh, sh, ph, dh)
    wo = m.conv_out_size(w, kw, sw, pw, dw)
    padded = np.pad(img, ((0, 0), (ph, ph), (pw, pw)))
    col = np.zeros((c, kh, kw, ho, wo))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for y in range(ho):
                    for x in range(wo):
                        col[ci, i, j, y, x] = padded[ci, y * sh + i * dh, x * sw + j * dw]
    return col.reshape(c * kh * kw, ho * wo)


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_im2col_matches_definition(geometry):
    img = np.random.default_rng(0).standard_normal((3, 19, 17))
    col = m.im2col(img, *geometry)
    assert col.size > 0
    np.testing.assert_array_equal(col, naive_im2col(img, *geometry))


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_col2im_is_the_adjoint(geometry, col2im_path):
    """<im2col(x), c> == <x, col2im(c)> for random x and c."""
    rng = np.random.default_rng(1)
    img = rng.standard_normal((3, 19, 17))
    col = m.im2col(img, *geometry)
    c = rng.standard_normal(col.shape)
    back = m.col2im(c, img.shape, *geometry)
    assert back.shape == img.shape
    assert np.sum(col * c) == pytest.approx(np.sum(img * back), rel=1e-12)


def test_col2im_sums_overlaps(col2im_path):
    """Ones through a 3x3 kernel with stride 2: each image pixel gets the number of windows
    covering it -- along one axis of a 7-wide image with 3 windows (starts 0, 2, 4):
    1 1 2 1 2 1 1."""
    ones = np.ones((1 * 9, 3 * 3))
    back = m.col2im(ones, (1, 7, 7), (3, 3), (2, 2))
    per_axis = np.array([1, 1, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(back[0], np.outer(per_axis, per_axis))


@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_bands_equal_whole(geometry, col2im_path):
    """Writing / adding the columns in bands of output rows gives the whole-image result."""
    kernel, stride, pad, dilation = geometry
    rng = np.random.default_rng(2)
    h, w = 21, 18
    img = rng.standard_normal((2, h, w)).astype(np.float32)
    whole = m.im2col(img, *geometry)
    ho = m.conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
    wo = m.conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
    padded = m.padded_into(img, np.zeros((2, h + 2 * pad[0], w + 2 * pad[1]), np.float32), pad)
    shape = m.col2im_buffer_shape(2, padded.shape[1:], kernel, stride, dilation, (ho, wo))
    acc = np.zeros(shape, np.float32)
    cols = whole.reshape(2 * kernel[0] * kernel[1], ho, wo)
    for r0 in range(0, ho, 2):
        nr = min(2, ho - r0)
        band = np.empty((whole.shape[0], nr * wo), np.float32)
        m.im2col_rows(padded, band, kernel, stride, dilation, wo, r0, nr)
        np.testing.assert_array_equal(band, cols[:, r0:r0 + nr].reshape(band.shape))
        m.col2im_rows_add(band, acc, kernel, stride, dilation, wo, r0, nr)
    expected = m.col2im(whole, img.shape, *geometry)
    got = acc[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_float32_stays_float32():
    img = np.ones((2, 5, 5), np.float32)
    col = m.im2col(img, (3, 3), (1, 1), (1, 1))
    assert col.dtype == np.float32
    assert m.col2im(col, img.shape, (3, 3), (1, 1), (1, 1)).dtype == np.float32


@pytest.mark.parametrize('size, kernel, stride, pad, dilation, conv, deconv', [
    (5, 3, 1, 1, 1, 5, 5),
    (6, 3, 2, 1, 1, 3, 11),      # floor((6+2-3)/2)+1 = 3; 2*5+3-2 = 11
    (7, 3, 1, 0, 2, 3, 11),      # dilated extent 5: 7-5+1 = 3; 6+4+1 = 11
    (500, 3, 1, 100, 1, 698, 302),
    (2, 5, 1, 0, 1, -2, 6),      # kernel larger than the input: conv size <= 0
])
def test_output_sizes(size, kernel, stride, pad, dilation, conv, deconv):
    assert m.conv_out_size(size, kernel, stride, pad, dilation) == conv
    assert m.deconv_out_size(size, kernel, stride, pad, dilation) == deconv
