"""Converters from Caffe layers to ONNX nodes, registered by Caffe's type name.

A converter is ``fn(ctx, layer, inputs, bottoms, tops) -> [output tensor name per top]``:
``ctx`` the :class:`npcaffe.onnx.graph.Context`, ``layer`` the set-up npcaffe layer (its
``layer_param``, ``blobs`` and parsed geometry), ``inputs`` the ONNX names of its bottoms,
``bottoms``/``tops`` the npcaffe blobs (their static shapes at the export size). Registering a
type twice is an error; a layer whose type has no converter (a Python layer, say) is refused by
:func:`converter` with NotSupportedError naming the layer and its type.
"""
import importlib

from npcaffe.errors import NotSupportedError
from npcaffe.registry import Registry

_CONVERTERS = Registry('ONNX converter')
#: Function decorator: ``@register("ReLU")`` registers the converter of Caffe's type "ReLU".
register = _CONVERTERS.register


def converter_type_list():
    """Sorted Caffe type names that have a converter."""
    return _CONVERTERS.names()


def converter(type_name, layer_name):
    """The converter of ``type_name``; NotSupportedError naming the layer when there is none."""
    fn = _CONVERTERS.get(type_name)
    if fn is None:
        why = (" (a Python layer runs arbitrary code, which ONNX cannot express)"
               if type_name == 'Python' else '')
        raise NotSupportedError(
            f"layer {layer_name!r} of type {type_name} cannot be exported to ONNX{why}; "
            f"exportable types: {', '.join(converter_type_list())}")
    return fn


def refuse(layer, why):
    """NotSupportedError for a layer whose configuration ONNX cannot express."""
    return NotSupportedError(f"layer {layer.name!r} of type {layer.type} cannot be exported to "
                             f"ONNX: {why}")


for _family in ('data', 'conv', 'pool', 'neuron', 'routing', 'normalization', 'shape', 'loss'):
    importlib.import_module(f'npcaffe.onnx.ops.{_family}')
