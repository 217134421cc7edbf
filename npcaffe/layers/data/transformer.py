"""Caffe's DataTransformer (``transform_param``), shared by the Data and ImageData layers.

For one item of pixels ``x`` (C, H, W), uint8 or float32, in Caffe's order::

    mirror  = param.mirror and rng draws 1 of {0, 1}     # drawn first, in EVERY phase
    crop    = crop_size x crop_size at (h_off, w_off):
                  TRAIN: h_off, w_off drawn uniformly from [0, H - crop_size]
                  TEST:  ((H - crop_size) // 2, (W - crop_size) // 2)
    out     = (x[crop] - mean[crop]) * scale             # float32 arithmetic
    out     = out[:, :, ::-1] if mirror

``mean`` is the mean file (a BlobProto, (1, C, H, W) of the *uncropped* item size, cropped at
the item's offsets) or ``mean_value`` (one value for every channel, or one per channel); giving
both is an error. ``force_color`` / ``force_gray`` choose how encoded Datums are decoded (see
:func:`npcaffe.layers.data.image.datum_pixels`); they do nothing to raw Datums (Caffe logs an
error and goes on; here a warning). Random numbers come from the ``numpy.random.Generator``
handed in (not bit-equal to Caffe's, the same distributions).

Example::

    t = DataTransformer(layer_param.transform_param, TEST, rng, where="layer 'data'")
    c, h, w = t.infer_shape(x.shape)          # (3, 227, 227) with crop_size 227
    out = t.transform(x)                      # float32 (c, h, w)
"""
import logging

import numpy as np

from npcaffe.errors import ModelFileError, NetError
from npcaffe.io import blobproto_to_array
from npcaffe.layers.base import TRAIN
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


def read_mean_file(path, where='mean_file'):
    """The mean of a binaryproto (a BlobProto) as float32 (C, H, W)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as exc:
        raise ModelFileError(f"{where}: cannot read the mean file {path} "
                             f"({exc.strerror or exc})") from None
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(raw)
        arr = blobproto_to_array(blob)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and shape errors
        raise ModelFileError(f"{where}: {path} is not a mean file (a BlobProto binaryproto): "
                             f"{exc}") from None
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ModelFileError(f"{where}: the mean file {path} holds {arr.shape[0]} images "
                                 f"(num {arr.shape[0]}); a mean file has num 1")
        arr = arr[0]
    if arr.ndim != 3:
        raise ModelFileError(f"{where}: the mean file {path} has shape {arr.shape}; expected "
                             f"(1, channels, height, width)")
    return arr.astype(np.float32)


class DataTransformer:
    """``transform_param`` applied to one item at a time (see the module docstring)."""

    def __init__(self, param, phase, rng, where='data layer'):
        self.where = where
        self.phase = phase
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        self.crop_size = int(param.crop_size)
        self.force_color, self.force_gray = bool(param.force_color), bool(param.force_gray)
        self._rng = rng
        if self.force_color and self.force_gray:
            raise NetError(f"{where}: transform_param cannot set both force_color and "
                           f"force_gray")
        if param.HasField('mean_file') and len(param.mean_value):
            raise NetError(f"{where}: transform_param cannot specify mean_file and mean_value "
                           f"at the same time")
        self.mean = read_mean_file(param.mean_file, where) if param.HasField('mean_file') \
            else None
        if self.mean is not None:
            log.info("%s: loaded mean file %s (%s)", where, param.mean_file,
                     'x'.join(map(str, self.mean.shape)))
        self.mean_values = np.asarray(param.mean_value, np.float32) \
            if len(param.mean_value) else None
        self._warned_force = False

    @property
    def decode_flags(self):
        """(force_color, force_gray) for decoding encoded Datums."""
        return self.force_color, self.force_gray

    def warn_force_on_raw(self):
        """Caffe's "force_color and force_gray only for encoded datum" (once)."""
        if (self.force_color or self.force_gray) and not self._warned_force:
            self._warned_force = True
            log.warning("%s: force_color and force_gray apply to encoded Datums only; these "
                        "Datums are raw, so they are used as stored", self.where)

    def infer_shape(self, shape):
        """(C, H, W) of the transformed item from the (C, H, W) of the input."""
        c, h, w = shape
        if c <= 0:
            raise NetError(f"{self.where}: an item with {c} channels")
        if self.crop_size and (h < self.crop_size or w < self.crop_size):
            raise NetError(f"{self.where}: crop_size {self.crop_size} is larger than the "
                           f"{h}x{w} item (height x width)")
        if self.crop_size:
            return c, self.crop_size, self.crop_size
        return c, h, w

    def _offsets(self, h, w):
        if not self.crop_size:
            return 0, 0
        if self.phase == TRAIN:
            return (int(self._rng.integers(h - self.crop_size + 1)),
                    int(self._rng.integers(w - self.crop_size + 1)))
        return (h - self.crop_size) // 2, (w - self.crop_size) // 2

    def transform(self, x, out=None, what='item'):
        """Transform the (C, H, W) pixels ``x`` into ``out`` (float32, the inferred shape;
        allocated when None) and return it. ``what`` names the item in errors."""
        c, h, w = x.shape
        oc, oh, ow = self.infer_shape(x.shape)
        do_mirror = self.mirror and bool(self._rng.integers(2))
        h_off, w_off = self._offsets(h, w)
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise NetError(f"{self.where}: the mean file is {'x'.join(map(str, self.mean.shape))}"
                           f" but {what} is {c}x{h}x{w} (channels x height x width); the mean "
                           f"must have the size of the uncropped items")
        if self.mean_values is not None and len(self.mean_values) not in (1, c):
            raise NetError(f"{self.where}: {len(self.mean_values)} mean_value given for {what} "
                           f"with {c} channels; give 1 mean_value or one per channel")
        if out is None:
            out = np.empty((oc, oh, ow), np.float32)
        elif out.shape != (oc, oh, ow):
            raise NetError(f"{self.where}: {what} gives a {oc}x{oh}x{ow} item but the batch "
                           f"holds {'x'.join(map(str, out.shape))} items (its first item's "
                           f"size); every item of a batch must have one size")
        crop = x[:, h_off:h_off + oh, w_off:w_off + ow].astype(np.float32)
        if self.mean is not None:
            crop -= self.mean[:, h_off:h_off + oh, w_off:w_off + ow]
        elif self.mean_values is not None:
            crop -= self.mean_values.reshape(-1, 1, 1)
        crop *= self.scale
        out[...] = crop[:, :, ::-1] if do_mirror else crop
        return out
