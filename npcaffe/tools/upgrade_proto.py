"""Caffe's proto upgrade tools, one module for the three verbs:

* ``npcaffe upgrade_net_proto_text IN.prototxt OUT.prototxt``
* ``npcaffe upgrade_net_proto_binary IN.caffemodel OUT.caffemodel``
* ``npcaffe upgrade_solver_proto_text IN.prototxt OUT.prototxt``

Nets: V1 ``layers {}`` become ``layer {}`` (the engine's :mod:`npcaffe.upgrade`, which also
turns net-level ``input:`` into an Input layer and drops BatchNorm's old ``param``s), and
first, as Caffe's UpgradeNetDataTransformation, the V1 data layers' ``scale``, ``mean_file``,
``crop_size`` and ``mirror`` move from data_param / image_data_param / window_data_param into
``transform_param``. A file already current is written as it is, with Caffe's message. V0 nets
are refused by the engine with a clear message. Binary nets keep their weights (blobs are
written with ``shape``, not the legacy dims; every loader reads both). Solvers: the old
``solver_type`` enum becomes ``type``.
"""
import logging

from npcaffe import formats
from npcaffe.cli import brew, flags
from npcaffe.cli.runner import UsageError
from npcaffe.proto import caffe_pb2
from npcaffe.solver import upgrade_solver_param
from npcaffe.upgrade import upgrade_net

log = logging.getLogger(__name__)
_DATA_PARAMS = ('data_param', 'image_data_param', 'window_data_param')
_TRANSFORM_FIELDS = ('scale', 'mean_file', 'crop_size', 'mirror')


def upgrade_v1_data_transformation(net):
    """Caffe's UpgradeNetDataTransformation on the V1 layers of ``net`` (in place); True when
    anything moved."""
    moved = False
    for layer in net.layers:
        for param_name in _DATA_PARAMS:
            param = getattr(layer, param_name)
            for field in _TRANSFORM_FIELDS:
                if param.HasField(field):
                    setattr(layer.transform_param, field, getattr(param, field))
                    param.ClearField(field)
                    moved = True
    return moved


def _needs_upgrade(net):
    return bool(net.layers) or bool(net.input) or any(
        layer.type == 'BatchNorm' and len(layer.param) == 3 for layer in net.layer)


def upgrade_net_param(net, where):
    """Upgrade ``net`` in place (see the module docstring); whether it needed it."""
    if not _needs_upgrade(net):
        log.error("File already in latest proto format: %s", where)
        return False
    upgrade_v1_data_transformation(net)
    upgrade_net(net, where)
    return True


def _two_files(args, verb):
    if len(args.positional) != 2:
        raise UsageError(f"{verb} takes INPUT_FILE OUTPUT_FILE")
    return args.positional


def _net_text(args):
    source, target = _two_files(args, 'upgrade_net_proto_text')
    net = formats.read_text(source, caffe_pb2.NetParameter())
    upgrade_net_param(net, source)
    formats.write_text(target, net)
    log.info("Wrote upgraded NetParameter text proto to %s", target)
    return 0


def _net_binary(args):
    source, target = _two_files(args, 'upgrade_net_proto_binary')
    weights = formats.read_caffemodel(source)
    net = caffe_pb2.NetParameter()
    net.CopyFrom(weights.net)
    layer_blobs = list(weights.blobs) + list(weights.v1_blobs)
    upgrade_net_param(net, source)
    offset = len(net.layer) - len(layer_blobs)     # an Input layer put in front
    blobs = [[] for _ in range(offset)] + [[(b.data, None) for b in blobs]
                                           for blobs in layer_blobs]
    formats.write_caffemodel(target, net, blobs)
    log.info("Wrote upgraded NetParameter binary proto to %s", target)
    return 0


def _solver_text(args):
    source, target = _two_files(args, 'upgrade_solver_proto_text')
    solver = formats.read_text(source, caffe_pb2.SolverParameter())
    if not solver.HasField('solver_type'):
        log.error("File already in latest proto format: %s", source)
    upgrade_solver_param(solver, source)
    formats.write_text(target, solver)
    log.info("Wrote upgraded SolverParameter text proto to %s", target)
    return 0


def _main(verb, body, argv):
    spec = flags.Flags(f"npcaffe {verb}", usage='INPUT_FILE OUTPUT_FILE')
    return brew.run(spec, body, argv)


def main_net_text(argv=None):
    """``npcaffe upgrade_net_proto_text``."""
    return _main('upgrade_net_proto_text', _net_text, argv)


def main_net_binary(argv=None):
    """``npcaffe upgrade_net_proto_binary``."""
    return _main('upgrade_net_proto_binary', _net_binary, argv)


def main_solver_text(argv=None):
    """``npcaffe upgrade_solver_proto_text``."""
    return _main('upgrade_solver_proto_text', _solver_text, argv)


main = main_net_text
