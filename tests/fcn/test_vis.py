"""Tests of fcn/vis.py: the computed VOC palette, P-mode label images, colorize, overlay."""
import numpy as np
import pytest
from PIL import Image

from fcn import vis
from tests.conftest import require_shared


def shared_dir():
    """shared/ (skips when absent, fails under CI=true)."""
    return require_shared('data', 'voc-mini').parents[1]


def test_voc_palette_known_entries():
    p = vis.voc_palette()
    assert p.shape == (256, 3) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0]
    assert p[1].tolist() == [128, 0, 0]        # aeroplane
    assert p[2].tolist() == [0, 128, 0]        # bicycle
    assert p[3].tolist() == [128, 128, 0]
    assert p[8].tolist() == [64, 0, 0]         # cat: bit 3 -> bit 6 of red
    assert p[15].tolist() == [192, 128, 128]   # person
    assert p[20].tolist() == [0, 64, 128]      # tvmonitor
    assert p[255].tolist() == [224, 224, 192]  # VOC's border / ignore colour


def test_voc_palette_equals_a_naive_bitget_loop():
    # VOClabelcolormap.m, written out literally: an independent oracle for the vectorised rule
    def bitget(value, bit):
        return (value >> bit) & 1

    expected = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= bitget(c, 0) << (7 - j)
            g |= bitget(c, 1) << (7 - j)
            b |= bitget(c, 2) << (7 - j)
            c >>= 3
        expected.append([r, g, b])
    np.testing.assert_array_equal(vis.voc_palette(), expected)


def test_palette_any_count_is_the_same_rule_with_distinct_colours():
    full = vis.voc_palette()
    assert len({tuple(c) for c in full.tolist()}) == 256   # every index its own colour
    np.testing.assert_array_equal(vis.palette(21), full[:21])
    np.testing.assert_array_equal(vis.palette(60), full[:60])
    assert vis.palette(1).tolist() == [[0, 0, 0]]
    for bad in (0, 257):
        with pytest.raises(ValueError, match='1 to 256'):
            vis.palette(bad)


def test_voc_palette_equals_the_palette_of_real_voc_labels():
    path = next(iter(sorted((shared_dir() / 'data' / 'voc-mini' / 'VOC2012' /
                             'SegmentationClass').glob('*.png'))))
    with Image.open(path) as image:
        stored = np.array(image.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(vis.voc_palette(), stored)


def test_label_to_pil_round_trip_through_png(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 21, size=(5, 7)).astype(np.uint8)
    label[0, :3] = 255
    image = vis.label_to_pil(label)
    assert image.mode == 'P' and image.size == (7, 5)
    image.save(tmp_path / 'x.png')
    with Image.open(tmp_path / 'x.png') as back:
        assert back.mode == 'P'
        np.testing.assert_array_equal(np.array(back), label)
        pal = np.array(back.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(pal, vis.voc_palette())
    # its RGB rendering is the palette lookup
    np.testing.assert_array_equal(np.array(image.convert('RGB')), vis.colorize(label))


def test_label_to_pil_short_palette_is_extended_with_the_voc_rule():
    custom = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    image = vis.label_to_pil(np.array([[0, 1, 255]], np.int64), custom)
    pal = np.array(image.getpalette()).reshape(-1, 3)
    assert pal.shape == (256, 3)
    assert pal[0].tolist() == [10, 20, 30] and pal[1].tolist() == [40, 50, 60]
    assert pal[2].tolist() == [0, 128, 0] and pal[255].tolist() == [224, 224, 192]
    assert np.array(image).tolist() == [[0, 1, 255]]


@pytest.mark.parametrize('label, message', [
    (np.array([[0, 256]]), r'\[0, 255\]'),
    (np.array([[-1, 0]]), r'\[0, 255\]'),
    (np.zeros((2, 2, 3), np.uint8), '2-D'),
    (np.zeros((2, 2), np.float32), 'integers'),
])
def test_label_checks(label, message):
    with pytest.raises(ValueError, match=message):
        vis.label_to_pil(label)
    with pytest.raises(ValueError, match=message):
        vis.colorize(label)


def test_bad_palette():
    with pytest.raises(ValueError, match=r'\(k, 3\)'):
        vis.colorize(np.zeros((1, 1), np.uint8), np.zeros((3, 4), np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 255\]'):
        vis.colorize(np.zeros((1, 1), np.uint8), np.array([[0, 0, 300]]))


def test_colorize_values():
    rgb = vis.colorize(np.array([[0, 1], [15, 255]], np.uint8))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb.tolist() == [[[0, 0, 0], [128, 0, 0]], [[192, 128, 128], [224, 224, 192]]]


def test_overlay_math():
    image = np.full((2, 3, 3), 100, np.uint8)
    image[1, 2] = [10, 20, 255]
    label = np.array([[0, 1, 255], [15, 2, 1]], np.uint8)
    out = vis.overlay(image, label, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [50, 50, 50]       # (100 + 0) / 2
    assert out[0, 1].tolist() == [114, 50, 50]      # (100 + 128) / 2, (100 + 0) / 2
    assert out[0, 2].tolist() == [100, 100, 100]    # ignore: image unchanged
    assert out[1, 0].tolist() == [146, 114, 114]    # (100 + 192) / 2, (100 + 128) / 2
    assert out[1, 1].tolist() == [50, 114, 50]
    assert out[1, 2].tolist() == [69, 10, 128]      # (10+128)/2, (20+0)/2, round(127.5) = 128
    # alpha 0.25: 0.75 * 100 + 0.25 * 128 = 107
    assert vis.overlay(image, label, alpha=0.25)[0, 1].tolist() == [107, 75, 75]
    np.testing.assert_array_equal(vis.overlay(image, label, alpha=0.0), image)
    full = vis.overlay(image, label, alpha=1.0)
    np.testing.assert_array_equal(full[0, :2], vis.colorize(label)[0, :2])
    assert full[0, 2].tolist() == [100, 100, 100]
    # ignore=None colours the 255 pixels too
    assert vis.overlay(image, label, alpha=1.0, ignore=None)[0, 2].tolist() == [224, 224, 192]


def test_overlay_accepts_grey_and_rgba_and_checks_shapes():
    grey = np.full((1, 2), 100, np.uint8)
    label = np.array([[1, 255]], np.uint8)
    assert vis.overlay(grey, label).tolist() == [[[114, 50, 50], [100, 100, 100]]]
    rgba = np.full((1, 2, 4), 100, np.uint8)
    assert vis.overlay(rgba, label).tolist() == [[[114, 50, 50], [100, 100, 100]]]
    with pytest.raises(ValueError, match='differs from image shape'):
        vis.overlay(np.zeros((2, 2, 3), np.uint8), label)
    with pytest.raises(ValueError, match='alpha'):
        vis.overlay(grey, label, alpha=1.5)
