"""Whole nets against BVLC Caffe's recorded results: the tiny FCN-32s/16s/8s with loss, LeNet
with its real trained weights, a legacy V1 classifier with legacy weights; and a check that
every golden case in shared/ is exercised by some test module."""
import re
from pathlib import Path

import numpy as np
import pytest

import npcaffe
from tests.conftest import require_shared
from tests.golden import FORWARD_TOL, assert_close, run_golden_case

FCN_CASES = ['fcn32s_tiny', 'fcn16s_tiny', 'fcn8s_tiny']


@pytest.mark.parametrize('case', FCN_CASES)
def test_fcn_forward_and_tie_free_gradients_match_caffe(case):
    """Forward, the loss, and every gradient that no MAX Pooling backward reaches, as is."""
    worst = run_golden_case(case, skip_tie_dependent=True)
    assert worst['backward'] < 1e-4


@pytest.mark.parametrize('case', FCN_CASES)
def test_fcn_every_gradient_matches_caffe_with_its_max_pool_routing(case):
    """Every blob and parameter diff, with Caffe's choice among near-tied max-pool inputs.

    FCN's pad 100 creates large constant regions, so many 2x2 pooling windows hold values
    that differ only in the last bit; which one is the max depends on the BLAS's summation
    order (BVLC's recording used an OpenBLAS whose sgemm splits the sum over two FMA
    accumulators, NumPy's BLAS sums otherwise), and the gradient follows that choice. With the
    routing replayed from Caffe's recorded inputs, every gradient matches to ~1e-6."""
    worst = run_golden_case(case, replay_max_pool_routing=True)
    assert worst['backward'] < 1e-4


def test_lenet_with_real_trained_weights():
    run_golden_case('lenet_mnist_real')


def test_v1_classifier_with_legacy_weights():
    folder = require_shared('golden', 'v1_vgg_classifier')
    expected = np.load(folder / 'expected.npz')
    net = npcaffe.Net(str(folder / 'deploy.prototxt'), str(folder / 'weights_v1.caffemodel'),
                      npcaffe.TEST)
    for key in expected.files:
        if key.startswith('param/'):
            _, layer, i = key.split('/')
            assert_close(net.params[layer][int(i)].data, expected[key], 0, key)
    net.blobs['data'].data[...] = expected['in/data']
    out = net.forward()
    assert_close(out['prob'], expected['data/prob'], FORWARD_TOL, 'prob')
    assert_close(net.blobs['fc8'].data, expected['data/fc8'], FORWARD_TOL, 'fc8')


def test_every_golden_case_is_exercised():
    golden = require_shared('golden')
    cases = {p.parent.name for p in golden.glob('*/blobs.npz')}
    sources = '\n'.join(p.read_text() for p in Path(__file__).parent.rglob('test_*.py'))
    missing = sorted(c for c in cases if not re.search(rf"['\"]{re.escape(c)}['\"]", sources))
    assert not missing, f"golden cases no test runs: {missing}"
