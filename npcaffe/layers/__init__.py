"""The layer registry, keyed by Caffe's type names, and the built-in layer families.

``@register("Convolution")`` on a Layer subclass adds it; registering a name twice is an error;
asking for an unknown name raises UnknownLayerTypeError listing close and known names.

``Python`` is a type too, made by a creator function rather than one class (as Caffe registers
it with REGISTER_LAYER_CREATOR when built WITH_PYTHON_LAYER, which npcaffe always is): it
imports ``python_param.module`` and instantiates ``python_param.layer``. ``layer_type_list()``
lists it with the registered classes.
"""
import difflib
import importlib

from npcaffe.errors import CaffeError, NetError, UnknownLayerTypeError, prefix_message
from npcaffe.layers.base import Layer, TEST, TRAIN  # noqa: F401
from npcaffe.registry import Registry

_LAYERS = Registry('layer type', Layer)
#: Class decorator: ``@register("ReLU")`` registers a Layer subclass under Caffe's type name.
register = _LAYERS.register


def layer_type_list():
    """Sorted names of every layer type a net may use: the registered classes and ``Python``."""
    return sorted(set(_LAYERS.names()) | set(_CREATORS))


def layer_class(type_name, layer_name=None):
    """The class registered for ``type_name``; UnknownLayerTypeError if there is none."""
    cls = _LAYERS.get(type_name)
    if cls is None:
        close = _LAYERS.suggestions(type_name)
        close = (close + difflib.get_close_matches(type_name, list(_CREATORS), cutoff=0.6))[:3]
        where = f" (layer {layer_name!r})" if layer_name else ''
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ''
        raise UnknownLayerTypeError(
            f"unknown layer type {type_name!r}{where}.{hint} "
            f"Known types: {', '.join(layer_type_list())}")
    return cls


def create_layer(layer_param, phase=TEST):
    """Instantiate the layer described by a LayerParameter."""
    creator = _CREATORS.get(layer_param.type)
    if creator is not None:
        return creator(layer_param, phase)
    return layer_class(layer_param.type, layer_param.name)(layer_param, phase)


def _python_layer(layer_param, phase):
    """Import python_param.module and instantiate python_param.layer (a Layer subclass)."""
    pp = layer_param.python_param
    where = f"Python layer {layer_param.name!r}"
    if not pp.module or not pp.layer:
        raise NetError(f"{where} needs python_param {{ module: ... layer: ... }}")
    try:
        module = importlib.import_module(pp.module)
    except ImportError as exc:
        raise NetError(f"{where}: cannot import module {pp.module!r} ({exc}); it must be "
                       f"importable from the working directory or the Python path") from exc
    cls = getattr(module, pp.layer, None)
    if cls is None:
        raise NetError(f"{where}: module {pp.module!r} has no class {pp.layer!r}")
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise NetError(f"{where}: {pp.module}.{pp.layer} is not a subclass of caffe.Layer "
                       f"(npcaffe.Layer)")
    try:
        layer = cls(layer_param, phase)
    except CaffeError:
        raise
    except Exception as exc:     # pycaffe: the layer's own exception reaches the caller
        raise prefix_message(exc, f"{where} ({pp.module}.{pp.layer}) could not be created")
    layer.type = 'Python'
    return layer


#: Layer types made by a function instead of a registered class (Caffe's layer creators).
_CREATORS = {'Python': _python_layer}


# The built-in families register themselves on import.
for _family in ('data.input', 'data.memory', 'data.database', 'data.image_data', 'data.hdf5',
                'data.window', 'conv', 'pool', 'inner_product', 'neuron', 'routing', 'eltwise',
                'reshape', 'reduction', 'softmax', 'loss', 'normalization'):
    importlib.import_module(f'npcaffe.layers.{_family}')
