"""``npcaffe export-onnx NET.prototxt WEIGHTS OUT.onnx [--input-shape N,C,H,W] [--dynamic]``
(also ``python -m npcaffe.onnx ...``): build the TEST-phase net with its weights and write it
as ONNX (:func:`npcaffe.onnx.export`).

``--input-shape`` reshapes the net's input (``N,C,H,W``; ``NAME=N,C,H,W`` for a net with several
inputs; repeatable). ``--dynamic`` keeps the inputs' height and width symbolic where the net
allows. Exit status 0 on success, 1 when the export fails (a layer ONNX cannot express, a
missing ``onnx`` package, unreadable files), 2 for a wrong command line.
"""
import logging

from npcaffe.cli.runner import ArgumentParser, UsageError, run

log = logging.getLogger(__name__)


def _parse_shape(text):
    """'N,C,H,W' or 'NAME=N,C,H,W' -> (name or None, (ints))."""
    name, _, dims = text.rpartition('=')
    try:
        shape = tuple(int(d) for d in dims.split(','))
    except ValueError:
        raise UsageError(f"--input-shape {text!r}: expected comma-separated integers such as "
                         f"1,3,500,500 (optionally NAME=1,3,500,500)") from None
    if not shape or min(shape) <= 0:
        raise UsageError(f"--input-shape {text!r}: every dim must be a positive integer")
    return name or None, shape


def build_parser():
    parser = ArgumentParser(prog='npcaffe export-onnx', description=__doc__.split('\n\n')[0])
    parser.add_argument('net', help='the net (.prototxt), built in the TEST phase')
    parser.add_argument('weights', help='its weights (.caffemodel or .h5)')
    parser.add_argument('out', help='the ONNX file to write')
    parser.add_argument('--input-shape', action='append', default=[], metavar='[NAME=]N,C,H,W',
                        help="reshape an input before exporting (repeatable)")
    parser.add_argument('--dynamic', action='store_true',
                        help='keep the height and width of the inputs symbolic')
    parser.add_argument('--external-data', action='store_true',
                        help='write the weights to OUT.data beside the model (automatic '
                             'above 1 GiB)')
    return parser


def _body(args):
    from npcaffe.onnx.deps import require
    require('onnx')
    import npcaffe
    from npcaffe.onnx import export
    parsed = [_parse_shape(s) for s in args.input_shape]
    net = npcaffe.Net(args.net, args.weights, npcaffe.TEST)
    shapes = {}
    for name, shape in parsed:
        if name is None:
            if len(net.inputs) != 1:
                raise UsageError(f"--input-shape without a name needs a net with one input; "
                                 f"{args.net} has {len(net.inputs)} ({', '.join(net.inputs)}): "
                                 f"use NAME=N,C,H,W")
            name = net.inputs[0]
        shapes[name] = shape
    path = export(net, args.out, input_shapes=shapes, dynamic=args.dynamic,
                  external_data=True if args.external_data else None)
    log.info("exported %s to %s", args.net, path)


def main(argv=None):
    """Run the command with ``argv`` (default sys.argv[1:]); return the exit status."""
    return run(_body, build_parser(), argv)
