"""The layer registry, keyed by Caffe's type names, and the built-in layer families.

``@register("Convolution")`` on a Layer subclass adds it; registering a name twice is an error;
asking for an unknown name raises UnknownLayerTypeError listing close and known names.
"""
import difflib
import importlib

from npcaffe.errors import CaffeError, NetError, UnknownLayerTypeError
from npcaffe.layers.base import Layer, TEST, TRAIN  # noqa: F401

_REGISTRY = {}


def register(type_name):
    """Class decorator: register a Layer subclass under Caffe's ``type_name``."""
    def wrap(cls):
        if type_name in _REGISTRY:
            raise ValueError(f"layer type {type_name!r} is registered twice "
                             f"({_REGISTRY[type_name].__module__} and {cls.__module__})")
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise TypeError(f"{cls!r} registered as {type_name!r} is not a Layer subclass")
        cls.type = type_name
        _REGISTRY[type_name] = cls
        return cls
    return wrap


def layer_type_list():
    """Sorted names of every registered layer type."""
    return sorted(_REGISTRY)


def layer_class(type_name, layer_name=None):
    """The class registered for ``type_name``; UnknownLayerTypeError if there is none."""
    try:
        return _REGISTRY[type_name]
    except KeyError:
        # case-insensitive first ('relu' -> 'ReLU'), then by spelling
        close = [t for t in _REGISTRY if t.lower() == type_name.lower()]
        close += [t for t in difflib.get_close_matches(type_name, _REGISTRY, n=3, cutoff=0.6)
                  if t not in close]
        close = close[:3]
        where = f" (layer {layer_name!r})" if layer_name else ''
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ''
        raise UnknownLayerTypeError(
            f"unknown layer type {type_name!r}{where}.{hint} "
            f"Known types: {', '.join(layer_type_list())}") from None


def create_layer(layer_param, phase=TEST):
    """Instantiate the layer described by a LayerParameter."""
    if layer_param.type == 'Python':
        return _python_layer(layer_param, phase)
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
    except Exception as exc:
        raise python_layer_error(exc, f"{where} ({pp.module}.{pp.layer}) could not be "
                                      f"created") from exc
    layer.type = 'Python'
    layer.setup = _GuardedSetup(layer, f"{where} ({pp.module}.{pp.layer})")
    return layer


class PythonLayerError(NetError):
    """An exception raised by a Python layer's own code, re-raised naming the layer.

    :func:`python_layer_error` makes it an instance of the original exception's class too, so
    that ``except RuntimeError`` (pycaffe's behaviour: the layer's exception reaches the caller)
    and ``except npcaffe.NetError`` both catch it. ``__cause__`` is the original exception.
    """

    def __str__(self):  # KeyError and OSError subclasses would otherwise format the args
        return str(self.args[0]) if self.args else ''


_ERROR_CLASSES = {}


def python_layer_error(exc, where):
    """A PythonLayerError that is also an instance of ``type(exc)``, its message naming the
    layer (``where``) and the original error. Falls back to a plain PythonLayerError for the
    rare exception classes that cannot be combined (layout conflicts)."""
    base = type(exc)
    detail = f"{base.__name__}: {exc}" if str(exc) else f"{base.__name__} raised"
    message = f"{where}: {detail}"
    cls = _ERROR_CLASSES.get(base)
    if cls is None:
        if issubclass(PythonLayerError, base):          # ValueError, Exception, ...
            cls = PythonLayerError
        else:
            try:
                cls = type(base.__name__, (base, PythonLayerError),
                           {'__module__': base.__module__, '__qualname__': base.__qualname__,
                            '__str__': PythonLayerError.__str__})
            except TypeError:
                cls = PythonLayerError
        _ERROR_CLASSES[base] = cls
    try:
        return cls(message)
    except Exception:  # an exception class whose constructor wants other arguments
        return PythonLayerError(message)


class _GuardedSetup:
    """A Python layer's ``setup`` as the Net calls it: the layer class's own ``setup``, its
    exceptions re-raised naming the layer (see :func:`python_layer_error`). An instance
    attribute of the layer; it calls the class's method (not a stored bound method), so the
    layer still pickles and copies (data layers are pickled for prefetching)."""

    def __init__(self, layer, where):
        self.layer, self.where = layer, where

    def __call__(self, bottom, top):
        try:
            return type(self.layer).setup(self.layer, bottom, top)
        except CaffeError:
            raise
        except Exception as exc:
            raise python_layer_error(exc, f"{self.where} failed in setup") from exc


# The built-in families register themselves on import.
for _family in ('data', 'conv', 'pool', 'inner_product', 'neuron', 'common', 'softmax', 'loss',
                'normalization', 'memory_data'):
    try:
        importlib.import_module(f'npcaffe.layers.{_family}')
    except ModuleNotFoundError as _exc:  # a family not written yet
        if _exc.name != f'npcaffe.layers.{_family}':
            raise
