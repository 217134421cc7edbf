"""fcn.tiles: tiled segmentation equals the whole-image forward; the receptive field and
stride read from the deploy prototxt, worked out by hand for small nets."""
import numpy as np
import pytest

import nets
import npcaffe
from fcn import segment, tiles
from npcaffe import formats

CONV = 'layer {{ name: "{n}" type: "{t}" bottom: "{b}" top: "{n}" convolution_param {{ ' \
       'num_output: 2 kernel_size: {k} stride: {s} {extra} }} }}\n'
INPUT = 'layer { name: "data" type: "Input" top: "data" ' \
        'input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'


def test_geometry_by_hand(tmp_path):
    """conv 3/1 (r 3), pool 2/2 (r 4, s 2), conv 3/1 dilation 2 (k_eff 5: r 12), deconv 4/2
    (ceil(4/2) - 1 = 1 step of 2: r 14, s 1)."""
    text = INPUT + CONV.format(n='a', t='Convolution', b='data', k=3, s=1, extra='') + \
        'layer { name: "p" type: "Pooling" bottom: "a" top: "p" ' \
        'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n' + \
        CONV.format(n='c', t='Convolution', b='p', k=3, s=1, extra='dilation: 2') + \
        CONV.format(n='d', t='Deconvolution', b='c', k=4, s=2, extra='')
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    assert tiles.geometry(str(path)) == (14, 2)


def test_tile_windows_cover_the_image_once():
    boxes = tiles.tile_windows(70, 45, 32, 10, 8)
    seen = np.zeros((70, 45), int)
    for (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) in boxes:
        seen[y0:y1, x0:x1] += 1
        assert wy0 % 8 == 0 and wx0 % 8 == 0 and wy0 <= y0 and wy1 >= y1
        assert y0 - wy0 in (0, 16) and x0 - wx0 in (0, 16)      # the margin 10 rounded to 16
    assert (seen == 1).all()
    with pytest.raises(ValueError, match='multiple'):
        tiles.tile_windows(70, 45, 30, 10, 8)


@pytest.mark.parametrize('variant', ['fcn32s', 'fcn8s'])
def test_tiled_scores_equal_the_whole_image(tmp_path, variant):
    """A width-1/16 FCN with random weights on a 230x330 image cut into 64-pixel cores:
    the scores equal the whole-image forward within 1e-5 relative."""
    deploy = tmp_path / 'deploy.prototxt'
    formats.write_text(deploy, nets.fcn(variant, 5, None, 0.0625, input_shape=(1, 3, 64, 64)))
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.shape) * np.sqrt(
                2.0 / max(blob.count // blob.shape[0], 1))
    net.save(str(tmp_path / 'w.caffemodel'))
    seg = segment.Segmenter(deploy, tmp_path / 'w.caffemodel')
    rgb = rng.integers(0, 256, (230, 330, 3), dtype=np.uint8)
    whole = seg.scores(rgb)
    tiler = tiles.Tiler(seg, deploy, tile=64)
    assert tiler.stride == 32 and tiler.tile == 64
    assert len(tiles.tile_windows(230, 330, 64, tiler.field, 32)) > 4
    tiled = tiler.scores(rgb)
    assert tiled.shape == whole.shape
    error = np.abs(tiled - whole).max() / np.abs(whole).max()
    assert error <= 1e-5, error
    np.testing.assert_array_equal(tiler.label(rgb), tiled.argmax(axis=0))


def test_infer_tile_flag_writes_the_same_labels(tmp_path):
    """fcn infer --tile: the label PNG equals the untiled run's."""
    from PIL import Image
    deploy = tmp_path / 'deploy.prototxt'
    formats.write_text(deploy, nets.fcn('fcn32s', 5, None, 0.0625, input_shape=(1, 3, 64, 64)))
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(1)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.shape) * 0.1
    net.save(str(tmp_path / 'w.caffemodel'))
    image = tmp_path / 'in' / 'img.png'
    image.parent.mkdir()
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(image)
    labels = {}
    for extra in ([], ['--tile', '64']):
        out = tmp_path / f'out{len(extra)}'
        assert segment.main(['--deploy', str(deploy), '--weights', str(tmp_path / 'w.caffemodel'),
                             '--out', str(out), str(image)] + extra) == 0
        labels[len(extra)] = np.asarray(Image.open(out / 'img.png'))
    np.testing.assert_array_equal(labels[0], labels[2])
