"""WindowData (R-CNN's window-file reader) is refused: set-up raises NotSupportedError naming
the layer, instead of Caffe's "Unknown layer type" or a layer that reads nothing.

Nets that use it can feed the same crops through ImageData (crop the windows into files first)
or a Python layer.
"""
from npcaffe.errors import NotSupportedError
from npcaffe.layers import register
from npcaffe.layers.base import Layer


@register('WindowData')
class WindowDataLayer(Layer):
    """Raises NotSupportedError at set-up (see the module docstring)."""

    def setup(self, bottom, top):
        raise NotSupportedError(
            f"layer {self.name!r}: WindowData (R-CNN's window-file data layer) is not "
            f"supported by npcaffe; crop the windows into image files and read them with "
            f"ImageData, or write a Python data layer")
