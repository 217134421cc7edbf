"""layers.siftflow: the tops of SIFTFlowSegDataLayer on a tiny dataset made here in SIFT Flow's
layout, against hand-computed expectations (the label shifts, void values, the float32 mean)."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn.backend import caffe
from layers.images import DataError
from layers.params import ParamError
from layers.siftflow import SCENES, SIFTFLOW_MEAN, geometric_label, semantic_label

NET = """layer {{
  name: "data" type: "Python" top: "data" top: "sem" top: "geo"
  python_param {{ module: "layers.siftflow" layer: "SIFTFlowSegDataLayer" param_str: "{p}" }}
}}
"""


def make_siftflow(root, ids=('coast_a', 'street_b'), size=(6, 5), seed=0):
    """SIFT Flow's layout under ``root`` (images stored losslessly: PNG bytes under the .jpg
    name, so that the expected pixels are exact; semantic labels 0..33, geometric -1..3).
    Returns {id: (rgb, raw semantic, raw geometric)}."""
    rng = np.random.default_rng(seed)
    h, w = size
    for sub in ('Images', 'SemanticLabels', 'GeoLabels'):
        (root / sub / SCENES).mkdir(parents=True, exist_ok=True)
    samples = {}
    for i in ids:
        rgb = rng.integers(0, 256, (h, w, 3), np.uint8)
        Image.fromarray(rgb).save(root / 'Images' / SCENES / f'{i}.jpg', format='PNG')
        sem = rng.integers(0, 34, (h, w)).astype(np.float64)
        sem[0, 0], sem[0, 1] = 0, 33
        geo = rng.integers(-1, 4, (h, w)).astype(np.int16)
        geo[0, 0], geo[0, 1], geo[0, 2] = -1, 0, 3
        scipy.io.savemat(root / 'SemanticLabels' / SCENES / f'{i}.mat', {'S': sem})
        scipy.io.savemat(root / 'GeoLabels' / SCENES / f'{i}.mat', {'S': geo})
        samples[i] = (rgb, sem, geo)
    (root / 'trainval.txt').write_text(''.join(i + '\n' for i in ids))
    (root / 'test.txt').write_text(ids[0] + '\n')
    return samples


def make_net(tmp_path, params, phase=caffe.TEST):
    proto = tmp_path / 'siftflow.prototxt'
    proto.write_text(NET.format(p=str(params).replace('"', '\\"')))
    return caffe.Net(str(proto), phase)


def test_tops_equal_hand_computed(tmp_path):
    samples = make_siftflow(tmp_path / 'sf')
    net = make_net(tmp_path, dict(siftflow_dir=str(tmp_path / 'sf'), split='trainval'))
    for sample_id in ('coast_a', 'street_b', 'coast_a'):         # list order, wrapping
        assert net.layers[0].current_id == sample_id
        net.forward()
        rgb, sem, geo = samples[sample_id]
        expected = (rgb[:, :, ::-1].astype(np.float32)
                    - np.array(SIFTFLOW_MEAN, np.float32)).transpose(2, 0, 1)[None]
        data = net.blobs['data'].data
        assert data.shape == (1, 3, 6, 5) and data.dtype == np.float32
        np.testing.assert_array_equal(data, expected)
        want_sem = np.where(sem == 0, 255, sem - 1)
        want_geo = np.where(geo <= 0, 255, geo - 1)
        np.testing.assert_array_equal(net.blobs['sem'].data, want_sem[None, None])
        np.testing.assert_array_equal(net.blobs['geo'].data, want_geo[None, None])
    assert net.blobs['sem'].data[0, 0, 0, :2].tolist() == [255, 32]
    assert net.blobs['geo'].data[0, 0, 0, :3].tolist() == [255, 255, 2]


def test_label_functions_by_hand():
    assert semantic_label(np.array([[0, 1, 33]])).tolist() == [[255, 0, 32]]
    assert geometric_label(np.array([[-1, 0, 1, 3]])).tolist() == [[255, 255, 0, 2]]
    with pytest.raises(DataError, match='x.mat: semantic label value.s. 34 outside 0..33'):
        semantic_label(np.array([[34]]), 'x.mat')
    with pytest.raises(DataError, match='geometric label value.s. -2'):
        geometric_label(np.array([[-2]]))


def test_three_tops_required_and_params_checked(tmp_path):
    make_siftflow(tmp_path / 'sf')
    proto = tmp_path / 'two.prototxt'
    proto.write_text(NET.replace('top: "geo"', '').format(
        p=str(dict(siftflow_dir=str(tmp_path / 'sf'), split='test')).replace('"', '\\"')))
    with pytest.raises(ParamError, match='needs three tops, data, sem and geo .got 2.'):
        caffe.Net(str(proto), caffe.TEST)
    with pytest.raises(ParamError, match="unknown parameter 'siftflow_root'"):
        make_net(tmp_path, dict(siftflow_root='x', split='test'))


def test_train_split_draws_at_random_with_the_seed(tmp_path):
    import random
    ids = tuple(f'img{i}' for i in range(5))
    make_siftflow(tmp_path / 'sf', ids)
    net = make_net(tmp_path, dict(siftflow_dir=str(tmp_path / 'sf'), split='trainval',
                                  seed=1337, prefetch=0), caffe.TRAIN)
    rng = random.Random(1337)
    expected = [ids[rng.randint(0, 4)] for _ in range(4)]
    got = []
    for _ in range(4):
        got.append(net.layers[0].current_id)
        net.forward()
    assert got == expected
