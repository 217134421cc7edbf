"""nets.datasets: the SIFT Flow, NYUDv2 and PASCAL-Context generators. Deploy nets at random
input sizes give scores of the input's size; train nets build and run forward (losses) on tiny
datasets made here; the reference names, crop offsets and solvers are checked."""
import random

import numpy as np
import pytest

import npcaffe
from nets import fcn, generate, solver
from nets.cli import main
from nets.datasets import DATASET_VARIANTS
from nets.fcn import NetsError, VARIANTS, get_variant
from tests.layers.test_nyud import make_nyud
from tests.layers.test_pascalcontext import make_context
from tests.layers.test_siftflow import make_siftflow

WIDTH = 1 / 64
NAMES = sorted(DATASET_VARIANTS)


def test_all_variants_are_registered_beside_the_voc_family():
    assert set(NAMES) == {
        'siftflow-fcn32s', 'siftflow-fcn16s', 'siftflow-fcn8s', 'pascalcontext-fcn32s',
        'pascalcontext-fcn16s', 'pascalcontext-fcn8s', 'nyud-fcn32s-color', 'nyud-fcn32s-hha',
        'nyud-fcn32s-color-d', 'nyud-fcn32s-color-hha'}
    assert not set(NAMES) & set(VARIANTS)
    assert get_variant('siftflow-fcn8s').classes == 33


@pytest.mark.parametrize('name', NAMES)
def test_deploy_scores_have_the_input_size(name):
    v = get_variant(name)
    rng = random.Random(name)
    h, w = rng.randint(17, 90), rng.randint(17, 90)
    net = npcaffe.Net(fcn(name, None, None, WIDTH, (1, 3, h, w)), npcaffe.TEST)
    outputs = {'score_sem': 33, 'score_geo': 3} if v.kind == 'siftflow' else {'score': v.classes}
    assert sorted(net.outputs) == sorted(outputs)
    for blob, channels in v.inputs:
        assert net.blobs[blob].data.shape == (1, channels, h, w)
    net.forward()
    for blob, classes in outputs.items():
        assert net.blobs[blob].data.shape == (1, classes, h, w)


def _crop_offsets(net):
    return {layer.name: list(layer.crop_param.offset) for layer in net.layer
            if layer.type == 'Crop'}


def test_siftflow_fcn8s_has_the_reference_heads():
    net = fcn('siftflow-fcn8s', None, None)
    names = [layer.name for layer in net.layer]
    head = ['score_fr_{h}', 'upscore2_{h}', 'score_pool4_{h}', 'score_pool4_{h}c',
            'fuse_pool4_{h}', 'upscore_pool4_{h}', 'score_pool3_{h}', 'score_pool3_{h}c',
            'fuse_pool3_{h}', 'upscore8_{h}', 'score_{h}']
    i = names.index('score_fr_sem')
    assert names[i:] == [n.format(h='sem') for n in head] + [n.format(h='geo') for n in head]
    # the reference FCN-8s crop offsets, per head
    assert _crop_offsets(net) == {f'{n}_{h}{c}': [o] for h in ('sem', 'geo') for n, c, o in
                                  (('score_pool4', 'c', 5), ('score_pool3', 'c', 9),
                                   ('score', '', 31))}


def test_nyud_fusion_nets_are_the_reference_ones():
    early = fcn('nyud-fcn32s-color-d', None, None)
    layers = {layer.name: layer for layer in early.layer}
    assert list(layers['data'].bottom) == ['color', 'depth'] and layers['data'].type == 'Concat'
    assert list(layers['conv1_1_bgrd'].bottom) == ['data']
    late = fcn('nyud-fcn32s-color-hha', None, None)
    layers = {layer.name: layer for layer in late.layer}
    assert list(layers['conv1_1hha'].bottom) == ['hha'] and 'score_frcolor' in layers
    fused = layers['score_fused']
    assert list(fused.bottom) == ['score_frcolor', 'score_frhha']
    assert list(fused.eltwise_param.coeff) == [0.5, 0.5]
    assert _crop_offsets(late) == {'score': [19]}
    assert list(layers['score'].bottom) == ['upscore', 'color']


@pytest.mark.parametrize('name, base_lr, test_iter', [
    ('siftflow-fcn32s', 1e-10, 200), ('siftflow-fcn8s', 1e-12, 200),
    ('nyud-fcn32s-color-hha', 1e-12, 654), ('pascalcontext-fcn8s', 1e-14, 5105)])
def test_reference_solvers(name, base_lr, test_iter):
    s = solver(name)
    assert s.base_lr == pytest.approx(base_lr, rel=1e-6)     # a float field of the proto
    assert (s.test_iter[0], s.max_iter, s.lr_policy) == (test_iter, 300000, 'fixed')
    assert s.momentum == pytest.approx(0.99) and s.weight_decay == pytest.approx(5e-4)


def _dataset(tmp_path, dataset):
    if dataset == 'siftflow':
        make_siftflow(tmp_path / 'sf', size=(24, 20))
        return {'siftflow_dir': tmp_path / 'sf'}
    if dataset == 'nyud':
        make_nyud(tmp_path / 'nyud', size=(20, 26))
        return {'nyud_dir': tmp_path / 'nyud'}
    make_context(tmp_path, size=(22, 18))
    return {'voc_dir': tmp_path / 'pascal', 'context_dir': tmp_path / 'pascal-context'}


@pytest.mark.parametrize('name', ['siftflow-fcn8s', 'nyud-fcn32s-color-d',
                                  'nyud-fcn32s-color-hha', 'nyud-fcn32s-hha',
                                  'pascalcontext-fcn16s'])
def test_train_and_val_nets_run_on_a_tiny_dataset(tmp_path, name):
    v = get_variant(name)
    data = v.data_sources(**_dataset(tmp_path, v.dataset))
    written = generate(name, tmp_path / 'net', None, WIDTH, data)
    assert sorted(p.name for p in written) == ['deploy.prototxt', 'solver.prototxt',
                                              'train.prototxt', 'val.prototxt']
    val_ids = len(open(data['val'].split_list).read().split())
    assert f'test_iter: {val_ids}\n' in (tmp_path / 'net' / 'solver.prototxt').read_text()
    for phase, proto in ((npcaffe.TRAIN, 'train.prototxt'), (npcaffe.TEST, 'val.prototxt')):
        net = npcaffe.Net(str(tmp_path / 'net' / proto), phase)
        out = net.forward()
        losses = ['loss', 'loss_geo'] if v.kind == 'siftflow' else ['loss']
        assert sorted(out) == losses
        for loss in losses:
            assert np.isfinite(out[loss]).all() and float(out[loss]) > 0


def test_cli_dataset_options(tmp_path, capsys):
    dirs = _dataset(tmp_path, 'siftflow')
    assert main(['siftflow-fcn32s', '--siftflow-dir', str(dirs['siftflow_dir']),
                 '--width', '0.0625', '--out', str(tmp_path / 'o')]) == 0
    train = (tmp_path / 'o' / 'train.prototxt').read_text()
    assert 'layers.siftflow' in train and 'trainval' in train
    assert main(['pascalcontext-fcn8s', '--classes', '21', '--out', str(tmp_path / 'p')]) != 0
    assert 'has 60 classes' in capsys.readouterr().err
    assert main(['pascalcontext-fcn8s', '--voc-dir', str(tmp_path), '--out',
                 str(tmp_path / 'q')]) != 0
    assert 'needs --context-dir as well' in capsys.readouterr().err
    with pytest.raises(NetsError, match='has 40 classes'):
        fcn('nyud-fcn32s-color', 21, None)
