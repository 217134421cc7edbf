"""caffe.io: proto round trips, image loading, resizing, oversampling and the Transformer, with
expected values worked out by hand (pycaffe's own test_io cases included)."""
import io as stdio

import numpy as np
import pytest
from PIL import Image

import npcaffe as caffe
from npcaffe.proto import caffe_pb2


# ------------------------------------------------------------------------------------------
# proto / datum conversion
def test_caffe_io_is_the_module():
    import npcaffe.io
    assert caffe.io is npcaffe.io


def test_blobproto_legacy_new_scalar_and_missing_shape():
    # pycaffe's test_io: old format, new format, no shape, scalar
    old = caffe_pb2.BlobProto()
    old.data.extend([0.0] * 100)
    old.num, old.channels, old.height, old.width = 1, 1, 10, 10
    assert caffe.io.blobproto_to_array(old).shape == (1, 1, 10, 10)

    new = caffe_pb2.BlobProto()
    new.data.extend(range(6))
    new.shape.dim.extend([2, 3])
    arr = caffe.io.blobproto_to_array(new)
    assert arr.shape == (2, 3) and arr.dtype == np.float64
    assert arr.tolist() == [[0, 1, 2], [3, 4, 5]]

    no_shape = caffe_pb2.BlobProto()
    no_shape.data.extend([0.0] * 100)
    with pytest.raises(ValueError, match='100'):
        caffe.io.blobproto_to_array(no_shape)

    scalar = caffe_pb2.BlobProto()
    scalar.data.append(123)
    assert caffe.io.blobproto_to_array(scalar) == 123
    assert caffe.io.blobproto_to_array(scalar).shape == ()


def test_array_to_blobproto_round_trip_with_diff():
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((2, 3, 4)).astype(np.float32)
    diff = rng.standard_normal((2, 3, 4)).astype(np.float32)
    blob = caffe.io.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4] and not blob.HasField('num')
    # through the wire format and back: float32 values survive exactly
    again = caffe_pb2.BlobProto.FromString(blob.SerializeToString())
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(again), arr)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(again, return_diff=True), diff)
    with pytest.raises(ValueError, match='diff'):
        caffe.io.array_to_blobproto(arr, diff[:1])


def test_blobproto_double_data_is_read():
    blob = caffe_pb2.BlobProto()
    blob.double_data.extend([0.1, 0.2])
    blob.shape.dim.append(2)
    assert caffe.io.blobproto_to_array(blob).tolist() == [0.1, 0.2]


def test_blobprotovector_round_trip_and_pycaffe_spelling():
    arrays = [np.arange(6, dtype=np.float32).reshape(1, 2, 3), np.ones((4,), np.float32) * 7]
    s = caffe.io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(s, bytes)
    assert caffe.io.arraylist_to_blobprotovecor_str(arrays) == s       # pycaffe's own name
    vec = caffe_pb2.BlobProtoVector.FromString(s)
    assert len(vec.blobs) == 2 and list(vec.blobs[0].shape.dim) == [1, 2, 3]
    back = caffe.io.blobprotovector_str_to_arraylist(s)
    assert [b.shape for b in back] == [(1, 2, 3), (4,)]
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


def test_datum_uint8_float_and_label():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(arr, label=5)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 5)
    assert datum.data == arr.tobytes() and not datum.float_data
    back = caffe.io.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 9                                       # a writable array of its own

    farr = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    fdatum = caffe.io.array_to_datum(farr)
    assert not fdatum.data and len(fdatum.float_data) == 24
    np.testing.assert_allclose(caffe.io.datum_to_array(fdatum), farr.astype(np.float32))
    # pycaffe's test_label_none_size: no label given, no label field written
    with_label = caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1)
    without = caffe.io.array_to_datum(np.ones((10, 10, 3)))
    assert len(with_label.SerializeToString()) > len(without.SerializeToString())
    assert not without.HasField('label')
    with pytest.raises(ValueError, match='3-d'):
        caffe.io.array_to_datum(np.ones((2, 2)))


def test_encoded_datum_decodes_to_bgr_channels_first():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 10
    rgb[..., 1] = 20
    rgb[..., 2] = 30
    buf = stdio.BytesIO()
    Image.fromarray(rgb).save(buf, format='PNG')
    datum = caffe_pb2.Datum(channels=3, height=2, width=3, data=buf.getvalue(), encoded=True)
    arr = caffe.io.datum_to_array(datum)
    assert arr.shape == (3, 2, 3)
    assert arr[:, 0, 0].tolist() == [30, 20, 10]            # B, G, R as OpenCV decodes


# ------------------------------------------------------------------------------------------
# images
def _save(tmp_path, array, name, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return str(path)


def test_load_image_color_gray_alpha_and_16_bit(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [51, 102, 204]]], np.uint8)
    img = caffe.io.load_image(_save(tmp_path, rgb, 'rgb.png'))
    assert img.shape == (2, 2, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, rgb / 255.0, atol=1e-7)
    # color=False: skimage's rgb2gray weights 0.2125 R + 0.7154 G + 0.0721 B
    gray = caffe.io.load_image(_save(tmp_path, rgb, 'rgb2.png'), color=False)
    assert gray.shape == (2, 2, 1)
    assert gray[0, 0, 0] == pytest.approx(0.2125)
    assert gray[0, 1, 0] == pytest.approx(0.7154)
    assert gray[1, 1, 0] == pytest.approx((0.2125 * 51 + 0.7154 * 102 + 0.0721 * 204) / 255)

    lum = np.array([[0, 128], [255, 64]], np.uint8)
    path = _save(tmp_path, lum, 'gray.png')
    as_color = caffe.io.load_image(path)                     # gray repeated into 3 channels
    assert as_color.shape == (2, 2, 3)
    np.testing.assert_allclose(as_color[..., 2], lum / 255.0, atol=1e-7)
    as_gray = caffe.io.load_image(path, color=False)
    assert as_gray.shape == (2, 2, 1)
    np.testing.assert_allclose(as_gray[..., 0], lum / 255.0, atol=1e-7)

    rgba = np.dstack([rgb, np.full((2, 2), 7, np.uint8)])
    img = caffe.io.load_image(_save(tmp_path, rgba, 'rgba.png'))
    assert img.shape == (2, 2, 3)                            # alpha dropped
    np.testing.assert_allclose(img, rgb / 255.0, atol=1e-7)

    deep = np.array([[0, 65535], [32768, 1000]], np.uint16)
    img = caffe.io.load_image(_save(tmp_path, deep, 'deep.png'), color=False)
    assert img.shape == (2, 2, 1)
    np.testing.assert_allclose(img[..., 0], deep / 65535.0, atol=1e-7)


def test_load_image_palette_png(tmp_path):
    pal = Image.new('P', (2, 1))
    pal.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    pal.putdata([0, 1])
    path = tmp_path / 'pal.png'
    pal.save(path)
    img = caffe.io.load_image(str(path))
    assert img.shape == (1, 2, 3)
    np.testing.assert_allclose(img[0, 1], [1.0, 128 / 255.0, 0.0], atol=1e-7)


# Bilinear weights of one axis resized 2 -> 4 with half-pixel centres: output centres fall at
# -0.25, 0.25, 0.75, 1.25 of the input; beyond the border the image is zero (skimage's
# mode='constant', after pycaffe scaled the image to [0, 1]), so the edge outputs keep only
# 0.75 of their nearest pixel.
UP_2_TO_4 = np.array([[0.75, 0.00],
                      [0.75, 0.25],
                      [0.25, 0.75],
                      [0.00, 0.75]])


def test_resize_image_bilinear_by_hand():
    im = np.array([[0.0, 1.0], [2.0, 3.0]])[:, :, None]      # min 0: [0, 1]-scaling is linear
    out = caffe.io.resize_image(im, (4, 4))
    assert out.shape == (4, 4, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 0], UP_2_TO_4 @ im[:, :, 0] @ UP_2_TO_4.T, atol=1e-6)
    # the interior is plain bilinear: weights 0.25 / 0.75 on each axis
    np.testing.assert_allclose(out[1:3, 1:3, 0], [[0.75, 1.25], [1.75, 2.25]], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[3, 3, 0], 0.75 * 0.75 * 3, atol=1e-6)   # not 3
    # 4 -> 2: centres at 0.5 and 2.5, the means of neighbouring pairs
    im = np.arange(16.0).reshape(4, 4, 1)
    out = caffe.io.resize_image(im, (2, 2))
    np.testing.assert_allclose(out[:, :, 0], [[2.5, 4.5], [10.5, 12.5]], rtol=1e-6)
    # same size: unchanged
    np.testing.assert_allclose(caffe.io.resize_image(im, (4, 4)), im, rtol=1e-6)


def test_resize_image_border_blends_toward_the_image_minimum():
    # pycaffe scales to [0, 1] by the image's min and max, so the zero beyond the border is
    # the minimum: [2, 4] -> (2 + 2 * [0, 0.25, 0.75, 0.75])
    out = caffe.io.resize_image(np.array([[2.0, 4.0]])[:, :, None], (1, 4))
    np.testing.assert_allclose(out[0, :, 0], [2.0, 2.5, 3.5, 3.5], rtol=1e-6)
    # three channels share one min and max: a constant channel darkens at the border
    im = np.zeros((1, 2, 3))
    im[0, :, 0] = 5.0
    im[0, :, 1] = [0.0, 10.0]
    out = caffe.io.resize_image(im, (1, 4))
    np.testing.assert_allclose(out[0, :, 0], 10 * (UP_2_TO_4 @ [0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 0], [3.75, 5.0, 5.0, 3.75], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1], [0.0, 2.5, 7.5, 7.5], atol=1e-6)
    np.testing.assert_array_equal(out[0, :, 2], 0.0)
    # an H x W image is one channel
    flat = caffe.io.resize_image(np.array([[2.0, 4.0]]), (1, 4))
    assert flat.shape == (1, 4)
    np.testing.assert_allclose(flat[0], [2.0, 2.5, 3.5, 3.5], rtol=1e-6)


def test_resize_image_other_channel_counts_map_corners_to_corners():
    # pycaffe's scipy.ndimage.zoom branch (K not 1 or 3): output j samples j * (2 - 1) / (4 - 1)
    im = np.zeros((1, 2, 2))
    im[0, :, 0] = [2.0, 4.0]
    im[0, :, 1] = [0.0, -3.0]
    out = caffe.io.resize_image(im, (1, 4))
    assert out.shape == (1, 4, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0], [2.0, 8 / 3, 10 / 3, 4.0], rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1], [0.0, -1.0, -2.0, -3.0], atol=1e-6)
    near = caffe.io.resize_image(im, (1, 4), interp_order=0)   # rounds 0, 1/3, 2/3, 1
    np.testing.assert_array_equal(near[0, :, 0], [2.0, 2.0, 4.0, 4.0])
    const = caffe.io.resize_image(np.full((3, 3, 2), 0.7, np.float32), (5, 6))
    assert const.shape == (5, 6, 2) and (const == np.float32(0.7)).all()


def _spline_of_zero_extended(std, new_dims, order):
    """The definition skimage's resize implements: the spline of the image extended with
    zeros, sampled at (i + 0.5) * old / new - 0.5; computed on an explicitly zero-padded copy
    wide enough that its own border does not matter, clipped to [0, 1]."""
    from scipy import ndimage
    pad = 40
    rows = (np.arange(new_dims[0]) + 0.5) * std.shape[0] / new_dims[0] - 0.5 + pad
    cols = (np.arange(new_dims[1]) + 0.5) * std.shape[1] / new_dims[1] - 0.5 + pad
    grid = np.stack(np.meshgrid(rows, cols, indexing='ij'))
    padded = np.pad(std, pad)
    return np.clip(ndimage.map_coordinates(padded, grid, order=order), 0, 1)


@pytest.mark.parametrize('order', [2, 3, 4, 5])
def test_resize_image_spline_orders_use_the_zero_extended_image(order):
    rng = np.random.default_rng(order)
    im = rng.uniform(-3, 5, size=(5, 7, 3))                  # not in [0, 1]
    lo, hi = im.min(), im.max()
    out = caffe.io.resize_image(im, (11, 9), interp_order=order)
    assert out.shape == (11, 9, 3) and out.dtype == np.float32
    for k in range(3):
        expected = _spline_of_zero_extended((im[..., k] - lo) / (hi - lo), (11, 9), order)
        np.testing.assert_allclose(out[..., k], expected * (hi - lo) + lo, atol=1e-5)
    assert out.min() >= np.float32(lo) and out.max() <= np.float32(hi)   # clipped to the range


def test_resize_image_nearest_and_bad_order():
    # nearest: output pixel i takes input floor((i + 0.5) * old / new)
    near = caffe.io.resize_image(np.arange(3.0).reshape(1, 3, 1), (1, 6), interp_order=0)
    assert near[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2]
    const = caffe.io.resize_image(np.full((3, 3, 3), 0.7, np.float32), (5, 6))
    assert const.shape == (5, 6, 3) and (const == np.float32(0.7)).all()
    with pytest.raises(ValueError, match='interp_order'):
        caffe.io.resize_image(np.zeros((2, 2, 3)), (2, 2), interp_order=7)


def test_oversample_corners_center_and_mirrors():
    im = np.arange(5 * 6, dtype=np.float32).reshape(5, 6, 1)
    im2 = im + 100
    crops = caffe.io.oversample([im, im2], (3, 4))
    assert crops.shape == (20, 3, 4, 1) and crops.dtype == np.float32
    tops_lefts = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]    # centre: floor((5-3)/2), (6-4)/2
    for n, image in enumerate([im, im2]):
        for k, (t, l) in enumerate(tops_lefts):
            window = image[t:t + 3, l:l + 4]
            np.testing.assert_array_equal(crops[10 * n + k], window)
            np.testing.assert_array_equal(crops[10 * n + 5 + k], window[:, ::-1])
    # an odd margin: pycaffe's centre (2.0 - 1.5 = 0.5) truncates to 0
    crops = caffe.io.oversample(np.zeros((1, 4, 4, 2)), (3, 3))
    assert crops.shape == (10, 3, 3, 2)


# ------------------------------------------------------------------------------------------
# Transformer
def test_transformer_preprocess_by_hand():
    t = caffe.io.Transformer({'data': (1, 3, 2, 2)})
    t.set_transpose('data', (2, 0, 1))
    t.set_channel_swap('data', (2, 1, 0))
    t.set_raw_scale('data', 255)
    t.set_mean('data', np.array([10.0, 20.0, 30.0]))       # per channel, in BGR order
    t.set_input_scale('data', 0.5)
    image = np.zeros((2, 2, 3), np.float32)
    image[..., 0] = 0.2          # R
    image[..., 1] = 0.4          # G
    image[..., 2] = 1.0          # B
    image[1, 1] = [0.0, 0.0, 0.0]
    before = image.copy()
    out = t.preprocess('data', image)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    # channel 0 is B: (1.0 * 255 - 10) * 0.5 = 122.5; channel 1 G: (102 - 20) / 2 = 41;
    # channel 2 R: (51 - 30) / 2 = 10.5; the black pixel: -mean / 2
    np.testing.assert_allclose(out[:, 0, 0], [122.5, 41.0, 10.5], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 1], [-5.0, -10.0, -15.0], rtol=1e-6)
    np.testing.assert_array_equal(image, before)            # the caller's image is untouched
    back = t.deprocess('data', out[None])                    # a batch of one
    np.testing.assert_allclose(back, image, atol=1e-6)


def test_transformer_resizes_to_the_input_and_takes_elementwise_means():
    t = caffe.io.Transformer({'data': [1, 1, 4, 4]})
    t.set_transpose('data', (2, 0, 1))
    mean = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    t.set_mean('data', mean)
    image = np.array([[0.0, 1.0], [2.0, 3.0]])[:, :, None]
    out = t.preprocess('data', image)
    expected = caffe.io.resize_image(image, (4, 4)).transpose(2, 0, 1) - mean
    np.testing.assert_allclose(out, expected)
    t.set_mean('data', np.ones((4, 4)))                     # H x W mean: allowed
    np.testing.assert_allclose(t.preprocess('data', np.ones((4, 4, 1))), 0)


def test_transformer_resizes_a_mean_of_another_size_as_pycaffe():
    # python/classify.py: a 256 x 256 mean for a 227 x 227 input; here 4 x 4 for 2 x 2, where
    # bilinear shrinking takes the mean of each 2 x 2 block
    t = caffe.io.Transformer({'data': (1, 3, 2, 2)})
    mean = np.arange(48.0).reshape(3, 4, 4)
    t.set_mean('data', mean)
    blocks = np.array([[2.5, 4.5], [10.5, 12.5]])
    expected = np.stack([blocks + 16 * k for k in range(3)])
    np.testing.assert_allclose(t.mean['data'], expected, rtol=1e-6)
    t.set_transpose('data', (2, 0, 1))
    out = t.preprocess('data', np.zeros((2, 2, 3)))
    np.testing.assert_allclose(out, -expected, rtol=1e-6)
    # growing: the border blends toward the mean's minimum, as resize_image does
    t = caffe.io.Transformer({'data': (1, 1, 1, 4)})
    t.set_mean('data', np.array([[[2.0, 4.0]]]))
    np.testing.assert_allclose(t.mean['data'], [[[2.0, 2.5, 3.5, 3.5]]], rtol=1e-6)
    t.set_mean('data', np.array([[2.0, 4.0]]))                     # H x W for one channel
    np.testing.assert_allclose(t.mean['data'], [[2.0, 2.5, 3.5, 3.5]], rtol=1e-6)
    t.set_mean('data', np.full((1, 3, 3), 7.0))                    # constant: stays 7
    np.testing.assert_array_equal(t.mean['data'], np.full((1, 1, 4), 7.0))


def test_transformer_checks_like_pycaffe():
    t = caffe.io.Transformer({'data': (2, 3, 4, 5)})
    with pytest.raises(ValueError, match="'label' is not one of the net inputs"):
        t.set_raw_scale('label', 255)
    with pytest.raises(ValueError, match='transpose'):
        t.set_transpose('data', (1, 0))
    with pytest.raises(ValueError, match='channel swap'):
        t.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match='channels'):
        t.set_mean('data', np.zeros(4))
    with pytest.raises(ValueError, match=r'incompatible.*2 channels, not 3'):
        t.set_mean('data', np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r'incompatible.*1 channels, not 3'):
        t.set_mean('data', np.zeros((4, 5)))
    with pytest.raises(ValueError, match='invalid'):
        t.set_mean('data', np.zeros((1, 3, 4, 5)))
    with pytest.raises(ValueError, match='not one of'):
        t.preprocess('image', np.zeros((4, 5, 3)))
