"""Bad input and faults (issue 8): every case ends in one message that names what is wrong,
and nothing already written is lost.

One test (or one parametrized case) per bullet of the issue, each through the API (a specific
exception type) and through the command-line tool that meets it (``error: ...`` on stderr, a
non-zero exit, no traceback). Everything runs on tiny nets (FCN-8s at width 1/64 on 24x32
images, or hand-written prototxts) so that the file stays fast.
"""
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nets
import npcaffe
from fcn import segment, vis
from fcn import train as fcn_train
from npcaffe import formats
from npcaffe.errors import (ModelFileError, NetError, PrototxtError, SnapshotError,
                            TrainingDivergedError, UnknownLayerTypeError, WeightShapeError)
from npcaffe.proto import caffe_pb2
from npcaffe.solver import get_solver
from tests.conftest import ROOT, wait_for

SHAPE = (1, 3, 24, 32)          # N, C, H, W of every tiny image
WIDTH = 1 / 64
MEAN = (104.00699, 116.66877, 122.67892)
CHILD_ENV = dict(os.environ, PYTHONPATH=str(ROOT))


# ------------------------------------------------------------------------------------------
# helpers
def error_line(capsys):
    """The first stderr line of a tool run in-process: ``error: ...``, and no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith('error: '), err
    assert 'Traceback' not in err
    return lines[0]


def assert_names(message, *words):
    for word in words:
        assert word in message, (word, message)


def random_weights(deploy, path, seed=0):
    """Save normal(0, 0.1) parameters for the net ``deploy`` at ``path``."""
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 0.1, blob.shape)
    net.save(str(path))
    return path


def write_image(path, seed=0, size=SHAPE[2:]):
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def write_label(path, seed=0, classes=3, size=SHAPE[2:]):
    label = np.random.default_rng(seed + 100).integers(0, classes, size).astype(np.uint8)
    vis.label_to_pil(label, vis.palette(max(classes, 21))).save(path)
    return path


def make_folder_dataset(root, train=('a0',), val=('a0', 'a1')):
    """ROOT/images/a{0,1,2}.png (24x32 RGB), ROOT/labels/a*.png (P mode, classes 0..2),
    ROOT/train.txt and ROOT/val.txt: the layout of layers.folder."""
    (root / 'images').mkdir(parents=True)
    (root / 'labels').mkdir()
    for i in range(3):
        write_image(root / 'images' / f'a{i}.png', i)
        write_label(root / 'labels' / f'a{i}.png', i)
    (root / 'train.txt').write_text(''.join(f'{s}\n' for s in train))
    (root / 'val.txt').write_text(''.join(f'{s}\n' for s in val))
    return root


def make_voc_tree(root):
    """A VOC year folder with two samples (JPEG images, P-mode labels) in train.txt."""
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        write_image(root / 'JPEGImages' / f'v{i}.jpg', i)
        write_label(root / 'SegmentationClass' / f'v{i}.png', i, classes=21)
    (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('v0\nv1\n')
    return root


def make_project(tmp_path, **dataset):
    """A folder dataset and the FCN-8s (width 1/64, 3 classes) nets and solver for it, as
    ``python -m nets`` writes them, made quick and deterministic: no Dropout, base_lr 1e-4,
    momentum 0.9, no solver-side testing, a seed. Returns (solver path, dataset root)."""
    root = make_folder_dataset(tmp_path / 'data', **dataset)
    net_dir = tmp_path / 'net'
    data = nets.data_sources(folder_dir=root, num_classes=3)
    nets.generate('fcn8s', net_dir, num_classes=3, width=WIDTH, data=data, input_shape=SHAPE)
    train = formats.read_text(net_dir / 'train.prototxt', caffe_pb2.NetParameter())
    keep = [layer for layer in train.layer if layer.type != 'Dropout']
    del train.layer[:]
    train.layer.extend(keep)
    formats.write_text(net_dir / 'train.prototxt', train)
    s = formats.read_text(net_dir / 'solver.prototxt', caffe_pb2.SolverParameter())
    s.base_lr, s.momentum, s.display, s.snapshot, s.random_seed = 1e-4, 0.9, 0, 0, 1
    s.test_interval, s.test_initialization = 10 ** 6, False
    formats.write_text(net_dir / 'solver.prototxt', s)
    return net_dir / 'solver.prototxt', root


def solve_args(solver, out, *extra, max_iter=2):
    """solve.py's arguments for the tiny project; without --weights its all-zero layers (no
    fillers, as the reference nets) are allowed: these tests are about other things."""
    fresh = [] if '--weights' in extra or '--resume' in extra else ['--allow-fresh-layers']
    return ['--solver', str(solver), '--out', str(out), '--max-iter', str(max_iter),
            '--score-every', '1', '--val-images', '2', *fresh, *extra]


def read_params(path):
    return {(name, i): blob.data.copy()
            for name, _, blobs in formats.read_caffemodel(path).layers()
            for i, blob in enumerate(blobs)}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Deploy nets and weights: FCN-8s (1/64) for 3 classes and for 5 classes, the weights of
    another net (InnerProduct 'ip1'), and weights holding only conv1_1 of the 3-class net."""
    d = tmp_path_factory.mktemp('tiny')
    deploy = d / 'deploy.prototxt'
    formats.write_text(deploy, nets.fcn('fcn8s', 3, None, WIDTH, input_shape=SHAPE))
    deploy5 = d / 'deploy5.prototxt'
    formats.write_text(deploy5, nets.fcn('fcn8s', 5, None, WIDTH, input_shape=SHAPE))
    other = d / 'other.prototxt'
    other.write_text('layer { name: "data" type: "Input" top: "data" '
                     'input_param { shape { dim: 1 dim: 4 } } }\n'
                     'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" '
                     'inner_product_param { num_output: 2 } }\n')
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    conv1 = d / 'conv1.prototxt'
    conv1.write_text(f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ '
                     f'{" ".join(f"dim: {v}" for v in SHAPE)} }} }} }}\n'
                     f'layer {{ name: "conv1_1" type: "Convolution" bottom: "data" top: "c" '
                     f'convolution_param {{ num_output: '
                     f'{net.params["conv1_1"][0].data.shape[0]} kernel_size: 3 }} }}\n')
    image = write_image(d / 'img.png')
    return dict(dir=d, deploy=deploy, weights=random_weights(deploy, d / 'w.caffemodel'),
                deploy5=deploy5, weights5=random_weights(deploy5, d / 'w5.caffemodel'),
                other=random_weights(other, d / 'other.caffemodel'),
                partial=random_weights(conv1, d / 'conv1.caffemodel'), image=image,
                layers_with_params=len(net.params))


def infer_main(tiny, tmp_path, weights=None, deploy=None, images=None, *extra):
    return segment.main(['--deploy', str(deploy or tiny['deploy']),
                       '--weights', str(weights or tiny['weights']),
                       '--out', str(tmp_path / 'seg'),
                       *[str(p) for p in (images or [tiny['image']])], *extra])


# ------------------------------------------------------------------------------------------
# prototxt
INPUT = ('layer { name: "data" type: "Input" top: "data" '
         'input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n')
PROTOTXT_CASES = {
    'syntax error': (
        'layer { name: "r" type: "ReLU" bottom: "data" top "r" }\n', PrototxtError,
        [r'bad\.prototxt:2:\d+: ', 'Expected ":"']),
    'unknown layer type': (
        'layer { name: "c" type: "Convolutoin" bottom: "data" top: "c" }\n',
        UnknownLayerTypeError, ["'Convolutoin'", "layer 'c'", "Did you mean 'Convolution'",
                                'Known types']),
    'unknown layer type, wrong case': (
        'layer { name: "r" type: "relu" bottom: "data" top: "r" }\n',
        UnknownLayerTypeError, ["'relu'", "Did you mean 'ReLU'"]),
    'unknown field': (
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" relu_param { slop: 1 } }\n',
        PrototxtError, [r'bad\.prototxt:2:\d+: ', 'no field named "slop"']),
    'bottom nothing produces': (
        'layer { name: "r" type: "ReLU" bottom: "dta" top: "r" }\n', NetError,
        ["layer 'r'", "bottom 'dta'", 'no earlier layer produces', 'known blobs: data']),
    'top produced twice': (
        'layer { name: "a" type: "ReLU" bottom: "data" top: "x" }\n'
        'layer { name: "b" type: "ReLU" bottom: "data" top: "x" }\n', NetError,
        ["top 'x'", "layer 'b'", "already produced by layer 'a'", 'in place']),
    'wrong number of bottoms': (
        'layer { name: "e" type: "Eltwise" bottom: "data" top: "e" }\n', NetError,
        ["layer 'e'", 'Eltwise', 'at least 2 bottom blobs', '1 is given']),
    'wrong number of tops': (
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" top: "s" }\n', NetError,
        ["layer 'r'", 'ReLU', 'exactly 1 top blob', '2 are given']),
    'crop that cannot fit': (
        'layer { name: "big" type: "Input" top: "big" '
        'input_param { shape { dim: 1 dim: 3 dim: 10 dim: 10 } } }\n'
        'layer { name: "crop" type: "Crop" bottom: "data" bottom: "big" top: "c" '
        'crop_param { axis: 2 offset: 1 } }\n', NetError,
        ["layer 'crop'", 'cannot crop 10 values at offset 1', 'size 8', '(1, 3, 8, 8)',
         '(1, 3, 10, 10)', 'the input is too small', 'padding or crop offset is wrong']),
    'convolution kernel larger than the padded input': (
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "c" '
        'convolution_param { num_output: 2 kernel_size: 11 pad: 1 } }\n', NetError,
        ["layer 'conv'", 'Convolution', 'input height 8 with pad 1', 'too small for kernel 11']),
    'pooling kernel larger than the padded input': (
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "p" '
        'pooling_param { pool: MAX kernel_size: 11 pad: 1 } }\n', NetError,
        ["layer 'pool'", 'Pooling', 'input height 8 with pad 1', 'too small for kernel 11']),
}


@pytest.mark.parametrize('case', PROTOTXT_CASES)
def test_prototxt_error_names_file_line_and_layer(case, tiny, tmp_path, capsys):
    body, exc_type, words = PROTOTXT_CASES[case]
    bad = tmp_path / 'bad.prototxt'
    bad.write_text(INPUT + body)
    with pytest.raises(exc_type) as info:
        npcaffe.Net(str(bad), npcaffe.TEST)
    message = str(info.value)
    assert message.startswith(f'{bad}:'), message
    for word in words:
        assert re.search(word if word.startswith('bad') else re.escape(word), message), \
            (word, message)
    # the same sentence from the command line
    assert infer_main(tiny, tmp_path, deploy=bad) == 1
    assert error_line(capsys) == f'error: {message}'


def test_in_place_tops_are_allowed(tmp_path):
    good = tmp_path / 'good.prototxt'
    good.write_text(INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n')
    assert npcaffe.Net(str(good), npcaffe.TEST).outputs == ['data']


# ------------------------------------------------------------------------------------------
# caffemodel
def bad_caffemodels(tiny, folder):
    """{kind: (path, words the message must hold)}: empty, truncated, a JPEG."""
    empty = folder / 'empty.caffemodel'
    empty.write_bytes(b'')
    raw = tiny['weights'].read_bytes()
    truncated = folder / 'truncated.caffemodel'
    truncated.write_bytes(raw[:len(raw) // 2])
    jpeg = folder / 'photo.caffemodel'
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(jpeg, format='JPEG')
    return {'empty': (empty, ['empty.caffemodel', 'empty']),
            'truncated': (truncated, ['truncated.caffemodel', 'truncated']),
            'jpeg': (jpeg, ['photo.caffemodel', 'JPEG'])}


@pytest.mark.parametrize('kind', ['empty', 'truncated', 'jpeg'])
def test_bad_caffemodel_names_the_file_and_what_it_is(kind, tiny, tmp_path, capsys):
    path, words = bad_caffemodels(tiny, tmp_path)[kind]
    with pytest.raises(ModelFileError) as info:
        npcaffe.Net(str(tiny['deploy']), str(path), npcaffe.TEST)
    assert_names(str(info.value), *words)
    net = npcaffe.Net(str(tiny['deploy']), npcaffe.TEST)
    with pytest.raises(ModelFileError) as info:
        net.copy_from(str(path))
    assert_names(str(info.value), *words)
    assert infer_main(tiny, tmp_path, weights=path) == 1
    assert_names(error_line(capsys), *words)
    solver, _ = make_project(tmp_path)
    assert fcn_train.main(solve_args(solver, tmp_path / 'run', '--weights', str(path))) == 1
    assert_names(error_line(capsys), *words)
    assert not (tmp_path / 'run' / 'scores.jsonl').exists()       # failed before training


def test_weights_of_the_wrong_shape_name_layer_shapes_and_rename_hint(tiny, tmp_path, capsys,
                                                                      caplog):
    shapes = ['(3, 64, 1, 1) in the net', '5 x 64 x 1 x 1 in the weights']
    with pytest.raises(WeightShapeError) as info:
        npcaffe.Net(str(tiny['deploy']), str(tiny['weights5']), npcaffe.TEST)
    message = str(info.value)
    assert_names(message, 'w5.caffemodel', "layer 'score_fr'", *shapes, 'rename it')
    net = npcaffe.Net(str(tiny['deploy']), npcaffe.TEST)
    with pytest.raises(WeightShapeError, match='score_fr'):
        net.copy_from(str(tiny['weights5']))
    assert infer_main(tiny, tmp_path, weights=tiny['weights5']) == 1
    assert error_line(capsys) == f'error: {message}'
    # solve.py transplants what fits and says which same-named layers did not fit
    solver, _ = make_project(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert fcn_train.main(solve_args(solver, tmp_path / 'run', '--weights',
                                     str(tiny['weights5']), max_iter=0)) == 0
    warning = next(r.getMessage() for r in caplog.records if 'do not fit' in r.getMessage())
    assert_names(warning, 'score_fr/0 5x64x1x1 -> 3x64x1x1', 'rename it in the prototxt')


def test_weights_of_another_net_say_how_many_layers_matched(tiny, tmp_path, caplog, capsys):
    n = tiny['layers_with_params']
    with caplog.at_level(logging.INFO, logger='npcaffe.net'):
        net = npcaffe.Net(str(tiny['deploy']), str(tiny['partial']), npcaffe.TEST)
    assert f"copied parameters of 1 of the net's {n} layer(s)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        npcaffe.Net(str(tiny['deploy']), str(tiny['other']), npcaffe.TEST)
        assert net.copy_from(str(tiny['other'])) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert_names(warnings[0].getMessage(), 'other.caffemodel', 'no layer of the weights matched',
                 f"0 of the net's {n} layers", 'weights of another net')
    capsys.readouterr()
    # infer.py and solve.py refuse weights that reach no layer, naming the layers left ...
    assert infer_main(tiny, tmp_path, weights=tiny['other']) == 1
    assert_names(error_line(capsys), 'other.caffemodel', f'leaves {n} of the {n} layers',
                 'untouched', 'every pixel background', '--allow-untouched')
    solver, _ = make_project(tmp_path)
    assert fcn_train.main(solve_args(solver, tmp_path / 'run', '--weights',
                                     str(tiny['other']), max_iter=0)) == 1
    assert_names(error_line(capsys), 'other.caffemodel', 'none of its', '0 of the net',
                 'weights of another net', '--allow-fresh-layers')
    # ... unless told to go on, and then they say so loudly
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert infer_main(tiny, tmp_path, tiny['other'], None, None, '--allow-untouched') == 0
        assert fcn_train.main(solve_args(solver, tmp_path / 'run2', '--weights',
                                         str(tiny['other']), '--allow-fresh-layers',
                                         max_iter=0)) == 0
    assert 'untouched' in caplog.text and 'none of its' in caplog.text


def test_infer_names_the_layers_a_partial_caffemodel_leaves_untouched(tiny, tmp_path, capsys):
    """Weights of another variant (FCN-8s weights on an FCN-32s deploy): the layers they do not
    name keep zeros, so every pixel would be background."""
    assert infer_main(tiny, tmp_path, weights=tiny['partial']) == 1
    message = error_line(capsys)
    n = tiny['layers_with_params']
    assert f"leaves {n - 1} of the {n} layers" in message and 'untouched' in message


# ------------------------------------------------------------------------------------------
# data
def break_folder(root, case):
    """Spoil the folder dataset at ``root`` in one way; return the words the error names."""
    if case == 'missing image':
        (root / 'train.txt').write_text('a0\nzebra\n')
        (root / 'val.txt').write_text('a0\nzebra\n')
        return ['.txt: image', 'images/zebra.', 'does not exist']
    if case == 'size mismatch':
        write_label(root / 'labels' / 'a0.png', size=(10, 12))
        return ['images/a0.png is 32x24', 'labels/a0.png is 12x10']
    if case == 'rgb label':
        Image.new('RGB', SHAPE[:1:-1], (128, 0, 0)).save(root / 'labels' / 'a0.png')
        return ['labels/a0.png', 'RGB-coloured', 'fcn labels convert']
    if case == 'label out of range':
        Image.fromarray(np.full(SHAPE[2:], 7, np.uint8)).save(root / 'labels' / 'a0.png')
        return ['labels/a0.png', 'label value 7 outside [0, 3)', 'num_classes']
    if case == 'empty split':
        (root / 'train.txt').write_text('\n')
        (root / 'val.txt').write_text('')
        return ['.txt: the split list is empty']
    if case == 'unreadable jpeg':
        (root / 'images' / 'a0.png').unlink()
        (root / 'images' / 'a0.jpg').write_bytes(b'\xff\xd8\xff\xe0 half a download')
        return ['images/a0.jpg', 'cannot read the image']
    raise AssertionError(case)


def break_voc(root, case):
    labels, images = root / 'SegmentationClass', root / 'JPEGImages'
    if case == 'missing image':
        (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('v0\nzebra\n')
        return ['JPEGImages/zebra.jpg does not exist']
    if case == 'size mismatch':
        write_label(labels / 'v0.png', size=(10, 12), classes=21)
        return ['JPEGImages/v0.jpg is 32x24', 'SegmentationClass/v0.png is 12x10']
    if case == 'rgb label':
        Image.new('RGB', SHAPE[:1:-1], (128, 0, 0)).save(labels / 'v0.png')
        return ['SegmentationClass/v0.png', 'RGB-coloured', 'fcn labels convert']
    if case == 'label out of range':
        Image.fromarray(np.full(SHAPE[2:], 30, np.uint8)).save(labels / 'v0.png')
        return ['SegmentationClass/v0.png', 'label value 30 outside [0, 21)']
    if case == 'empty split':
        (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('')
        return ['train.txt: the split list is empty']
    if case == 'unreadable jpeg':
        raw = (images / 'v0.jpg').read_bytes()
        (images / 'v0.jpg').write_bytes(raw[:len(raw) // 3])     # an interrupted download
        return ['JPEGImages/v0.jpg', 'cannot read the image']
    raise AssertionError(case)


DATA_CASES = ['missing image', 'size mismatch', 'rgb label', 'label out of range',
              'empty split', 'unreadable jpeg']
DATA_NET = """layer {{ name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "layers.{module}" layer: "{layer}" param_str: "{param_str}" }} }}
"""


def data_net(tmp_path, module, layer, params):
    proto = tmp_path / f'{module}.prototxt'
    param_str = str(params).replace('\\', '\\\\').replace('"', '\\"')
    proto.write_text(DATA_NET.format(module=module, layer=layer, param_str=param_str))
    return npcaffe.Net(str(proto), npcaffe.TEST)


@pytest.mark.parametrize('case', DATA_CASES)
def test_data_errors_name_the_file(case, tmp_path):
    root = make_folder_dataset(tmp_path / 'folder')
    words = break_folder(root, case)
    with pytest.raises(ValueError) as info:
        data_net(tmp_path, 'folder', 'FolderSegDataLayer',
                 dict(root=str(root), split='val', num_classes=3, mean=MEAN, prefetch=0))
    assert_names(str(info.value), str(tmp_path / 'folder'), *words)
    voc = make_voc_tree(tmp_path / 'voc')
    words = break_voc(voc, case)
    with pytest.raises(ValueError) as info:
        data_net(tmp_path, 'voc', 'VOCSegDataLayer',
                 dict(voc_dir=str(voc), split='train', mean=MEAN, prefetch=0))
    assert_names(str(info.value), str(voc), *words)


@pytest.mark.parametrize('case', DATA_CASES)
def test_data_errors_through_solve_py(case, tmp_path, capsys):
    solver, root = make_project(tmp_path, train=('a0', 'a1'))
    words = break_folder(root, case)
    assert fcn_train.main(solve_args(solver, tmp_path / 'run')) == 1
    assert_names(error_line(capsys), str(root), *words)


def test_unreadable_image_met_during_training_is_named(tmp_path, capsys):
    solver, root = make_project(tmp_path, train=('a0', 'a1', 'a2'))
    raw = (root / 'images' / 'a2.png').read_bytes()
    (root / 'images' / 'a2.png').write_bytes(raw[:len(raw) // 2])
    assert fcn_train.main(solve_args(solver, tmp_path / 'run', max_iter=20)) == 1
    assert_names(error_line(capsys), str(root / 'images' / 'a2.png'), 'cannot read the image')


# ------------------------------------------------------------------------------------------
# solver
ONE_PARAM_NET = """name: "one"
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 1 dim: 1 } }
        param { lr_mult: 1 } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 1 dim: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "loss" }
"""


def one_param_solver(folder, **settings):
    """A solver prototxt for loss = w^2 / 2 (w starts at 0: set it with a weights file)."""
    (folder / 'one.prototxt').write_text(ONE_PARAM_NET)
    fields = dict(net='"one.prototxt"', base_lr=0.1, lr_policy='"fixed"', max_iter=10,
                  snapshot_prefix=f'"{folder / "snap"}"')
    fields.update(settings)
    path = folder / 'solver.prototxt'
    path.write_text(''.join(f'{k}: {v}\n' for k, v in fields.items()))
    return path


def test_missing_net_path_is_named(tmp_path, capsys):
    solver = one_param_solver(tmp_path, net='"missing.prototxt"')
    with pytest.raises(PrototxtError) as info:
        get_solver(str(solver))
    assert_names(str(info.value), "net 'missing.prototxt' not found", str(tmp_path))
    assert fcn_train.main(['--solver', str(solver), '--out', str(tmp_path / 'run')]) == 1
    assert_names(error_line(capsys), "'missing.prototxt' does not exist", str(tmp_path))


@pytest.mark.filterwarnings('ignore:overflow encountered:RuntimeWarning')
def test_nan_loss_stops_names_the_iteration_and_keeps_the_last_snapshot(tmp_path, capsys):
    # lr 1e20: after one step w = 1 - 1e20, whose loss w^2/2 overflows float32 to inf
    solver = one_param_solver(tmp_path, base_lr=1e20, snapshot=1)
    w = npcaffe.Net(str(tmp_path / 'one.prototxt'), npcaffe.TRAIN)
    w.params['w'][0].data[...] = 1
    w.save(str(tmp_path / 'w1.caffemodel'))
    out = tmp_path / 'run'
    assert fcn_train.main(['--solver', str(solver), '--out', str(out), '--weights',
                       str(tmp_path / 'w1.caffemodel')]) == 1
    line = error_line(capsys)
    assert_names(line, 'training diverged at iteration 1', 'base_lr',
                 f'the last good snapshot is {out.resolve() / "snapshot_iter_1.solverstate"}')
    assert sorted(p.name for p in out.glob('snapshot_*')) == \
        ['snapshot_iter_1.caffemodel', 'snapshot_iter_1.datastate.json',
         'snapshot_iter_1.solverstate']
    assert np.isfinite(read_params(out / 'snapshot_iter_1.caffemodel')[('w', 0)]).all()
    # the API: TrainingDivergedError, weights not updated
    s = get_solver(str(solver))
    s.net.params['w'][0].data[...] = 1
    with pytest.raises(TrainingDivergedError, match='iteration 1'):
        s.step(5)
    assert s.iter == 1


def test_unwritable_snapshot_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('a regular file where a folder should be')
    solver = one_param_solver(tmp_path, snapshot=5, snapshot_prefix=f'"{blocker / "snap"}"')
    with pytest.raises(SnapshotError) as info:
        get_solver(str(solver))                    # before any iteration, not at iteration 5
    assert_names(str(info.value), str(blocker), 'is not a folder', 'snapshot_prefix')
    assert fcn_train.main(['--solver', str(solver), '--out', str(blocker / 'run')]) == 1
    assert_names(error_line(capsys), str(blocker / 'run'), 'cannot create the folder')
    assert blocker.read_text().startswith('a regular file')


def test_resume_from_a_truncated_solverstate_is_refused(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    assert fcn_train.main(solve_args(solver, tmp_path / 'run')) == 0
    state = tmp_path / 'run' / 'snapshot_iter_2.solverstate'
    raw = state.read_bytes()
    cut = tmp_path / 'cut.solverstate'
    cut.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ModelFileError) as info:
        get_solver(str(tmp_path / 'run' / 'solver.prototxt')).restore(str(cut))
    assert_names(str(info.value), 'cut.solverstate', 'solverstate', 'truncated')
    assert fcn_train.main(solve_args(solver, tmp_path / 'run2', '--resume', str(cut))) == 1
    assert_names(error_line(capsys), 'cut.solverstate', 'truncated')




@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_snapshot_then_exit(tmp_path, signum, status):
    """Ctrl-C and SIGTERM (docker stop, a cluster's preemption) both stop after a snapshot,
    with the status a shell reports (128 + the signal) and a complete command to continue;
    that command, without --solver, finds the solver from the run folder and continues."""
    solver, _ = make_project(tmp_path)
    out = tmp_path / 'run'
    proc = subprocess.Popen([sys.executable, str(ROOT / 'solve.py'),
                             *solve_args(solver, out, max_iter=10 ** 6)], cwd=tmp_path,
                            env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        scores = out / 'scores.jsonl'
        wait_for(lambda: scores.exists() and scores.read_text().count('\n') >= 2, proc,
                 'two scored iterations')
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == status, stderr
    assert 'Traceback' not in stderr and f'interrupted ({name})' in stderr
    states = sorted(out.glob('snapshot_iter_*.solverstate'))
    assert len(states) == 1, stderr
    state, _ = formats.read_solverstate(states[0])
    hint = f'python solve.py --solver {solver} --resume {states[0]} --out {out}'
    assert state.iter >= 2 and hint in stderr, stderr
    assert read_params(out / f'snapshot_iter_{state.iter}.caffemodel')   # whole and readable
    assert (out / f'snapshot_iter_{state.iter}.datastate.json').is_file()
    resumed = subprocess.run([sys.executable, str(ROOT / 'solve.py'), '--resume',
                              str(states[0]), '--max-iter', str(state.iter + 1)],
                             cwd=tmp_path, env=CHILD_ENV, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f'resumed from {states[0]} at iteration {state.iter}' in resumed.stdout
    assert (out / f'snapshot_iter_{state.iter + 1}.solverstate').is_file()


# ------------------------------------------------------------------------------------------
# infer
def image_in_mode(path, mode):
    rgb = np.random.default_rng(3).integers(0, 256, (*SHAPE[2:], 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    if mode == 'I;16':
        grey = np.random.default_rng(3).integers(0, 65536, SHAPE[2:], dtype=np.uint16)
        image = Image.fromarray(grey)                           # 16-bit grey
    elif mode == 'P':
        image = image.convert('P', palette=Image.ADAPTIVE)
    else:
        image = image.convert(mode)
    image.save(path)
    with Image.open(path) as check:
        assert check.mode == mode or (mode == 'I;16' and check.mode == 'I')   # older Pillow
    return path


@pytest.mark.parametrize('mode, suffix', [('L', '.png'), ('RGBA', '.png'), ('P', '.png'),
                                          ('CMYK', '.jpg'), ('I;16', '.png')])
def test_infer_converts_and_segments_every_common_mode(mode, suffix, tiny, tmp_path):
    path = image_in_mode(tmp_path / f'in{suffix}', mode)
    assert infer_main(tiny, tmp_path, images=[path]) == 0
    with Image.open(tmp_path / 'seg' / 'in.png') as label:
        assert label.mode == 'P' and label.size == SHAPE[:1:-1]
        assert np.asarray(label).max() < 3


def test_infer_too_large_for_memory_gives_an_estimate(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(segment, 'available_memory', lambda: 2 ** 20)        # 1 MiB
    assert infer_main(tiny, tmp_path) == 1
    assert_names(error_line(capsys), str(tiny['image']), 'a 32x24 image needs about',
                 'GiB to segment', 'only 0.0 GiB is available', '--max-size')


# ------------------------------------------------------------------------------------------
# nothing lost
AUDIT_CHILD = """
import json, os, sys
events = []

def hook(event, args):
    if event == 'open' and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2]
        writes = (mode is not None and any(c in mode for c in 'wax+')) or \\
                 (mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writes:
            events.append(('write', os.path.abspath(os.fsdecode(args[0]))))
    elif event == 'os.rename':
        events.append(('rename', os.path.abspath(os.fsdecode(args[0])),
                       os.path.abspath(os.fsdecode(args[1]))))

sys.addaudithook(hook)
import importlib
for module, argv in json.loads(sys.argv[1]):
    status = importlib.import_module(module).main(argv)
    assert status == 0, (module, argv, status)
print(json.dumps(events))
"""


def test_every_output_file_is_written_to_a_temporary_name_and_renamed(tiny, tmp_path):
    solver, root = make_project(tmp_path)
    rgb_labels = tmp_path / 'rgb'
    rgb_labels.mkdir()
    Image.fromarray(vis.colorize(np.eye(4, dtype=np.uint8))).save(rgb_labels / 'x.png')
    o = tmp_path / 'out'
    runs = [
        ('nets.cli', ['fcn8s', '--classes', '3', '--width', str(WIDTH), '--folder-dir',
                      str(root), '--out', str(o / 'nets')]),
        ('fcn.train', solve_args(solver, o / 'solve', '--weights', str(tiny['weights']))),
        ('fcn.segment', ['--deploy', str(tiny['deploy']), '--weights', str(tiny['weights']),
                   '--out', str(o / 'infer'), '--overlay', '--save-scores', str(tiny['image'])]),
        ('fcn.surgery', ['--classifier-deploy', str(tiny['deploy']), '--classifier-weights',
                     str(tiny['weights']), '--fcn', str(tiny['deploy5']),
                     '--out', str(o / 'surgery.caffemodel')]),
        ('fcn.labels', ['convert', str(rgb_labels), '--out', str(o / 'labels')]),
    ]
    (o / 'surgery.caffemodel').parent.mkdir(parents=True)
    r = subprocess.run([sys.executable, '-c', AUDIT_CHILD, json.dumps(runs)], cwd=tmp_path,
                       env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    events = json.loads(r.stdout.strip().splitlines()[-1])
    written = {e[1] for e in events if e[0] == 'write'}
    renamed = {e[2]: e[1] for e in events if e[0] == 'rename'}
    outputs = sorted(str(p) for p in o.rglob('*') if p.is_file())
    expected = {'nets': ['deploy.prototxt', 'solver.prototxt', 'train.prototxt',
                         'val.prototxt'],
                'solve': ['curve.png', 'losses.jsonl', 'run.json', 'scores.jsonl',
                          'snapshot_iter_2.caffemodel', 'snapshot_iter_2.datastate.json',
                          'snapshot_iter_2.solverstate', 'solver.prototxt'],
                'infer': ['img.png', 'img_overlay.jpg', 'img_scores.npy'],
                'labels': ['x.png']}
    for folder, names in expected.items():
        assert sorted(p.name for p in (o / folder).iterdir()) == names   # no temporaries left
    assert len(outputs) == sum(map(len, expected.values())) + 1
    for path in outputs:
        assert path in renamed, f"{path} was not renamed into place"
        assert path not in written, f"{path} was opened for writing under its own name"
        assert Path(renamed[path]).parent == Path(path).parent        # same folder: atomic


KILL_CHILD = """
import os, sys, time
from pathlib import Path
from PIL import Image
from fcn import segment

deploy, weights, weights2, image, out = sys.argv[1:]
assert segment.main(['--deploy', deploy, '--weights', weights, '--out', out, image]) == 0
real_save = Image.Image.save

def stalling_save(self, fp, format=None, **params):
    # write half of the real PNG into the (temporary) file, then wait to be killed
    import io
    buffer = io.BytesIO()
    real_save(self, buffer, format=format, **params)
    fp.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])   # the temporary file
    fp.flush()
    os.fsync(fp.fileno())
    Path(out, 'writing').touch()
    time.sleep(600)

Image.Image.save = stalling_save
segment.main(['--deploy', deploy, '--weights', weights2, '--out', out, image])
"""


def test_kill_during_a_write_leaves_the_previous_file_whole(tiny, tmp_path):
    out = tmp_path / 'seg'
    other = random_weights(tiny['deploy'], tmp_path / 'w2.caffemodel', seed=7)
    proc = subprocess.Popen([sys.executable, '-c', KILL_CHILD, str(tiny['deploy']),
                             str(tiny['weights']), str(other), str(tiny['image']), str(out)],
                            cwd=tmp_path, env=CHILD_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for((out / 'writing').exists, proc, 'the second write')
        before = (out / 'img.png').read_bytes()
        temps = [p for p in out.iterdir() if p.name.endswith('.tmp')]
        assert len(temps) == 1 and temps[0].name.startswith('.img.png.')
        assert 0 < temps[0].stat().st_size                      # half a PNG on disk
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert (out / 'img.png').read_bytes() == before
    with Image.open(out / 'img.png') as label:                   # the previous file, whole
        label.load()
        assert label.mode == 'P' and label.size == SHAPE[:1:-1]


def test_resuming_from_a_snapshot_follows_the_uninterrupted_trajectory(tiny, tmp_path):
    solver, _ = make_project(tmp_path)
    weights = ['--weights', str(tiny['weights'])]
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    assert fcn_train.main(solve_args(solver, straight, *weights, max_iter=4)) == 0
    assert fcn_train.main(solve_args(solver, split, *weights, max_iter=2)) == 0
    assert fcn_train.main(solve_args(solver, split, '--resume',
                                 str(split / 'snapshot_iter_2.solverstate'), max_iter=4)) == 0
    a, b = read_params(straight / 'snapshot_iter_4.caffemodel'), \
        read_params(split / 'snapshot_iter_4.caffemodel')
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))
    start = read_params(tiny['weights'])
    assert any(not np.array_equal(a[k], start[k]) for k in a)            # it did train
    records = [[json.loads(line) for line in (run / 'scores.jsonl').read_text().splitlines()]
               for run in (straight, split)]
    assert [r['iter'] for r in records[1]] == [1, 2, 3, 4]
    assert records[0] == records[1]


# ------------------------------------------------------------------------------------------
# every command-line tool: one line on stderr, a non-zero exit, --debug shows the traceback
def cli_cases(tiny, tmp_path):
    empty = tmp_path / 'empty.caffemodel'
    empty.write_bytes(b'')
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'pred').mkdir()
    rgb = tmp_path / 'rgb.png'
    Image.new('RGB', (2, 2), (128, 0, 0)).save(rgb)
    py = [sys.executable]
    return {
        'solve.py': (py + [str(ROOT / 'solve.py'), '--solver', 'missing.prototxt'],
                     'missing.prototxt'),
        'infer.py': (py + [str(ROOT / 'infer.py'), '--deploy', str(tiny['deploy']), '--weights',
                           str(empty), '--out', 'seg', str(tiny['image'])],
                     'empty.caffemodel: the caffemodel file is empty'),
        'python -m nets': (py + ['-m', 'nets', 'fcn8s', '--voc-dir', 'no/such/dir', '--out',
                                 'generated'], '--voc-dir no/such/dir: not a directory'),
        'surgery.py': (py + [str(ROOT / 'surgery.py'), '--classifier-deploy',
                             str(tiny['deploy']), '--classifier-weights', str(empty), '--fcn',
                             str(tiny['deploy']), '--out', 'x.caffemodel'],
                       'empty.caffemodel: the caffemodel file is empty'),
        'fcn labels': (py + ['-m', 'fcn', 'labels', 'convert', str(rgb), '--out',
                             'labels', '--palette', 'missing.txt'], 'missing.txt'),
        'fcn score': (py + ['-m', 'fcn', 'score', '--gt', str(tmp_path / 'gt'), '--pred',
                            str(tmp_path / 'pred')], 'no prediction PNGs'),
    }


def test_every_tool_fails_with_one_line_and_debug_shows_the_traceback(tiny, tmp_path):
    cases = cli_cases(tiny, tmp_path)
    procs = {}
    for name, (argv, _) in cases.items():
        for debug in (False, True):
            # --debug before a sub-command: fcn labels --debug convert ...
            at = {'python -m nets': 3, 'fcn labels': 4, 'fcn score': 4}.get(name, 2)
            args = argv[:at] + ['--debug'] + argv[at:] if debug else argv
            procs[name, debug] = subprocess.Popen(args, cwd=tmp_path, env=CHILD_ENV,
                                                  stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, text=True)
    for (name, debug), proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, (name, debug, err)
        if debug:
            assert 'Traceback (most recent call last)' in err, (name, err)
            assert cases[name][1] in err.strip().splitlines()[-1], (name, err)
        else:
            first = err.splitlines()[0] if err else ''
            assert first.startswith('error: ') and cases[name][1] in first, (name, err)
            assert 'Traceback' not in err, (name, err)


def test_toolkit_outputs_get_the_mode_open_would_give(tmp_path):
    from fcn import files
    mask = os.umask(0o022)
    try:
        with files.atomic_write(tmp_path / 'x.txt', 'w') as f:
            f.write('x')
        assert (tmp_path / 'x.txt').stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
