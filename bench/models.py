"""Benchmark inputs: FCN deploy and train nets from the generators, random caffemodels, a fixed
image and label, the shared voc-mini data."""
import logging
import os
from pathlib import Path

import numpy as np

import npcaffe
import nets
from nets.fcn import DataLayer, solver as reference_solver, voc_data
from npcaffe import formats
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

IMAGE_SHAPE = (1, 3, 375, 500)       # PASCAL VOC's typical 500x375 image
NUM_CLASSES = 21
IGNORE_LABEL = 255


def deploy_prototxt(variant, folder, shape=IMAGE_SHAPE, num_classes=NUM_CLASSES, width=1.0):
    """Write the variant's deploy prototxt at ``shape`` into ``folder``; return its path."""
    size = 'x'.join(str(d) for d in shape)
    path = Path(folder) / f'{variant}_w{width:g}_c{num_classes}_{size}_deploy.prototxt'
    if not path.exists():
        net = nets.fcn(variant, num_classes, None, width, input_shape=shape)
        formats.write_text(path, net)
    return path


def train_net_param(variant, shape=IMAGE_SHAPE, num_classes=NUM_CLASSES, width=1.0):
    """The variant's train net (dropout, SoftmaxWithLoss ignoring 255) with its Python data
    layer replaced by an Input layer of two tops: ``data`` ``shape`` and ``label`` (N, 1, H, W),
    which the caller fills."""
    placeholder = DataLayer('layers.voc', 'VOCSegDataLayer', {})
    param = nets.fcn(variant, num_classes, placeholder, width)
    data = param.layer[0]
    assert data.type == 'Python' and list(data.top) == ['data', 'label'], data
    data.Clear()
    data.name, data.type = 'input', 'Input'
    data.top.extend(['data', 'label'])
    n, _, h, w = shape
    for dims in (shape, (n, 1, h, w)):
        data.input_param.shape.add().dim.extend(int(d) for d in dims)
    return param


def sgd_solver_param(variant, train_net):
    """The variant's reference SGD settings (momentum 0.99, weight decay 5e-4, fixed rate) on
    ``train_net`` (a NetParameter), without test nets, display or snapshots."""
    param = reference_solver(variant)
    del param.test_net[:]
    del param.test_iter[:]
    param.ClearField('train_net')
    param.train_net_param.CopyFrom(train_net)
    param.test_interval = 0
    param.display = 0
    param.snapshot = 0
    param.type = 'SGD'
    return param


def random_caffemodel(variant, folder, seed=0, width=1.0):
    """A caffemodel with random weights (He-scaled) for the variant's deploy net, written into
    ``folder`` once; returns its path. FCN-8s at width 1 is 537 MB, as the reference model."""
    path = Path(folder) / f'{variant}_w{width:g}_random.caffemodel'
    if path.exists():
        return path
    deploy = deploy_prototxt(variant, folder, shape=(1, 3, 64, 64), width=width)
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        for blob in blobs:
            fan_in = max(blob.count // max(blob.shape[0], 1), 1)
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) * np.float32(
                np.sqrt(2.0 / fan_in))
    net.save(str(path))
    log.info("wrote %s (%.0f MB)", path, path.stat().st_size / 1e6)
    return path


def test_image(shape=IMAGE_SHAPE, seed=0):
    """A deterministic smooth 'image' minus the mean, as a network input."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    base = rng.uniform(-60, 60, (n, c, h // 25 + 2, w // 25 + 2)).astype(np.float32)
    return np.repeat(np.repeat(base, 25, axis=2), 25, axis=3)[:, :, :h, :w].copy()


def test_label(shape=IMAGE_SHAPE, num_classes=NUM_CLASSES, seed=0):
    """A deterministic random (N, 1, H, W) label: blocks of classes, a 255 border as VOC's."""
    rng = np.random.default_rng(seed)
    n, _, h, w = shape
    blocks = rng.integers(0, num_classes, (n, 1, h // 25 + 2, w // 25 + 2))
    label = np.repeat(np.repeat(blocks, 25, axis=2), 25, axis=3)[:, :, :h, :w].astype(np.float32)
    label[:, :, :5] = label[:, :, -5:] = IGNORE_LABEL
    return label


def shared_dir(root):
    """The shared/ folder (FCN_SHARED, else ``root``/../shared), or None."""
    path = Path(os.environ.get('FCN_SHARED', Path(root).parent / 'shared'))
    return path if path.is_dir() else None


def voc_mini(root):
    """shared/data/voc-mini/VOC2012 (the folder VOCSegDataLayer's voc_dir names), or None."""
    base = shared_dir(root)
    path = base / 'data' / 'voc-mini' / 'VOC2012' if base else None
    return path if path is not None and path.is_dir() else None


def data_layer_net(voc_dir, split='train'):
    """A net of only VOCSegDataLayer (random order, as in training) over ``voc_dir``."""
    data = voc_data(voc_dir, split, train=True)
    param = caffe_pb2.NetParameter(name='voc-data')
    layer = param.layer.add(name='data', type='Python', top=['data', 'label'])
    layer.python_param.module = data.module
    layer.python_param.layer = data.layer
    layer.python_param.param_str = data.param_str
    return param
