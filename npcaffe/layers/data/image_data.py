"""The ImageData layer: batches of image files named in a list file (Caffe's ImageDataLayer).

Example::

    layer { name: "data" type: "ImageData" top: "data" top: "label"
            transform_param { mean_value: 104 mean_value: 117 mean_value: 123 }
            image_data_param { source: "train.txt" root_folder: "images/" batch_size: 8
                               new_height: 256 new_width: 256 shuffle: true } }

Parameters (``image_data_param``): ``source`` (the list file: one ``path label`` per line,
split at the line's LAST space), ``root_folder`` (prepended to each path as a plain string,
so it needs its trailing slash; default "": paths relative to the working directory),
``batch_size`` (default 1), ``new_height``/``new_width`` (both or neither; resize as
``cv::resize`` INTER_LINEAR), ``is_color`` (default true: 3-channel BGR; false: 1-channel
gray as OpenCV's IMREAD_GRAYSCALE), ``shuffle`` (shuffle the list at set-up and at every wrap,
seeded from ``npcaffe.set_random_seed`` / the solver's random_seed), ``rand_skip`` (start at a
random line in [0, rand_skip)). ``transform_param`` as
:mod:`~npcaffe.layers.data.transformer`; batches are prefetched by a background thread
(``data_param.prefetch``, default 4).

Behaviour: the first image of each batch gives the batch its size (without resizing all images
of a batch must have one size); the list wraps to its first line inside a batch. Where Caffe
aborts the process (a missing or unreadable image, an empty list) or reads garbage (a line
without a label), this layer raises an error naming the file and the line of the list.
"""
import logging

import numpy as np

from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.data.image import ImageReadError, imread, resize_linear, to_chw
from npcaffe.layers.data.prefetch import PrefetchingDataLayer

log = logging.getLogger(__name__)


def read_image_list(source, where):
    """[(path, label, line number)] of a list file: each line split at its last space, the
    label an integer. NetError naming the file and line for anything else."""
    try:
        with open(source, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        raise NetError(f"{where}: the image list {source} does not exist (it is read relative "
                       f"to the working directory)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NetError(f"{where}: cannot read the image list {source} ({exc})") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip('\r')
        pos = line.rfind(' ')
        label = line[pos + 1:].strip() if pos >= 0 else ''
        try:
            value = int(label)
        except ValueError:
            raise NetError(f"{where}: {source}:{number}: {line!r} is not 'path label' (the "
                           f"label after the last space must be an integer)") from None
        lines.append((line[:pos], value, number))
    if not lines:
        raise NetError(f"{where}: the image list {source} is empty")
    return lines


class _ImageReader:
    """Images of a list, wrapping (and reshuffling) at the end; one thread at a time."""

    def __init__(self, lines, source, param, transformer, rng, labels, where):
        self.lines, self.source, self.transformer = lines, source, transformer
        self.root = param.root_folder
        self.size = (param.new_height, param.new_width)
        self.mode = 'color' if param.is_color else 'gray'
        self.shuffle, self.rng = param.shuffle, rng
        self.batch_size, self.labels, self.where = param.batch_size, labels, where
        self.pos = 0

    def read(self, index):
        path, label, number = self.lines[index]
        what = f"image {self.root + path} ({self.source} line {number})"
        try:
            img = imread(self.root + path, self.mode)
        except ImageReadError as exc:
            raise NetError(f"{self.where}: cannot load {what}: "
                           f"{str(exc).split(': ', 1)[-1]}") from None
        if self.size[0] > 0:
            img = resize_linear(img, *self.size)
        return what, to_chw(img), label

    def reshuffle(self):
        order = self.rng.permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def load_batch(self):
        data = None
        labels = np.empty(self.batch_size, np.float32)
        for i in range(self.batch_size):
            what, pixels, label = self.read(self.pos)
            if data is None:
                data = np.empty((self.batch_size,) + self.transformer.infer_shape(pixels.shape),
                                np.float32)
            self.transformer.transform(pixels, data[i], what)
            labels[i] = label
            self.pos += 1
            if self.pos >= len(self.lines):
                self.pos = 0
                if self.shuffle:
                    self.reshuffle()
        return data, labels if self.labels else None


@register('ImageData')
class ImageDataLayer(PrefetchingDataLayer):
    """Batches of image files from a list; see the module docstring."""
    own_param_name = 'image_data_param'

    def open_source(self, top):
        p = self.layer_param.image_data_param
        if (p.new_height > 0) != (p.new_width > 0):
            raise NetError(f"{self.where}: new_height and new_width must be set together "
                           f"(got {p.new_height} and {p.new_width})")
        if p.batch_size <= 0:
            raise NetError(f"{self.where}: image_data_param needs a positive batch_size")
        if not p.source:
            raise NetError(f"{self.where}: image_data_param needs a source (the list file)")
        lines = read_image_list(p.source, self.where)
        reader = _ImageReader(lines, p.source, p, self.transformer, self.rng,
                              self.output_labels, self.where)
        if p.shuffle:
            log.info("%s: shuffling data", self.where)
            reader.reshuffle()
        log.info("%s: a total of %d images", self.where, len(lines))
        if p.rand_skip:
            skip = int(self.rng.integers(p.rand_skip))
            if skip >= len(lines):
                raise NetError(f"{self.where}: rand_skip {p.rand_skip} drew {skip}, but the "
                               f"list {p.source} has only {len(lines)} lines")
            log.info("%s: skipping the first %d data points", self.where, skip)
            reader.pos = skip
        _, pixels, _ = reader.read(reader.pos)
        shape = self.transformer.infer_shape(pixels.shape)
        return reader.load_batch, shape, p.batch_size, self.layer_param.data_param.prefetch, []
