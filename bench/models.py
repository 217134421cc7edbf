"""Benchmark inputs: FCN deploy nets from the generators, random caffemodels, a fixed image."""
import logging
from pathlib import Path

import numpy as np

import npcaffe
import nets
from npcaffe import formats

log = logging.getLogger(__name__)

IMAGE_SHAPE = (1, 3, 375, 500)       # PASCAL VOC's typical 500x375 image


def deploy_prototxt(variant, folder, shape=IMAGE_SHAPE, num_classes=21, width=1.0):
    """Write the variant's deploy prototxt at ``shape`` into ``folder``; return its path."""
    size = 'x'.join(str(d) for d in shape)
    path = Path(folder) / f'{variant}_w{width:g}_c{num_classes}_{size}_deploy.prototxt'
    if not path.exists():
        net = nets.fcn(variant, num_classes, None, width, input_shape=shape)
        formats.write_text(path, net)
    return path


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
