"""Upgrades of old net definitions to the current format, as Caffe's upgrade_proto.cpp:

* V1 nets (``layers { type: CONVOLUTION ... }`` with ``blobs_lr`` / ``weight_decay``) become
  ``layer { type: "Convolution" ... }`` with ``param { lr_mult decay_mult }``;
* net-level ``input:`` with ``input_dim:`` or ``input_shape {}`` becomes one Input layer named
  ``input`` at the front of the net;
* BatchNorm layers with the three old ``param { lr_mult: 0 }`` lose them (Caffe fixes those
  blobs itself).
V0 nets (``layers { layer { type: "conv" } }``, from 2014) are refused with a clear message.
"""
from npcaffe.errors import NotSupportedError, PrototxtError
from npcaffe.proto import caffe_pb2

_V1 = caffe_pb2.V1LayerParameter
V1_TYPE_NAMES = {
    'NONE': '', 'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL',
    'CONCAT': 'Concat', 'CONTRASTIVE_LOSS': 'ContrastiveLoss', 'CONVOLUTION': 'Convolution',
    'DECONVOLUTION': 'Deconvolution', 'DATA': 'Data', 'DROPOUT': 'Dropout',
    'DUMMY_DATA': 'DummyData', 'EUCLIDEAN_LOSS': 'EuclideanLoss', 'ELTWISE': 'Eltwise',
    'EXP': 'Exp', 'FLATTEN': 'Flatten', 'HDF5_DATA': 'HDF5Data', 'HDF5_OUTPUT': 'HDF5Output',
    'HINGE_LOSS': 'HingeLoss', 'IM2COL': 'Im2col', 'IMAGE_DATA': 'ImageData',
    'INFOGAIN_LOSS': 'InfogainLoss', 'INNER_PRODUCT': 'InnerProduct', 'LRN': 'LRN',
    'MEMORY_DATA': 'MemoryData', 'MULTINOMIAL_LOGISTIC_LOSS': 'MultinomialLogisticLoss',
    'MVN': 'MVN', 'POOLING': 'Pooling', 'POWER': 'Power', 'RELU': 'ReLU', 'SIGMOID': 'Sigmoid',
    'SIGMOID_CROSS_ENTROPY_LOSS': 'SigmoidCrossEntropyLoss', 'SILENCE': 'Silence',
    'SOFTMAX': 'Softmax', 'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'SPLIT': 'Split', 'SLICE': 'Slice',
    'TANH': 'TanH', 'WINDOW_DATA': 'WindowData', 'THRESHOLD': 'Threshold',
}
# V1 fields handled by hand; every other V1 field is a *_param copied by name.
_V1_SPECIAL = {'bottom', 'top', 'name', 'include', 'exclude', 'type', 'blobs', 'param',
               'blob_share_mode', 'blobs_lr', 'weight_decay', 'loss_weight', 'layer'}


def v1_type_name(enum_value):
    """Caffe's type string for a V1 LayerType enum value."""
    return V1_TYPE_NAMES[_V1.LayerType.Name(enum_value)]


def upgrade_v1_layer(v1, where='net'):
    """A LayerParameter equivalent to the V1LayerParameter ``v1`` (blobs not copied)."""
    if v1.HasField('layer'):
        raise NotSupportedError(f"{where}: layer {v1.layer.name or v1.name!r} is in the V0 "
                                f"format of 2014 (layers {{ layer {{ ... }} }}); upgrade it "
                                f"with Caffe's upgrade_net_proto_text first")
    layer = caffe_pb2.LayerParameter()
    layer.name = v1.name
    layer.type = v1_type_name(v1.type)
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    for src, dst in ((v1.include, layer.include), (v1.exclude, layer.exclude)):
        for rule in src:
            dst.add().CopyFrom(rule)
    n_params = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr),
                   len(v1.weight_decay))
    for i in range(n_params):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    layer.loss_weight.extend(v1.loss_weight)
    for field, value in v1.ListFields():
        if field.name in _V1_SPECIAL:
            continue
        getattr(layer, field.name).CopyFrom(value)
    return layer


def upgrade_net(net, where='net'):
    """Upgrade the NetParameter ``net`` in place to the current format; returns it."""
    if net.layers:
        if net.layer:
            raise PrototxtError(f"{where}: uses both 'layer' and the legacy 'layers'; "
                                f"use one of them")
        for v1 in net.layers:
            net.layer.add().CopyFrom(upgrade_v1_layer(v1, where))
        net.ClearField('layers')
    if net.input:
        _upgrade_input(net, where)
    for layer in net.layer:
        if layer.type == 'BatchNorm' and len(layer.param) == 3 and all(
                p.lr_mult == 0 for p in layer.param):
            layer.ClearField('param')
    return net


def _upgrade_input(net, where):
    n = len(net.input)
    if net.input_shape:
        if len(net.input_shape) != n:
            raise PrototxtError(f"{where}: {n} inputs but {len(net.input_shape)} input_shape")
        shapes = [list(s.dim) for s in net.input_shape]
    else:
        dims = list(net.input_dim)
        if len(dims) != 4 * n:
            raise PrototxtError(f"{where}: {n} input(s) need {4 * n} input_dim values "
                                f"(num, channels, height, width each), got {len(dims)}")
        shapes = [dims[4 * i:4 * i + 4] for i in range(n)]
    layer = caffe_pb2.LayerParameter(name='input', type='Input', top=list(net.input))
    for dims in shapes:
        layer.input_param.shape.add().dim.extend(dims)
    rest = list(net.layer)
    net.ClearField('layer')
    net.layer.add().CopyFrom(layer)
    for old in rest:
        net.layer.add().CopyFrom(old)
    for field in ('input', 'input_shape', 'input_dim'):
        net.ClearField(field)
