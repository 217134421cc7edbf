"""Draw a Caffe net: layers as coloured boxes, blobs as ellipses with their shapes.

Command line::

    python -m npcaffe.tools.draw NET.prototxt OUT.svg|OUT.png|OUT.dot [--rankdir TB|LR]
                                 [--phase test|train|all] [--shape N,C,H,W] [--lr]

The picture:

* every layer that computes a new blob is a box coloured by its kind (convolution blue,
  pooling orange, inner product green, normalisation pink, routing teal, losses red, data
  grey), with its name, type and key parameters (``3x3 s2 p100 -> 64``: kernel, stride, pad,
  outputs; the pooling method; dropout ratio, ...) and, with ``--lr``, its lr_mults;
* every blob is an ellipse with its name and, when the net could be built, its shape;
* a layer that works in place (ReLU, Dropout, BatchNorm/Scale in ResNets: every top equals
  its bottom) is not a box of its own but a tag under the blob it modifies, in its colour;
* an arrow runs from each bottom blob to its layer and from the layer to each top. A blob
  rewritten by a later layer (in place, but with further bottoms) gets a second ellipse.

Shapes come from building the net with the engine (``npcaffe.tools.netgraph``: data layers are
replaced by Input layers of ``--shape``); without ``--shape``, a net with data layers is drawn
without shapes. ``--phase all`` draws every layer whatever its include/exclude rules (shapes
from the TEST net). The layout (``layout``) and the SVG/PNG writers (``render``) need no
Graphviz; ``.dot`` writes Graphviz's format for those who have it.

In Python: ``net_graph(layers, shapes)`` gives the drawn graph (nodes and edges),
``net_scene(graph, rankdir)`` the picture, ``render.to_svg``/``to_png`` the file contents.
``npcaffe.draw`` (pycaffe's ``caffe.draw``) is built on these.
"""
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

import npcaffe
from npcaffe.errors import NotSupportedError
from npcaffe.proto import caffe_pb2
from npcaffe.cli import runner
from npcaffe.tools import cli, geometry, netgraph
from npcaffe.tools import render as R
from npcaffe.tools.layout import layered_layout

log = logging.getLogger(__name__)

__all__ = ['DrawNode', 'NetDrawing', 'net_graph', 'net_scene', 'layer_details', 'lr_mult_text',
           'colours_for', 'to_dot', 'select_phase', 'write', 'FORMATS', 'main']

FORMATS = ('svg', 'png', 'dot')

# (fill, stroke) per kind of layer
_FAMILY_COLOURS = {
    'conv': ('#dbe9ff', '#4a78c2'), 'deconv': ('#e8dcff', '#7a55c7'),
    'pool': ('#ffe3d1', '#d0763c'), 'ip': ('#d9f2dc', '#3f9a50'),
    'neuron': ('#fff5c2', '#b89600'), 'norm': ('#f6e0f2', '#b0529e'),
    'data': ('#e6e8eb', '#6c757d'), 'route': ('#d7f1ef', '#2f8f86'),
    'loss': ('#ffdede', '#c94a4a'), 'softmax': ('#ffecd6', '#cc8a2e'),
    'other': ('#eeeeee', '#777777')}
_FAMILIES = {
    'conv': ['Convolution', 'Im2col'], 'deconv': ['Deconvolution'], 'pool': ['Pooling', 'SPP'],
    'ip': ['InnerProduct', 'Embed'],
    'neuron': ['ReLU', 'PReLU', 'ELU', 'Sigmoid', 'TanH', 'AbsVal', 'Power', 'Exp', 'Log',
               'BNLL', 'Threshold', 'Clip', 'Swish', 'Dropout'],
    'norm': ['BatchNorm', 'Scale', 'Bias', 'LRN', 'MVN'],
    'data': ['Input', 'Python', 'Data', 'ImageData', 'HDF5Data', 'MemoryData', 'WindowData',
             'DummyData', 'Parameter', 'VideoData', 'AnnotatedData'],
    'route': ['Concat', 'Slice', 'Split', 'Crop', 'Eltwise', 'Flatten', 'Reshape', 'Tile',
              'Silence', 'Reduction', 'ArgMax'],
    'softmax': ['Softmax'], 'loss': ['Accuracy']}
_FAMILY_OF = {t: f for f, types in _FAMILIES.items() for t in types}

_NAME_SIZE, _TEXT_SIZE, _CHIP_SIZE = 12.5, 10.5, 10
_BLOB_FILL, _BLOB_STROKE, _MUTED = '#ffffff', '#8a8f98', '#5b6270'


def colours_for(layer_type):
    """(fill, stroke) colours of a layer type's kind."""
    family = _FAMILY_OF.get(layer_type)
    if family is None:
        family = 'loss' if layer_type.endswith('Loss') else 'other'
    return _FAMILY_COLOURS[family]


# ------------------------------------------------------------------------------------------
# labels
def _dims(values):
    return 'x'.join(str(v) for v in values)


def _dims_if(values, default, prefix):
    values = [int(v) for v in values]
    return f"{prefix}{_dims(values) if len(set(values)) > 1 else values[0]}" \
        if any(v != default for v in values) else ''


def layer_details(layer):
    """Key parameters of a LayerParameter in a few words (``'3x3 s2 p100 -> 64'``), or ''."""
    t = layer.type
    if t in ('Convolution', 'Deconvolution'):
        g = geometry.layer_geometry_params(layer)['convolution_param']
        cp = layer.convolution_param
        kernel = g.get('kernel_size', [])
        parts = [_dims(kernel if len(set(kernel)) > 1 else kernel[:1] * 2) if kernel else '?',
                 _dims_if(g['stride'], 1, 's'), _dims_if(g['pad'], 0, 'p'),
                 _dims_if(g['dilation'], 1, 'd'), f"g{cp.group}" if cp.group > 1 else '',
                 f"\u2192 {cp.num_output}", '' if cp.bias_term else 'no bias']
        return ' '.join(p for p in parts if p)
    if t == 'Pooling':
        pp = layer.pooling_param
        method = caffe_pb2.PoolingParameter.PoolMethod.Name(pp.pool)
        if pp.global_pooling:
            return f"{method} global"
        g = geometry.layer_geometry_params(layer)['pooling_param']
        kernel = g.get('kernel_size', [])
        parts = [method, _dims(kernel if len(set(kernel)) > 1 else kernel[:1] * 2),
                 _dims_if(g['stride'], 1, 's'), _dims_if(g['pad'], 0, 'p')]
        return ' '.join(p for p in parts if p)
    if t == 'InnerProduct':
        return f"\u2192 {layer.inner_product_param.num_output}"
    if t == 'LRN':
        p = layer.lrn_param
        within = ' within' if p.norm_region == p.WITHIN_CHANNEL else ''
        return f"size {p.local_size} \u03b1 {p.alpha:g} \u03b2 {p.beta:g}{within}"
    if t == 'Dropout':
        return f"ratio {layer.dropout_param.dropout_ratio:g}"
    if t == 'ReLU' and layer.relu_param.negative_slope:
        return f"slope {layer.relu_param.negative_slope:g}"
    if t == 'Eltwise':
        p = layer.eltwise_param
        op = caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)
        return op + (f" {', '.join(f'{c:g}' for c in p.coeff)}" if p.coeff else '')
    if t == 'Crop':
        offsets = ', '.join(map(str, layer.crop_param.offset)) or '0'
        return f"axis {layer.crop_param.axis} offset {offsets}"
    if t in ('Concat', 'Slice'):
        p = layer.concat_param if t == 'Concat' else layer.slice_param
        text = f"axis {p.axis}"
        if t == 'Slice' and p.slice_point:
            text += f" at {', '.join(map(str, p.slice_point))}"
        return text
    if t == 'Softmax' and layer.softmax_param.axis != 1:
        return f"axis {layer.softmax_param.axis}"
    if t == 'BatchNorm' and layer.batch_norm_param.HasField('use_global_stats'):
        return 'global stats' if layer.batch_norm_param.use_global_stats else 'batch stats'
    if t == 'Scale' and layer.scale_param.bias_term:
        return 'with bias'
    if t == 'Power':
        p = layer.power_param
        return f"({p.shift:g} + {p.scale:g}x)^{p.power:g}"
    if t == 'Python':
        return f"{layer.python_param.module}.{layer.python_param.layer}"
    if t == 'Input' and layer.input_param.shape:
        return ', '.join(_dims(s.dim) for s in layer.input_param.shape)
    if t == 'Reshape':
        return f"to {_dims(layer.reshape_param.shape.dim)}"
    if t == 'SoftmaxWithLoss' and layer.loss_param.HasField('ignore_label'):
        return f"ignore {layer.loss_param.ignore_label}"
    return ''


def lr_mult_text(layer):
    """``'lr 1, 2'``: the lr_mult of each param spec ('' when the layer has none)."""
    if not layer.param:
        return ''
    return 'lr ' + ', '.join(f"{p.lr_mult:g}" for p in layer.param)


# ------------------------------------------------------------------------------------------
# the drawn graph
@dataclass
class DrawNode:
    """A box (``kind='layer'``, ``layer`` set) or an ellipse (``kind='blob'``, ``blob``
    set, ``inplace``: the in-place layers drawn as its tags)."""
    id: str
    kind: str
    layer: object = None
    blob: str = None
    shape: tuple = None
    inplace: list = field(default_factory=list)


@dataclass
class NetDrawing:
    """Nodes (id -> DrawNode, in net order) and edges ``(source id, target id)``."""
    nodes: OrderedDict
    edges: list
    name: str = ''

    def layer_names(self):
        """Names of every drawn layer, boxes and in-place tags."""
        names = []
        for node in self.nodes.values():
            if node.kind == 'layer':
                names.append(node.layer.name)
            names += [lp.name for lp in node.inplace]
        return names


def _is_tag(layer):
    """An in-place layer with nothing but its own blobs: drawn as a tag on the blob."""
    return netgraph.is_in_place(layer) and len(layer.bottom) == len(layer.top)


def net_graph(layers, shapes=None, name=''):
    """The NetDrawing of ``layers`` (LayerParameters in net order) with ``shapes``
    (``{blob: shape}``, may be empty).

    A blob written again after it was read (a later in-place writer with further bottoms)
    gets a new node ``blob:<name>#2``; two writers before any reader (the TRAIN and TEST data
    layers of a train_val net drawn with every phase) share one node.
    """
    shapes = shapes or {}
    nodes, edges = OrderedDict(), []
    current, read, versions = {}, set(), {}

    def blob_node(blob, new=False):
        if not new and blob in current:
            return current[blob]
        versions[blob] = versions.get(blob, 0) + 1
        nid = f"blob:{blob}" + (f"#{versions[blob]}" if versions[blob] > 1 else '')
        nodes[nid] = DrawNode(nid, 'blob', blob=blob, shape=shapes.get(blob))
        current[blob] = nid
        return nid

    for layer in layers:
        if _is_tag(layer):
            for top in dict.fromkeys(layer.top):
                nodes[blob_node(top)].inplace.append(layer)
            continue
        lid = f"layer:{layer.name}"
        k = 2
        while lid in nodes:
            lid = f"layer:{layer.name}#{k}"
            k += 1
        nodes[lid] = DrawNode(lid, 'layer', layer=layer)
        for bottom in dict.fromkeys(layer.bottom):
            nid = blob_node(bottom)
            edges.append((nid, lid))
            read.add(nid)
        for top in dict.fromkeys(layer.top):
            nid = current.get(top)
            edges.append((lid, blob_node(top, new=nid is None or nid in read)))
    return NetDrawing(nodes, edges, name)


def select_phase(layers, phase):
    """pycaffe draw's rule: with ``phase`` None every layer; otherwise the layers whose
    include rules name the phase (or that have none) and whose exclude rules do not.
    ValueError for a layer with both include and exclude rules."""
    if phase is None:
        return list(layers)
    out = []
    for layer in layers:
        if layer.include and layer.exclude:
            raise ValueError(f"layer {layer.name!r} has both include and exclude rules")
        if layer.include:
            keep = any(r.phase == phase for r in layer.include)
        else:
            keep = not any(r.phase == phase for r in layer.exclude)
        if keep:
            out.append(layer)
    return out


# ------------------------------------------------------------------------------------------
# the picture
_PAD_X, _PAD_Y, _LINE_GAP = 10, 6, 2
_CHIP_H, _CHIP_GAP = 16, 2


def _layer_lines(layer, display_lrm):
    lines = [(layer.name, _NAME_SIZE, True, '#111111')]
    details = layer_details(layer)
    lines.append((f"{layer.type}" + (f" {details}" if details else ''), _TEXT_SIZE, False,
                  '#333333'))
    if display_lrm and lr_mult_text(layer):
        lines.append((lr_mult_text(layer), _TEXT_SIZE, False, _MUTED))
    return lines


def _blob_lines(node):
    lines = [(node.blob, _TEXT_SIZE + 1, True, '#222222')]
    if node.shape is not None:
        lines.append((_dims(node.shape) if node.shape else 'scalar', _TEXT_SIZE, False,
                      _MUTED))
    return lines


def _chip_text(layer):
    return f"{layer.name} \u00b7 {layer.type}"


def _text_box(lines):
    width = max(R.text_width(t, s, b) for t, s, b, _ in lines)
    height = sum(s * 1.25 for _, s, _, _ in lines) + _LINE_GAP * (len(lines) - 1)
    return width, height


def _node_size(node, display_lrm):
    """(width, height, ellipse (w, h)) of a node's bounding box."""
    if node.kind == 'layer':
        w, h = _text_box(_layer_lines(node.layer, display_lrm))
        return w + 2 * _PAD_X, h + 2 * _PAD_Y, None
    w, h = _text_box(_blob_lines(node))
    ew, eh = w * 1.2 + 18, h * 1.25 + 10
    width, height = ew, eh
    if node.inplace:
        chip_w = max(R.text_width(_chip_text(lp), _CHIP_SIZE) for lp in node.inplace) + 12
        width = max(width, chip_w)
        height += len(node.inplace) * (_CHIP_H + _CHIP_GAP)
    return width, height, (ew, eh)


def _text_items(lines, cx, top):
    items, y = [], top
    for text, size, bold, colour in lines:
        h = size * 1.25
        items.append(R.Text(cx, y + h / 2, text, size, bold, colour))
        y += h + _LINE_GAP
    return items


def _tooltip(layer):
    text = text_format.MessageToString(layer, as_utf8=True)
    lines = text.splitlines()
    return '\n'.join(lines[:40] + (['...'] if len(lines) > 40 else []))


def net_scene(drawing, rankdir='TB', display_lrm=False, title=None):
    """The picture of a NetDrawing as a render.Scene (rankdir 'TB' or 'LR'; ``display_lrm``
    adds each layer's lr_mults; ``title`` a caption above the graph)."""
    sizes, ellipse_of = OrderedDict(), {}
    for nid, node in drawing.nodes.items():
        w, h, ellipse = _node_size(node, display_lrm)
        sizes[nid] = (w, h)
        if ellipse:
            ellipse_of[nid] = ellipse
    plain_ellipses = {nid for nid, node in drawing.nodes.items()
                      if node.kind == 'blob' and not node.inplace}
    lay = layered_layout(sizes, drawing.edges, rankdir, ellipses=plain_ellipses)
    header = 30 if title else 0
    scene = R.Scene(max(lay.width, R.text_width(title or '', 13, True) + 32),
                    lay.height + header, title=title or drawing.name or 'net')
    if title:
        scene.groups.append(R.Group('caption', 'caption', [
            R.Text(16, 18, title, 13, True, '#222222', anchor='start')]))
    for i, (edge, route) in enumerate(zip(drawing.edges, lay.routes)):
        pts = [(x, y + header) for x, y in route]
        src, dst = (drawing.nodes[e] for e in edge)
        label = f"{src.blob or src.layer.name} -> {dst.blob or dst.layer.name}"
        scene.groups.append(R.Group('edge', f"edge:{i}", [
            R.Curve(pts, axis='y' if rankdir == 'TB' else 'x')], label))
    for nid, node in drawing.nodes.items():
        cx, cy = lay.centers[nid]
        cy += header
        w, h = sizes[nid]
        if node.kind == 'layer':
            fill, stroke = colours_for(node.layer.type)
            items = [R.Rect(cx - w / 2, cy - h / 2, w, h, fill, stroke, rx=5, stroke_width=1.3)]
            lines = _layer_lines(node.layer, display_lrm)
            items += _text_items(lines, cx, cy - _text_box(lines)[1] / 2)
            scene.groups.append(R.Group('layer', nid, items, _tooltip(node.layer)))
            continue
        ew, eh = ellipse_of[nid]
        top = cy - h / 2
        ecy = top + eh / 2
        lines = _blob_lines(node)
        items = [R.Ellipse(cx, ecy, ew / 2, eh / 2, _BLOB_FILL, _BLOB_STROKE, 1.2)]
        items += _text_items(lines, cx, ecy - _text_box(lines)[1] / 2)
        tip = f"blob {node.blob}" + (f": {_dims(node.shape) or 'scalar'}"
                                     if node.shape is not None else '')
        scene.groups.append(R.Group('blob', nid, items, tip))
        y = top + eh + _CHIP_GAP
        for lp in node.inplace:
            fill, stroke = colours_for(lp.type)
            text = _chip_text(lp)
            cw = R.text_width(text, _CHIP_SIZE) + 12
            scene.groups.append(R.Group('layer inplace', f"layer:{lp.name}@{nid}", [
                R.Rect(cx - cw / 2, y, cw, _CHIP_H, fill, stroke, rx=3),
                R.Text(cx, y + _CHIP_H / 2, text, _CHIP_SIZE, False, '#222222')],
                f"in place on {node.blob}\n" + _tooltip(lp)))
            y += _CHIP_H + _CHIP_GAP
    return scene


# ------------------------------------------------------------------------------------------
# Graphviz's format
def _dot_id(text):
    """A DOT string literal; newlines become DOT's centred line breaks."""
    text = str(text).replace('\\', '\\\\').replace('"', '\\"')
    return '"' + text.replace('\n', '\\n') + '"'


def to_dot(drawing, rankdir='TB', display_lrm=False, label_edges=False):
    """The NetDrawing in Graphviz's DOT language: layers as filled boxes, blobs as ellipses,
    in-place layers as boxes joined to their blob by a dashed line (as pycaffe draws them);
    ``label_edges`` labels layer->top edges with num_output / batch size as pycaffe does."""
    out = [f"digraph {_dot_id(drawing.name or 'Net')} {{",
           f"  rankdir={rankdir};",
           '  node [fontname="DejaVu Sans", fontsize=10];']
    for nid, node in drawing.nodes.items():
        if node.kind == 'layer':
            fill, stroke = colours_for(node.layer.type)
            label = '\n'.join(t for t, *_ in _layer_lines(node.layer, display_lrm))
            out.append(f"  {_dot_id(nid)} [shape=box, style=\"rounded,filled\", "
                       f"fillcolor=\"{fill}\", color=\"{stroke}\", label={_dot_id(label)}];")
        else:
            label = '\n'.join(t for t, *_ in _blob_lines(node))
            out.append(f"  {_dot_id(nid)} [shape=ellipse, label={_dot_id(label)}];")
            for lp in node.inplace:
                fill, stroke = colours_for(lp.type)
                iid = f"layer:{lp.name}@{nid}"
                label = '\n'.join(t for t, *_ in _layer_lines(lp, display_lrm))
                out.append(f"  {_dot_id(iid)} [shape=box, style=\"rounded,filled\", "
                           f"fillcolor=\"{fill}\", color=\"{stroke}\", label={_dot_id(label)}];")
                out.append(f"  {_dot_id(nid)} -> {_dot_id(iid)} [style=dashed, dir=none];")
    for src, dst in drawing.edges:
        attrs = ''
        node = drawing.nodes[src]
        if label_edges and node.kind == 'layer':
            text = _edge_label(node.layer)
            if text:
                attrs = f" [label={_dot_id(text)}]"
        out.append(f"  {_dot_id(src)} -> {_dot_id(dst)}{attrs};")
    out.append('}')
    return '\n'.join(out) + '\n'


def _edge_label(layer):
    """pycaffe's edge label: the batch size of Data layers, num_output of convolutions and
    inner products ('' otherwise)."""
    if layer.type == 'Data':
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return ''


def render_bytes(drawing, ext, rankdir='TB', display_lrm=False, title=None,
                 label_edges=False):
    """The file contents for extension ``ext`` ('svg', 'png' or 'dot'); NotSupportedError
    for another."""
    ext = ext.lower().lstrip('.')
    if ext == 'svg':
        return R.to_svg(net_scene(drawing, rankdir, display_lrm, title)).encode('utf-8')
    if ext == 'png':
        return R.to_png(net_scene(drawing, rankdir, display_lrm, title))
    if ext in ('dot', 'gv'):
        return to_dot(drawing, rankdir, display_lrm, label_edges).encode('utf-8')
    raise NotSupportedError(f"cannot draw to .{ext}: the formats are .svg, .png (no Graphviz "
                            f"needed) and .dot (for Graphviz)")


# ------------------------------------------------------------------------------------------
def _title(graph, phase_text):
    inputs = ', '.join(f"{b} {_dims(s)}" for b, s in graph.shapes.items()
                       if graph.net is not None and b in graph.net.inputs)
    name = graph.name or Path(str(graph.where)).name
    return f"{name} \u00b7 phase {phase_text}" + (f" \u00b7 {inputs}" if inputs else '')


def drawing_of(source, phase='test', shape=None, label_shape=None):
    """(NetDrawing, title) of a prototxt (or NetParameter) for phase 'test', 'train' or
    'all', with shapes where the net can be built (a net with data layers needs ``shape``;
    otherwise it is drawn without shapes and the reason logged)."""
    phase_text = str(phase).lower()
    build_phase = npcaffe.TEST if phase_text == 'all' else netgraph.parse_phase(phase_text)
    graph = netgraph.load(source, build_phase, build=False)
    if phase_text == 'all':
        graph.layers = list(netgraph.read(source)[0].layer)
    needs_shape = any(netgraph.is_data_source(lp) for lp in graph.layers)
    if needs_shape and shape is None:
        log.warning("%s reads data through data layers: drawn without blob shapes (give "
                    "--shape N,C,H,W to see them)", graph.where)
    else:
        try:
            built = netgraph.load(source, build_phase, shape=shape, label_shape=label_shape)
            graph.shapes, graph.net = built.shapes, built.net
        except (npcaffe.CaffeError, ValueError) as exc:
            log.warning("drawn without blob shapes: the net could not be built: %s", exc)
    return net_graph(graph.layers, graph.shapes, graph.name), _title(graph, phase_text.upper())


def write(source, out, rankdir='TB', phase='test', shape=None, label_shape=None,
          display_lrm=False):
    """Draw the net of ``source`` into the file ``out`` (its extension picks the format).
    Returns the NetDrawing."""
    out = Path(out)
    ext = out.suffix.lower().lstrip('.')
    if ext not in FORMATS + ('gv',):
        raise NotSupportedError(f"{out}: cannot draw to .{ext or '(no extension)'}; use .svg, "
                                f".png (no Graphviz needed) or .dot (for Graphviz)")
    drawing, title = drawing_of(source, phase, shape, label_shape)
    data = render_bytes(drawing, ext, rankdir, display_lrm, title)
    from npcaffe.formats import atomic_write
    with atomic_write(out, 'wb') as f:
        f.write(data)
    return drawing


# ------------------------------------------------------------------------------------------
# command line
def build_parser():
    parser = runner.ArgumentParser(
        prog='python -m npcaffe.tools.draw',
        description="Draw a Caffe net as a graph of layers (boxes) and blobs (ellipses, with "
                    "their shapes), as SVG or PNG without Graphviz, or as Graphviz .dot.",
        epilog="examples:\n"
               "  python -m npcaffe.tools.draw deploy.prototxt net.svg\n"
               "  python -m npcaffe.tools.draw train.prototxt net.png --phase train "
               "--shape 1,3,500,500\n"
               "  python -m npcaffe.tools.draw deploy.prototxt net.svg --rankdir LR --lr\n")
    parser.add_argument('net', metavar='NET.prototxt', help='the net definition')
    parser.add_argument('out', metavar='OUT', help='output file: .svg, .png or .dot')
    parser.add_argument('--rankdir', default='TB', type=str.upper, choices=['TB', 'LR'],
                        help='top to bottom (default) or left to right')
    parser.add_argument('--phase', default='test', type=str.lower,
                        choices=['test', 'train', 'all'],
                        help='which layers to draw by include/exclude rules (default test; '
                             'all: every layer)')
    parser.add_argument('--shape', metavar='N,C,H,W',
                        help="the input's shape (to show shapes of nets with data layers)")
    parser.add_argument('--label-shape', metavar='N,...',
                        help="shape of data layers' further tops (default N,1,H,W for Python "
                             "layers, N for Caffe's)")
    parser.add_argument('--lr', action='store_true', help="show each layer's lr_mults")
    return parser


def run(args):
    ext = Path(args.out).suffix.lower().lstrip('.')
    if ext not in FORMATS + ('gv',):
        raise runner.UsageError(f"{args.out}: the output must end in .svg, .png or .dot")
    drawing = write(args.net, args.out, args.rankdir, args.phase,
                    cli.shape_option(args.shape, '--shape'),
                    cli.shape_option(args.label_shape, '--label-shape'), args.lr)
    layers = sum(1 for n in drawing.nodes.values() if n.kind == 'layer')
    blobs = sum(1 for n in drawing.nodes.values() if n.kind == 'blob')
    print(f"wrote {args.out}: {layers} layers, {blobs} blobs, {len(drawing.edges)} edges")


def main(argv=None):
    """Run the command line; returns the exit status: 0, 1 when the net or a file fails,
    2 for a bad command line."""
    return runner.run(run, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
