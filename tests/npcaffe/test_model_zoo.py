"""The real model-zoo deploy nets in shared/models/prototxt build, run and round-trip.

Each net is built from its prototxt as distributed (VGG16 in the legacy V1 ``layers {}``
format, DeepLab with ``input_dim``), given seeded random weights (He-uniform weights, small
biases, BatchNorm statistics with positive variances), run forward on a seeded random image at
its own input size with batch 1 (the prototxts ask for batch 10; one image keeps the module
fast on two cores), and saved as a caffemodel that ``Net(prototxt, saved, TEST)`` loads back
with equal weights. DeepLab-v2 ResNet-101 runs at 129x129 instead of its 321x321 (which takes
about 30 s here): the net is fully convolutional, so any 8k+1 size exercises every layer; its
score map is then 17x17 (stride 8).

LeNet with its trained weights is checked against Caffe's own outputs in test_golden_nets.py
(golden/lenet_mnist_real). SegNet-basic uses fields outside caffe.proto and must be refused
with the field and the file:line named.
"""
import numpy as np
import pytest

import npcaffe
from npcaffe.errors import PrototxtError
from npcaffe.net_param import load_net_param
from tests.conftest import require_shared

# prototxt, input size (H, W) to run at, output blob, its expected shape at batch 1,
# number of parameters (the published counts: VGG16 138.4M, AlexNet 61.0M, GoogLeNet 7.0M)
MODELS = {
    'vgg16': ('VGG_ILSVRC_16_layers_deploy.prototxt', (224, 224), 'prob', (1, 1000),
              138_357_544),
    'alexnet': ('bvlc_alexnet_deploy.prototxt', (227, 227), 'prob', (1, 1000), 60_965_224),
    'caffenet': ('bvlc_reference_caffenet_deploy.prototxt', (227, 227), 'prob', (1, 1000),
                 60_965_224),
    'googlenet': ('bvlc_googlenet_deploy.prototxt', (224, 224), 'prob', (1, 1000), 6_998_552),
    'deeplab_resnet101': ('deeplab_resnet101_deploy.prototxt', (129, 129), 'fc1_voc12',
                          (1, 21, 17, 17), 44_153_980),
}

# the nets whose forward is quick: the reloaded net must reproduce the output exactly
RERUN_AFTER_RELOAD = {'alexnet', 'caffenet', 'googlenet'}


def _uniform(rng, blob, low, high):
    flat = blob.data.reshape(-1)          # a view: fills the blob in place
    rng.random(out=flat, dtype=flat.dtype)
    flat *= high - low
    flat += low


def fill_random(net, seed):
    """Seeded random parameters that keep activations finite through deep nets:
    He-uniform weights (fan-in = count / shape[0]), biases in +-0.1, Scale gammas in
    [0.5, 1.5], BatchNorm means in +-0.1, variances in [0.5, 1.5] and scale factor 1."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        blobs = layer.blobs
        if not blobs:
            continue
        if layer.type == 'BatchNorm':
            _uniform(rng, blobs[0], -0.1, 0.1)
            _uniform(rng, blobs[1], 0.5, 1.5)
            blobs[2].data[...] = 1
            continue
        for i, blob in enumerate(blobs):
            if i == 0 and blob.data.ndim >= 2:
                bound = np.sqrt(6.0 / max(1, blob.count // blob.shape[0]))
                _uniform(rng, blob, -bound, bound)
            elif i == 0 and layer.type == 'Scale':
                _uniform(rng, blob, 0.5, 1.5)
            else:
                _uniform(rng, blob, -0.1, 0.1)


@pytest.mark.parametrize('model', sorted(MODELS))
def test_model_builds_runs_and_round_trips(model, tmp_path):
    prototxt, (h, w), output, out_shape, n_params = MODELS[model]
    path = require_shared('models', 'prototxt', prototxt)
    net = npcaffe.Net(str(path), npcaffe.TEST)
    assert net.inputs == ['data'] and net.outputs == [output]
    assert sum(b.count for blobs in net.params.values() for b in blobs) == n_params
    data = net.blobs['data']
    data.reshape(1, data.shape[1], h, w)
    net.reshape()
    fill_random(net, seed=0)
    image = np.random.default_rng(1).uniform(-100, 100, data.shape).astype(np.float32)
    out = net.forward(data=image)[output]
    assert out.shape == out_shape
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    if output == 'prob':
        assert (out >= 0).all()
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)

    saved = tmp_path / f'{model}.caffemodel'
    net.save(str(saved))
    loaded = npcaffe.Net(str(path), str(saved), npcaffe.TEST)
    assert list(loaded.params) == list(net.params)
    for name, blobs in net.params.items():
        assert len(loaded.params[name]) == len(blobs)
        for i, (a, b) in enumerate(zip(loaded.params[name], blobs)):
            assert a.shape == b.shape, f"{name}/{i}"
            assert np.array_equal(a.data, b.data), f"{model}: {name}/{i} differs after reload"
    if model in RERUN_AFTER_RELOAD:
        loaded.blobs['data'].reshape(*data.shape)
        loaded.reshape()
        np.testing.assert_array_equal(loaded.forward(data=image)[output], out)


def test_vgg16_v1_prototxt_is_upgraded_layer_by_layer():
    """The V1 enum types become today's names, blobs_lr/weight_decay param specs."""
    path = require_shared('models', 'prototxt', MODELS['vgg16'][0])
    param, _ = load_net_param(str(path))
    types = [layer.type for layer in param.layer]
    assert types.count('Convolution') == 13 and types.count('InnerProduct') == 3
    assert types.count('Pooling') == 5 and types[0] == 'Input' and types[-1] == 'Softmax'
    assert not param.layers


def test_segnet_is_refused_naming_the_field_and_line():
    path = require_shared('models', 'prototxt', 'segnet_basic_inference.prototxt')
    with pytest.raises(PrototxtError) as err:
        npcaffe.Net(str(path), npcaffe.TEST)
    message = str(err.value)
    assert 'dense_image_data_param' in message
    assert f"{path}:7:" in message          # file:line:column of the unknown field
