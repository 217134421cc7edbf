"""Layers that bring data into a net: Input (blobs the caller fills), DummyData, Parameter.

The Python layer (``type: "Python"``) is created by the registry from python_param.
"""
from npcaffe import filler
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer


def _shapes(layer, shape_msgs, num_tops):
    """One BlobShape for all tops, or one per top (Caffe's Input/DummyData rule)."""
    if len(shape_msgs) not in (1, num_tops):
        raise NetError(f"layer {layer.name!r} ({layer.type}) has {num_tops} tops but "
                       f"{len(shape_msgs)} shapes; give one shape, or one per top")
    return [tuple(int(d) for d in shape_msgs[0 if len(shape_msgs) == 1 else i].dim)
            for i in range(num_tops)]


@register('Input')
class InputLayer(Layer):
    """Tops shaped by input_param.shape at setup; the caller reshapes and fills them.
    Reshape does nothing, so ``net.blobs['data'].reshape(...)`` sticks (as in Caffe)."""
    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        if shapes:
            for blob, shape in zip(top, _shapes(self, shapes, len(top))):
                blob.reshape(shape)

    def forward(self, bottom, top):
        """Nothing to compute: the caller has written the data."""


@register('DummyData')
class DummyDataLayer(Layer):
    """Tops of the given shapes filled by data_filler (constant 0 by default) at setup, and
    refilled each forward unless every filler is constant (Caffe's refill rule)."""
    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.dummy_data_param
        legacy = [p.num, p.channels, p.height, p.width]
        if p.shape and any(len(v) for v in legacy):
            raise NetError(f"layer {self.name!r}: give shape or the legacy "
                           f"num/channels/height/width, not both")
        if p.shape:
            shapes = _shapes(self, p.shape, len(top))
        else:
            if any(len(v) not in (1, len(top)) for v in legacy):
                raise NetError(f"layer {self.name!r}: num/channels/height/width must have "
                               f"1 or {len(top)} entries")
            shapes = [tuple(int(v[0 if len(v) == 1 else i]) for v in legacy)
                      for i in range(len(top))]
        fillers = list(p.data_filler)
        if len(fillers) not in (0, 1, len(top)):
            raise NetError(f"layer {self.name!r}: give 0, 1 or {len(top)} data_filler")
        self._fillers = [fillers[0 if len(fillers) == 1 else i] if fillers else None
                         for i in range(len(top))]
        self._refill = [f is not None and f.type != 'constant' for f in self._fillers]
        for blob, shape, fp in zip(top, shapes, self._fillers):
            blob.reshape(shape)
            filler.fill(blob, fp)

    def forward(self, bottom, top):
        for blob, fp, refill in zip(top, self._fillers, self._refill):
            if refill:
                filler.fill(blob, fp)


@register('Parameter')
class ParameterLayer(Layer):
    """One learnable blob of parameter_param.shape, exposed as the top."""
    exact_bottoms = 0
    exact_tops = 1

    def setup(self, bottom, top):
        if not self.blobs:
            self.blobs.dtype = top[0].dtype
            self.blobs.add_blob(*self.layer_param.parameter_param.shape.dim)
        self.param_propagate_down = [True]
        top[0].reshape(self.blobs[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        if self.param_propagate_down[0]:
            self.blobs[0].diff[...] += top[0].diff
