"""``caffe.Detector``: windowed detection, classifying crops of images (pycaffe's
``caffe.Detector``, after R-CNN: Girshick, Donahue, Darrell, Malik, 2014).

Example::

    import npcaffe as caffe
    det = caffe.Detector('deploy.prototxt', 'weights.caffemodel', raw_scale=255,
                         mean=np.array([104.0, 117.0, 123.0]), channel_swap=(2, 1, 0),
                         context_pad=16)
    for d in det.detect_windows([('cat.jpg', [(10, 20, 200, 240)])]):
        print(d['filename'], d['window'], d['prediction'].argmax())

Windows are (ymin, xmin, ymax, xmax) in pixels. Selective-search proposals
(``detect_selective_search``) need the MATLAB tool pycaffe shells out to and are not
supported; compute windows elsewhere and pass them to ``detect_windows``.
"""
import numpy as np

from npcaffe import io as caffe_io
from npcaffe.classifier import _configure_transformer
from npcaffe.errors import NotSupportedError
from npcaffe.layers.base import TEST
from npcaffe.net import Net


class Detector(Net):
    """A TEST-phase Net that classifies windows of images.

    Args:
        model_file, pretrained_file: deploy prototxt and weights.
        mean, input_scale, raw_scale, channel_swap: Transformer settings (see caffe.io).
        context_pad: pixels of context around each window, so that a ``context_pad`` border
            of the net's input is surrounding image (as R-CNN's feature extraction); the part
            of that border outside the image is filled with the mean.
    """

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        if not self.inputs:
            raise ValueError(f"{model_file}: a Detector needs a net with an input blob "
                             f"(an Input layer), and this one has none")
        self.transformer = _configure_transformer(self, mean, input_scale, raw_scale,
                                                  channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Classify windows of images: ``images_windows`` is an iterable of (image filename,
        [window, ...]). Each window is cropped (with context, if configured), warped to the
        net's input size and preprocessed. Returns one dict per window, in order:
        ``{'window': window, 'prediction': output vector, 'filename': image filename}``."""
        images_windows = [(fname, list(windows)) for fname, windows in images_windows]
        window_inputs = []
        for image_fname, windows in images_windows:
            image = caffe_io.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        if not window_inputs:
            return []
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + self.blobs[in_].data.shape[2:], dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections = []
        ix = 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({'window': window, 'prediction': predictions[ix],
                                   'filename': image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """Not supported: pycaffe runs the selective_search_ijcv_with_python MATLAB code."""
        raise NotSupportedError(
            "detect_selective_search needs the selective_search_ijcv_with_python MATLAB tool, "
            "which npcaffe does not run; compute window proposals with another tool and call "
            "detect_windows([(filename, [(ymin, xmin, ymax, xmax), ...]), ...])")

    def crop(self, im, window):
        """The window (ymin, xmin, ymax, xmax) of image ``im`` (H x W x K), with
        ``context_pad`` context: the box is grown so that, once warped to the input size,
        ``context_pad`` pixels on each side are context; parts outside the image become the
        mean (in the image's own value space)."""
        window = np.asarray(window)
        crop = im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        if not self.context_pad:
            return crop
        box = window.astype(np.float64)
        crop_size = self.blobs[self.inputs[0]].width           # assumes a square input
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (box[2] - box[0] + 1) / 2.0
        half_w = (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        scaled_dims = scale * np.array((-half_h, -half_w, half_h, half_w))
        box = np.round(np.tile(center, 2) + scaled_dims)
        full_h = box[2] - box[0] + 1
        full_w = box[3] - box[1] + 1
        scale_h = crop_size / full_h
        scale_w = crop_size / full_w
        pad_y = int(round(max(0, -box[0]) * scale_h))           # how far out of the image
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h = box[2] - box[0] + 1
        clip_w = box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise ValueError(f"window {tuple(window)} lies outside the image ({im_h} x {im_w})")
        crop_h = int(round(clip_h * scale_h))
        crop_w = int(round(clip_w * scale_w))
        crop_h = min(crop_h, crop_size - pad_y)
        crop_w = min(crop_w, crop_size - pad_x)
        context_crop = im[int(box[0]):int(box[2]), int(box[1]):int(box[3])]
        context_crop = caffe_io.resize_image(context_crop, (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad):
        """Set ``crop_dims`` (the input item's shape as an H x W x K image) and, with
        ``context_pad``, ``crop_mean``: the mean in unprocessed image space (transpose,
        channel swap and raw scale undone) that fills context outside the image."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = np.argsort(tpose)
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        channel_order = self.transformer.channel_swap.get(in_)
        raw_scale = self.transformer.raw_scale.get(in_)
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        mean = np.asarray(mean, dtype=np.float32)
        if mean.ndim == 2:                                        # an H x W mean
            mean = mean[np.newaxis]
        crop_mean = mean.copy().transpose(inv_tpose)
        if channel_order is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_order)]
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
