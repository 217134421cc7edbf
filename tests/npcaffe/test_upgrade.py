"""Upgrades of V1 nets and input fields (Caffe's upgrade_proto)."""
import pytest

from npcaffe import formats
from npcaffe.errors import NotSupportedError, PrototxtError
from npcaffe.proto import caffe_pb2
from npcaffe.upgrade import upgrade_net, v1_type_name
from tests.conftest import require_shared

V1_NET = """
name: "v1"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv" bottom: "label" top: "loss"
         include { phase: TRAIN } loss_weight: 2 }
"""


def upgraded(text):
    return upgrade_net(formats.parse_text(text, caffe_pb2.NetParameter()))


def test_v1_layers_become_layer_with_param_specs():
    net = upgraded(V1_NET)
    assert not net.layers and not net.input and not net.input_dim
    assert [(l.name, l.type) for l in net.layer] == [
        ('input', 'Input'), ('conv', 'Convolution'), ('relu', 'ReLU'),
        ('loss', 'SoftmaxWithLoss')]
    conv = net.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert conv.convolution_param.num_output == 4
    assert net.layer[3].include[0].phase == caffe_pb2.TRAIN
    assert list(net.layer[3].loss_weight) == [2]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]
    assert list(net.layer[0].top) == ['data']


def test_input_shape_upgrade_and_count_mismatch():
    net = upgraded('input: "a" input: "b" input_shape { dim: 1 dim: 2 } '
                   'input_shape { dim: 3 }')
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [3]]
    with pytest.raises(PrototxtError, match='need 8 input_dim'):
        upgraded('input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4')


def test_v0_and_mixed_formats_are_refused():
    with pytest.raises(NotSupportedError, match='V0'):
        upgraded('layers { layer { name: "old" type: "conv" } }')
    with pytest.raises(PrototxtError, match='both'):
        upgraded('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')


def test_every_v1_enum_has_a_type_name():
    for value in caffe_pb2.V1LayerParameter.LayerType.values():
        assert isinstance(v1_type_name(value), str)
    assert v1_type_name(caffe_pb2.V1LayerParameter.TANH) == 'TanH'


def test_batchnorm_zero_lr_params_are_dropped():
    net = upgraded('layer { name: "bn" type: "BatchNorm" param { lr_mult: 0 } '
                   'param { lr_mult: 0 } param { lr_mult: 0 } }')
    assert not net.layer[0].param


def test_vgg16_v1_deploy_upgrades():
    path = require_shared('models', 'prototxt', 'VGG_ILSVRC_16_layers_deploy.prototxt')
    net = upgrade_net(formats.read_text(path, caffe_pb2.NetParameter()))
    types = [l.type for l in net.layer]
    assert types[0] == 'Input' and types.count('Convolution') == 13
    assert types.count('InnerProduct') == 3 and types[-1] == 'Softmax'
