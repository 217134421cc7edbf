"""NetSpec: pycaffe's naming rules and text output, checked against BVLC pycaffe's golden output."""
import importlib.util
import sys

import pytest

import npcaffe
import npcaffe.coord_map
import npcaffe.net_spec
from npcaffe.net_spec import NetSpec, NetSpecError, layers as L, params as P, to_proto
from npcaffe.proto import caffe_pb2

_EXPORTS = dict(NetSpec=NetSpec, layers=L, params=P, to_proto=to_proto,
                coord_map=sys.modules['npcaffe.coord_map'])




def _golden_cases(shared):
    folder = shared / 'golden' / 'netspec'
    spec = importlib.util.spec_from_file_location('netspec_cases', folder / 'cases.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return folder, module.CASES


def test_golden_cases_reproduce_pycaffe_text_exactly(shared):
    folder, cases = _golden_cases(shared)
    assert [c.__name__ for c in cases] == ['fcn8s_voc_train', 'spec_features',
                                           'crop_dilated_strided', 'crop_alexnet_like']
    for case in cases:
        expected = (folder / f'{case.__name__}.prototxt').read_text()
        assert str(case(npcaffe)) == expected, case.__name__


def test_npcaffe_exports_the_pycaffe_names():
    for name, obj in _EXPORTS.items():
        assert getattr(npcaffe, name) is obj, name
    assert npcaffe.TRAIN == caffe_pb2.TRAIN and npcaffe.TEST == caffe_pb2.TEST


def _layers(net):
    return [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in net.layer]


def test_attribute_names_name_tops_and_layers_in_place_keeps_the_bottom():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=3)
    n.relu = L.ReLU(n.conv, in_place=True)
    n['pool'] = L.Pooling(n.relu, pool=P.Pooling.MAX, kernel_size=2)
    assert _layers(n.to_proto()) == [
        ('data', 'Input', [], ['data']),
        ('conv', 'Convolution', ['data'], ['conv']),
        ('relu', 'ReLU', ['conv'], ['conv']),
        ('pool', 'Pooling', ['conv'], ['pool'])]
    assert n.keys() == ['data', 'conv', 'relu', 'pool'] and 'relu' in n
    assert n['conv'] is n.conv and n.vals()[1] is n.conv


def test_unnamed_tops_get_type_and_counter_names():
    # as pycaffe's anon_lenet: everything from one to_proto() call is auto-named
    data, label = L.DummyData(shape=[dict(dim=[4, 1, 28, 28]), dict(dim=[4, 1, 1, 1])],
                              ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20)
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50)
    ip1 = L.InnerProduct(conv2, num_output=500)
    relu1 = L.ReLU(ip1, in_place=True)
    loss = L.SoftmaxWithLoss(L.InnerProduct(relu1, num_output=10), label)
    assert _layers(loss.to_proto()) == [
        ('DummyData1', 'DummyData', [], ['DummyData1', 'DummyData2']),
        ('Convolution1', 'Convolution', ['DummyData1'], ['Convolution1']),
        ('Pooling1', 'Pooling', ['Convolution1'], ['Pooling1']),
        ('Convolution2', 'Convolution', ['Pooling1'], ['Convolution2']),
        ('InnerProduct1', 'InnerProduct', ['Convolution2'], ['InnerProduct1']),
        ('ReLU1', 'ReLU', ['InnerProduct1'], ['InnerProduct1']),
        ('InnerProduct2', 'InnerProduct', ['InnerProduct1'], ['InnerProduct2']),
        ('SoftmaxWithLoss1', 'SoftmaxWithLoss', ['InnerProduct2', 'DummyData2'],
         ['SoftmaxWithLoss1'])]
    assert str(to_proto(loss)) == str(loss.to_proto())


def test_ntop_tuples_and_ntop_zero():
    n = NetSpec()
    n.data, n.label = L.DummyData(ntop=2)
    a, b = L.Slice(n.data, ntop=2, slice_point=[1])
    n.b = b  # only the second top is named: the first is auto-named and names the layer
    n.silence = L.Silence(a, n.label, ntop=0)
    assert L.Silence(n.data, ntop=0).tops == ()
    assert _layers(n.to_proto()) == [
        ('data', 'DummyData', [], ['data', 'label']),
        ('Slice1', 'Slice', ['data'], ['Slice1', 'b']),
        ('silence', 'Silence', ['Slice1', 'label'], [])]


def test_unnamed_ntop_zero_layer_is_auto_named():
    data = L.DummyData()
    assert _layers(to_proto(L.Silence(data, ntop=0))) == [
        ('DummyData1', 'DummyData', [], ['DummyData1']),
        ('Silence1', 'Silence', ['DummyData1'], [])]


def test_a_top_assigned_twice_takes_its_last_name():
    n = NetSpec()
    n.first = L.DummyData()
    n.second = n.first
    assert _layers(n.to_proto()) == [('second', 'DummyData', [], ['second'])]


def test_parameters_go_to_the_type_message_or_to_layer_parameter():
    n = NetSpec()
    n.data = L.Data(source='db', backend=P.Data.LMDB, batch_size=2,
                    transform_param=dict(mean_value=[1, 2], mirror=True),
                    include=dict(phase=caffe_pb2.TRAIN))
    n.up = L.Deconvolution(n.data, convolution_param=dict(num_output=3, kernel_size=(4, 4)),
                           param=[dict(lr_mult=0), dict(lr_mult=0, name='b')])
    n.loss = L.SoftmaxWithLoss(n.up, n.data, loss_weight=2, loss_param=dict(ignore_label=255))
    n.py = L.Python(n.up, module='m', layer='C', param_str="{'a': 1}")
    data, up, loss, py = n.to_proto().layer
    assert data.data_param.source == 'db'
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert list(data.transform_param.mean_value) == [1, 2] and data.transform_param.mirror
    assert [rule.phase for rule in data.include] == [caffe_pb2.TRAIN]
    assert list(up.convolution_param.kernel_size) == [4, 4]  # tuple -> repeated
    assert [(p.lr_mult, p.name) for p in up.param] == [(0, ''), (0, 'b')]
    assert list(loss.loss_weight) == [2] and loss.loss_param.ignore_label == 255
    assert (py.python_param.module, py.python_param.layer) == ('m', 'C')
    assert not up.HasField('pooling_param') and not data.HasField('convolution_param')


def test_param_name_dict_has_pycaffe_special_cases():
    names = npcaffe.net_spec.param_name_dict()
    assert names['Transformation'] == 'transform' and names['Loss'] == 'loss'
    assert names['InnerProduct'] == 'inner_product' and names['ReLU'] == 'relu'
    assert 'Deconvolution' not in names and 'SoftmaxWithLoss' not in names


def test_params_resolve_enums_and_name_unknown_ones():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    with pytest.raises(AttributeError, match="known: .*MAX"):
        P.Pooling.MIN
    with pytest.raises(AttributeError, match="NoSuchParameter"):
        P.NoSuch


def test_unknown_field_names_the_layer():
    n = NetSpec()
    n.data = L.DummyData()
    n.conv1 = L.Convolution(n.data, kernal_size=3)
    with pytest.raises(NetSpecError, match=r"'conv1' \(Convolution\).*kernal_size"):
        n.to_proto()


def test_a_bottom_that_is_not_a_top_raises_pycaffes_type_error():
    # pycaffe's test_net_spec.test_type_error: the exact type and message
    pair = L.DummyData(ntop=2)
    with pytest.raises(TypeError) as info:
        L.Silence(pair, ntop=0)
    assert type(info.value) is TypeError
    assert str(info.value) == "Silence input 0 is not a Top (type is <class 'tuple'>)"
    assert any('unpack' in note for note in info.value.__notes__)      # what to do instead
    L.Silence(*pair, ntop=0)                                           # each element is a Top
    with pytest.raises(TypeError) as info:
        L.ReLU(pair[0], 'data')
    assert str(info.value) == "ReLU input 1 is not a Top (type is <class 'str'>)"
    silence = L.Silence(pair[0], ntop=0)
    with pytest.raises(TypeError, match=r"^ReLU input 0 is not a Top") as info:
        L.ReLU(silence)
    assert any('ntop=0' in note for note in info.value.__notes__)


def test_misuse_gets_clear_errors():
    pair = L.DummyData(ntop=2)
    with pytest.raises(NetSpecError, match="must be a Top"):
        to_proto('data')
    n = NetSpec()
    n.both = pair
    with pytest.raises(NetSpecError, match="unpack"):
        n.to_proto()
    with pytest.raises(AttributeError, match="no top named 'missing'"):
        n.missing
