"""The FCN generators against the reference FCN prototxts, their geometry, and the CLI.

Blob shapes come from the engine: the generated deploy net is built with npcaffe.Net (at
width 1/64, as spatial sizes do not depend on the width) and reshaped to each input size.
"""
import ast
import random
import subprocess
import sys

import pytest
from google.protobuf import text_format

import npcaffe
from nets import VARIANTS, NetsError, data_sources, fcn, generate, solver
from nets.cli import main
from npcaffe.errors import NetError
from npcaffe.proto import caffe_pb2

ROOT = __import__('pathlib').Path(__file__).resolve().parents[2]
REFERENCE_DIRS = {'fcn32s': 'voc-fcn32s', 'fcn16s': 'voc-fcn16s', 'fcn8s': 'voc-fcn8s',
                  'fcn8s-atonce': 'voc-fcn8s-atonce', 'fcn-alexnet': 'voc-fcn-alexnet'}
SKIP_LAYER_TYPES = {'Python', 'SoftmaxWithLoss', 'Dropout'}


def _parse(path, message):
    return text_format.Parse(path.read_text(), message)


def _reference(shared, variant, name):
    folder = shared / 'reference' / 'fcn-berkeleyvision' / REFERENCE_DIRS[variant]
    message = caffe_pb2.SolverParameter() if name == 'solver' else caffe_pb2.NetParameter()
    return _parse(folder / f'{name}.prototxt', message)


def _without_data_source(net):
    """A copy of ``net`` whose Python data layer keeps only its type, name and tops."""
    net = caffe_pb2.NetParameter.FromString(net.SerializeToString())
    for layer in net.layer:
        if layer.type == 'Python':
            layer.ClearField('python_param')
    return net


def _assert_same_layers(actual, expected):
    names = [layer.name for layer in expected.layer]
    assert [layer.name for layer in actual.layer] == names
    for got, want in zip(actual.layer, expected.layer):
        assert got == want, f"layer {want.name}:\n{got}\n!=\n{want}"
    assert actual == expected


@pytest.fixture(scope='module')
def voc_sbd(tmp_path_factory):
    """Reference-style data options (SBD train, VOC seg11valid) on empty folders."""
    root = tmp_path_factory.mktemp('data')
    (root / 'sbd').mkdir()
    (root / 'voc' / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    return data_sources(sbd_dir=root / 'sbd', voc_dir=root / 'voc')


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_train_and_val_equal_the_reference_layer_for_layer(shared, variant, voc_sbd):
    for split in ('train', 'val'):
        generated = fcn(variant, 21, voc_sbd[split])
        _assert_same_layers(_without_data_source(generated),
                            _without_data_source(_reference(shared, variant, split)))


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_solver_has_the_reference_schedule(shared, variant):
    ours, ref = solver(variant), _reference(shared, variant, 'solver')
    for name in ('base_lr', 'momentum', 'weight_decay', 'lr_policy', 'iter_size', 'max_iter',
                 'test_iter', 'test_interval', 'display', 'average_loss', 'snapshot',
                 'snapshot_prefix', 'test_initialization', 'train_net', 'test_net'):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours == ref


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_deploy_is_train_without_data_loss_and_dropout(variant, voc_sbd):
    deploy, train = fcn(variant, 21), fcn(variant, 21, voc_sbd['train'])
    data = deploy.layer[0]
    assert (data.name, data.type, list(data.top)) == ('data', 'Input', ['data'])
    assert list(data.input_param.shape[0].dim) == [1, 3, 500, 500]
    kept = [layer for layer in train.layer if layer.type not in SKIP_LAYER_TYPES]
    assert list(deploy.layer[1:]) == kept
    assert deploy.layer[-1].name == 'score' and not any(
        layer.type in SKIP_LAYER_TYPES for layer in deploy.layer)


def test_fcn8s_deploy_equals_the_reference_deploy(shared):
    ours = fcn('fcn8s', 21)
    ref = _parse(shared / 'reference' / 'fcn-berkeleyvision' / 'voc-fcn8s' / 'deploy.prototxt',
                 caffe_pb2.NetParameter())
    ref.layer[0].name = 'data'  # the reference names its Input layer 'input'
    _assert_same_layers(ours, ref)


def test_data_layers_and_their_param_str(tmp_path):
    for folder in ('voc', 'sbd', 'mine'):
        (tmp_path / folder).mkdir()
    voc = data_sources(voc_dir=tmp_path / 'voc')
    assert (voc['train'].module, voc['train'].layer) == ('layers.voc', 'VOCSegDataLayer')
    assert ast.literal_eval(voc['train'].param_str) == dict(
        voc_dir=str(tmp_path / 'voc'), split='train', mean=(104.00699, 116.66877, 122.67892),
        seed=1337, randomize=True)
    assert ast.literal_eval(voc['val'].param_str)['split'] == 'val'
    assert ast.literal_eval(voc['val'].param_str)['randomize'] is False
    sbd = data_sources(sbd_dir=tmp_path / 'sbd')
    assert [sbd[s].layer for s in ('train', 'val')] == ['SBDDSegDataLayer'] * 2
    assert ast.literal_eval(sbd['val'].param_str)['sbdd_dir'] == str(tmp_path / 'sbd')
    both = data_sources(sbd_dir=tmp_path / 'sbd', voc_dir=tmp_path / 'voc')
    assert (both['train'].layer, both['val'].layer) == ('SBDDSegDataLayer', 'VOCSegDataLayer')
    assert ast.literal_eval(both['val'].param_str)['split'] == 'seg11valid'
    mine = data_sources(folder_dir=tmp_path / 'mine', num_classes=12, ignore_label=11,
                        val_split='test')
    assert (mine['train'].module, mine['train'].layer) == ('layers.folder', 'FolderSegDataLayer')
    params = ast.literal_eval(mine['val'].param_str)
    assert (params['root'], params['split'], params['num_classes'], params['ignore_label']) == (
        str(tmp_path / 'mine'), 'test', 12, 11)
    net = fcn('fcn32s', 12, mine['train'])
    python = net.layer[0].python_param
    assert (python.module, python.layer, python.param_str) == (
        'layers.folder', 'FolderSegDataLayer', mine['train'].param_str)
    assert data_sources() is None
    with pytest.raises(NetsError, match='cannot be combined'):
        data_sources(folder_dir=tmp_path / 'mine', voc_dir=tmp_path / 'voc')
    with pytest.raises(NetsError, match='not a directory'):
        data_sources(voc_dir=tmp_path / 'absent')


def _crop_offsets(net):
    return {layer.name: list(layer.crop_param.offset) for layer in net.layer
            if layer.type == 'Crop'}


@pytest.mark.parametrize('variant,offsets', [
    ('fcn32s', {'score': [19]}), ('fcn16s', {'score_pool4c': [5], 'score': [27]}),
    ('fcn8s', {'score_pool4c': [5], 'score_pool3c': [9], 'score': [31]}),
    ('fcn8s-atonce', {'score_pool4c': [5], 'score_pool3c': [9], 'score': [31]}),
    ('fcn-alexnet', {'score': [18]})])
def test_crop_offsets_are_computed_and_independent_of_width(variant, offsets):
    for width in (1.0, 0.5, 1 / 64):
        assert _crop_offsets(fcn(variant, 3, width=width)) == offsets


def test_width_scales_the_backbone_only():
    net = {layer.name: layer for layer in fcn('fcn8s', 5, width=0.5).layer}
    assert net['conv1_1'].convolution_param.num_output == 32
    assert net['fc6'].convolution_param.num_output == 2048
    assert net['score_pool3'].convolution_param.num_output == 5
    tiny = {layer.name: layer for layer in fcn('fcn8s', 5, width=1e-6).layer}
    assert tiny['conv5_3'].convolution_param.num_output == 1
    alex = {layer.name: layer for layer in fcn('fcn-alexnet', 5, width=0.01).layer}
    for name in ('conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc6', 'fc7'):
        conv = alex[name].convolution_param
        assert conv.num_output >= 2 and conv.num_output % 2 == 0  # group 2 stays valid


def _engine_net(net, shape=None):
    """The deploy NetParameter built by npcaffe (its Input reshaped to ``shape`` first)."""
    if shape is not None:
        net = caffe_pb2.NetParameter.FromString(net.SerializeToString())
        dims = net.layer[0].input_param.shape[0].dim
        del dims[:]
        dims.extend(shape)
    return npcaffe.Net(net, npcaffe.TEST)


def _shapes(net):
    return {name: blob.shape for name, blob in net.blobs.items()}


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_deploy_score_is_the_size_of_any_input(variant):
    rng = random.Random(4)
    sizes = [(1, 1), (1, 2), (2, 1), (31, 1), (500, 375)] + \
        [(rng.randint(1, 600), rng.randint(1, 600)) for _ in range(40)]
    net = _engine_net(fcn(variant, 7, width=1 / 64), (1, 3, 1, 1))
    for h, w in sizes:
        net.blobs['data'].reshape(1, 3, h, w)
        net.reshape()
        assert net.blobs['score'].shape == (1, 7, h, w), (h, w)


def test_shape_rules_by_hand():
    shapes = _shapes(_engine_net(fcn('fcn8s', 21, width=1 / 64)))  # the Input's own 500x500
    # conv1_1 pad 100: 500 + 200 - 2 = 698; five 2/2 ceil pools: 349, 175, 88, 44, 22
    assert shapes['conv1_1'][2:] == (698, 698) and shapes['pool3'][2:] == (88, 88)
    assert shapes['pool5'][2:] == (22, 22) and shapes['fc6'][2:] == (16, 16)
    # upscore2: 2 * 15 + 4 = 34; score_pool4c: 34 at offset 5 of 44
    assert shapes['upscore2'][2:] == (34, 34) and shapes['score_pool4c'][2:] == (34, 34)
    assert shapes['upscore8'][2:] == (8 * 69 + 16,) * 2 and shapes['score'] == (1, 21, 500, 500)
    too_small = fcn('fcn8s', 21, width=1 / 64)
    too_small.layer[1].convolution_param.pad[0] = 0
    with pytest.raises(NetError, match="'score'"):
        _engine_net(too_small, (1, 3, 300, 300))


def test_generated_text_parses_back_into_caffe_proto(voc_sbd):
    for variant in VARIANTS:
        for net in (fcn(variant, 21), fcn(variant, 21, voc_sbd['train'])):
            assert text_format.Parse(str(net), caffe_pb2.NetParameter()) == net
        assert text_format.Parse(str(solver(variant)), caffe_pb2.SolverParameter()) \
            == solver(variant)


def test_bad_requests():
    with pytest.raises(NetsError, match='unknown variant .*fcn8s'):
        fcn('fcn4s')
    with pytest.raises(NetsError, match='num_classes'):
        fcn('fcn8s', 0)
    with pytest.raises(NetsError, match='width'):
        fcn('fcn8s', 21, width=0)


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_writes_the_four_files(tmp_path, capsys):
    (tmp_path / 'sbd').mkdir()
    (tmp_path / 'voc' / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (tmp_path / 'voc' / 'ImageSets' / 'Segmentation' / 'seg11valid.txt').write_text('a\nb\n')
    out = tmp_path / 'out'
    assert main(['fcn16s', '--classes', '5', '--width', '0.25', '--out', str(out),
                 '--sbd-dir', str(tmp_path / 'sbd'), '--voc-dir', str(tmp_path / 'voc')]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        'deploy.prototxt', 'solver.prototxt', 'train.prototxt', 'val.prototxt']
    assert 'wrote' in capsys.readouterr().out
    val = _parse(out / 'val.prototxt', caffe_pb2.NetParameter())
    assert val.layer[0].python_param.layer == 'VOCSegDataLayer'
    layers = {layer.name: layer for layer in val.layer}
    assert layers['score_fr'].convolution_param.num_output == 5
    assert layers['conv1_1'].convolution_param.num_output == 16
    s = _parse(out / 'solver.prototxt', caffe_pb2.SolverParameter())
    assert (s.base_lr, list(s.test_iter)) == (pytest.approx(1e-12), [2])  # counted from the list


def test_cli_without_data_writes_deploy_only(tmp_path):
    assert main(['fcn-alexnet', '--out', str(tmp_path), '--input-size', '227', '300']) == 0
    assert [p.name for p in tmp_path.iterdir()] == ['deploy.prototxt']
    net = _parse(tmp_path / 'deploy.prototxt', caffe_pb2.NetParameter())
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 227, 300]


@pytest.mark.parametrize('argv,message,status', [
    (['fcn4s'], "unknown variant 'fcn4s'", 2),
    (['fcn8s', '--classes', '0'], 'must be > 0', 2),
    (['fcn8s', '--width', 'wide'], 'not a number', 2),
    (['fcn8s', '--voc-dir', '/no/such/dir'], 'not a directory', 1),
])
def test_cli_errors_exit_non_zero_with_one_message(tmp_path, capsys, argv, message, status):
    assert main(argv + ['--out', str(tmp_path / 'out')]) == status
    err = capsys.readouterr().err
    assert 'error: ' in err and message in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_cli_help_describes_variants_and_data(capsys):
    assert main(['--help']) == 0
    text = capsys.readouterr().out
    for word in list(VARIANTS) + ['--voc-dir', '--sbd-dir', '--folder-dir', 'seg11valid',
                                  '--width', '--classes']:
        assert word in text


def test_python_dash_m_nets(tmp_path):
    run = subprocess.run([sys.executable, '-m', 'nets', 'fcn8s', '--out', str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / 'deploy.prototxt').exists()
    run = subprocess.run([sys.executable, '-m', 'nets', 'nope', '--out', str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and 'error:' in run.stderr and 'Traceback' not in run.stderr


def test_solver_test_iter_counts_the_val_list_of_every_data_source(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'val.txt').write_text('a\nb\n\nc\n')
    generate('fcn32s', tmp_path / 'out', 3, 1 / 64, data_sources(folder_dir=mine))
    solver = caffe_pb2.SolverParameter()
    text_format.Parse((tmp_path / 'out' / 'solver.prototxt').read_text(), solver)
    assert list(solver.test_iter) == [3]
