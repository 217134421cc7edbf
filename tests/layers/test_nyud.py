"""layers.nyud: the color, depth, HHA and label tops of NYUDSegDataLayer on a tiny dataset made
here in the prepared NYUDv2 layout, against hand-computed expectations."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn.backend import caffe
from layers.images import DataError
from layers.nyud import HHA_MEAN, LOG_DEPTH_MEAN, NYUD_MEAN
from layers.params import ParamError

NET = """layer {{
  name: "data" type: "Python" {tops}
  python_param {{ module: "layers.nyud" layer: "NYUDSegDataLayer" param_str: "{p}" }}
}}
"""


def make_nyud(root, ids=('5001', '5002'), size=(5, 7), seed=0):
    """The prepared NYUDv2 layout under ``root``; returns {id: (rgb, depth, hha, raw label)}."""
    rng = np.random.default_rng(seed)
    h, w = size
    for sub in ('data/images', 'data/depth', 'data/hha', 'segmentation'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    samples = {}
    for i in ids:
        rgb = rng.integers(0, 256, (h, w, 3), np.uint8)
        depth = rng.integers(1, 10000, (h, w)).astype(np.uint16)     # 16-bit PNG
        hha = rng.integers(0, 256, (h, w, 3), np.uint8)
        label = rng.integers(0, 41, (h, w)).astype(np.uint8)
        label[0, 0], label[0, 1] = 0, 40
        Image.fromarray(rgb).save(root / 'data' / 'images' / f'img_{i}.png')
        Image.fromarray(depth).save(root / 'data' / 'depth' / f'img_{i}.png')
        Image.fromarray(hha).save(root / 'data' / 'hha' / f'img_{i}.png')
        scipy.io.savemat(root / 'segmentation' / f'img_{i}.mat', {'segmentation': label})
        samples[i] = (rgb, depth, hha, label)
    for split in ('trainval', 'test'):
        (root / f'{split}.txt').write_text(''.join(i + '\n' for i in ids))
    return samples


def make_net(tmp_path, params, phase=caffe.TEST, tops=None):
    tops = params['tops'] if tops is None else tops
    proto = tmp_path / 'nyud.prototxt'
    proto.write_text(NET.format(tops=' '.join(f'top: "{t}"' for t in tops),
                                p=str(params).replace('"', '\\"')))
    return caffe.Net(str(proto), phase)


def test_every_top_equals_hand_computed(tmp_path):
    samples = make_nyud(tmp_path / 'nyud')
    tops = ['label', 'hha', 'depth', 'color']                      # any order
    net = make_net(tmp_path, dict(nyud_dir=str(tmp_path / 'nyud'), split='test', tops=tops))
    for sample_id in ('5001', '5002'):
        net.forward()
        rgb, depth, hha, label = samples[sample_id]
        color = (rgb[:, :, ::-1].astype(np.float32) - np.array(NYUD_MEAN, np.float32))
        np.testing.assert_array_equal(net.blobs['color'].data, color.transpose(2, 0, 1)[None])
        logd = np.log(depth.astype(np.float32)) - np.float32(LOG_DEPTH_MEAN)
        assert net.blobs['depth'].data.shape == (1, 1, 5, 7)
        np.testing.assert_array_equal(net.blobs['depth'].data, logd[None, None])
        want_hha = (hha.astype(np.float32) - np.array(HHA_MEAN, np.float32))  # no swap
        np.testing.assert_array_equal(net.blobs['hha'].data, want_hha.transpose(2, 0, 1)[None])
        want = np.where(label == 0, 255, label.astype(np.int64) - 1)
        np.testing.assert_array_equal(net.blobs['label'].data, want[None, None])
        assert net.blobs['label'].data[0, 0, 0, :2].tolist() == [255, 39]


def test_zero_depth_and_bad_labels_name_the_file(tmp_path):
    make_nyud(tmp_path / 'nyud')
    Image.fromarray(np.zeros((5, 7), np.uint16)).save(tmp_path / 'nyud/data/depth/img_5001.png')
    with pytest.raises(DataError, match='img_5001.png: 35 pixels of depth <= 0'):
        make_net(tmp_path, dict(nyud_dir=str(tmp_path / 'nyud'), split='test',
                                tops=['depth'], prefetch=0))    # the first reshape reads it
    scipy.io.savemat(tmp_path / 'nyud/segmentation/img_5001.mat',
                     {'segmentation': np.full((5, 7), 41, np.uint8)})
    with pytest.raises(DataError, match='img_5001.mat: label value.s. 41 outside 0..40'):
        make_net(tmp_path, dict(nyud_dir=str(tmp_path / 'nyud'), split='test',
                                tops=['color', 'label'], prefetch=0))


def test_tops_are_checked(tmp_path):
    make_nyud(tmp_path / 'nyud')
    base = dict(nyud_dir=str(tmp_path / 'nyud'), split='test')
    with pytest.raises(ParamError, match="unknown top.s. 'rgb'"):
        make_net(tmp_path, dict(base, tops=['rgb', 'label']))
    with pytest.raises(ParamError, match='needs three tops, color, hha and label .got 2.'):
        make_net(tmp_path, dict(base, tops=['color', 'hha', 'label']), tops=['color', 'hha'])
