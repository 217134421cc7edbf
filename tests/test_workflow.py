"""The FCN workflow end to end on voc-mini: generate nets, transplant a classifier, train with
solve.py, score, segment with infer.py; and the toolkit's single import point for Caffe."""
import ast
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn import segment, surgery, train
from nets.cli import main as nets_main
from tests.conftest import ROOT, require_shared

# the modules that run on either backend (fcn.demo and fcn.downloads are npcaffe-only or
# touch no net)
TOOLKIT = ['layers', 'fcn/backend.py', 'fcn/files.py', 'fcn/labels.py', 'fcn/metrics.py',
           'fcn/score.py', 'fcn/segment.py', 'fcn/surgery.py', 'fcn/tiles.py', 'fcn/train.py',
           'fcn/vis.py']


@pytest.fixture(scope='module')
def voc_run(tmp_path_factory):
    """nets -> surgery -> solve.py (4 iterations, scored twice) on voc-mini, fcn8s at 1/16."""
    voc = require_shared('data', 'voc-mini', 'VOC2012')
    classifier = require_shared('golden', 'v1_vgg_classifier')
    work = tmp_path_factory.mktemp('workflow')
    assert nets_main(['fcn8s', '--classes', '21', '--width', '0.0625', '--voc-dir', str(voc),
                      '--out', str(work / 'net')]) == 0
    assert surgery.main(['--classifier-deploy', str(classifier / 'deploy.prototxt'),
                         '--classifier-weights', str(classifier / 'weights_v1.caffemodel'),
                         '--fcn', str(work / 'net' / 'train.prototxt'),
                         '--out', str(work / 'init.caffemodel')]) == 0
    assert train.main(['--solver', str(work / 'net' / 'solver.prototxt'),
                       '--weights', str(work / 'init.caffemodel'), '--max-iter', '4',
                       '--score-every', '2', '--val-images', '2',
                       '--out', str(work / 'run')]) == 0
    return work, voc


def test_training_writes_scores_curve_and_snapshots(voc_run):
    work, _ = voc_run
    run = work / 'run'
    records = [json.loads(line) for line in (run / 'scores.jsonl').read_text().splitlines()]
    assert [r['iter'] for r in records] == [2, 4]
    for r in records:
        assert 0 <= r['mean_iu'] <= 1 and 0 <= r['pixel_accuracy'] <= 1
        assert np.isfinite(r['train_loss']) and r['per_class']['background']['gt_pixels'] > 0
    assert Image.open(run / 'curve.png').size == (640, 360)
    assert (run / 'snapshot_iter_4.caffemodel').stat().st_size > 0
    assert (run / 'snapshot_iter_4.solverstate').stat().st_size > 0
    assert json.loads((run / 'run.json').read_text())['max_iter'] == 4


def test_infer_segments_with_the_trained_weights(voc_run):
    work, voc = voc_run
    images = sorted((voc / 'JPEGImages').glob('*.jpg'))[:2]
    assert segment.main(['--deploy', str(work / 'net' / 'deploy.prototxt'),
                       '--weights', str(work / 'run' / 'snapshot_iter_4.caffemodel'),
                       '--out', str(work / 'pred')] + [str(p) for p in images]) == 0
    for path in images:
        label = Image.open(work / 'pred' / f'{path.stem}.png')
        assert label.mode == 'P' and label.size == Image.open(path).size


def test_resume_continues_from_the_solverstate(voc_run):
    work, _ = voc_run
    assert train.main(['--solver', str(work / 'net' / 'solver.prototxt'),
                       '--resume', str(work / 'run' / 'snapshot_iter_4.solverstate'),
                       '--max-iter', '5', '--score-every', '5', '--val-images', '1',
                       '--out', str(work / 'run')]) == 0
    records = [json.loads(line) for line in (work / 'run' / 'scores.jsonl').read_text()
               .splitlines()]
    assert [r['iter'] for r in records] == [2, 4, 5]


def test_classifier_weights_are_detected_and_transplanted(voc_run, caplog):
    """solve.py --weights accepts the classifier itself: fc6/fc7 are coerced, fc8 dropped."""
    work, _ = voc_run
    classifier = require_shared('golden', 'v1_vgg_classifier')
    expected = np.load(classifier / 'expected.npz')
    training = train.Training(work / 'net' / 'solver.prototxt', work / 'run_cls',
                              weights=str(classifier / 'weights_v1.caffemodel'), max_iter=0)
    net = training.solver.net
    np.testing.assert_array_equal(net.params['fc6'][0].data,
                                  expected['param/fc6/0'].reshape(net.params['fc6'][0].shape))
    up = net.params['upscore2'][0].data
    np.testing.assert_allclose(up[0, 0], surgery.upsample_filt(up.shape[-1]))


def test_weights_of_another_net_are_refused_unless_allowed(tmp_path, voc_run, caplog):
    work, _ = voc_run
    lenet = require_shared('models', 'lenet_mnist', 'lenet_iter_10000.caffemodel')
    with pytest.raises(train.WeightsError, match=r'none of its 4 layers .* matches a layer'):
        train.Training(work / 'net' / 'solver.prototxt', tmp_path / 'r', weights=str(lenet),
                       max_iter=0)
    with caplog.at_level(logging.WARNING):
        train.Training(work / 'net' / 'solver.prototxt', tmp_path / 'r2', weights=str(lenet),
                       max_iter=0, allow_fresh=True)
    assert 'none of its 4 layers' in caplog.text and '--allow-fresh-layers' in caplog.text


def test_solver_paths_resolve_beside_the_solver_and_errors_name_them(tmp_path, voc_run):
    work, _ = voc_run
    path, param = train.prepare_solver(work / 'net' / 'solver.prototxt', tmp_path, max_iter=7)
    assert Path(param.train_net).is_absolute() and param.max_iter == 7
    assert param.snapshot_prefix == str(tmp_path.resolve() / 'snapshot')
    bad = tmp_path / 'solver.prototxt'
    bad.write_text('train_net: "missing.prototxt"\n')
    with pytest.raises(ValueError, match="'missing.prototxt' does not exist"):
        train.prepare_solver(bad, tmp_path / 'o')


# engine modules that are not Caffe's API (command-line plumbing, the atomic writer): the
# toolkit may use them
# whatever the backend, as they touch no net, blob or solver.
ENGINE_HELPERS = ('npcaffe.cli.runner', 'npcaffe.cli', 'npcaffe.atomic')


def _engine_imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split('.')[0] in ('npcaffe', 'caffe') and name not in ENGINE_HELPERS:
                yield f"{path.relative_to(ROOT)}:{node.lineno}: import {name}"


def test_toolkit_reaches_caffe_only_through_backend():
    """layers/ and the toolkit modules never import npcaffe (or caffe) themselves:
    `from fcn.backend import caffe` is their only way in, so BVLC pycaffe can run them."""
    files = []
    for entry in TOOLKIT:
        path = ROOT / entry
        files += sorted(path.rglob('*.py')) if path.is_dir() else [path]
    offenders = [line for f in files for line in _engine_imports(f)]
    assert not offenders, offenders
    assert len(files) >= 8


def test_hdf5_snapshots_through_solve_py(voc_run, tmp_path):
    work, _ = voc_run
    solver = tmp_path / 'solver.prototxt'
    solver.write_text((work / 'net' / 'solver.prototxt').read_text().replace(
        'train_net: "', f'train_net: "{work / "net"}/').replace(
        'test_net: "', f'test_net: "{work / "net"}/') + 'snapshot_format: HDF5\n')
    assert train.main(['--solver', str(solver), '--max-iter', '1', '--score-every', '1',
                       '--val-images', '1', '--out', str(tmp_path / 'run'),
                       '--allow-fresh-layers']) == 0     # the reference rate, no weights
    names = sorted(p.name for p in (tmp_path / 'run').glob('snapshot_iter_*'))
    assert names == ['snapshot_iter_1.caffemodel.h5', 'snapshot_iter_1.datastate.json',
                     'snapshot_iter_1.solverstate.h5']
