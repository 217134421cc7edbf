"""MemoryData: batches taken from arrays the caller hands over (pycaffe's
``net.set_input_arrays(data, labels)``), as Caffe's MemoryDataLayer with ``Reset``.

Example::

    layer { name: "data" type: "MemoryData" top: "data" top: "label"
            memory_data_param { batch_size: 10 channels: 3 height: 32 width: 32 } }

    net.set_input_arrays(images, labels)   # images (N, 3, 32, 32) float32, labels (N,)
    net.forward()                          # the first 10; the next call the next 10, ...

As in Caffe, arrays given this way are used as they are (transform_param applies only to
Caffe's Datum/cv::Mat entry points, which pycaffe does not expose). Caffe points the tops at the
caller's memory; here each forward copies the batch into the tops.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer


@register('MemoryData')
class MemoryDataLayer(Layer):
    """Tops ``data`` (batch_size, channels, height, width) and ``label`` (batch_size,)."""
    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom, top):
        p = self.layer_param.memory_data_param
        self.batch_size, self.channels = p.batch_size, p.channels
        self.height, self.width = p.height, p.width
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise NetError(f"layer {self.name!r} (MemoryData): batch_size, channels, height and "
                           f"width must be given and positive in memory_data_param (got "
                           f"{self.batch_size}, {self.channels}, {self.height}, {self.width})")
        self._data = self._labels = None
        self._pos = 0
        self.reshape(bottom, top)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)

    def set_batch_size(self, batch_size):
        """Caffe's set_batch_size: the next forwards take ``batch_size`` items."""
        if self._data is not None and len(self._data) % batch_size:
            raise ValueError(f"layer {self.name!r}: batch_size {batch_size} does not divide the "
                             f"{len(self._data)} items given to set_input_arrays")
        self.batch_size = int(batch_size)

    def reset(self, data, labels):
        """Take ``data`` (N, C, H, W) and ``labels`` (N, 1, 1, 1); Caffe's checks, by name."""
        data = xp.ascontiguousarray(data, dtype=xp.float32)
        labels = xp.ascontiguousarray(labels, dtype=xp.float32)
        want = (self.channels, self.height, self.width)
        for what, arr, dims in (('data array', data, want), ('labels array', labels, (1, 1, 1))):
            if arr.ndim != 4:
                raise ValueError(f"layer {self.name!r}: the {what} must be 4-d (N, C, H, W), "
                                 f"got shape {arr.shape}")
            if arr.shape[1:] != dims:
                raise ValueError(f"layer {self.name!r}: the {what} has shape {arr.shape}; "
                                 f"each item must be {dims}")
        if len(data) != len(labels):
            raise ValueError(f"layer {self.name!r}: data and labels must have the same first "
                             f"dimension (got {len(data)} and {len(labels)})")
        if len(data) == 0 or len(data) % self.batch_size:
            raise ValueError(f"layer {self.name!r}: the first dimension of the input arrays "
                             f"({len(data)}) must be a positive multiple of the batch size "
                             f"{self.batch_size}")
        self._data, self._labels = data, labels.reshape(-1)
        self._pos = 0

    def forward(self, bottom, top):
        if self._data is None:
            raise NetError(f"layer {self.name!r} (MemoryData) has no data yet: call "
                           f"net.set_input_arrays(data, labels) before forward")
        n = self.batch_size
        top[0].reshape(n, self.channels, self.height, self.width)
        top[1].reshape(n)
        top[0].data[...] = self._data[self._pos:self._pos + n]
        top[1].data[...] = self._labels[self._pos:self._pos + n]
        self._pos = (self._pos + n) % len(self._data)
