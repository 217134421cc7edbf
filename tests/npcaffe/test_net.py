"""Net: construction rules, forward/backward plumbing, weights, errors (Caffe's Net::Init)."""
import logging

import numpy as np
import pytest

import npcaffe
from npcaffe.errors import NetError, PrototxtError, UnknownLayerTypeError, WeightShapeError


# -- Python layers used by the nets below (module "tests.npcaffe.test_net") ---------------------------
class ScaleByParamLayer(npcaffe.Layer):
    """top = bottom * factor, factor from param_str; backward multiplies the diff."""

    def setup(self, bottom, top):
        self.factor = float(self.param_str or 1)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.factor

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.factor


class SumLossLayer(npcaffe.Layer):
    """loss = sum(bottom); its gradient is the loss weight everywhere."""
    is_loss = True

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.sum()

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff


class WeightedLayer(npcaffe.Layer):
    """top = bottom * w with one learnable scalar w (a parameter blob)."""

    def setup(self, bottom, top):
        if not self.blobs:
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = 3

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data[0]

    def backward(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data[0]


def py(name, layer, bottom, top, extra=''):
    bottoms = ''.join(f' bottom: "{b}"' for b in bottom)
    tops = ''.join(f' top: "{t}"' for t in top)
    return (f'layer {{ name: "{name}" type: "Python"{bottoms}{tops} {extra} '
            f'python_param {{ module: "tests.npcaffe.test_net" layer: "{layer}" '
            f'param_str: "{extra and "" or "2"}" }} }}\n')


INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'


def write(tmp_path, text, name='net.prototxt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_constructor_forms_and_pycaffe_attributes(tmp_path):
    text = INPUT + py('double', 'ScaleByParamLayer', ['data'], ['y']) + \
        'layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }\n'
    path = write(tmp_path, text)
    net = npcaffe.Net(path, npcaffe.TEST)
    assert net.inputs == ['data'] and net.outputs == ['y']
    assert list(net.blobs) == ['data', 'y'] and net._layer_names == ['data', 'double', 'relu']
    assert net.top_names['relu'] == ['y'] and net.bottom_names['double'] == ['data']
    assert net.blobs['y'] is net.blobs['y'] and net.layers[1].type == 'Python'
    x = np.array([[-1, 0, 1], [2, -3, 4]], np.float32)
    out = net.forward(data=x)
    np.testing.assert_array_equal(out['y'], np.maximum(2 * x, 0))
    net.save(str(tmp_path / 'w.caffemodel'))
    for args, kwargs in (((str(tmp_path / 'w.caffemodel'), npcaffe.TEST), {}),
                         ((npcaffe.TEST,), {'weights': str(tmp_path / 'w.caffemodel')}),
                         ((npcaffe.TRAIN,), {'level': 1, 'stages': ['x']})):
        assert npcaffe.Net(path, *args, **kwargs).phase == args[-1]
    with pytest.raises(TypeError, match='phase'):
        npcaffe.Net(path)


def test_reshape_input_then_forward(tmp_path):
    net = npcaffe.Net(write(tmp_path, INPUT + py('d', 'ScaleByParamLayer', ['data'], ['y'])),
                      npcaffe.TEST)
    net.blobs['data'].reshape(1, 5)
    net.blobs['data'].data[...] = 1
    net.forward()
    assert net.blobs['y'].shape == (1, 5) and (net.blobs['y'].data == 2).all()
    net.blobs['data'].reshape(3, 1)
    net.reshape()
    assert net.blobs['y'].shape == (3, 1)


def test_include_exclude_phase_stage_and_level(tmp_path):
    text = INPUT + (
        'layer { name: "train_only" type: "ReLU" bottom: "data" top: "a" include { phase: TRAIN } }\n'
        'layer { name: "test_only" type: "ReLU" bottom: "data" top: "a" include { phase: TEST } }\n'
        'layer { name: "staged" type: "ReLU" bottom: "data" top: "b" include { stage: "deploy" } }\n'
        'layer { name: "leveled" type: "ReLU" bottom: "data" top: "c" include { min_level: 2 } }\n'
        'layer { name: "not_deploy" type: "ReLU" bottom: "data" top: "d" '
        'exclude { stage: "deploy" } }\n')
    path = write(tmp_path, text)
    def names(net):
        return [n for n, layer in zip(net._layer_names, net.layers)
                if layer.type not in ('Input', 'Split')]

    assert names(npcaffe.Net(path, npcaffe.TRAIN)) == ['train_only', 'not_deploy']
    assert names(npcaffe.Net(path, npcaffe.TEST, stages=['deploy'])) == ['test_only', 'staged']
    assert names(npcaffe.Net(path, npcaffe.TEST, level=3)) == ['test_only', 'leveled',
                                                               'not_deploy']
    both = write(tmp_path, INPUT + 'layer { name: "x" type: "ReLU" bottom: "data" top: "x" '
                 'include { phase: TRAIN } exclude { phase: TEST } }', 'both.prototxt')
    with pytest.raises(NetError, match="'x'.*both include and exclude"):
        npcaffe.Net(both, npcaffe.TRAIN)


def test_split_inserted_with_caffe_names_and_diffs_summed(tmp_path):
    text = INPUT + py('a', 'ScaleByParamLayer', ['data'], ['y']) + \
        py('b', 'ScaleByParamLayer', ['y'], ['p']) + \
        py('c', 'ScaleByParamLayer', ['y'], ['q']) + \
        py('lp', 'SumLossLayer', ['p'], ['lossp'], 'loss_weight: 1') + \
        py('lq', 'SumLossLayer', ['q'], ['lossq'], 'loss_weight: 0.5')
    net = npcaffe.Net(write(tmp_path, 'force_backward: true\n' + text), npcaffe.TRAIN)
    assert 'y_a_0_split' in net._layer_names
    assert net.bottom_names['b'] == ['y_a_0_split_0'] and net.bottom_names['c'] == ['y_a_0_split_1']
    assert net.outputs == ['lossp', 'lossq']
    net.blobs['data'].data[...] = 1
    out = net.forward()
    assert out['lossp'] == pytest.approx(4 * 6) and out['lossq'] == pytest.approx(4 * 6)
    assert net.forward_prefilled() == pytest.approx(24 + 0.5 * 24)
    net.backward()
    # d/dy = 2 * 1 (via b) + 2 * 0.5 (via c) = 3; d/ddata = 2 * 3
    np.testing.assert_allclose(net.blobs['y'].diff, 3)
    np.testing.assert_allclose(net.blobs['data'].diff, 6)


def test_in_place_layers_share_the_blob_and_diff(tmp_path):
    text = INPUT + py('a', 'ScaleByParamLayer', ['data'], ['y']) + \
        'layer { name: "r1" type: "ReLU" bottom: "y" top: "y" }\n' + \
        'layer { name: "r2" type: "ReLU" bottom: "y" top: "y" }\n' + \
        py('l', 'SumLossLayer', ['y'], ['loss'], 'loss_weight: 1')
    net = npcaffe.Net(write(tmp_path, 'force_backward: true\n' + text), npcaffe.TRAIN)
    assert list(net.blobs) == ['data', 'y', 'loss']
    net.blobs['data'].data[...] = [[-1, 1, 2], [0, -2, 3]]
    net.forward()
    net.backward()
    np.testing.assert_array_equal(net.blobs['y'].diff, [[0, 1, 1], [0, 0, 1]])


def test_force_backward_propagate_down_and_params(tmp_path):
    body = py('w', 'WeightedLayer', ['data'], ['y']) + py('l', 'SumLossLayer', ['y'], ['loss'])
    net = npcaffe.Net(write(tmp_path, INPUT + body), npcaffe.TRAIN)
    net.blobs['data'].data[...] = 1
    net.forward()
    net.backward()
    assert net.params['w'][0].diff[0] == pytest.approx(6)       # sum(x) * loss weight 1
    assert not net.blobs['data'].diff.any()                       # inputs need no backward
    forced = npcaffe.Net(write(tmp_path, 'force_backward: true\n' + INPUT + body, 'f.prototxt'),
                         npcaffe.TRAIN)
    forced.blobs['data'].data[...] = 1
    forced.forward()
    forced.backward()
    np.testing.assert_array_equal(forced.blobs['data'].diff, 3)
    frozen = body.replace('"WeightedLayer"', '"WeightedLayer"').replace(
        'type: "Python" bottom: "data" top: "y"',
        'type: "Python" bottom: "data" top: "y" param { lr_mult: 0 } propagate_down: false')
    net = npcaffe.Net(write(tmp_path, INPUT + frozen, 'z.prototxt'), npcaffe.TRAIN)
    net.forward()
    net.backward()
    assert net.params['w'][0].diff[0] == 0 and not net.layer_need_backward('w')


def test_parameters_shared_by_name_accumulate_into_the_owner(tmp_path):
    shared = 'param { name: "k" }'
    text = INPUT + py('w1', 'WeightedLayer', ['data'], ['a'], shared) + \
        py('w2', 'WeightedLayer', ['a'], ['b'], shared) + \
        py('l', 'SumLossLayer', ['b'], ['loss'], 'loss_weight: 1')
    net = npcaffe.Net(write(tmp_path, text), npcaffe.TRAIN)
    assert len(net.learnable_params) == 1
    net.params['w1'][0].data[...] = 2
    assert net.params['w2'][0].data[0] == 2
    net.blobs['data'].data[...] = 1
    net.forward()
    assert net.blobs['b'].data[0, 0] == 4
    net.backward()
    # loss = sum(x * w * w): d/dw = sum(2 w x) = 2 * 2 * 6 = 24
    assert net.params['w1'][0].diff[0] == pytest.approx(24)


def test_forward_start_end_and_backward_kwargs(tmp_path):
    text = INPUT + py('a', 'ScaleByParamLayer', ['data'], ['y']) + \
        py('b', 'ScaleByParamLayer', ['y'], ['z'])
    net = npcaffe.Net(write(tmp_path, 'force_backward: true\n' + text), npcaffe.TEST)
    net.blobs['data'].data[...] = 1
    out = net.forward(end='a')
    assert set(out) == {'y'} and (out['y'] == 2).all() and not net.blobs['z'].data.any()
    out = net.forward(start='b', blobs=['y'])
    assert set(out) == {'y', 'z'} and (out['z'] == 4).all()
    diffs = net.backward(z=np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(diffs['data'], 4)
    with pytest.raises(KeyError, match='do not match'):
        net.backward(y=np.ones((2, 3)))
    with pytest.raises(KeyError, match="'nope'"):
        net.forward(end='nope')


def test_weights_copy_save_and_mismatch(tmp_path, caplog):
    body = py('w', 'WeightedLayer', ['data'], ['y'])
    net = npcaffe.Net(write(tmp_path, INPUT + body), npcaffe.TEST)
    net.params['w'][0].data[...] = 5
    model = str(tmp_path / 'm.caffemodel')
    net.save(model)
    other = npcaffe.Net(write(tmp_path, INPUT + body, 'o.prototxt'), npcaffe.TEST)
    assert other.copy_from(model) == ['w'] and other.params['w'][0].data[0] == 5
    # a renamed layer is skipped, and a net where nothing matched is reported
    renamed = npcaffe.Net(write(tmp_path, INPUT + py('w2', 'WeightedLayer', ['data'], ['y']),
                                'r.prototxt'), npcaffe.TEST)
    with caplog.at_level(logging.WARNING):
        assert renamed.copy_from(model) == []
    assert 'no layer of the weights matched' in caplog.text
    # same name, other shape: layer, both shapes and the rename hint
    class_text = INPUT + 'layer { name: "w" type: "Parameter" top: "y" ' \
        'parameter_param { shape { dim: 2 dim: 2 } } }'
    mismatched = npcaffe.Net(write(tmp_path, class_text, 'p.prototxt'), npcaffe.TEST)
    with pytest.raises(WeightShapeError) as err:
        mismatched.copy_from(model)
    msg = str(err.value)
    assert "'w'" in msg and '1 in the weights' in msg and '(2, 2) in the net' in msg
    assert 'rename' in msg


def test_construction_errors_name_the_culprit(tmp_path):
    cases = {
        'layer { name: "c" type: "Convolutoin" bottom: "data" top: "c" }':
            (UnknownLayerTypeError, ["'Convolutoin'", "'c'", 'Known types', 'ReLU']),
        'layer { name: "r" type: "ReLU" bottom: "nothing" top: "r" }':
            (NetError, ["'r'", "'nothing'", 'no earlier layer']),
        'layer { name: "r1" type: "ReLU" bottom: "data" top: "x" }\n'
        'layer { name: "r2" type: "ReLU" bottom: "data" top: "x" }':
            (NetError, ["'x'", "'r2'", 'already produced']),
        'layer { name: "r" type: "ReLU" top: "x" }':
            (NetError, ["'r'", 'exactly 1 bottom', '0 are given']),
        'layer { name: "p" type: "Python" bottom: "data" top: "x" '
        'python_param { module: "no_such_module_here" layer: "X" } }':
            (NetError, ["'p'", 'no_such_module_here']),
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" foo: 1 }':
            (PrototxtError, ['net.prototxt:2:', '"foo"']),
    }
    for body, (exc, words) in cases.items():
        with pytest.raises(exc) as err:
            npcaffe.Net(write(tmp_path, INPUT + body), npcaffe.TEST)
        for word in words:
            assert word in str(err.value), (word, str(err.value))


def test_python_layer_sees_param_str_and_phase(tmp_path):
    net = npcaffe.Net(write(tmp_path, INPUT + py('a', 'ScaleByParamLayer', ['data'], ['y'])),
                      npcaffe.TRAIN)
    layer = net.layers[1]
    assert layer.param_str == '2' and layer.phase == npcaffe.TRAIN and layer.factor == 2


def test_module_level_api():
    assert 'Convolution' in npcaffe.layer_type_list() or 'ReLU' in npcaffe.layer_type_list()
    npcaffe.set_mode_cpu()
    npcaffe.set_device(0)
    npcaffe.set_random_seed(1)
    assert npcaffe.TRAIN == 0 and npcaffe.TEST == 1 and not npcaffe.has_nccl()
    # set_mode_gpu warns and keeps the CPU; NPCAFFE_STRICT_GPU=1 raises (see test_device.py)


# -- inference memory: reuse_memory (the rule in npcaffe/net.py's docstring) --------------------
REUSE_NET = '''
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 6 dim: 5 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" } } }
layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" } } }
layer { name: "sum" type: "Eltwise" bottom: "c2" bottom: "c3" top: "sum" }
layer { name: "c4" type: "Convolution" bottom: "sum" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" } } }
'''


def reuse_pair(tmp_path):
    """The same net (same weights) without and with reuse_memory."""
    path = write(tmp_path, REUSE_NET)
    plain = npcaffe.Net(path, npcaffe.TEST)
    plain.save(str(tmp_path / 'w.caffemodel'))
    reusing = npcaffe.Net(path, str(tmp_path / 'w.caffemodel'), npcaffe.TEST, reuse_memory=True)
    return plain, reusing


def test_reuse_memory_releases_inner_blobs_and_keeps_results(tmp_path):
    plain, net = reuse_pair(tmp_path)
    rng = np.random.default_rng(0)
    for shape in ((1, 2, 6, 5), (1, 2, 9, 4), (1, 2, 6, 5)):   # released blobs grow back
        x = rng.standard_normal(shape).astype(np.float32)
        for n in (plain, net):
            n.blobs['data'].reshape(*shape)
            n.blobs['data'].data[...] = x
        expected = plain.forward()['score']
        out = net.forward()
        np.testing.assert_array_equal(out['score'], expected)
        np.testing.assert_array_equal(net.blobs['data'].data, x)      # the input stays
        assert net.blobs['score'].data is out['score'] or \
            np.array_equal(net.blobs['score'].data, expected)
        # inner blobs (the split copies of c2 included) are released
        inner = [name for name in net.blobs if name not in ('data', 'score')]
        assert 'c2' in inner and any('split' in name for name in inner)
        for name in inner:
            assert net.blobs[name].shape == (0,) and net.blobs[name].data.size == 0, name
        # the plain net keeps everything, as pycaffe users expect
        assert all(plain.blobs[name].data.size for name in plain.blobs)


def test_reuse_memory_keeps_named_blobs_and_partial_passes_release_nothing(tmp_path):
    plain, net = reuse_pair(tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 5)).astype(np.float32)
    plain.forward(data=x)
    # passes with start or end release nothing: a later pass goes on from them
    net.forward(end='c2', data=x)
    for name in ('c1', 'c2'):
        np.testing.assert_array_equal(net.blobs[name].data, plain.blobs[name].data)
    out = net.forward(start='c2_c2_0_split')
    np.testing.assert_array_equal(out['score'], plain.blobs['score'].data)
    assert net.blobs['c3'].data.size
    # a whole pass keeps the outputs and the blobs asked for
    out = net.forward(blobs=['c1'], data=x)
    assert set(out) == {'score', 'c1'}
    np.testing.assert_array_equal(net.blobs['c1'].data, plain.blobs['c1'].data)
    assert net.blobs['c3'].shape == (0,)
    # ... so a pass from the middle after it finds its bottom released, and says so
    with pytest.raises(NetError, match=r"'c3'.*\(0,\)"):
        net.forward(start='c3')
    with pytest.raises(KeyError, match="'nope'"):
        net.forward(blobs=['nope'])


def test_reuse_memory_is_off_by_default_and_refused_for_training(tmp_path):
    path = write(tmp_path, REUSE_NET)
    assert npcaffe.Net(path, npcaffe.TEST).reuse_memory is False
    with pytest.raises(ValueError, match='TEST'):
        npcaffe.Net(path, npcaffe.TRAIN, reuse_memory=True)
    train = npcaffe.Net(path, npcaffe.TRAIN)
    with pytest.raises(ValueError, match='TEST'):
        train.reuse_memory = True


def test_reuse_memory_tells_the_layers_to_keep_nothing_derived(tmp_path):
    """With reuse_memory the layers keep no arrays derived from their weights (Convolution's
    Winograd weights); turned off again, they may."""
    plain, net = reuse_pair(tmp_path)
    assert all(layer.keep_derived for layer in plain.layers)
    assert not any(layer.keep_derived for layer in net.layers)
    net.reuse_memory = False
    assert all(layer.keep_derived for layer in net.layers)


def test_reuse_memory_drops_the_last_outputs_and_scratch_around_a_pass(tmp_path, monkeypatch):
    """The previous pass's outputs are released before the next pass runs (they are made
    again: they do not add to its peak), and the workers' scratch after it."""
    from npcaffe import parallel
    plain, net = reuse_pair(tmp_path)
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 5)).astype(np.float32)
    first = net.forward(data=x)['score'].copy()
    seen = []
    layer = net.layers[list(net._layer_names).index('c1')]
    original = layer.forward
    monkeypatch.setattr(layer, 'forward', lambda bottom, top: seen.append(
        net.blobs['score'].data.size) or original(bottom, top))
    released = []
    monkeypatch.setattr(parallel, 'release_scratch', lambda: released.append(1))
    np.testing.assert_array_equal(net.forward(data=x)['score'], first)
    assert seen == [0] and released == [1]
    plain.forward(data=x)                               # the default keeps both
    assert plain.blobs['score'].data.size and released == [1]
