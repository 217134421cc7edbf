"""``caffe.Classifier``: a Net that classifies images, resizing and center-cropping or
oversampling them first (pycaffe's ``caffe.Classifier``).

Example::

    import npcaffe as caffe
    clf = caffe.Classifier('deploy.prototxt', 'weights.caffemodel', image_dims=(256, 256),
                           mean=np.array([104.0, 117.0, 123.0]), raw_scale=255,
                           channel_swap=(2, 1, 0))
    probs = clf.predict([caffe.io.load_image('cat.jpg')])      # (1, classes)
"""
import numpy as np

from npcaffe import io as caffe_io
from npcaffe.layers.base import TEST
from npcaffe.net import Net


def _configure_transformer(net, mean, input_scale, raw_scale, channel_swap):
    """The Transformer of ``net``'s first input: H x W x K images -> K x H x W blobs."""
    in_ = net.inputs[0]
    transformer = caffe_io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """A TEST-phase Net with the preprocessing of its first input.

    Args:
        model_file: deploy prototxt (its first input is the image blob).
        pretrained_file: weights (.caffemodel or .caffemodel.h5).
        image_dims: (height, width) images are resized to before cropping; default the net's
            input size (whole-image crop).
        mean, input_scale, raw_scale, channel_swap: Transformer settings (see caffe.io).
    """

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        if not self.inputs:
            raise ValueError(f"{model_file}: a Classifier needs a net with an input blob "
                             f"(an Input layer), and this one has none")
        self.transformer = _configure_transformer(self, mean, input_scale, raw_scale,
                                                  channel_swap)
        in_ = self.inputs[0]
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        if image_dims is None or not len(image_dims):
            image_dims = self.crop_dims
        self.image_dims = image_dims

    def predict(self, inputs, oversample=True):
        """Class probabilities (N x C) of the images ``inputs`` (H x W x K arrays).

        With ``oversample`` (default) each image's prediction is the mean over its ten crops
        (corners, centre and their mirrors); otherwise the centre crop alone decides.
        """
        inputs = list(inputs)
        input_ = np.zeros((len(inputs), int(self.image_dims[0]), int(self.image_dims[1]),
                           inputs[0].shape[2]), dtype=np.float32)   # (N, H, W, K)
        for ix, in_ in enumerate(inputs):
            input_[ix] = caffe_io.resize_image(in_, self.image_dims)
        if oversample:
            input_ = caffe_io.oversample(input_, self.crop_dims)    # (10 N, h, w, K)
        else:
            ch, cw = (int(d) for d in self.crop_dims)
            top = (int(self.image_dims[0]) - ch) // 2
            left = (int(self.image_dims[1]) - cw) // 2
            input_ = input_[:, top:top + ch, left:left + cw, :]
        in_name = self.inputs[0]
        caffe_in = np.zeros((input_.shape[0], input_.shape[3]) + input_.shape[1:3],
                            dtype=np.float32)                       # (N', K, h, w)
        for ix, in_ in enumerate(input_):
            caffe_in[ix] = self.transformer.preprocess(in_name, in_)
        out = self.forward_all(**{in_name: caffe_in})
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
