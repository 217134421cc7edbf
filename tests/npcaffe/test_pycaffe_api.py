"""The pycaffe surface scripts call beyond forward/backward: constructor forms, pycaffe's
underscore attributes, batching (forward_all / backward_all), MemoryData, Python layers with
parameters and errors, the solver's Python hooks, and the module-level names. pycaffe's own
unit tests (python/caffe/test) are the model for several cases here."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import npcaffe as caffe
from npcaffe.errors import NetError


# -- Python layers used by the nets below (module "tests.npcaffe.test_pycaffe_api") ------------------
class ExceptionLayer(caffe.Layer):
    """pycaffe's test layer whose setup raises."""

    def setup(self, bottom, top):
        raise RuntimeError('bad things happened')


class KeyErrorLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise KeyError('missing_key')


class ValueErrorLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise ValueError('param_str must be a dict')


class PhaseLayer(caffe.Layer):
    """pycaffe's test layer: its top is the phase it was built for."""

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class ParameterLayer(caffe.Layer):
    """pycaffe's test layer: one parameter, diff set to 1 by backward."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class ScaleLayer(caffe.Layer):
    """top = w * bottom with one learnable scalar w, initial value from param_str."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = float(self.param_str or 0)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += float((top[0].diff * bottom[0].data).sum())
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class PyEuclideanLoss(caffe.Layer):
    """The Euclidean loss as BVLC's examples/pycaffe/layers/pyloss.py writes it: the sum of
    squared differences over ``2 * bottom[0].num`` (Caffe's legacy num, the batch size)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError(f"PyEuclideanLoss takes 2 bottoms, got {len(bottom)}")

    def reshape(self, bottom, top):
        self.delta = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.delta[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = (self.delta ** 2).sum() / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in enumerate((1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * self.delta / bottom[i].num


def write(tmp_path, text, name='net.prototxt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def python_layer(name, cls, bottom=(), top=('top',), param_str=''):
    bottoms = ''.join(f" bottom: '{b}'" for b in bottom)
    tops = ''.join(f" top: '{t}'" for t in top)
    return (f"layer {{ type: 'Python' name: '{name}'{bottoms}{tops} python_param {{ "
            f"module: 'tests.npcaffe.test_pycaffe_api' layer: '{cls}' param_str: '{param_str}' }} }}\n")


def simple_net_text(num_output=13):
    """pycaffe's test_net.simple_net_file."""
    return f"""name: 'testnet' force_backward: true
    layer {{ type: 'DummyData' name: 'data' top: 'data' top: 'label'
      dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4
        num: 5 channels: 1 height: 1 width: 1
        data_filler {{ type: 'gaussian' std: 1 }}
        data_filler {{ type: 'constant' }} }} }}
    layer {{ type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
      convolution_param {{ num_output: 11 kernel_size: 2 pad: 3
        weight_filler {{ type: 'gaussian' std: 1 }}
        bias_filler {{ type: 'constant' value: 2 }} }}
        param {{ decay_mult: 1 }} param {{ decay_mult: 0 }} }}
    layer {{ type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
      inner_product_param {{ num_output: {num_output}
        weight_filler {{ type: 'gaussian' std: 2.5 }}
        bias_filler {{ type: 'constant' value: -3 }} }} }}
    layer {{ type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label'
      top: 'loss' }}"""


@pytest.fixture
def simple_net(tmp_path):
    caffe.set_random_seed(7)
    net = caffe.Net(write(tmp_path, simple_net_text()), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs['label'].data[...] = rng.integers(13, size=net.blobs['label'].data.shape)
    return net


DEPLOY = """name: 'deploy' force_backward: true
layer { name: 'data' type: 'Input' top: 'data'
        input_param { shape { dim: %d dim: 2 dim: 4 dim: 4 } } }
layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'
        convolution_param { num_output: 3 kernel_size: 3
          weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 1 } } }
layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }
layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip'
        inner_product_param { num_output: 4
          weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 1 } } }
"""


# ------------------------------------------------------------------------------------------
# Net
def test_constructor_forms_levels_and_stages(tmp_path, simple_net):
    path = write(tmp_path, simple_net_text())
    weights = str(tmp_path / 'w.caffemodel')
    simple_net.save(weights)
    nets = [caffe.Net(path, weights, caffe.TRAIN),                      # legacy form
            caffe.Net(path, caffe.TRAIN, weights=weights),              # named form
            caffe.Net(network_file=path, phase=caffe.TRAIN, weights=weights),
            caffe.Net(path, caffe.TRAIN, level=0, stages=None, weights=weights)]
    for net in nets:
        for name in simple_net.params:
            for a, b in zip(simple_net.params[name], net.params[name]):
                np.testing.assert_array_equal(a.data, b.data)
    # pycaffe's TestLevels / TestStages
    levels = write(tmp_path, """
layer { name: "data" type: "DummyData" top: "data"
        dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel"
        inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
        include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A" include { stage: "A" }
        inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB"
        include { stage: "A" stage: "B" } inner_product_param { num_output: 1 } }
""", 'levels.prototxt')

    def blobs(net):
        return [b for b in net.blobs if 'data' not in b]

    assert blobs(caffe.Net(levels, caffe.TEST)) == ['NoLevel']
    assert blobs(caffe.Net(levels, caffe.TEST, level=1)) == ['NoLevel', 'Level1Only']
    assert blobs(caffe.Net(levels, caffe.TEST, stages=['A'])) == ['NoLevel', 'A']
    assert blobs(caffe.Net(levels, caffe.TEST, stages=['A', 'B'])) == ['NoLevel', 'A', 'AandB']


def test_layer_dict_underscore_names_and_top_bottom_names(simple_net):
    net = simple_net
    assert list(net.layer_dict) == list(net._layer_names) == ['data', 'conv', 'ip', 'loss']
    for i, name in enumerate(net._layer_names):
        assert net.layer_dict[name] is net.layers[i]
        assert net.layer_dict[name].type == net.layers[i].type
    assert list(net._blob_names) == list(net.blobs) == ['data', 'label', 'conv', 'ip_blob',
                                                         'loss']
    assert net.top_names == OrderedDict([('data', ['data', 'label']), ('conv', ['conv']),
                                         ('ip', ['ip_blob']), ('loss', ['loss'])])
    assert net.bottom_names == OrderedDict([('data', []), ('conv', ['data']),
                                            ('ip', ['conv']), ('loss', ['ip_blob', 'label'])])
    assert net.inputs == [] and net.outputs == ['loss']
    assert net.blob_loss_weights == OrderedDict([('data', 0), ('label', 0), ('conv', 0),
                                                 ('ip_blob', 0), ('loss', 1.0)])


def test_clear_param_diffs(simple_net):
    simple_net.forward()
    simple_net.backward()
    diff = simple_net.params['conv'][0].diff
    assert np.abs(diff).max() > 0
    simple_net.clear_param_diffs()
    assert (diff == 0).all()
    assert all((b.diff == 0).all() for blobs in simple_net.params.values() for b in blobs)


def test_forward_extra_blobs_and_start_end(simple_net):
    out = simple_net.forward(blobs=['conv', 'data'])
    assert set(out) == {'loss', 'conv', 'data'}
    assert out['conv'] is simple_net.blobs['conv'].data
    # pycaffe's test_forward_start_end: the end layer's tops come back
    conv = simple_net.blobs['conv']
    conv.data[...] = np.random.default_rng(2).uniform(size=conv.data.shape)
    out = simple_net.forward(start='ip', end='ip')
    assert set(out) == {'ip_blob'}
    w, b = (p.data for p in simple_net.params['ip'])
    manual = conv.data.reshape(conv.data.shape[0], -1) @ w.T + b
    np.testing.assert_allclose(out['ip_blob'], manual, rtol=1e-4, atol=1e-4)


def _deploy_pair(tmp_path, batch):
    """A net of batch ``batch`` and a batch-1 net sharing its weights."""
    caffe.set_random_seed(3)
    net = caffe.Net(write(tmp_path, DEPLOY % batch, 'b.prototxt'), caffe.TEST)
    single = caffe.Net(write(tmp_path, DEPLOY % 1, 'one.prototxt'), caffe.TEST)
    single.share_with(net)
    return net, single


@pytest.mark.parametrize('num', [1, 3, 5, 6])
def test_forward_all_batches_pads_and_trims_like_per_image_forward(tmp_path, num):
    net, single = _deploy_pair(tmp_path, batch=3)
    images = np.random.default_rng(num).standard_normal((num, 2, 4, 4)).astype(np.float32)
    out = net.forward_all(blobs=['conv'], data=images)
    assert set(out) == {'ip', 'conv'}
    assert out['ip'].shape == (num, 4) and out['conv'].shape == (num, 3, 2, 2)
    for i in range(num):
        ref = single.forward(blobs=['conv'], data=images[i:i + 1])
        np.testing.assert_allclose(out['ip'][i], ref['ip'][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out['conv'][i], ref['conv'][0], rtol=1e-5, atol=1e-6)
    assert net.blobs['data'].data.shape[0] == 3                 # the net keeps its batch size


def test_backward_all_and_forward_backward_all_match_per_image(tmp_path):
    net, single = _deploy_pair(tmp_path, batch=2)
    rng = np.random.default_rng(4)
    images = rng.standard_normal((5, 2, 4, 4)).astype(np.float32)
    top_diffs = rng.standard_normal((5, 4)).astype(np.float32)
    diffs = net.backward_all(diffs=['conv'], data=images, ip=top_diffs)
    assert set(diffs) == {'data', 'conv'} and diffs['data'].shape == (5, 2, 4, 4)
    outs, diffs2 = net.forward_backward_all(blobs=['conv'], diffs=['conv'], data=images,
                                            ip=top_diffs)
    assert outs['ip'].shape == (5, 4) and set(outs) == {'ip', 'conv'}
    for i in range(5):
        single.forward(data=images[i:i + 1])
        ref = single.backward(diffs=['conv'], ip=top_diffs[i:i + 1])
        for got in (diffs, diffs2):
            np.testing.assert_allclose(got['data'][i], ref['data'][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got['conv'][i], ref['conv'][0], rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match='neither inputs'):
        net.backward_all(nothing=top_diffs)
    with pytest.raises(ValueError, match='same length'):
        net.forward_backward_all(data=images, ip=top_diffs[:4])


MEMORY_NET = """name: 'mem'
layer { name: 'data' type: 'MemoryData' top: 'data' top: 'label'
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 2 weight_filler { type: 'constant' value: 1 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""


def test_set_input_arrays_feeds_memory_data_batch_by_batch(tmp_path):
    net = caffe.Net(write(tmp_path, MEMORY_NET), caffe.TRAIN)
    data = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    labels = np.array([0, 1, 1, 0], np.float32)
    net.set_input_arrays(data, labels)
    for start in (0, 2, 0):                                    # wraps around after the end
        net.forward()
        np.testing.assert_array_equal(net.blobs['data'].data, data[start:start + 2])
        np.testing.assert_array_equal(net.blobs['label'].data, labels[start:start + 2])
    np.testing.assert_allclose(net.blobs['ip'].data[:, 0], data[:2].reshape(2, -1).sum(1))
    with pytest.raises(ValueError, match='multiple of the batch size'):
        net.set_input_arrays(data[:3], labels[:3])
    with pytest.raises(ValueError, match='same first'):
        net.set_input_arrays(data, labels[:2])
    with pytest.raises(ValueError, match=r'must be \(1, 2, 3\)'):
        net.set_input_arrays(np.zeros((2, 3, 2, 3), np.float32), labels[:2])
    fresh = caffe.Net(write(tmp_path, MEMORY_NET, 'fresh.prototxt'), caffe.TRAIN)
    with pytest.raises(NetError, match='set_input_arrays'):
        fresh.forward()
    deploy = caffe.Net(write(tmp_path, DEPLOY % 1, 'deploy.prototxt'), caffe.TEST)
    with pytest.raises(NetError, match="needs a MemoryData layer.*'data' of type Input"):
        deploy.set_input_arrays(data, labels)


# ------------------------------------------------------------------------------------------
# Python layers
INPUT = "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n"


@pytest.mark.parametrize('cls, base, words', [
    ('ExceptionLayer', RuntimeError, ['RuntimeError', 'bad things happened']),
    ('KeyErrorLayer', KeyError, ['KeyError', 'missing_key']),
    ('ValueErrorLayer', ValueError, ['ValueError', 'param_str must be a dict']),
])
def test_python_layer_setup_exception_surfaces_naming_the_layer(tmp_path, cls, base, words):
    path = write(tmp_path, "name: 'pythonnet'\n" + INPUT +
                 python_layer('culprit', cls, bottom=['data']))
    with pytest.raises(base) as info:                          # pycaffe: assertRaises(...)
        caffe.Net(path, caffe.TEST)
    assert type(info.value).__name__ == base.__name__           # the layer's own exception
    message = str(info.value)
    for word in ["'culprit'", f'tests.npcaffe.test_pycaffe_api.{cls}', 'setup'] + words:
        assert word in message, (word, message)


def linreg_net_text(loss):
    """BVLC's examples/pycaffe/linreg.prototxt: two (10, 3, 2) gaussian inputs through
    InnerProducts of 10 outputs into a loss (tops (10, 10): num 10)."""
    inputs = ''.join(f"""layer {{ type: 'DummyData' name: '{b}' top: '{b}'
      dummy_data_param {{ shape {{ dim: 10 dim: 3 dim: 2 }} data_filler {{ type: 'gaussian' }} }} }}
    layer {{ type: 'InnerProduct' name: 'ip{b}' bottom: '{b}' top: 'ip{b}'
      inner_product_param {{ num_output: 10 weight_filler {{ type: 'xavier' }} }} }}
    """ for b in 'xy')
    return f"name: 'LinearRegressionExample'\n{inputs}{loss}"


def test_pyloss_example_layer_equals_the_builtin_euclidean_loss(tmp_path):
    builtin = write(tmp_path, linreg_net_text(
        "layer { type: 'EuclideanLoss' name: 'loss' bottom: 'ipx' bottom: 'ipy' top: 'loss' }"),
        'builtin.prototxt')
    python = write(tmp_path, linreg_net_text(
        python_layer('loss', 'PyEuclideanLoss', ['ipx', 'ipy'], ['loss'])[:-2] +
        " loss_weight: 1 }\n"), 'python.prototxt')
    results = []
    for path in (builtin, python):
        caffe.set_random_seed(3)                       # the same inputs and weights in both
        net = caffe.Net(path, caffe.TRAIN)
        loss = net.forward()['loss'].item()            # shape () built in, (1,) in Python
        net.backward()
        results.append((loss, net.params['ipx'][0].diff.copy(), net.params['ipy'][0].diff.copy()))
    (loss_c, dx_c, dy_c), (loss_p, dx_p, dy_p) = results
    assert loss_c > 0
    np.testing.assert_allclose(loss_p, loss_c, rtol=1e-5)    # not 10x: num is 10, not 1
    np.testing.assert_allclose(dx_p, dx_c, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(dy_p, dy_c, rtol=1e-4, atol=1e-7)


def test_python_layer_phase_and_param_str(tmp_path):
    path = write(tmp_path, python_layer('layer', 'PhaseLayer', top=['phase']))
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(path, phase)
        assert net.forward()['phase'] == phase
        assert net.layers[0].phase == phase and net.layers[0].type == 'Python'
    net = caffe.Net(write(tmp_path, INPUT + python_layer('s', 'ScaleLayer', ['data'],
                                                         param_str='2.5'), 'p.prototxt'),
                    caffe.TEST)
    assert net.layers[1].param_str == '2.5' and net.params['s'][0].data[0] == 2.5
    copy = pickle.loads(pickle.dumps(net.layers[1]))           # still picklable (prefetch)
    assert copy.param_str == '2.5' and copy.blobs[0].data[0] == 2.5


def test_python_layer_parameter_save_load_and_share(tmp_path):
    # pycaffe's test_python_layer.test_parameter
    path = write(tmp_path, "name: 'pythonnet' force_backward: true\n" + INPUT +
                 python_layer('layer', 'ParameterLayer', ['data']))
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index('layer')]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    weights = str(tmp_path / 'saved')                           # no extension, as pycaffe
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1
    net2 = caffe.Net(path, caffe.TRAIN)
    net2.share_with(net)
    assert net2.layers[list(net2._layer_names).index('layer')].blobs[0].data[0] == 1


def test_python_layer_scalar_is_learned_by_the_solver_and_saved(tmp_path):
    """loss = |w x - 3 x|^2 / (2N): SGD drives the Python layer's own parameter w to 3."""
    net_text = ("name: 'learn'\n"
                "layer { name: 'x' type: 'DummyData' top: 'x' dummy_data_param { "
                "shape { dim: 4 dim: 3 } data_filler { type: 'uniform' min: 0.5 max: 1.5 } } }\n"
                "layer { name: 'target' type: 'Power' bottom: 'x' top: 'target' "
                "power_param { scale: 3 } }\n"
                + python_layer('scale', 'ScaleLayer', ['x'], ['y'], param_str='0.5') +
                "layer { name: 'loss' type: 'EuclideanLoss' bottom: 'y' bottom: 'target' "
                "top: 'loss' }\n")
    net_path = write(tmp_path, net_text, 'learn.prototxt')
    solver_path = write(tmp_path, f"net: '{net_path}' base_lr: 0.5 momentum: 0.5 "
                                  f"lr_policy: 'fixed' max_iter: 60 random_seed: 1 "
                                  f"snapshot_prefix: '{tmp_path / 'learn'}'",
                        'solver.prototxt')
    solver = caffe.SGDSolver(solver_path)
    assert solver.net.params['scale'][0].data[0] == 0.5
    solver.step(60)
    w = float(solver.net.params['scale'][0].data[0])
    assert w == pytest.approx(3.0, abs=1e-4)
    assert float(solver.net.blobs['loss'].data) < 1e-6
    for name in ('scale.caffemodel', 'scale.caffemodel.h5'):
        path = str(tmp_path / name)
        if name.endswith('.h5'):
            solver.net.save_hdf5(path)
        else:
            solver.net.save(path)
        fresh = caffe.Net(net_path, caffe.TEST, weights=path)
        assert fresh.params['scale'][0].data[0] == np.float32(w)


# ------------------------------------------------------------------------------------------
# Solver
def _solver_files(tmp_path, extra=''):
    """pycaffe's test_solver setup: simple_net with a test net, SGD 'inv'."""
    net_f = write(tmp_path, simple_net_text(), 'simple.prototxt')
    return write(tmp_path, f"""net: '{net_f}'
        test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9
        weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
        display: 100 max_iter: 100 snapshot_after_train: false
        snapshot_prefix: '{tmp_path / 'model'}' random_seed: 5 {extra}""", 'solver.prototxt')


def _labels(solver):
    rng = np.random.default_rng(0)
    for net in [solver.net] + list(solver.test_nets):
        net.blobs['label'].data[...] = rng.integers(13, size=net.blobs['label'].data.shape)


def test_solver_surface_and_test_nets_share_weights(tmp_path):
    solver = caffe.get_solver(_solver_files(tmp_path))
    assert isinstance(solver, caffe.SGDSolver)
    _labels(solver)
    assert len(solver.test_nets) == 1 and solver.iter == 0 and solver.max_iter == 100
    test_net = solver.test_nets[0]
    for name, blobs in solver.net.params.items():
        for a, b in zip(blobs, test_net.params[name]):
            assert np.shares_memory(a.data, b.data)
    solver.net.params['ip'][1].data[...] = 42                  # seen by the test net at once
    assert (test_net.params['ip'][1].data == 42).all()
    other = caffe.Net(str(tmp_path / 'simple.prototxt'), caffe.TEST)
    solver.share_weights(other)
    assert np.shares_memory(other.params['conv'][0].data, solver.net.params['conv'][0].data)
    solver.step(2)
    np.testing.assert_array_equal(other.params['conv'][0].data,
                                  solver.net.params['conv'][0].data)


def test_apply_update_and_callbacks(tmp_path):
    net_f = write(tmp_path, """name: 'one'
        layer { name: 'w' type: 'Parameter' top: 'w'
                parameter_param { shape { dim: 1 dim: 2 } } }
        layer { name: 'loss' type: 'EuclideanLoss' bottom: 'w' bottom: 'w' top: 'loss' }
        """, 'one.prototxt')
    solver = caffe.SGDSolver(write(tmp_path, f"net: '{net_f}' base_lr: 0.1 lr_policy: 'fixed' "
                                             f"max_iter: 10 snapshot_prefix: "
                                             f"'{tmp_path / 's'}'", 's.prototxt'))
    w = solver.net.params['w'][0]
    w.data[...] = [1.0, -2.0]
    w.diff[...] = [10.0, 20.0]
    solver.apply_update()                                       # w -= lr * diff, iter kept
    np.testing.assert_allclose(w.data, [[0.0, -4.0]])
    assert solver.iter == 0
    events = []
    solver.add_callback(lambda: events.append(('start', solver.iter)),
                        lambda: events.append(('gradients', solver.iter,
                                               float(np.abs(w.diff).sum()))))
    solver.step(2)
    assert [e[:2] for e in events] == [('start', 0), ('gradients', 0), ('start', 1),
                                       ('gradients', 1)]
    assert solver.iter == 2


def test_snapshot_and_restore(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver(_solver_files(tmp_path))
    _labels(solver)
    solver.step(3)
    solver.snapshot()
    for name in ('model_iter_3.caffemodel', 'model_iter_3.solverstate'):
        assert os.path.isfile(tmp_path / name)                  # pycaffe's test_snapshot
    saved = {k: [b.data.copy() for b in v] for k, v in solver.net.params.items()}
    solver.step(2)
    solver.restore(str(tmp_path / 'model_iter_3.solverstate'))
    assert solver.iter == 3
    for name, blobs in saved.items():
        for a, b in zip(blobs, solver.net.params[name]):
            np.testing.assert_array_equal(a, b.data)


# ------------------------------------------------------------------------------------------
# the module
def test_module_names():
    assert caffe.has_nccl() is False
    assert isinstance(caffe.__version__, str) and caffe.__version__.count('.') == 2
    import npcaffe.classifier
    import npcaffe.detector
    assert caffe.Classifier is npcaffe.classifier.Classifier
    assert caffe.Detector is npcaffe.detector.Detector
    assert issubclass(caffe.Classifier, caffe.Net) and issubclass(caffe.Detector, caffe.Net)
    assert caffe.io.Transformer is not None
    assert 'MemoryData' in caffe.layer_type_list()
    assert caffe.proto.caffe_pb2.BlobProto is not None
    for name in ('Classifier', 'Detector', 'io'):
        assert name in caffe.__all__


def test_layer_type_list_has_python_as_a_caffe_built_with_python_layer(tmp_path):
    # pycaffe's test_python_layer*.py skip every test unless 'Python' is listed
    types = caffe.layer_type_list()
    assert 'Python' in types and types == sorted(types) and len(set(types)) == len(types)
    assert {'Convolution', 'InnerProduct', 'MemoryData'} <= set(types)
    with pytest.raises(caffe.UnknownLayerTypeError, match="'Pyton'.*'Python'"):
        caffe.Net(write(tmp_path, "layer { type: 'Pyton' name: 'p' top: 'p' }"), caffe.TEST)
