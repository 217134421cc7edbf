"""Helpers of the ONNX tests: onnx/onnxruntime or a skip (a failure under CI=true), nets built
from prototxt text, and the comparison of an exported model with npcaffe's forward.

Tolerance: max|onnx - npcaffe| <= 1e-4 * max|npcaffe| per output (FORWARD_TOL).
"""
import os

import numpy as np
import pytest
from google.protobuf import text_format

import npcaffe
from npcaffe.proto import caffe_pb2
from tests.golden import FORWARD_TOL, assert_close


def require_runtime():
    """(onnx, onnxruntime); skips without them, fails under CI=true."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        message = f"onnx and onnxruntime are needed ({exc}); pip install 'fcn-npcaffe[onnx]'"
        if os.environ.get('CI') == 'true':
            pytest.fail(message + "; under CI=true they are required")
        pytest.skip(message)
    return onnx, onnxruntime


def session(model):
    """An ONNX Runtime CPU session for a ModelProto or a path."""
    _, ort = require_runtime()
    source = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(source) if isinstance(source, os.PathLike) else source,
                                options, providers=['CPUExecutionProvider'])


def run(model, feeds):
    """{output name: array} of the model on ``feeds``."""
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {k: np.asarray(v, np.float32)
                                           for k, v in feeds.items()})))


def strict_check(model):
    """The full checker and strict shape inference, as the issue asks."""
    onnx, _ = require_runtime()
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def net_from_text(text, phase=npcaffe.TEST):
    param = caffe_pb2.NetParameter()
    text_format.Parse(text, param)
    return npcaffe.Net(param, phase)


def forward(net, feeds):
    """npcaffe's forward at the feeds' shapes; {blob: copy of its data}."""
    for name, value in feeds.items():
        net.blobs[name].reshape(*value.shape)
    net.reshape()
    net.forward(**{k: np.asarray(v, np.float32) for k, v in feeds.items()})
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


def compare(net, feeds, outputs=None, dynamic=False, tol=FORWARD_TOL):
    """Export ``net`` at the feeds' shapes (checked), run it in ONNX Runtime, compare every
    graph output with npcaffe's blob; returns (worst relative error, onnx outputs)."""
    from npcaffe.onnx import build_model
    expected = forward(net, feeds)
    model = strict_check(build_model(net, outputs=outputs, dynamic=dynamic))
    got = run(model, feeds)
    worst = 0.0
    for name, value in got.items():
        worst = max(worst, assert_close(value, expected[name], tol, f"output {name}"))
    return worst, got


def compare_sizes(net, input_name, sizes, seed=0, scale=1.0, tol=FORWARD_TOL):
    """Export ``net`` once with ``dynamic=True`` and run it at every (H, W) in ``sizes``
    against npcaffe reshaped to that size; returns the worst relative error."""
    from npcaffe.onnx import build_model
    model = strict_check(build_model(net, dynamic=True))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == [f'{input_name}_height', f'{input_name}_width']
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    n, c = net.blobs[input_name].shape[:2]
    rng = np.random.default_rng(seed)
    worst = 0.0
    for h, w in sizes:
        x = (scale * rng.normal(size=(n, c, h, w))).astype(np.float32)
        expected = forward(net, {input_name: x})
        for name, value in zip(names, sess.run(None, {input_name: x})):
            worst = max(worst, assert_close(value, expected[name], tol, f"{name} at {h}x{w}"))
    return worst


ONE_LAYER = """
layer {{ name: 'data' type: 'Input' top: 'x' input_param {{ shape {{ {dims} }} }} }}
layer {{ name: 'op' type: '{type}' bottom: 'x' top: 'y' {params} }}
"""


def check_one_layer(type_name, params='', shape=(2, 3, 5, 4), seed=0, low=-3.0, high=3.0,
                    dynamic=False):
    """One ``type_name`` layer on a seeded uniform input: ONNX equals npcaffe; returns the
    ONNX output."""
    dims = ' '.join(f'dim: {d}' for d in shape)
    net = net_from_text(ONE_LAYER.format(dims=dims, type=type_name, params=params))
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.uniform(0.5, 1.5, blob.shape)
    x = rng.uniform(low, high, shape).astype(np.float32)
    _, got = compare(net, {'x': x}, dynamic=dynamic)
    return x, got['y']
