"""A table of a net's layers: output shapes, parameters, FLOPs and receptive fields.

Command line::

    python -m npcaffe.tools.summary NET.prototxt [--weights W] [--shape 1,3,500,500]
                                    [--label-shape 1,1,500,500] [--phase test|train]

One row per layer of the phase (in prototxt order; the Split layers the engine inserts are
left out): name, type, ``bottoms -> tops``, the shape of each top as the engine builds it, the
number of parameters, FLOPs, and for each top its receptive field, stride and offset in input
pixels (see ``npcaffe.tools.geometry``: the numbers behind FCN's pad 100 and crop offsets).
The totals follow. Nets that read data through Python (or Caffe data) layers are built with
those replaced by Input layers of ``--shape`` (see ``npcaffe.tools.netgraph``).

What is counted:

* parameters: the elements of every parameter blob of the layer (BatchNorm's mean, variance
  and scale factor included); a blob shared by name with an earlier layer counts in that
  layer's row but once in the total;
* FLOPs: 2 x the multiply-adds of Convolution, Deconvolution and InnerProduct for the whole
  batch (a convolution: 2 * N * H_out * W_out * C_out * C_in/group * k_h * k_w; a
  deconvolution the same over its input pixels; bias additions and every other layer are not
  counted).

In Python: ``summarize(path, phase=npcaffe.TEST, shape=None)`` returns a ``Summary`` whose
``rows`` carry the numbers, ``str(summary)`` is the table.
"""
import logging
import math
from dataclasses import dataclass, field

import npcaffe
from npcaffe.cli import runner
from npcaffe.tools import cli, netgraph
from npcaffe.tools import geometry as geo

log = logging.getLogger(__name__)

__all__ = ['Row', 'Summary', 'summarize', 'summarize_graph', 'layer_flops', 'main']

_COUNTED = ('Convolution', 'Deconvolution', 'InnerProduct')


@dataclass
class Row:
    """One layer of the table.

    ``shapes``: one tuple per top; ``geometry``: one ``geometry.Geometry`` (or None) per top;
    ``params``: parameter elements; ``flops``: FLOPs (None for layers that are not counted);
    ``shared``: parameter elements shared with an earlier layer (left out of the total)."""
    name: str
    type: str
    bottoms: list
    tops: list
    in_place: bool
    shapes: list
    geometry: list
    params: int = 0
    flops: int = None
    shared: int = 0


@dataclass
class Summary:
    """The rows of a net and its totals; ``str()`` renders the table."""
    name: str
    where: str
    phase: int
    inputs: dict                      # input blob -> shape
    rows: list = field(default_factory=list)
    weights: str = None
    copied: list = field(default_factory=list)

    @property
    def total_params(self):
        return sum(r.params - r.shared for r in self.rows)

    @property
    def total_flops(self):
        return sum(r.flops or 0 for r in self.rows)

    def blob_shapes(self):
        """``{blob: shape}`` of every top (the last writer's, for in-place blobs)."""
        out = {}
        for row in self.rows:
            out.update(zip(row.tops, row.shapes))
        return out

    def blob_geometry(self):
        """``{blob: Geometry or None}`` of every top."""
        out = {}
        for row in self.rows:
            out.update(zip(row.tops, row.geometry))
        return out

    def __str__(self):
        return render(self)


# ------------------------------------------------------------------------------------------
def layer_flops(layer_param, layer, bottom_shapes, top_shapes):
    """FLOPs of one built layer (2 x multiply-adds; see the module docstring), or None for a
    layer type that is not counted."""
    kind = layer_param.type
    if kind not in _COUNTED or not layer.blobs:
        return None
    weights = layer.blobs[0].count
    if kind == 'InnerProduct':
        shape = bottom_shapes[0]
        axis = layer_param.inner_product_param.axis % len(shape)
        return 2 * math.prod(shape[:axis]) * weights
    axis = layer_param.convolution_param.axis % len(bottom_shapes[0])
    shapes = top_shapes if kind == 'Convolution' else bottom_shapes
    return 2 * sum(math.prod(s[:axis]) * math.prod(s[axis + 1:]) for s in shapes) * weights


def summarize_graph(graph):
    """The Summary of a built ``netgraph.NetGraph``."""
    net = graph.net
    if net is None:
        raise ValueError("summarize_graph needs a built NetGraph (netgraph.load(build=True))")
    geometry = geo.blob_geometry(graph.layers, graph.shapes)
    inputs = {name: graph.shapes[name] for name in net.inputs}
    summary = Summary(name=graph.name, where=graph.where, phase=graph.phase, inputs=inputs)
    seen_shared = set()
    for lp in graph.layers:
        layer = net.layer_dict[lp.name]
        tops = list(lp.top)
        params = sum(b.count for b in layer.blobs)
        shared = 0
        for i, blob in enumerate(layer.blobs):
            spec_name = lp.param[i].name if i < len(lp.param) else ''
            if spec_name:
                if spec_name in seen_shared:
                    shared += blob.count
                seen_shared.add(spec_name)
        bottom_shapes = [graph.shapes[b] for b in net.bottom_names[lp.name]]
        top_shapes = [graph.shapes[t] for t in tops]
        summary.rows.append(Row(
            name=lp.name, type=lp.type, bottoms=list(lp.bottom), tops=tops,
            in_place=netgraph.is_in_place(lp), shapes=top_shapes,
            geometry=[geometry.get(t) for t in tops], params=params,
            flops=layer_flops(lp, layer, bottom_shapes, top_shapes), shared=shared))
    return summary


def summarize(source, phase=npcaffe.TEST, shape=None, label_shape=None, weights=None):
    """Build the net of ``source`` (prototxt path or NetParameter) for ``phase`` and return
    its Summary. ``shape``: the input shape (needed for nets with data layers);
    ``weights``: a caffemodel to copy in (checks that it fits; its layers are listed)."""
    graph = netgraph.load(source, phase, shape=shape, label_shape=label_shape,
                          weights=weights)
    summary = summarize_graph(graph)
    if weights is not None:
        summary.weights, summary.copied = str(weights), graph.copied
    return summary


# ------------------------------------------------------------------------------------------
# the table
def _shape_text(shape):
    return 'x'.join(str(d) for d in shape) if shape else 'scalar'


def _si(n):
    """1234567 -> '1.23M' (3 significant digits)."""
    if n is None:
        return ''
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _wiring(row):
    if row.in_place:
        return f"{', '.join(row.tops)} (in place)"
    left = ', '.join(row.bottoms) if row.bottoms else ''
    return f"{left} -> {row.tops[0] if row.tops else ''}".strip()


_WIRING_WIDTH = 48


def _wrap(text, width):
    """``text`` in pieces of at most ``width`` characters, broken after ', ' (a piece is
    longer only when one name is); continuation pieces are indented."""
    pieces, current = [], ''
    for part in text.split(', '):
        candidate = f"{current}, {part}" if current else part
        if current and len(candidate) > width:
            pieces.append(current + ',')
            current = '  ' + part
        else:
            current = candidate
    pieces.append(current)
    return pieces


def _geometry_cells(g, primary):
    if g is None:
        return ['', '', '']
    cells = [geo.format_number(g.rf), geo.format_number(g.stride), geo.format_number(g.offset)]
    if g.source != primary:
        cells[0] += f" [{g.source}]"
    return cells


def render(summary):
    """The table of ``summary`` as text (one row per top; totals and a legend below)."""
    primary = next(iter(summary.inputs), None)
    phase = 'TRAIN' if summary.phase == npcaffe.TRAIN else 'TEST'
    head = ['#', 'layer', 'type', 'bottoms -> tops', 'output', 'params', 'FLOPs', 'rf',
            'stride', 'offset']
    right = {0, 5, 6, 7, 8, 9}
    lines = []
    for i, row in enumerate(summary.rows):
        wiring = _wrap(_wiring(row), _WIRING_WIDTH)
        for j, top in enumerate(row.tops or ['']):
            shape = row.shapes[j] if j < len(row.shapes) else None
            g = row.geometry[j] if j < len(row.geometry) else None
            if j == 0:
                cells = [str(i), row.name, row.type, wiring[0]]
                params = f"{row.params:,}" + (' shared' if row.shared else '') \
                    if row.params else ''
                money = [params, _si(row.flops)]
            else:
                cells = ['', '', '', f"   -> {top}"]
                money = ['', '']
            cells += [_shape_text(shape) if shape is not None else ''] + money + \
                _geometry_cells(g, primary)
            lines.append(cells)
            if j == 0:          # a long list of bottoms goes on below the layer's row
                lines += [['', '', '', more] + [''] * 6 for more in wiring[1:]]
    widths = [max(len(h), *(len(c[k]) for c in lines)) if lines else len(h)
              for k, h in enumerate(head)]

    def fmt(cells):
        return '  '.join(c.rjust(w) if k in right else c.ljust(w)
                         for k, (c, w) in enumerate(zip(cells, widths))).rstrip()

    inputs = ', '.join(f"{n} {_shape_text(s)}" for n, s in summary.inputs.items())
    out = [f"net {summary.name or '(unnamed)'} ({summary.where}), phase {phase}, "
           f"inputs: {inputs or 'none'}"]
    if summary.weights:
        out.append(f"weights {summary.weights}: parameters of {len(summary.copied)} "
                   f"layer(s) copied")
    out += [fmt(head), fmt(['-' * w for w in widths])] + [fmt(c) for c in lines]
    out.append(fmt(['-' * w for w in widths]))
    params = summary.total_params
    out.append(f"total: {len(summary.rows)} layers, {params:,} parameters "
               f"({params * 4 / 2 ** 20:.1f} MiB as float32), {summary.total_flops:,} FLOPs "
               f"({_si(summary.total_flops)})")
    out.append("FLOPs: 2 x multiply-adds of Convolution, Deconvolution and InnerProduct over "
               "the batch (bias adds and other layers not counted).")
    out.append(f"rf, stride, offset: receptive field, stride and centre of pixel 0 in pixels "
               f"of the input{' ' + repr(primary) if primary else ''} (per axis HxW when they "
               f"differ; [blob]: measured in another input).")
    return '\n'.join(out)


# ------------------------------------------------------------------------------------------
# command line
def build_parser():
    parser = runner.ArgumentParser(
        prog='python -m npcaffe.tools.summary',
        description="Print a table of a Caffe net's layers: output shapes, parameter counts, "
                    "FLOPs, and the receptive field, stride and offset of every blob.",
        epilog="examples:\n"
               "  python -m npcaffe.tools.summary deploy.prototxt\n"
               "  python -m npcaffe.tools.summary train.prototxt --phase train "
               "--shape 1,3,500,500\n"
               "  python -m npcaffe.tools.summary deploy.prototxt --weights fcn8s.caffemodel\n")
    parser.add_argument('net', metavar='NET.prototxt', help='the net definition')
    parser.add_argument('--weights', metavar='W', help='a caffemodel to load (checks that it '
                        'fits the net)')
    parser.add_argument('--shape', metavar='N,C,H,W', help="the input's shape (replaces the "
                        "first input's; required for nets with data layers)")
    parser.add_argument('--label-shape', metavar='N,...', help="the shape of data layers' "
                        "further tops (default N,1,H,W for Python layers, N for Caffe's)")
    parser.add_argument('--phase', default='test', type=str.lower, choices=['test', 'train'],
                        help='which layers to keep by include/exclude rules (default test)')
    return parser


def run(args):
    try:
        summary = summarize(args.net, netgraph.parse_phase(args.phase),
                            shape=cli.shape_option(args.shape, '--shape'),
                            label_shape=cli.shape_option(args.label_shape, '--label-shape'),
                            weights=args.weights)
    except netgraph.ShapeNeededError as exc:       # the command line lacks --shape
        raise runner.UsageError(str(exc)) from None
    print(summary)


def main(argv=None):
    """Run the command line; returns the exit status: 0, 1 when the net or a file fails,
    2 for a bad command line."""
    return runner.run(run, build_parser(), argv)


if __name__ == '__main__':
    raise SystemExit(main())
