"""pycaffe's ``caffe.draw``: draw a NetParameter, with pycaffe's function names and signatures.

::

    from google.protobuf import text_format
    import npcaffe as caffe
    import npcaffe.draw

    net = caffe.proto.caffe_pb2.NetParameter()          # or caffe_pb2 from npcaffe.proto
    text_format.Merge(open('train_val.prototxt').read(), net)
    caffe.draw.draw_net_to_file(net, 'net.svg', 'TB', phase=caffe.TRAIN)

Differences from pycaffe, by design:

* ``draw_net`` and ``draw_net_to_file`` write ``.svg`` and ``.png`` with the toolkit's own
  layout and renderer (``npcaffe.tools.draw``), so they need neither pydot nor Graphviz;
  ``.dot`` gives the Graphviz source. Any other extension (``.pdf``, ``.jpg``, ...) goes
  through pydot and Graphviz as in pycaffe, and raises NotSupportedError naming the
  alternatives when they are not installed.
* ``get_pydot_graph`` returns a ``pydot.Dot`` as pycaffe's does; it needs the pydot package
  (``pip install pydot``) and raises NotSupportedError saying so when it is missing.
* In-place layers (ReLU, Dropout, ...) are drawn as tags on the blob they modify; blobs show
  no shapes (the net is not built: use ``python -m npcaffe.tools.draw`` for shapes).
* ``rankdir`` 'BT' and 'RL' are passed to Graphviz as they are; the own renderer draws them
  as 'TB' and 'LR'.

``phase``: None (every layer, pycaffe's default), ``caffe.TRAIN`` or ``caffe.TEST`` (layers
whose include/exclude rules name the phase, pycaffe's rule). ``display_lrm`` adds each layer's
lr_mults to its label. A V1 (``layers {}``) NetParameter is upgraded first; a prototxt path is
accepted too.
"""
from npcaffe.errors import NotSupportedError
from npcaffe.proto import caffe_pb2
from npcaffe.tools import draw as _draw
from npcaffe.tools import netgraph as _netgraph

__all__ = ['draw_net', 'draw_net_to_file', 'get_pydot_graph', 'get_layer_label',
           'get_edge_label', 'get_layer_lr_mult', 'get_pooling_types_dict',
           'choose_color_by_layertype', 'LAYER_STYLE_DEFAULT', 'NEURON_LAYER_STYLE',
           'BLOB_STYLE']

# pycaffe's style dictionaries (Graphviz node attributes), for scripts that read them.
LAYER_STYLE_DEFAULT = {'shape': 'record', 'fillcolor': '#6495ED', 'style': 'filled'}
NEURON_LAYER_STYLE = {'shape': 'record', 'fillcolor': '#90EE90', 'style': 'filled'}
BLOB_STYLE = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}


def get_pooling_types_dict():
    """``{enum value: name}`` of PoolingParameter.PoolMethod (0: 'MAX', 1: 'AVE', ...)."""
    enum = caffe_pb2.PoolingParameter.PoolMethod
    return {value: name for name, value in enum.items()}


def get_edge_label(layer):
    """The label of the edges from ``layer`` to its tops: 'Batch N' for Data layers,
    num_output for Convolution/Deconvolution/InnerProduct, None otherwise."""
    return _draw._edge_label(layer) or None


def get_layer_lr_mult(layer):
    """``'lr 1, 2'``: the lr_mult of each of the layer's param specs ('' if none)."""
    return _draw.lr_mult_text(layer)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The text of a layer's node: name, type and key parameters (and lr_mults), on separate
    lines when ``rankdir`` is 'LR' (vertical room) and joined by spaces otherwise (as pycaffe
    does)."""
    separator = ' ' if rankdir in ('TB', 'BT') else '\n'
    details = _draw.layer_details(layer)
    parts = [layer.name, f"({layer.type})"] + ([details] if details else [])
    if display_lrm and _draw.lr_mult_text(layer):
        parts.append(_draw.lr_mult_text(layer))
    return separator.join(parts)


def choose_color_by_layertype(layertype):
    """The fill colour of a layer type's boxes (by its kind: convolution, pooling, ...)."""
    return _draw.colours_for(layertype)[0]


# ------------------------------------------------------------------------------------------
def _net_param(caffe_net):
    if isinstance(caffe_net, caffe_pb2.NetParameter):
        param, _ = _netgraph.read(caffe_net)           # a copy, upgraded
        return param
    return _netgraph.read(str(caffe_net))[0]


def _drawing(caffe_net, phase):
    param = _net_param(caffe_net)
    layers = _draw.select_phase(param.layer, phase)
    return _draw.net_graph(layers, {}, param.name or 'Net')


def _rankdir(rankdir):
    rankdir = str(rankdir).upper()
    if rankdir not in ('TB', 'LR', 'BT', 'RL'):
        raise ValueError(f"rankdir must be 'TB', 'LR', 'BT' or 'RL', not {rankdir!r}")
    return rankdir


def _pydot():
    try:
        import pydot
    except ImportError:
        raise NotSupportedError(
            "get_pydot_graph needs the pydot package and Graphviz (pip install pydot; "
            "apt-get install graphviz); without them, draw_net_to_file(net, 'net.svg') and "
            "draw_net(net, rankdir, ext='svg' or 'png') draw the net with npcaffe's own "
            "renderer") from None
    return pydot


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The net as a ``pydot.Dot`` graph (pycaffe's signature). NotSupportedError when pydot
    is not installed."""
    pydot = _pydot()
    dot = _draw.to_dot(_drawing(caffe_net, phase), _rankdir(rankdir), display_lrm,
                       label_edges)
    graphs = pydot.graph_from_dot_data(dot)
    return graphs[0] if isinstance(graphs, list) else graphs


def draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False):
    """The drawing of the net as bytes in format ``ext``: 'svg' and 'png' by npcaffe's own
    renderer, 'dot' the Graphviz source, anything else through pydot and Graphviz."""
    ext = str(ext).lower().lstrip('.')
    rankdir = _rankdir(rankdir)
    if ext in ('svg', 'png', 'dot', 'gv'):
        # npcaffe's own layout draws top-down or left-right
        own = 'LR' if rankdir in ('LR', 'RL') else 'TB'
        drawing = _drawing(caffe_net, phase)
        return _draw.render_bytes(drawing, ext, rankdir if ext in ('dot', 'gv') else own,
                                  display_lrm, label_edges=True)
    try:
        graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    except NotSupportedError:
        raise NotSupportedError(
            f"drawing to .{ext} needs pydot and Graphviz (pip install pydot; apt-get install "
            f"graphviz); .svg, .png and .dot work without them") from None
    try:
        return graph.create(format=ext)
    except OSError as exc:         # pydot without Graphviz's dot program
        raise NotSupportedError(
            f"drawing to .{ext} needs Graphviz's dot program ({exc}); .svg, .png and .dot "
            f"work without it") from exc


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False):
    """Draw the net into ``filename``; its extension picks the format (see draw_net)."""
    filename = str(filename)
    ext = filename[filename.rfind('.') + 1:] if '.' in filename else ''
    if not ext:
        raise NotSupportedError(f"{filename}: give the file an extension (.svg, .png, .dot)")
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    from npcaffe.formats import atomic_write
    with atomic_write(filename, 'wb') as f:
        f.write(data)
