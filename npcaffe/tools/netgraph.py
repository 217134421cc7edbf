"""A net as the tools see it: its layers and blobs, and the blob shapes the engine computes.

``load(source, phase, shape=None)`` reads a prototxt (or takes a NetParameter), upgrades it
(V1 ``layers {}``, ``input_dim``), keeps the layers of ``phase`` by Caffe's include/exclude
rules, and builds it with ``npcaffe.Net`` to learn every blob's shape. Layers that read data
from outside the net (``Python`` data layers, ``Data``, ``ImageData``, ...) cannot be built
without that data, so for the build they are replaced by Input layers:

* the first top (the image) takes ``shape`` (``--shape N,C,H,W``), which must then be given;
* every further top (the label) takes ``label_shape``, by default ``(N, 1, H, W)`` for a Python
  layer (dense labels, as FCN's VOC/SBD layers make) and ``(N,)`` for Caffe's own data layers
  (one class per image, as ``Data`` makes).

In a net whose inputs are Input layers, ``shape`` replaces the first input's shape; any other
input of the same height and width (a label) follows the new batch size, height and width.

The drawn and summarised net is the one written, not the one built: ``NetGraph.layers`` are
the prototxt's layers of the phase (data layers keep their type), without the Split layers the
engine inserts. ``NetGraph.shapes`` maps blob names to shapes (empty when not built).
"""
import logging
from dataclasses import dataclass, field

import npcaffe
from npcaffe.errors import CaffeError, NetError
from npcaffe.net_param import filter_net, load_net_param
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

__all__ = ['DATA_SOURCE_TYPES', 'NetGraph', 'ShapeNeededError', 'load', 'read', 'parse_phase', 'parse_shape',
           'is_data_source', 'is_in_place', 'with_inputs']

DATA_SOURCE_TYPES = frozenset(['Python', 'Data', 'ImageData', 'HDF5Data', 'MemoryData',
                               'WindowData', 'VideoData', 'AnnotatedData'])
"""Types of layers without bottoms that read their tops from outside the net."""

_PHASES = {'train': npcaffe.TRAIN, 'test': npcaffe.TEST}


class ShapeNeededError(NetError):
    """A net with data layers was to be built without the input shape that replaces them."""


def parse_phase(text):
    """``'train'``/``'test'`` (any case) -> ``npcaffe.TRAIN``/``npcaffe.TEST``; ValueError
    otherwise."""
    try:
        return _PHASES[str(text).lower()]
    except KeyError:
        raise ValueError(f"phase must be 'train' or 'test', not {text!r}") from None


def parse_shape(text):
    """``'1,3,500,500'`` (commas, 'x' or spaces) -> ``(1, 3, 500, 500)``; ValueError unless
    every dimension is a positive integer."""
    parts = [p for p in str(text).replace('x', ',').replace(' ', ',').split(',') if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape {text!r} is not a list of integers such as 1,3,500,500") \
            from None
    if not dims or any(d < 1 for d in dims):
        raise ValueError(f"shape {text!r} needs one or more positive dimensions")
    return dims


def is_data_source(layer):
    """Whether ``layer`` (a LayerParameter) reads its tops from outside the net."""
    return not layer.bottom and layer.type in DATA_SOURCE_TYPES


def is_in_place(layer):
    """Whether every top of ``layer`` is the bottom at the same position (Caffe's in-place
    rule: ReLU, Dropout, BatchNorm/Scale in ResNets, ...)."""
    return bool(layer.top) and len(layer.bottom) >= len(layer.top) and all(
        t == b for t, b in zip(layer.top, layer.bottom))


def _default_label_shape(layer, shape):
    if layer.type == 'Python' and len(shape) == 4:
        return (shape[0], 1) + tuple(shape[2:])
    return (shape[0],)


def with_inputs(param, shape=None, label_shape=None):
    """A copy of the NetParameter ``param`` that the engine can build without data.

    Data source layers become Input layers (``shape`` for their first top, ``label_shape`` or
    the default above for the others; NetError naming the layer when ``shape`` is missing).
    With ``shape``, the first Input top takes it, and other Input tops of the first one's
    height and width follow it (batch, height, width; their channels kept). ``param`` is left
    unchanged.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    shape = None if shape is None else tuple(int(d) for d in shape)
    for layer in out.layer:
        if not is_data_source(layer):
            continue
        if shape is None:
            raise ShapeNeededError(
                f"layer {layer.name!r} ({layer.type}) reads its tops "
                f"{', '.join(layer.top)} from outside the net; give the shape of "
                f"{layer.top[0]!r} (--shape N,C,H,W) to replace it by an Input layer")
        labels = tuple(label_shape) if label_shape else _default_label_shape(layer, shape)
        replacement = caffe_pb2.LayerParameter(name=layer.name, type='Input', top=layer.top,
                                               include=layer.include, exclude=layer.exclude)
        for i in range(len(layer.top)):
            replacement.input_param.shape.add().dim.extend(shape if i == 0 else labels)
        log.info("layer %r (%s): replaced by an Input layer of shape %s", layer.name,
                 layer.type, shape)
        layer.CopyFrom(replacement)
    if shape is None:
        return out
    first = None        # the first input's original height, width, ...
    for layer in out.layer:
        if layer.type != 'Input':
            continue
        shapes = layer.input_param.shape
        if len(shapes) == 1 and len(layer.top) > 1:     # one shape for all tops
            for _ in layer.top[1:]:
                shapes.add().CopyFrom(shapes[0])
        for blob_shape in shapes:
            dims = list(blob_shape.dim)
            if first is None:
                first = dims[2:]
                new = shape
            elif len(dims) == len(shape) >= 3 and dims[2:] == first:
                new = [shape[0], dims[1]] + list(shape[2:])
            else:
                continue
            blob_shape.ClearField('dim')
            blob_shape.dim.extend(new)
    return out


@dataclass
class NetGraph:
    """A net's layers (as written, for one phase) and the shapes of its blobs.

    Attributes:
        name: the net's name.
        phase: npcaffe.TRAIN or npcaffe.TEST.
        layers: LayerParameters of the phase in prototxt order (no Split layers; data layers
            keep their own type).
        shapes: ``{blob name: shape tuple}`` from the built net (empty when not built).
        net: the built npcaffe.Net, or None.
        where: the file (or net name) for messages.
        copied: names of the layers whose parameters were copied from ``weights``.
    """
    name: str
    phase: int
    layers: list
    shapes: dict = field(default_factory=dict)
    net: object = None
    where: str = 'net'
    copied: list = field(default_factory=list)

    def blob_names(self):
        """Every blob name, in order of first appearance as a top (or bottom)."""
        seen = {}
        for layer in self.layers:
            for name in list(layer.bottom) + list(layer.top):
                seen.setdefault(name, None)
        return list(seen)


def read(source):
    """(NetParameter upgraded to the current format, description for messages) of a prototxt
    path or a NetParameter (copied); PrototxtError naming file:line when it does not parse."""
    return load_net_param(source)


def load(source, phase=npcaffe.TEST, shape=None, label_shape=None, weights=None, build=True):
    """The NetGraph of ``source`` (a prototxt path or a NetParameter) for ``phase``.

    ``build``: build the net with the engine (data layers replaced as the module says) to
    learn the shapes; ``weights``: a caffemodel copied into the built net (checks that it
    fits). Errors (PrototxtError, NetError, ...) name the file and the layer at fault.
    """
    param, where = load_net_param(source)
    state = caffe_pb2.NetState(phase=phase)
    layers = list(filter_net(param, state, where).layer)
    graph = NetGraph(name=param.name, phase=phase, layers=layers, where=where)
    if not build:
        if weights is not None:
            raise ValueError("weights need a built net (build=True)")
        return graph
    kept = caffe_pb2.NetParameter()
    kept.CopyFrom(param)
    kept.ClearField('layer')
    kept.layer.extend(layers)
    try:
        buildable = with_inputs(kept, shape, label_shape)
        net = npcaffe.Net(buildable, phase)
    except CaffeError as exc:      # name the file rather than the in-memory copy
        text = str(exc)
        prefix = f"net {param.name!r}: " if param.name else 'net: '
        if text.startswith(prefix):
            text = text[len(prefix):]
        raise type(exc)(text if text.startswith(str(where)) else f"{where}: {text}") from exc
    if weights is not None:
        graph.copied = net.copy_from(str(weights))
    graph.net = net
    graph.shapes = {name: tuple(blob.shape) for name, blob in net.blobs.items()}
    return graph
