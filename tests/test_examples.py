"""examples/: the pycaffe-style scripts run unchanged, as subprocesses, on npcaffe."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import npcaffe as caffe
from tests.conftest import ROOT, require_shared
from tests.npcaffe.test_pycaffe_api import write

SCRIPT = ROOT / 'examples' / 'classify.py'


def run_script(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(': ')
        report[key] = value
    return report


def draw_digit(path, digit):
    """A white-on-black 28 x 28 digit as MNIST has them: 1, 0 or 7."""
    im = Image.new('L', (28, 28), 0)
    pen = ImageDraw.Draw(im)
    if digit == 1:
        pen.line([(14, 5), (14, 23)], fill=255, width=3)
    elif digit == 0:
        pen.ellipse([8, 5, 20, 23], outline=255, width=3)
    else:
        pen.line([(8, 6), (20, 6)], fill=255, width=3)
        pen.line([(20, 6), (12, 23)], fill=255, width=3)
    im.save(path)
    return str(path)


@pytest.mark.parametrize('digit', [1, 0, 7])
def test_classify_example_with_lenet(tmp_path, digit):
    model = require_shared('models', 'lenet_mnist', 'lenet.prototxt')
    weights = require_shared('models', 'lenet_mnist', 'lenet_iter_10000.caffemodel')
    image = draw_digit(tmp_path / f'{digit}.png', digit)
    saved = tmp_path / 'copy.caffemodel'
    report = run_script(model, weights, image, '--gray', '--raw-scale', 255,
                        '--input-scale', 0.00390625, '--blob', 'ip1',
                        '--save-weights', saved, cwd=tmp_path)
    assert report['input'] == 'data (1, 1, 28, 28)'
    assert report['predicted'] == str(digit)
    assert float(report['probability']) > 0.99
    assert report['blob ip1'].startswith('shape (1, 500) ')
    assert report['saved'] == str(saved)
    # the same numbers in this process, the preprocessing written out by hand
    net = caffe.Net(str(model), caffe.TEST, weights=str(weights))
    net.blobs['data'].reshape(1, 1, 28, 28)
    pixels = np.asarray(Image.open(image), np.float32) / 255.0
    prob = net.forward(data=(pixels * 255 * 0.00390625)[None, None])['prob'][0]
    assert int(prob.argmax()) == digit
    assert float(report['probability']) == pytest.approx(float(prob.max()), rel=1e-5)
    # the saved weights are the loaded ones, in a file BVLC Caffe reads
    again = caffe.Net(str(model), caffe.TEST, weights=str(saved))
    for name, blobs in net.params.items():
        for a, b in zip(blobs, again.params[name]):
            np.testing.assert_array_equal(a.data, b.data)


def test_classify_example_with_a_colour_net_and_h5_weights(tmp_path):
    """No shared/ needed: a generated 3-channel net, mean and channel swap, HDF5 weights."""
    caffe.set_random_seed(8)
    proto = write(tmp_path, """name: 'colour'
layer { name: 'data' type: 'Input' top: 'data'
        input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } } }
layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'
        convolution_param { num_output: 4 kernel_size: 3
          weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'gaussian' std: 1 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'conv' top: 'ip'
        inner_product_param { num_output: 6 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
""", 'colour.prototxt')
    weights = tmp_path / 'colour.caffemodel.h5'
    caffe.Net(proto, caffe.TEST).save_hdf5(str(weights))
    rgb = np.random.default_rng(4).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'img.png')
    report = run_script(proto, weights, tmp_path / 'img.png', '--raw-scale', 255,
                        '--mean', 104, 117, 123, '--channel-swap', 2, 1, 0, '--blob', 'conv',
                        '--top', 3, cwd=tmp_path)
    assert report['input'] == 'data (1, 3, 6, 6)'
    assert report['blob conv'].startswith('shape (1, 4, 4, 4) ')
    net = caffe.Net(proto, caffe.TEST, weights=str(weights))
    net.blobs['data'].reshape(1, 3, 6, 6)
    blob = rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) - \
        np.array([104, 117, 123], np.float32)[:, None, None]
    prob = net.forward(data=blob[None])['prob'][0]
    assert report['predicted'] == str(int(prob.argmax()))
    top = [entry.split() for entry in report['top'].split(', ')]
    assert [int(k) for k, _ in top] == list(np.argsort(-prob)[:3])
    for k, p in top:
        assert float(p) == pytest.approx(float(prob[int(k)]), rel=1e-5)
