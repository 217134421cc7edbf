"""DummyData and Parameter (npcaffe/layers/data.py), the source layers model-zoo nets and
pycaffe's own tests use: shapes, fillers and Caffe's refill rule; Parameter's forward,
backward (float64 gradient check), its place in a net and in a caffemodel.

Caffe's DummyDataLayer (the specification): one ``shape`` for all tops or one per top (or the
legacy num/channels/height/width lists, each of one value or one per top); 0, 1 or one
``data_filler`` per top (none: constant 0). A top whose filler is ``constant`` is filled once
at setup and never again (writing into it sticks); any other filler refills its top at every
forward. Caffe's ParameterLayer: one blob of ``parameter_param.shape`` (zeros, no filler),
its value is the top, and the top's gradient is the blob's.
"""
import numpy as np
import pytest

import npcaffe
from npcaffe.errors import NetError
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import make_layer, run


def _net(tmp_path, text, phase=npcaffe.TRAIN):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return npcaffe.Net(str(path), phase)


# -- DummyData ---------------------------------------------------------------------------------
def test_dummydata_one_shape_for_every_top_and_zero_by_default():
    layer = make_layer('DummyData', 'dummy_data_param { shape { dim: 2 dim: 3 dim: 4 } }')
    _, top = run(layer, [], num_tops=2)
    assert [t.shape for t in top] == [(2, 3, 4), (2, 3, 4)]
    assert all((t.data == 0).all() for t in top)


def test_dummydata_one_shape_per_top_and_legacy_dims():
    layer = make_layer('DummyData', 'dummy_data_param { shape { dim: 5 dim: 1 dim: 28 dim: 28 }'
                                    ' shape { dim: 5 } }')
    _, top = run(layer, [], num_tops=2)
    assert [t.shape for t in top] == [(5, 1, 28, 28), (5,)]
    legacy = make_layer('DummyData', 'dummy_data_param { num: 2 channels: 3 channels: 1 '
                                     'height: 4 width: 5 width: 1 }')
    _, top = run(legacy, [], num_tops=2)
    assert [t.shape for t in top] == [(2, 3, 4, 5), (2, 1, 4, 1)]


@pytest.mark.parametrize('params', [
    'dummy_data_param { shape { dim: 1 } shape { dim: 2 } shape { dim: 3 } }',   # 3 for 2 tops
    'dummy_data_param { num: 1 channels: 1 height: 1 }',                         # no width
    'dummy_data_param { shape { dim: 2 } data_filler { type: "constant" } '
    'data_filler { type: "constant" } data_filler { type: "constant" } }',       # 3 fillers
])
def test_dummydata_counts_that_match_neither_one_nor_every_top_are_refused(params):
    with pytest.raises(NetError, match="'l'"):
        run(make_layer('DummyData', params), [], num_tops=2)


def test_dummydata_refuses_shape_together_with_legacy_dims():
    params = 'dummy_data_param { shape { dim: 2 } num: 2 channels: 1 height: 1 width: 1 }'
    with pytest.raises(NetError, match="'l': give shape or the legacy"):
        run(make_layer('DummyData', params), [], num_tops=1)


def test_dummydata_fillers_constant_uniform_gaussian():
    npcaffe.set_random_seed(7)
    layer = make_layer('DummyData', '''dummy_data_param {
        shape { dim: 1000 }
        data_filler { type: "constant" value: 2.5 }
        data_filler { type: "uniform" min: -3 max: -1 }
        data_filler { type: "gaussian" mean: 10 std: 2 } }''')
    _, (const, uni, gauss) = run(layer, [], num_tops=3)
    assert (const.data == 2.5).all()
    assert uni.data.min() >= -3 and uni.data.max() <= -1 and uni.data.std() > 0.4
    assert abs(gauss.data.mean() - 10) < 0.3 and abs(gauss.data.std() - 2) < 0.3


def test_dummydata_refills_only_non_constant_tops_at_each_forward():
    npcaffe.set_random_seed(0)
    layer = make_layer('DummyData', '''dummy_data_param {
        shape { dim: 4 dim: 3 }
        data_filler { type: "constant" value: 1 }
        data_filler { type: "gaussian" std: 1 } }''')
    bottom, top = run(layer, [], num_tops=2)
    const, gauss = top
    const.data[0, 0] = 42                 # a constant top is never refilled: this sticks
    first = gauss.data.copy()
    layer.forward(bottom, top)
    assert const.data[0, 0] == 42 and (const.data.reshape(-1)[1:] == 1).all()
    assert not np.array_equal(gauss.data, first)
    second = gauss.data.copy()
    layer.forward(bottom, top)
    assert not np.array_equal(gauss.data, second)


def test_dummydata_single_filler_applies_to_every_top():
    npcaffe.set_random_seed(1)
    layer = make_layer('DummyData', 'dummy_data_param { shape { dim: 50 } '
                                    'data_filler { type: "uniform" min: 5 max: 6 } }')
    bottom, top = run(layer, [], num_tops=2)
    before = [t.data.copy() for t in top]
    layer.forward(bottom, top)            # one non-constant filler: both tops refill
    for t, old in zip(top, before):
        assert ((t.data >= 5) & (t.data <= 6)).all() and not np.array_equal(t.data, old)


def test_dummydata_feeds_a_net_that_trains(tmp_path):
    """pycaffe's test_net style: DummyData data and label into a small classifier."""
    npcaffe.set_random_seed(3)
    net = _net(tmp_path, '''
        layer { name: "data" type: "DummyData" top: "data" top: "label"
          dummy_data_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 dim: 1 }
            data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
          inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }''')
    assert net.blobs['data'].shape == (5, 2, 3, 4) and net.blobs['label'].shape == (5, 1)
    first = net.forward()['loss'].item()
    data_before = net.blobs['data'].data.copy()
    second = net.forward()['loss'].item()
    assert not np.array_equal(net.blobs['data'].data, data_before)   # fresh data each pass
    assert np.isfinite([first, second]).all() and (net.blobs['label'].data == 1).all()
    net.backward()
    assert np.abs(net.params['ip'][0].diff).sum() > 0


# -- Parameter ---------------------------------------------------------------------------------
def test_parameter_is_a_zero_blob_of_its_shape_exposed_as_the_top():
    layer = make_layer('Parameter', 'parameter_param { shape { dim: 2 dim: 3 } }')
    bottom, top = run(layer, [], num_tops=1)
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3) == top[0].shape
    assert (top[0].data == 0).all()       # Caffe gives it no filler
    layer.blobs[0].data[...] = np.arange(6).reshape(2, 3)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.arange(6).reshape(2, 3))


def test_parameter_gradient_check():
    layer = make_layer('Parameter', 'parameter_param { shape { dim: 3 dim: 2 dim: 2 } }')
    check_layer_gradient(layer, [], num_tops=1)


def test_parameter_keeps_given_blobs():
    """Blobs set before setup (a loaded layer) are kept, as Caffe's 'Skipping parameter
    initialization'."""
    layer = make_layer('Parameter', 'parameter_param { shape { dim: 2 } }')
    layer.blobs.dtype = np.float64
    layer.blobs.add_blob(2).data[...] = [4, 5]
    _, top = run(layer, [], num_tops=1)
    np.testing.assert_array_equal(top[0].data, [4, 5])


def test_parameter_learns_in_a_net_and_round_trips(tmp_path):
    """EuclideanLoss(p, x) = sum((p - x)^2) / (2N): dL/dp = (p - x) / N reaches the blob."""
    text = '''
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "p" type: "Parameter" top: "p"
          parameter_param { shape { dim: 2 dim: 3 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "x" top: "loss" }'''
    net = _net(tmp_path, text)
    p = np.array([[1., 2, 3], [4, 5, 6]], np.float32)
    x = np.array([[0., 2, 5], [4, 1, 6]], np.float32)
    net.params['p'][0].data[...] = p
    loss = net.forward(x=x)['loss'].item()
    assert loss == pytest.approx(((p - x) ** 2).sum() / 4)
    net.clear_param_diffs()
    net.backward()
    np.testing.assert_allclose(net.params['p'][0].diff, (p - x) / 2, rtol=1e-6)
    net.save(str(tmp_path / 'p.caffemodel'))
    again = npcaffe.Net(str(tmp_path / 'net.prototxt'), str(tmp_path / 'p.caffemodel'),
                        npcaffe.TEST)
    np.testing.assert_array_equal(again.params['p'][0].data, p)
