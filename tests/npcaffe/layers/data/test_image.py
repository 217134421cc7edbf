"""OpenCV-equal image reading and resizing: cv::resize INTER_LINEAR against the raw records
Caffe's convert_imageset wrote (golden data_lmdb_raw, from the VOC images in shared/data),
libjpeg's luma for gray JPEG reads, the 2x INTER_AREA switch, and clear read errors."""
import numpy as np
import pytest

from npcaffe.layers.data import image
from npcaffe.proto import caffe_pb2
from tests.conftest import require_shared


def test_resize_equals_opencv_on_caffes_records():
    case = require_shared('golden', 'data', 'data_lmdb_raw')
    voc = require_shared('data', 'voc-mini', 'VOC2012', 'JPEGImages')
    golden = np.load(case / 'blobs.npz')
    names = [line.split()[0] for line in (case / 'images.txt').read_text().splitlines()]
    for i, name in enumerate(names):
        datum = caffe_pb2.Datum.FromString(golden[f'record/{i}/value'].tobytes())
        expected = np.frombuffer(datum.data, np.uint8).reshape(3, 40, 48)
        mine = image.to_chw(image.resize_linear(image.imread(voc / name), 40, 48))
        assert np.abs(mine.astype(int) - expected).max() <= 1, name
        assert (mine != expected).mean() < 0.01, name


def test_gray_jpeg_is_libjpegs_luma_not_an_rgb_conversion():
    case = require_shared('golden', 'data', 'imagedata_gray_nocrop')
    golden = np.load(case / 'blobs.npz')
    first = (case / 'list.txt').read_text().split()[0]
    gray = image.imread(case / first, 'gray')
    np.testing.assert_array_equal(gray[..., 0], golden['pass0/data/data'][0, 0])


def test_exact_half_size_averages_2x2_blocks():
    img = np.array([[0, 1, 10, 20], [2, 3, 30, 41]], np.uint8)[..., None]
    np.testing.assert_array_equal(image.resize_linear(img, 1, 2)[..., 0], [[2, 25]])


def test_same_size_is_a_copy_and_upscaling_interpolates():
    img = np.array([[0, 100]], np.uint8)[..., None]
    assert image.resize_linear(img, 1, 2)[..., 0].tolist() == [[0, 100]]
    assert image.resize_linear(img, 1, 4)[..., 0].tolist() == [[0, 25, 75, 100]]


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(image.ImageReadError, match="nope.jpg: no such file"):
        image.imread(tmp_path / 'nope.jpg')
    (tmp_path / 'bad.jpg').write_bytes(b'not an image')
    with pytest.raises(image.ImageReadError, match="bad.jpg: cannot decode"):
        image.imread(tmp_path / 'bad.jpg')


def test_colour_read_of_rgba_drops_alpha_and_unchanged_keeps_it(tmp_path):
    from PIL import Image
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    assert image.imread(tmp_path / 'a.png').tolist() == [[[0, 0, 200]] * 2] * 2
    assert image.imread(tmp_path / 'a.png', 'unchanged')[0, 0].tolist() == [0, 0, 200, 7]
