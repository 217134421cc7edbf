"""Crop (static and computed inside the graph), Slice/Concat/Split/Eltwise, and an FCN-8s
exported once with --dynamic, run at many sizes down to 1x1 and odd ones.

Hand-worked crop: x = arange over (1, 1, 9, 11) cropped at offsets (2, 3) to a reference of
H x W gives x[2:2+H, 3:3+W] at every reference size, the ends taken from its shape.
"""
import numpy as np
import pytest

import npcaffe
from nets.fcn import fcn
from tests.npcaffe.onnx.util import (compare, compare_sizes, net_from_text, require_runtime,
                                     session)
from tests.npcaffe.test_model_zoo import fill_random

CROP = """
layer { name: 'data' type: 'Input' top: 'x' top: 'ref'
        input_param { shape { dim: 1 dim: 1 dim: 9 dim: 11 } shape { dim: 1 dim: 1 dim: 4 dim: 5 } } }
layer { name: 'crop' type: 'Crop' bottom: 'x' bottom: 'ref' top: 'y'
        crop_param { axis: 2 offset: 2 offset: 3 } }
"""


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


def test_crop_offsets_by_hand_static_and_dynamic():
    from npcaffe.onnx import build_model
    x = np.arange(99, dtype=np.float32).reshape(1, 1, 9, 11)
    ref = np.zeros((1, 1, 4, 5), np.float32)
    _, got = compare(net_from_text(CROP), {'x': x, 'ref': ref})
    np.testing.assert_array_equal(got['y'], x[:, :, 2:6, 3:8])
    sess = session(build_model(net_from_text(CROP), dynamic=True))
    for h, w in [(1, 1), (7, 8), (3, 1), (4, 5)]:
        y = sess.run(None, {'x': x, 'ref': np.zeros((1, 1, h, w), np.float32)})[0]
        np.testing.assert_array_equal(y, x[:, :, 2:2 + h, 3:3 + w])


ROUTING = """
layer { name: 'data' type: 'Input' top: 'a' top: 'b'
        input_param { shape { dim: 2 dim: 6 dim: 3 dim: 4 } shape { dim: 2 dim: 6 dim: 3 dim: 4 } } }
layer { name: 'slice' type: 'Slice' bottom: 'a' top: 's1' top: 's2' top: 's3'
        slice_param { axis: 1 slice_point: 1 slice_point: 4 } }
layer { name: 'cat' type: 'Concat' bottom: 's3' bottom: 's1' bottom: 's2' top: 'cat'
        concat_param { axis: 1 } }
layer { name: 'sum' type: 'Eltwise' bottom: 'cat' bottom: 'b' bottom: 'a' top: 'sum'
        eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 } }
layer { name: 'prod' type: 'Eltwise' bottom: 'sum' bottom: 'b' top: 'prod'
        eltwise_param { operation: PROD } }
layer { name: 'max' type: 'Eltwise' bottom: 'prod' bottom: 'a' top: 'max'
        eltwise_param { operation: MAX } }
layer { name: 'silence' type: 'Silence' bottom: 'max' }
"""


def test_slice_concat_eltwise_silence():
    rng = np.random.default_rng(0)
    feeds = {n: rng.normal(size=(2, 6, 3, 4)).astype(np.float32) for n in 'ab'}
    net = net_from_text(ROUTING)
    _, got = compare(net, feeds, outputs=['cat', 'sum', 'prod', 'max', 's2'])
    a, b = feeds['a'], feeds['b']
    cat = np.concatenate([a[:, 4:], a[:, :1], a[:, 1:4]], axis=1)
    np.testing.assert_array_equal(got['cat'], cat)
    np.testing.assert_allclose(got['sum'], 0.5 * cat - 2 * b + a, rtol=1e-6, atol=1e-6)


def test_fcn8s_dynamic_runs_at_any_size(tmp_path):
    path = tmp_path / 'deploy.prototxt'
    path.write_text(str(fcn('fcn8s', num_classes=5, width=1 / 16, input_shape=(1, 3, 32, 32))))
    net = npcaffe.Net(str(path), npcaffe.TEST)
    fill_random(net, seed=0)
    sizes = [(1, 1), (1, 7), (2, 3), (5, 5), (17, 31), (32, 32), (33, 1), (64, 47), (97, 113)]
    worst = compare_sizes(net, 'data', sizes, scale=50.0)
    assert worst < 1e-4
