"""pycaffe's net specification API: write nets in Python, get Caffe's NetParameter.

Same names, rules and text output as BVLC pycaffe's ``caffe.net_spec``::

    from npcaffe import layers as L, params as P, NetSpec

    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 224, 224]))
    n.conv1 = L.Convolution(n.data, num_output=64, kernel_size=3, pad=1,
                            param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    print(n.to_proto())          # protobuf text format, as pycaffe prints it

The rules, all as in pycaffe:

- ``L.<Type>(*bottoms, **kwargs)`` makes a layer of Caffe type ``<Type>``. It returns its
  one ``Top``, a tuple of Tops for ``ntop=N`` (N > 1), or the ``Function`` itself for ``ntop=0``.
  A bottom that is not a Top raises pycaffe's ``TypeError("<Type> input <i> is not a Top (type
  is <class ...>)")``, with a note saying what to pass instead (a tuple of tops: unpack it).
- ``in_place=True`` gives the layer tops equal to its bottoms (ReLU, Dropout, ...).
- A keyword argument whose name ends in ``param`` (``param``, ``convolution_param``,
  ``transform_param``, ...) sets that field of LayerParameter; any other keyword goes to the
  type's own parameter message (``kernel_size`` of a Convolution to ``convolution_param``),
  found from the message type names of LayerParameter's ``*_param`` fields (so
  ``Transformation`` -> ``transform_param``); where that message has no such field, or the type
  has no message of its own (``Deconvolution``, ``SoftmaxWithLoss``), it goes to
  LayerParameter itself (``include``, ``loss_weight``, ``propagate_down``).
- Values: a list becomes a repeated field (a list of dicts repeated messages), a dict a nested
  message, a scalar given to a repeated field a one-element list; enums are their numbers
  (``P.Pooling.MAX``).
- Naming: a Top assigned to a NetSpec attribute takes that name; a layer is named after its
  first top (in-place layers too, so ``n.relu1`` names the layer while its top stays
  ``conv1``); unnamed tops, and unnamed layers without tops, are named ``<Type><N>`` with a
  counter per type (``Convolution1``). Layers appear in the order of a depth-first walk from
  the assigned tops, in assignment order.
"""
from collections import Counter, OrderedDict

from .errors import CaffeError
from .proto import caffe_pb2

__all__ = ['NetSpec', 'Top', 'Function', 'layers', 'params', 'to_proto', 'assign_proto',
           'param_name_dict', 'NetSpecError']


class NetSpecError(CaffeError, ValueError):
    """A net specification that cannot become a NetParameter (bad bottom, unknown field)."""


def param_name_dict():
    """Map a parameter message's type stem to its LayerParameter field stem.

    ``{'Convolution': 'convolution', 'Transformation': 'transform', 'Loss': 'loss', ...}``:
    the keys are the ``*Parameter`` message names without ``Parameter``, the values the
    ``*_param`` field names without ``_param``. A layer type that is not a key (Deconvolution,
    SoftmaxWithLoss) has no parameter message of its own.
    """
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        message = field.message_type
        if field.name.endswith('_param') and message is not None \
                and message.name.endswith('Parameter'):
            names[message.name[:-len('Parameter')]] = field.name[:-len('_param')]
    return names


def assign_proto(proto, name, val):
    """Assign the Python value ``val`` to field ``name`` of the message ``proto``, recursively.

    Lists (and tuples) become repeated fields, a list of dicts repeated messages; dicts become
    messages; a scalar given to a repeated field becomes a one-element list; anything else is
    assigned directly. Raises AttributeError when ``proto`` has no field ``name`` (the caller
    relies on that to fall back from the type's message to LayerParameter).
    """
    field = getattr(proto, name)  # AttributeError for an unknown field, before any change
    is_repeated = hasattr(field, 'extend')
    if isinstance(val, tuple):
        val = list(val)
    if is_repeated and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        if val and isinstance(val[0], dict):
            for item in val:
                message = field.add()
                for key, value in item.items():
                    assign_proto(message, key, value)
        else:
            field.extend(val)
    elif isinstance(val, dict):
        for key, value in val.items():
            assign_proto(field, key, value)
    else:
        setattr(proto, name, val)


def _misuse_hint(obj):
    """What to do instead of passing ``obj`` (not a Top) where a Top is needed."""
    if isinstance(obj, tuple) and obj and all(isinstance(t, Top) for t in obj):
        return (f"it is the tuple of {len(obj)} tops of a {obj[0].fn.type_name} layer with "
                f"ntop={len(obj)}; unpack it into separate names, e.g. n.a, n.b = L.X(..., "
                f"ntop=2)")
    if isinstance(obj, Function):
        return (f"it is a {obj.type_name} layer with ntop=0, which has no top to use as a "
                f"bottom")
    return f"a Top is made by a layers.<Type>(...) call, not {type(obj).__name__} {obj!r}"


def _function_of(obj, what):
    """The Function behind a Top (or a Function itself, as ``ntop=0`` layers are)."""
    if isinstance(obj, Top):
        return obj.fn
    if isinstance(obj, Function):
        return obj
    if isinstance(obj, tuple) and obj and all(isinstance(t, Top) for t in obj):
        raise NetSpecError(f"{what} is not a Top: {_misuse_hint(obj)}")
    raise NetSpecError(f"{what} must be a Top made by a layers.<Type>(...) call, "
                       f"not {type(obj).__name__} {obj!r}")


def to_proto(*tops):
    """A NetParameter with every layer needed to compute ``tops``, all tops auto-named."""
    layers_ = OrderedDict()
    names = {}
    autonames = Counter()
    for i, top in enumerate(tops):
        _function_of(top, f"to_proto argument {i}")._to_proto(layers_, names, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers_.values())
    return net


class Top:
    """One output blob of a layer: output ``n`` of the Function ``fn``."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top (auto-named)."""
        return to_proto(self)

    def _update(self, params):
        self.fn._update(params)

    def _to_proto(self, layers_, names, autonames):
        return self.fn._to_proto(layers_, names, autonames)

    def __repr__(self):
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """A layer: its Caffe type, its input Tops and its parameters (the keyword arguments).

    ``ntop`` (default 1) and ``in_place`` (default False) are taken out of ``params``; the rest
    are written into the LayerParameter by the rules in the module docstring.
    """

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        self.inputs = tuple(inputs)
        for i, inp in enumerate(self.inputs):
            if not isinstance(inp, Top):
                # pycaffe's exception, type and message; what to do instead as a note
                exc = TypeError(f"{type_name} input {i} is not a Top (type is {type(inp)})")
                if hasattr(exc, 'add_note'):                    # Python 3.11+
                    exc.add_note(_misuse_hint(inp))
                raise exc
        self.params = dict(params)
        self.ntop = self.params.pop('ntop', 1)
        self.in_place = self.params.pop('in_place', False)
        if not isinstance(self.ntop, int) or self.ntop < 0:
            raise NetSpecError(f"{type_name}: ntop must be an integer >= 0, not {self.ntop!r}")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        """The layer name: its own assigned name, else its first top's, else ``<Type><N>``."""
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        """The top's assigned name, else the next ``<Type><N>``."""
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _update(self, params):
        self.params.update(params)

    def _to_proto(self, layers_, names, autonames):
        """Add this layer (after, depth first, the layers of its bottoms) to ``layers_``."""
        if self in layers_:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers_, names, autonames)
            bottom_names.append(layers_[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)

        own = _param_names.get(self.type_name)
        for key, value in self.params.items():
            try:
                if not key.endswith('param') and own is not None:
                    try:
                        assign_proto(getattr(layer, own + '_param'), key, value)
                        continue
                    except (AttributeError, KeyError):
                        pass  # not a field of the type's message: try LayerParameter
                assign_proto(layer, key, value)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                where = f"{own}_param or LayerParameter" if own and not key.endswith('param') \
                    else "LayerParameter"
                raise NetSpecError(f"layer {layer.name!r} ({self.type_name}): cannot set "
                                   f"{key}={value!r} in {where}: {exc}") from exc
        layers_[self] = layer

    def __repr__(self):
        return f"<Function {self.type_name} with {self.ntop} top(s)>"


class NetSpec:
    """A set of named Tops; ``to_proto()`` makes the NetParameter that computes them all.

    Assign Tops as attributes (``n.conv1 = L.Convolution(...)``) or items (``n['conv1'] = ...``);
    the names become top and layer names (see the module docstring).
    """

    def __init__(self):
        super().__setattr__('tops', OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value
        _label(value, name)

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top named {name!r}") from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.tops[item]

    def __delitem__(self, name):
        del self.tops[name]

    def __contains__(self, name):
        return name in self.tops

    def keys(self):
        """The assigned names, in assignment order."""
        return list(self.tops.keys())

    def vals(self):
        """The assigned Tops, in assignment order."""
        return list(self.tops.values())

    def to_proto(self):
        """The NetParameter computing every assigned top, named by the assignments."""
        names = {}
        for name, top in self.tops.items():
            _function_of(top, f"NetSpec.{name}")
            names[top] = name  # a top assigned twice takes its last name
        autonames = Counter()
        layers_ = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers_, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers_.values())
        return net


def _label(obj, name):
    """Remember the NetSpec name of a Top or Function, for error messages only (coord_map)."""
    if isinstance(obj, (Top, Function)):
        obj._netspec_name = name


class Layers:
    """The ``layers`` pseudo-module: ``layers.<Type>(*bottoms, **params)`` specifies a layer."""

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        layer_fn.__name__ = name
        layer_fn.__doc__ = f"Specify a Caffe {name} layer (see npcaffe.net_spec)."
        return layer_fn


class _EnumScope:
    """The enum values of one ``<Name>Parameter`` message: ``params.Pooling.MAX == 0``."""

    def __init__(self, name, message):
        self._name = name
        self._message = message

    def __getattr__(self, value_name):
        if value_name.startswith('__'):
            raise AttributeError(value_name)
        try:
            return getattr(self._message, value_name)
        except AttributeError:
            known = sorted(v.name for e in self._message.DESCRIPTOR.enum_types for v in e.values)
            raise AttributeError(f"{self._name}Parameter has no enum value {value_name!r}; "
                                 f"known: {', '.join(known) or 'none'}") from None


class Parameters:
    """The ``params`` pseudo-module: ``params.<Name>.<VALUE>`` is an enum value of
    ``<Name>Parameter`` (``params.Pooling.MAX``, ``params.Eltwise.SUM``, ``params.Data.LMDB``)."""

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        message = getattr(caffe_pb2, name + 'Parameter', None)
        if message is None:
            raise AttributeError(f"caffe.proto has no message {name}Parameter")
        return _EnumScope(name, message)


_param_names = param_name_dict()
layers = Layers()
params = Parameters()
