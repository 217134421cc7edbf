"""Exported nets run in ONNX Runtime equal npcaffe's forward (1e-4 relative), and Caffe's.

* every golden forward case and net in shared/golden (the tiny FCNs with their loss, LeNet with
  its real weights, every layer case), built in the TEST phase with its weights and inputs:
  every recorded blob is a graph output; each must equal npcaffe's, and (where the forward does
  not depend on the phase) Caffe's recorded blob with FORMAT.md's tolerance;
* the legacy V1 classifier against Caffe's expected fc8/prob;
* every model-zoo deploy net in shared/models/prototxt (VGG16, AlexNet, CaffeNet, GoogLeNet,
  DeepLab-v2 ResNet-101 at 129x129) with seeded random weights, batch 1, written to a file;
* the refusals: a Python layer, a TRAIN-phase net, an unknown output.
"""
import numpy as np
import pytest

import npcaffe
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.onnx import build_model, export
from tests.conftest import require_shared
from tests.golden import FORWARD_TOL, assert_close, golden_cases, load_case
from tests.npcaffe.onnx.util import compare, forward, require_runtime, run, strict_check
from tests.npcaffe.test_model_zoo import MODELS, fill_random

#: Golden cases whose TEST-phase forward differs from the recorded (TRAIN-phase) one, so only
#: npcaffe's TEST forward is the reference: BatchNorm normalises with the batch's statistics in
#: TRAIN and with the stored ones in TEST.
PHASE_DEPENDENT = {'batchnorm_train_stats'}
#: Golden cases left out: none. Every layer and net case in shared/golden has a TEST-phase
#: forward ONNX expresses (the loss and Accuracy layers included). The folders without
#: blobs.npz are not forward cases: solver_* (training trajectories), data/ (Caffe's data
#: layers reading LMDB/LevelDB/HDF5/images), python_data_layers (Python layers), netspec/
#: (prototxt text), v1_vgg_classifier (tested below through its expected.npz).
LEFT_OUT = {}
CASES = [c for c in golden_cases() if c not in LEFT_OUT]

#: the layer cases and nets every golden forward case is drawn from, named for the
#: shared-coverage check of tests/npcaffe/test_golden_nets.py
NETS = ['fcn32s_tiny', 'fcn16s_tiny', 'fcn8s_tiny', 'lenet_mnist_real']


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


@pytest.mark.parametrize('case', CASES or [pytest.param(None, marks=pytest.mark.skip(
    reason='shared/golden not found'))])
def test_golden_case_exports_and_matches(case):
    folder, meta, arrays = load_case(case)
    net = npcaffe.Net(str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'),
                      npcaffe.TEST)
    feeds = {k[3:]: v for k, v in arrays.items() if k.startswith('in/')}
    recorded = {k[5:]: v for k, v in arrays.items() if k.startswith('data/')}
    outputs = [b for b in recorded if b not in net.inputs]
    worst, got = compare(net, feeds, outputs=outputs)
    assert set(got) >= set(outputs)
    if case not in PHASE_DEPENDENT:
        for name in outputs:
            assert_close(got[name], recorded[name], FORWARD_TOL, f"{case}: {name} vs Caffe")


def test_v1_classifier_matches_caffe():
    folder = require_shared('golden', 'v1_vgg_classifier')
    expected = np.load(folder / 'expected.npz')
    net = npcaffe.Net(str(folder / 'deploy.prototxt'), str(folder / 'weights_v1.caffemodel'),
                      npcaffe.TEST)
    _, got = compare(net, {'data': expected['in/data']}, outputs=['fc8'])
    assert_close(got['prob'], expected['data/prob'], FORWARD_TOL, 'prob')
    assert_close(got['fc8'], expected['data/fc8'], FORWARD_TOL, 'fc8')


@pytest.mark.parametrize('model', sorted(MODELS))
def test_model_zoo_deploy_net_exports_and_matches(model, tmp_path):
    prototxt, (h, w), output, out_shape, _ = MODELS[model]
    net = npcaffe.Net(str(require_shared('models', 'prototxt', prototxt)), npcaffe.TEST)
    fill_random(net, seed=0)
    image = np.random.default_rng(1).uniform(-100, 100, (1, 3, h, w)).astype(np.float32)
    expected = forward(net, {'data': image})
    # a classifier's prob saturates on random weights: compare the scores before it too
    extra = [net.bottom_names[net._layer_names[-1]][0]] if output == 'prob' else []
    path = export(net, tmp_path / f'{model}.onnx', outputs=extra)
    got = run(path, {'data': image})
    assert got[output].shape == out_shape
    for name in [output] + extra:
        assert_close(got[name], expected[name], FORWARD_TOL, f"{model}: {name}")


def test_large_weights_can_go_to_external_data(tmp_path):
    net = npcaffe.Net(str(require_shared('golden', 'lenet_mnist_real', 'net.prototxt')),
                      str(require_shared('golden', 'lenet_mnist_real', 'weights.caffemodel')),
                      npcaffe.TEST)
    image = np.random.default_rng(0).uniform(0, 1, net.blobs['data'].shape)
    path = export(net, tmp_path / 'lenet.onnx', external_data=True)
    assert (tmp_path / 'lenet.onnx.data').stat().st_size > 1_000_000
    assert path.stat().st_size < 100_000
    export(net, tmp_path / 'lenet.onnx', external_data=True)       # rewritten, not appended
    assert (tmp_path / 'lenet.onnx.data').stat().st_size < 2_000_000
    got = run(path, {'data': image})
    assert_close(got['prob'], forward(net, {'data': image})['prob'], FORWARD_TOL, 'prob')


PYTHON_NET = """
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 2 } } }
layer { name: 'double' type: 'Python' bottom: 'data' top: 'y'
        python_param { module: 'onnx_test_double' layer: 'Double' } }
"""
DOUBLE = """
import npcaffe
class Double(npcaffe.Layer):
    def setup(self, bottom, top): pass
    def reshape(self, bottom, top): top[0].reshape(*bottom[0].shape)
    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data
"""


def python_layer_net(tmp_path, monkeypatch):
    (tmp_path / 'onnx_test_double.py').write_text(DOUBLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / 'python.prototxt').write_text(PYTHON_NET)
    return tmp_path / 'python.prototxt'


def test_python_layer_is_refused_naming_layer_and_type(tmp_path, monkeypatch):
    net = npcaffe.Net(str(python_layer_net(tmp_path, monkeypatch)), npcaffe.TEST)
    with pytest.raises(NotSupportedError, match=r"layer 'double' of type Python cannot be "
                                                r"exported to ONNX"):
        build_model(net)


def test_train_phase_and_unknown_outputs_are_refused():
    folder = require_shared('golden', 'absval')
    train = npcaffe.Net(str(folder / 'net.prototxt'), npcaffe.TRAIN)
    with pytest.raises(NetError, match='TRAIN phase'):
        build_model(train)
    test = npcaffe.Net(str(folder / 'net.prototxt'), npcaffe.TEST)
    with pytest.raises(NetError, match="output 'nope' is not a blob"):
        build_model(test, outputs=['nope'])
    with pytest.raises(NetError, match="'nope', which is not an input"):
        build_model(test, input_shapes={'nope': (1, 2)})


def test_input_shapes_reshape_before_export():
    folder = require_shared('golden', 'conv_k3_p1')
    net = npcaffe.Net(str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'),
                      npcaffe.TEST)
    n, c, h, w = net.blobs['x0'].shape
    model = strict_check(build_model(net, input_shapes={'x0': (n, c, h + 3, w + 1)}))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [n, c, h + 3, w + 1]
    x = np.random.default_rng(0).normal(size=dims).astype(np.float32)
    assert_close(run(model, {'x0': x})['y'], forward(net, {'x0': x})['y'], FORWARD_TOL, 'y')


def test_a_failed_export_leaves_the_earlier_model_and_data_whole(tmp_path, monkeypatch):
    """The new model and its data are written beside, checked, then renamed into place: a
    failure on the way leaves the earlier files as they were and no temporary file behind."""
    import onnx
    net = npcaffe.Net(str(require_shared('golden', 'lenet_mnist_real', 'net.prototxt')),
                      str(require_shared('golden', 'lenet_mnist_real', 'weights.caffemodel')),
                      npcaffe.TEST)
    export(net, tmp_path / 'lenet.onnx', external_data=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def refuse(*args, **kwargs):
        raise onnx.checker.ValidationError('refused for the test')

    monkeypatch.setattr(onnx.checker, 'check_model', refuse)
    for blobs in net.params.values():                  # other weights: other bytes
        blobs[0].data[...] *= 2
    with pytest.raises(onnx.checker.ValidationError):
        export(net, tmp_path / 'lenet.onnx', external_data=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
