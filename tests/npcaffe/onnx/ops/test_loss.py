"""Losses and Accuracy in TEST nets, hand-checked on tiny inputs: SoftmaxWithLoss with
ignore_label under every normalisation (and its prob top), EuclideanLoss,
SigmoidCrossEntropyLoss, Accuracy with top_k, ignore_label and the per-class top."""
import numpy as np
import pytest

from tests.npcaffe.onnx.util import compare, net_from_text, require_runtime

NET = """
layer {{ name: 'data' type: 'Input' top: 'x' top: 'label'
        input_param {{ shape {{ dim: 2 dim: 3 dim: 1 dim: 2 }} shape {{ dim: 2 dim: 1 dim: 1 dim: 2 }} }} }}
layer {{ name: 'loss' type: '{type}' bottom: 'x' bottom: 'label' {tops} {params} }}
"""
X = np.array([[[[1, 0]], [[2, 0]], [[3, 0]]], [[[0, -1]], [[0, 5]], [[0, 1]]]], np.float32)
LABEL = np.array([[[[2, 255]]], [[[0, 1]]]], np.float32)


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


def run_loss(type_name, params='', tops="top: 'loss'", x=X, label=LABEL):
    net = net_from_text(NET.format(type=type_name, tops=tops, params=params))
    return compare(net, {'x': x, 'label': label})[1]


@pytest.mark.parametrize('mode,normalizer', [('FULL', 4), ('VALID', 3), ('BATCH_SIZE', 2),
                                             ('NONE', 1)])
def test_softmax_loss_ignore_label_and_normalization(mode, normalizer):
    got = run_loss('SoftmaxWithLoss', f'loss_param {{ ignore_label: 255 normalization: {mode} }}',
                   "top: 'loss' top: 'prob'")
    p = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    picked = [p[0, 2, 0, 0], p[1, 0, 0, 0], p[1, 1, 0, 1]]
    assert got['loss'].shape == ()
    np.testing.assert_allclose(got['loss'], -np.log(picked).sum() / normalizer, rtol=1e-5)
    np.testing.assert_allclose(got['prob'], p, rtol=1e-5)


def test_euclidean_and_sigmoid_cross_entropy():
    target = np.random.default_rng(0).uniform(0, 1, X.shape).astype(np.float32)
    net_text = NET.replace("dim: 2 dim: 1 dim: 1 dim: 2 }", "dim: 2 dim: 3 dim: 1 dim: 2 }")
    net = net_from_text(net_text.format(type='EuclideanLoss', tops="top: 'loss'", params=''))
    loss = compare(net, {'x': X, 'label': target})[1]['loss']
    np.testing.assert_allclose(loss, ((X - target) ** 2).sum() / 4, rtol=1e-5)
    net = net_from_text(net_text.format(type='SigmoidCrossEntropyLoss', tops="top: 'loss'",
                                        params=''))
    loss = compare(net, {'x': X, 'label': target})[1]['loss']
    s = 1 / (1 + np.exp(-X))
    expected = -(target * np.log(s) + (1 - target) * np.log(1 - s)).sum() / 2
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize('top_k,expected', [(1, 2 / 3), (2, 2 / 3), (3, 1.0)])
def test_accuracy_top_k_ignore_label_and_per_class(top_k, expected):
    """Valid positions: scores (1, 2, 3) label 2 (first); (0, 0, 0) label 0 (three tie at
    >= its score, so only top 3); (-1, 5, 1) label 1 (first)."""
    got = run_loss('Accuracy', f'accuracy_param {{ top_k: {top_k} ignore_label: 255 }}',
                   "top: 'acc' top: 'per_class'")
    np.testing.assert_allclose(got['acc'], expected, rtol=1e-6)
    assert got['per_class'].shape == (3,)
