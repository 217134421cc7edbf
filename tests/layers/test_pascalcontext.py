"""layers.pascalcontext: the 59-class mapping of PASCALContextSegDataLayer on a tiny dataset made
here in the VOC2010 + PASCAL-Context layout, against a mapping worked out by hand."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn.backend import caffe
from layers.images import DataError
from layers.pascalcontext import CONTEXT_MEAN, context_mapping, read_label_names

NET = """layer {{
  name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "layers.pascalcontext" layer: "PASCALContextSegDataLayer"
                  param_str: "{p}" }}
}}
"""
#: the 59 task names, as 59_labels.txt writes them (diningtable, bedcloth, clothes included)
TASK = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
        'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa',
        'train', 'tvmonitor', 'bag', 'bed', 'bench', 'book', 'building', 'cabinet', 'ceiling',
        'clothes', 'computer', 'cup', 'door', 'fence', 'floor', 'flower', 'food', 'grass',
        'ground', 'keyboard', 'light', 'mountain', 'mouse', 'curtain', 'platform', 'sign',
        'plate', 'road', 'rock', 'shelves', 'sidewalk', 'sky', 'snow', 'bedcloth', 'track',
        'tree', 'truck', 'wall', 'water', 'window', 'wood']
#: a full labelling: the task names (renamed as the full list spells them) in reverse, with
#: others interleaved, so that line number != task index everywhere
FULL = []
for _name in reversed(TASK):
    FULL += [{'diningtable': 'table', 'bedcloth': 'bedclothes', 'clothes': 'cloth'}.get(
        _name, _name), f'other{len(FULL)}']


def make_context(root, ids=('2008_000002', '2008_000003'), size=(4, 6), seed=0):
    """VOC2010 images and PASCAL-Context labels under ``root``; returns {id: (rgb, LabelMap)}."""
    rng = np.random.default_rng(seed)
    voc = root / 'pascal' / 'VOC2010'
    (voc / 'ImageSets' / 'Main').mkdir(parents=True)
    (voc / 'JPEGImages').mkdir()
    ctx = root / 'pascal-context'
    (ctx / 'trainval').mkdir(parents=True)
    (ctx / 'labels.txt').write_text(''.join(f'{k}: {n}\n' for k, n in enumerate(FULL, 1)))
    (ctx / '59_labels.txt').write_text(''.join(f'{k}: {n}\n' for k, n in enumerate(TASK, 1)))
    samples = {}
    for i in ids:
        rgb = rng.integers(0, 256, (size[0], size[1], 3), np.uint8)
        Image.fromarray(rgb).save(voc / 'JPEGImages' / f'{i}.jpg', format='PNG')
        label_map = rng.integers(1, len(FULL) + 1, size).astype(np.uint16)
        scipy.io.savemat(ctx / 'trainval' / f'{i}.mat', {'LabelMap': label_map})
        samples[i] = (rgb, label_map)
    for split in ('train', 'val'):
        (voc / 'ImageSets' / 'Main' / f'{split}.txt').write_text(''.join(i + '\n' for i in ids))
    return samples


def test_mapping_by_hand():
    # aeroplane (task 1) is the 59th name from the end: full line 2 * 59 - 1 = 117;
    # diningtable (task 11) is 'table', line 2 * (59 - 11) + 1 = 97; wood (59) is line 1
    mapping = context_mapping([n.replace(' ', '') for n in FULL],
                              [n.replace(' ', '') for n in TASK])
    assert mapping[0] == 117 and mapping[10] == 97 and mapping[58] == 1
    assert len(set(mapping.tolist())) == 59


def test_tops_equal_hand_computed(tmp_path):
    samples = make_context(tmp_path)
    proto = tmp_path / 'ctx.prototxt'
    params = dict(voc_dir=str(tmp_path / 'pascal'), context_dir=str(tmp_path / 'pascal-context'),
                  split='val')
    proto.write_text(NET.format(p=str(params).replace('"', '\\"')))
    net = caffe.Net(str(proto), caffe.TEST)
    for sample_id in ('2008_000002', '2008_000003'):
        net.forward()
        rgb, label_map = samples[sample_id]
        expected = (rgb[:, :, ::-1].astype(np.float32) - np.array(CONTEXT_MEAN, np.float32))
        np.testing.assert_array_equal(net.blobs['data'].data, expected.transpose(2, 0, 1)[None])
        # odd lines 2j - 1 hold task name 60 - j; even lines are not in the task: 0
        want = np.where(label_map % 2 == 1, 60 - (label_map.astype(np.int64) + 1) // 2, 0)
        np.testing.assert_array_equal(net.blobs['label'].data, want[None, None])
        assert net.blobs['label'].data.max() <= 59


def test_a_task_name_missing_from_the_full_list_is_named(tmp_path):
    make_context(tmp_path)
    labels = tmp_path / 'pascal-context' / 'labels.txt'
    labels.write_text(labels.read_text().replace(': table\n', ': desk\n'))
    proto = tmp_path / 'ctx.prototxt'
    params = dict(voc_dir=str(tmp_path / 'pascal'), context_dir=str(tmp_path / 'pascal-context'),
                  split='train')
    proto.write_text(NET.format(p=str(params).replace('"', '\\"')))
    with pytest.raises(DataError, match="labels.txt: the 59-class name 'table' is not in"):
        caffe.Net(str(proto), caffe.TRAIN)
    assert read_label_names(tmp_path / 'pascal-context' / '59_labels.txt')[15] == 'pottedplant'
