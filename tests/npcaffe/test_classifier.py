"""caffe.Classifier and caffe.Detector against the same steps done by hand: crops, the
Transformer's arithmetic written out, and a plain Net forward per crop."""
import numpy as np
import pytest
from PIL import Image

import npcaffe as caffe
from npcaffe.errors import NotSupportedError
from tests.npcaffe.test_pycaffe_api import write

DEPLOY = """name: 'tiny'
layer { name: 'data' type: 'Input' top: 'data'
        input_param { shape { dim: %(batch)d dim: 3 dim: %(size)d dim: %(size)d } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.02 }
                              bias_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""
MEAN = np.array([104.0, 117.0, 123.0])       # BGR, as the ImageNet models
SWAP = (2, 1, 0)


@pytest.fixture
def model(tmp_path):
    """(deploy prototxt, weights, a batch-1 reference net) for 4 x 4 inputs, batch 3."""
    caffe.set_random_seed(5)
    proto = write(tmp_path, DEPLOY % {'batch': 3, 'size': 4}, 'deploy.prototxt')
    weights = str(tmp_path / 'tiny.caffemodel')
    caffe.Net(proto, caffe.TEST).save(weights)
    single = caffe.Net(write(tmp_path, DEPLOY % {'batch': 1, 'size': 4}, 'one.prototxt'),
                       caffe.TEST, weights=weights)
    return proto, weights, single


def by_hand(single, crop):
    """The Transformer's steps written out for an (H, W, 3) crop, then one forward."""
    blob = crop.transpose(2, 0, 1)[list(SWAP)] * 255.0 - MEAN[:, None, None]
    return single.forward(data=blob[None].astype(np.float32))['prob'][0].copy()


def test_classifier_oversample_and_center_crop(model):
    proto, weights, single = model
    clf = caffe.Classifier(proto, weights, image_dims=(6, 6), mean=MEAN, raw_scale=255,
                           channel_swap=SWAP)
    assert clf.inputs == ['data'] and tuple(clf.crop_dims) == (4, 4)
    rng = np.random.default_rng(0)
    images = [rng.uniform(size=(6, 6, 3)).astype(np.float32) for _ in range(2)]
    probs = clf.predict(images)                     # 20 crops through batches of 3
    assert probs.shape == (2, 5)
    corners = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]
    for n, im in enumerate(images):
        crops = [im[t:t + 4, l:l + 4] for t, l in corners]
        crops += [c[:, ::-1] for c in crops]        # the mirrors
        expected = np.mean([by_hand(single, c) for c in crops], axis=0)
        np.testing.assert_allclose(probs[n], expected, rtol=1e-5, atol=1e-7)
    centre = clf.predict(images, oversample=False)
    for n, im in enumerate(images):
        np.testing.assert_allclose(centre[n], by_hand(single, im[1:5, 1:5]), rtol=1e-5,
                                   atol=1e-7)


def test_classifier_resizes_to_image_dims(model):
    proto, weights, single = model
    clf = caffe.Classifier(proto, weights, mean=MEAN, raw_scale=255, channel_swap=SWAP)
    assert tuple(clf.image_dims) == (4, 4)          # default: the net's input size
    im = np.random.default_rng(1).uniform(size=(7, 5, 3))
    probs = clf.predict([im], oversample=False)
    resized = caffe.io.resize_image(im, (4, 4))
    np.testing.assert_allclose(probs[0], by_hand(single, resized), rtol=1e-5, atol=1e-7)


def test_detector_windows_context_and_selective_search(tmp_path, model):
    proto, weights, single = model
    rng = np.random.default_rng(2)
    files = []
    for k in range(2):
        path = tmp_path / f'im{k}.png'
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    det = caffe.Detector(proto, weights, mean=MEAN, raw_scale=255, channel_swap=SWAP)
    assert tuple(det.crop_dims) == (4, 4, 3)
    windows = [(files[0], [(1, 2, 5, 6), (0, 0, 8, 8)]), (files[1], [(2, 3, 9, 11)])]
    detections = det.detect_windows(iter(windows))  # any iterable, consumed once
    assert [(d['filename'], d['window']) for d in detections] == [
        (files[0], (1, 2, 5, 6)), (files[0], (0, 0, 8, 8)), (files[1], (2, 3, 9, 11))]
    for d in detections:
        im = caffe.io.load_image(d['filename'])
        y0, x0, y1, x1 = d['window']
        crop = caffe.io.resize_image(im[y0:y1, x0:x1], (4, 4))
        np.testing.assert_allclose(d['prediction'], by_hand(single, crop), rtol=1e-5,
                                   atol=1e-7)
    with pytest.raises(NotSupportedError, match='detect_windows'):
        det.detect_selective_search(files)


def test_detector_context_pad_crop_by_hand(tmp_path):
    """Input 8 x 8, context_pad 2: the window (0, 0, 3, 3) grows by scale 8 / (8 - 4) = 2
    about its centre (2, 2) to the box (-2, -2, 6, 6); clipped to the image it is (0, 0, 6, 6),
    warped to round(7 * 8 / 9) = 6 pixels placed after round(2 * 8 / 9) = 2 pixels of mean."""
    caffe.set_random_seed(6)
    proto = write(tmp_path, DEPLOY % {'batch': 2, 'size': 8}, 'det.prototxt')
    weights = str(tmp_path / 'det.caffemodel')
    caffe.Net(proto, caffe.TEST).save(weights)
    det = caffe.Detector(proto, weights, mean=MEAN, raw_scale=255, channel_swap=SWAP,
                         context_pad=2)
    crop_mean = MEAN[::-1] / 255.0                   # back in RGB, [0, 1]
    np.testing.assert_allclose(det.crop_mean.reshape(-1), crop_mean, rtol=1e-6)
    im = np.random.default_rng(3).uniform(size=(10, 10, 3)).astype(np.float32)
    crop = det.crop(im, np.array([0, 0, 3, 3]))
    assert crop.shape == (8, 8, 3)
    np.testing.assert_allclose(crop[:2].reshape(-1, 3), np.tile(crop_mean, (16, 1)), rtol=1e-6)
    np.testing.assert_allclose(crop[:, :2].reshape(-1, 3), np.tile(crop_mean, (16, 1)),
                               rtol=1e-6)
    np.testing.assert_array_equal(crop[2:, 2:], im[0:6, 0:6])
    plain = caffe.Detector(proto, weights)
    np.testing.assert_array_equal(plain.crop(im, (1, 2, 4, 7)), im[1:4, 2:7])
