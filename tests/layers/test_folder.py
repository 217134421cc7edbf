"""layers.folder.FolderSegDataLayer on tiny datasets generated in tmp_path.

Images are PNG (lossless) where values are compared, so the expected blobs are computed from the
arrays written, independently of the loader: BGR, minus mean, C x H x W.
"""
import random

import numpy as np
import pytest
from PIL import Image

from fcn.backend import caffe
from layers.images import DataError

MEAN = (104.00699, 116.66877, 122.67892)
NET = """layer {{
  name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "layers.folder" layer: "FolderSegDataLayer" param_str: "{param_str}" }}
}}
"""


def make_net(tmp_path, params, phase=caffe.TEST):
    proto = tmp_path / 'net.prototxt'
    param_str = str(params).replace('\\', '\\\\').replace('"', '\\"')
    proto.write_text(NET.format(param_str=param_str))
    return caffe.Net(str(proto), phase)


def expected_data(rgb):
    """(1, 3, H, W) float32 of an (H, W, 3) uint8 RGB array, as Caffe input."""
    bgr = rgb[:, :, ::-1].astype(np.float64) - np.array(MEAN)
    return bgr.astype(np.float32).transpose(2, 0, 1)[np.newaxis]


@pytest.fixture
def dataset(tmp_path):
    """ROOT/images/{a,b,c}.png with P/L-mode labels ROOT/labels/*.png (4 classes, 255 ignore),
    ROOT/train.txt = b, c; an image without label (d.png) that 'every pair' leaves out."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'data'
    (root / 'images').mkdir(parents=True)
    (root / 'labels').mkdir()
    arrays = {}
    for name, (h, w), mode in (('a', (5, 7), 'P'), ('b', (6, 4), 'L'), ('c', (3, 3), 'P')):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = rng.integers(0, 4, (h, w), dtype=np.uint8)
        label[0, 0] = 255
        Image.fromarray(rgb).save(root / 'images' / f'{name}.png')
        im = Image.fromarray(label, mode='L')
        if mode == 'P':
            im = im.convert('P')
            im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
        im.save(root / 'labels' / f'{name}.png')
        assert Image.open(root / 'labels' / f'{name}.png').mode == mode
        arrays[name] = (rgb, label)
    Image.fromarray(rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)).save(root / 'images' / 'd.png')
    (root / 'train.txt').write_text('b\nc\n')
    return root, arrays


def params(root, **kw):
    return {'root': str(root), 'num_classes': 4, 'mean': MEAN, **kw}


def run(net, n):
    out = []
    for _ in range(n):
        sample_id = net.layers[0].current_id
        net.forward()
        out.append((sample_id, net.blobs['data'].data.copy(), net.blobs['label'].data.copy()))
    return out


def test_every_pair_in_name_order_with_exact_values(tmp_path, dataset):
    root, arrays = dataset
    net = make_net(tmp_path, params(root))
    results = run(net, 4)
    assert [r[0] for r in results] == ['a', 'b', 'c', 'a']       # d has no label
    for sample_id, data, label in results:
        rgb, lab = arrays[sample_id]
        np.testing.assert_array_equal(data, expected_data(rgb))
        np.testing.assert_array_equal(label, lab[np.newaxis, np.newaxis].astype(np.float32))
    assert results[0][2][0, 0, 0, 0] == 255                        # the ignore value passes


@pytest.mark.parametrize('split', ['train', 'train.txt', 'ABS'])
def test_split_by_name_or_path(tmp_path, dataset, split):
    root, _ = dataset
    split = str(root / 'train.txt') if split == 'ABS' else split
    net = make_net(tmp_path, params(root, split=split))
    assert [r[0] for r in run(net, 3)] == ['b', 'c', 'b']


def test_explicit_folders_and_extension(tmp_path, dataset):
    root, arrays = dataset
    (root / 'images' / 'b.jpg').write_bytes(b'')      # other extensions are not looked at
    net = make_net(tmp_path, {'image_dir': str(root / 'images'), 'label_dir': str(root / 'labels'),
                              'split': str(root / 'train.txt'), 'image_ext': 'png',
                              'num_classes': 4, 'mean': MEAN})
    sample_id, data, _ = run(net, 1)[0]
    np.testing.assert_array_equal(data, expected_data(arrays[sample_id][0]))


def test_random_order_in_train_phase_follows_seed(tmp_path, dataset):
    root, _ = dataset
    ids = ['a', 'b', 'c']
    net = make_net(tmp_path, params(root, seed=11), caffe.TRAIN)
    order = [r[0] for r in run(net, 8)]
    reference = random.Random(11)
    assert order == [ids[reference.randint(0, 2)] for _ in range(8)]
    # the same params in the TEST phase read the list in order
    net = make_net(tmp_path, params(root, seed=11), caffe.TEST)
    assert [r[0] for r in run(net, 3)] == ids


def test_jpeg_images(tmp_path, dataset):
    root, _ = dataset
    yy, xx = np.mgrid[0:5, 0:7]
    rgb = np.stack([20 * xx + 60, 30 * yy + 40, 10 * (xx + yy) + 90], -1).astype(np.uint8)
    Image.fromarray(rgb).save(root / 'images' / 'a.jpg', quality=95)
    (root / 'images' / 'a.png').unlink()
    (root / 'one.txt').write_text('a\n')
    net = make_net(tmp_path, params(root, split='one'))
    data = run(net, 1)[0][1]
    decoded = np.array(Image.open(root / 'images' / 'a.jpg'))
    np.testing.assert_array_equal(data, expected_data(decoded))
    assert np.abs(data - expected_data(rgb)).mean() < 8         # it is that picture


# ------------------------------------------------------------------------------------------
# errors: each names the file and the value

def test_rgb_label_is_refused_with_a_pointer_to_the_converter(tmp_path, dataset):
    root, _ = dataset
    bad = root / 'labels' / 'b.png'
    Image.new('RGB', (4, 6), (128, 0, 0)).save(bad)
    with pytest.raises(ValueError) as err:
        make_net(tmp_path, params(root, split='train'))
    assert str(bad) in str(err.value)
    assert 'RGB-coloured' in str(err.value)
    assert 'fcn labels convert' in str(err.value)


def test_label_value_out_of_range_names_file_and_value(tmp_path, dataset):
    root, _ = dataset
    bad = root / 'labels' / 'c.png'
    label = np.zeros((3, 3), np.uint8)
    label[1, 1] = 7
    Image.fromarray(label, mode='L').save(bad)
    net = make_net(tmp_path, params(root, split='train'))   # b loads fine
    with pytest.raises(ValueError) as err:
        net.forward()       # reshape of the second sample reads c.png
        net.forward()
    assert str(bad) in str(err.value)
    assert 'label value 7 outside [0, 4)' in str(err.value)
    assert '1 pixels' in str(err.value)


def test_ignore_label_none_makes_255_an_error(tmp_path, dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match=r'a\.png: label value 255 outside \[0, 4\)'):
        make_net(tmp_path, params(root, ignore_label=None))


def test_size_mismatch_names_both_files_and_sizes(tmp_path, dataset):
    root, _ = dataset
    Image.fromarray(np.zeros((2, 3), np.uint8), mode='L').save(root / 'labels' / 'a.png')
    with pytest.raises(ValueError) as err:
        make_net(tmp_path, params(root))
    message = str(err.value)
    assert str(root / 'images' / 'a.png') in message and 'is 7x5' in message
    assert str(root / 'labels' / 'a.png') in message and 'is 3x2' in message


def test_listed_image_that_does_not_exist_is_named(tmp_path, dataset):
    root, _ = dataset
    (root / 'bad.txt').write_text('b\nzebra\n')
    with pytest.raises(ValueError, match=r'images/zebra\.\{jpg,jpeg,png'):
        make_net(tmp_path, params(root, split='bad'))
    with pytest.raises(ValueError, match=r'images/zebra\.png does not exist'):
        make_net(tmp_path, params(root, split='bad', image_ext='.png'))


def test_listed_image_without_label_is_named(tmp_path, dataset):
    root, _ = dataset
    (root / 'nolabel.txt').write_text('d\n')
    with pytest.raises(ValueError, match=r'labels/d\.png does not exist'):
        make_net(tmp_path, params(root, split='nolabel'))


def test_empty_split_is_an_error(tmp_path, dataset):
    root, _ = dataset
    (root / 'empty.txt').write_text('\n  \n')
    with pytest.raises(ValueError, match=r'empty\.txt: the split list is empty'):
        make_net(tmp_path, params(root, split='empty'))


def test_missing_split_is_named(tmp_path, dataset):
    root, _ = dataset
    with pytest.raises(ValueError, match=r"split 'val': no split list at .*val\.txt"):
        make_net(tmp_path, params(root, split='val'))


def test_no_pairs_at_all_is_an_error(tmp_path, dataset):
    root, _ = dataset
    for label in (root / 'labels').iterdir():
        label.unlink()
    with pytest.raises(ValueError, match=r'no image in .*images has a label'):
        make_net(tmp_path, params(root))


def test_unreadable_jpeg_is_named(tmp_path, dataset):
    root, _ = dataset
    (root / 'images' / 'b.png').unlink()
    bad = root / 'images' / 'b.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 this is not a JPEG')
    with pytest.raises(ValueError) as err:
        make_net(tmp_path, params(root, split='train'))
    assert f'{bad}: cannot read the image' in str(err.value)


def test_ambiguous_images_need_image_ext(tmp_path, dataset):
    root, arrays = dataset
    Image.fromarray(arrays['a'][0]).save(root / 'images' / 'a.bmp')
    with pytest.raises(ValueError, match=r"several images for 'a' \(a\.bmp, a\.png\)"):
        make_net(tmp_path, params(root))
    net = make_net(tmp_path, params(root, image_ext='.bmp'))
    np.testing.assert_array_equal(run(net, 1)[0][1], expected_data(arrays['a'][0]))


@pytest.mark.parametrize('given, pattern', [
    ({'num_classes': 4, 'mean': MEAN}, r"give 'root' .* or both 'image_dir' and 'label_dir'"),
    ({'root': 'R', 'mean': MEAN}, r"missing required parameter 'num_classes'"),
    ({'root': 'R', 'num_classes': 0, 'mean': MEAN}, r"'num_classes': expected an integer >= 1"),
    ({'root': 'R', 'num_classes': 4, 'mean': MEAN, 'ignore': 255},
     r"unknown parameter 'ignore' \(did you mean 'ignore_label'\?\); known parameters: root, "
     r"image_dir, label_dir, split, num_classes, ignore_label, image_ext, mean, randomize, "
     r"seed, prefetch"),
])
def test_parameter_errors(tmp_path, dataset, given, pattern):
    root, _ = dataset
    given = {k: (str(root) if v == 'R' else v) for k, v in given.items()}
    with pytest.raises(ValueError, match=pattern):
        make_net(tmp_path, given)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match=r'nowhere/images: the image folder does not exist'):
        make_net(tmp_path, params(tmp_path / 'nowhere'))


@pytest.mark.parametrize('prefetch', [0, 2])
def test_a_saved_position_continues_the_sequence_exactly(tmp_path, dataset, prefetch):
    """get_state between two forwards and set_state on a fresh layer (the same split and
    seed): the new layer delivers what the old one would have, samples and random draws."""
    import json
    root, _ = dataset
    net = make_net(tmp_path, params(root, seed=5, prefetch=prefetch), caffe.TRAIN)
    run(net, 3)
    state = json.loads(json.dumps(net.layers[0].get_state()))     # as the snapshot stores it
    expected = [r[0] for r in run(net, 6)]
    fresh = make_net(tmp_path, params(root, seed=5, prefetch=prefetch), caffe.TRAIN)
    fresh.layers[0].set_state(state)
    assert [r[0] for r in run(fresh, 6)] == expected
    ids = ['a', 'b', 'c']
    reference = random.Random(5)
    assert expected == [ids[reference.randint(0, 2)] for _ in range(9)][3:]


def test_a_saved_position_from_another_split_is_refused(tmp_path, dataset):
    root, _ = dataset
    net = make_net(tmp_path, params(root), caffe.TRAIN)
    with pytest.raises(DataError, match='does not fit this split of 3 samples'):
        net.layers[0].set_state({'upcoming': [7], 'rng': net.layers[0].get_state()['rng']})


def test_check_labels_reads_only_headers_and_names_an_rgb_label(tmp_path, dataset):
    root, _ = dataset
    net = make_net(tmp_path, params(root), caffe.TRAIN)
    net.layers[0].check_labels()                                   # a clean dataset: silent
    Image.new('RGB', (4, 4), (128, 0, 0)).save(root / 'labels' / 'c.png')
    with pytest.raises(DataError, match=r"c\.png: the label is an RGB-coloured image"):
        net.layers[0].check_labels()
