"""Build, check and write the ONNX graph of a TEST-phase :class:`npcaffe.Net`.

``export(net, path, input_shapes=None, dynamic=False, outputs=None, external_data=None)``:

* ``input_shapes``: ``{input blob: shape}`` the net's inputs are reshaped to first (the export
  is made at the net's current blob shapes; the net keeps the new shapes).
* ``dynamic``: the height and width of 4-D inputs become symbolic dims ``<input>_height`` and
  ``<input>_width`` wherever the net allows: npcaffe reshapes the net to another size first;
  if that fails (an InnerProduct fixing its input size, say) the export stays static and a
  warning says why. Every shape-dependent step (crop ends, reshape targets) is then computed
  inside the graph.
* ``outputs``: blob names exported as graph outputs besides the net's outputs (each holds the
  blob's final value, i.e. after any in-place layer, as ``net.blobs`` after forward).
* ``external_data``: store the weights in ``<path>.data`` beside the model (default: when they
  pass 1 GiB, below protobuf's 2 GiB limit).

Graph inputs and outputs are named like the blobs; weights are float32 initializers. The model
(opset :data:`npcaffe.onnx.OPSET`) passes ``onnx.checker.check_model(full_check=True)`` and
strict shape inference before it is written. Layers without a converter, and TRAIN-phase nets,
are refused with an error naming the layer (or the net).
"""
import logging
import os
import shutil
import tempfile
from pathlib import Path

from npcaffe.errors import NetError
from npcaffe.layers.base import TEST
from npcaffe.onnx.deps import OPSET, require
from npcaffe.onnx.graph import Context
from npcaffe.onnx.ops import converter

log = logging.getLogger(__name__)

#: weights above this many bytes are written as external data by default
EXTERNAL_DATA_BYTES = 1 << 30


def _reshape_inputs(net, shapes):
    for name, shape in shapes.items():
        if name not in net.inputs:
            raise NetError(f"input_shapes names {name!r}, which is not an input of the net; "
                           f"inputs: {', '.join(net.inputs)}")
        net.blobs[name].reshape(*[int(d) for d in shape])
    net.reshape()


def _varying_inputs(net):
    """(the 4-D inputs whose height and width may vary, {blob: shape} at the probe size):
    the net is reshaped with each such input 1 larger in height and width, and back."""
    spatial = [n for n in net.inputs if net.blobs[n].num_axes == 4]
    if not spatial:
        return set(), {}
    saved = {n: tuple(net.blobs[n].shape) for n in net.inputs}
    try:
        _reshape_inputs(net, {n: saved[n][:2] + (saved[n][2] + 1, saved[n][3] + 1)
                              for n in spatial})
        probe = {n: tuple(b.shape) for n, b in net.blobs.items()}
    except (NetError, ValueError) as exc:
        log.warning("the net does not run at other input sizes (%s); exporting it with static "
                    "shapes %s", exc, ', '.join(f"{n} {saved[n]}" for n in spatial))
        return set(), {}
    finally:
        _reshape_inputs(net, saved)
    return set(spatial), probe


def _output_dims(net, name, probe):
    """The declared shape of output ``name``: its dims, None where the probe size changed it."""
    shape = tuple(net.blobs[name].shape)
    other = probe.get(name, shape)
    return [d if len(other) == len(shape) and other[i] == d else None
            for i, d in enumerate(shape)]


def build_model(net, input_shapes=None, dynamic=False, outputs=None, opset=None,
                check=True):
    """The ONNX ModelProto of ``net`` (see the module doc). ``check``: run
    :func:`check_model` on it (full checker and strict shape inference, which also records the
    inferred shapes as value_info)."""
    onnx = require('onnx')
    if net.phase != TEST:
        raise NetError(f"net {net.name!r} is in the TRAIN phase; ONNX export needs a TEST-phase "
                       f"net (npcaffe.Net(prototxt, weights, npcaffe.TEST))")
    if input_shapes:
        _reshape_inputs(net, input_shapes)
    varying, probe = _varying_inputs(net) if dynamic else (set(), {})
    wanted = list(net.outputs) + [b for b in (outputs or []) if b not in net.outputs]
    for name in wanted:
        if name not in net.blobs:
            raise NetError(f"output {name!r} is not a blob of net {net.name!r}")
    sources = {n for lp in net._param.layer if lp.type in ('Input', 'MemoryData')
               for n in lp.top}
    ctx = Context(onnx, bool(varying), reserved=sources | set(wanted))
    ctx.dynamic_inputs = varying
    value = {}
    for lname, layer in zip(net._layer_names, net.layers):
        bottom_names, top_names = net.bottom_names[lname], net.top_names[lname]
        convert = converter(layer.type, lname)
        ctx.scope = lname
        outs = convert(ctx, layer, [value[b] for b in bottom_names],
                       [net.blobs[b] for b in bottom_names], [net.blobs[t] for t in top_names])
        if len(outs) != len(top_names):
            raise AssertionError(f"converter of {layer.type} gave {len(outs)} outputs for "
                                 f"{len(top_names)} tops of layer {lname!r}")
        value.update(zip(top_names, outs))
        log.debug("layer %r (%s) -> %s", lname, layer.type, ', '.join(outs))
    graph_outputs = []
    ctx.scope = 'outputs'
    for name in wanted:
        if value[name] != name:
            ctx.nodes.append(onnx.helper.make_node('Identity', [value[name]], [name],
                                                   name=ctx.fresh(f"outputs/{name}")))
        graph_outputs.append(onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, _output_dims(net, name, probe)))
    graph = onnx.helper.make_graph(ctx.nodes, net.name or 'net', ctx.inputs, graph_outputs,
                                   initializer=ctx.initializers)
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid('', opset or OPSET)],
        producer_name='npcaffe', producer_version=_version(),
        doc_string=f"npcaffe export of net {net.name!r}")
    model.ir_version = min(model.ir_version, 8)     # ONNX Runtime >= 1.16 reads IR 8
    if check:
        model = check_model(model)
    return model


def weight_bytes(model):
    """Bytes of initializer data in ``model``."""
    return sum(len(t.raw_data) for t in model.graph.initializer)


def _version():
    import npcaffe
    return npcaffe.__version__


def check_model(model):
    """Full checker and strict shape inference; returns the model with inferred value_info."""
    onnx = require('onnx')
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def export(net, path, input_shapes=None, dynamic=False, outputs=None, external_data=None,
           opset=None):
    """Write ``net`` as an ONNX model to ``path`` (see the module doc); returns the Path."""
    onnx = require('onnx')
    path = Path(path)
    # checked once, from the file: copying a large ModelProto in memory is slow
    model = build_model(net, input_shapes, dynamic, outputs, opset, check=False)
    size = weight_bytes(model)
    if external_data is None:
        external_data = size > EXTERNAL_DATA_BYTES
    # written into a temporary folder beside ``path`` under the final names (the model refers
    # to its data file by name), checked there, then renamed into place: an earlier model
    # and its data stay whole until the new ones are complete
    folder = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent))
    try:
        tmp = folder / path.name
        location = path.name + '.data'
        if external_data:
            onnx.save_model(model, str(tmp), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=location, size_threshold=1024)
        else:
            onnx.save_model(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)   # strict shape inference too
        if external_data:
            os.replace(folder / location, path.parent / location)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)           # only what this export wrote
    log.info("wrote %s: %d nodes, %d initializers (%.1f MB of weights%s)", path,
             len(model.graph.node), len(model.graph.initializer), size / 1e6,
             f" in {path.name}.data" if external_data else '')
    return path
