"""The protobuf schema: caffe.proto, the checked-in caffe.desc and caffe_pb2.

Checks that caffe.desc is what caffe.proto says (so it is not stale), that
well-known BVLC master facts hold, that caffe_pb2 looks like generated code,
and that every prototxt, caffemodel and solverstate in shared/ loads.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor as _descriptor
from google.protobuf import descriptor_pb2
from google.protobuf import text_format
from google.protobuf.internal import enum_type_wrapper

from npcaffe.proto import caffe_pb2
from tests.conftest import ROOT, require_shared, shared_dir

PROTO_DIR = ROOT / "npcaffe" / "proto"
FD = descriptor_pb2.FieldDescriptorProto

# Not loadable on purpose: it uses layer parameters that BVLC caffe.proto lacks.
REJECTED = {"models/prototxt/segnet_basic_inference.prototxt"}


# ----------------------------------------------------------------------------
# shared/ file lists (collected at import time so each file is its own test)

def _shared_files(*patterns):
    base = shared_dir()
    if base is None:
        # One placeholder case, which skips (or fails under CI=true).
        return [pytest.param(None, id="shared-missing")]
    found = sorted({p for pat in patterns for p in base.rglob(pat)})
    return [pytest.param(p.relative_to(base).as_posix(),
                         id=p.relative_to(base).as_posix()) for p in found]


PROTOTXTS = _shared_files("*.prototxt")
BINARIES = _shared_files("*.caffemodel", "*.solverstate")


def _message_for_prototxt(rel):
    return caffe_pb2.SolverParameter if "solver" in Path(rel).name else caffe_pb2.NetParameter


# ----------------------------------------------------------------------------
# a small reader for caffe.proto text (messages, enums, fields)

_FIELD_RE = re.compile(
    r"^(optional|required|repeated)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(?:\[(.*)\])?\s*;$")
_ENUM_VALUE_RE = re.compile(r"^(\w+)\s*=\s*(-?\d+)\s*;$")
_OPEN_RE = re.compile(r"^(message|enum)\s+(\w+)\s*\{$")


def _parse_proto_text(text):
    """Return (fields, enums) read from .proto text.

    fields: {(message_path, field_name): (number, label, type, options_text)}
    enums: {(enum_path, value_name): number}
    Paths are dotted, without the package (e.g. 'PoolingParameter.PoolMethod').
    """
    fields, enums, stack = {}, {}, []
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line or re.match(r"^(syntax|package|option|import)\b", line):
            continue
        m = _OPEN_RE.match(line)
        if m:
            stack.append((m.group(1), m.group(2)))
            continue
        if line == "}":
            stack.pop()
            continue
        path = ".".join(name for _, name in stack)
        kind = stack[-1][0] if stack else None
        m = _FIELD_RE.match(line)
        if m and kind == "message":
            label, ftype, name, number, opts = m.groups()
            fields[(path, name)] = (int(number), label, ftype, opts or "")
            continue
        m = _ENUM_VALUE_RE.match(line)
        if m and kind == "enum":
            enums[(path, m.group(1))] = int(m.group(2))
            continue
        raise AssertionError(f"unrecognised line in caffe.proto: {raw!r}")
    assert not stack, "unbalanced braces in caffe.proto"
    return fields, enums


def _walk_descriptor(desc_file):
    fields, enums = {}, {}

    def walk_enum(e, prefix):
        for v in e.values:
            enums[(prefix + e.name, v.name)] = v.number

    def walk_msg(m, prefix):
        path = prefix + m.name
        for f in m.fields:
            fields[(path, f.name)] = f
        for e in m.enum_types:
            walk_enum(e, path + ".")
        for n in m.nested_types:
            walk_msg(n, path + ".")

    for e in desc_file.enum_types_by_name.values():
        walk_enum(e, "")
    for m in desc_file.message_types_by_name.values():
        walk_msg(m, "")
    return fields, enums


def _label(f):
    """'optional', 'required' or 'repeated' (FieldDescriptor.label is gone in protobuf 7)."""
    if hasattr(f, "is_repeated") and hasattr(f, "is_required"):
        return "repeated" if f.is_repeated else "required" if f.is_required else "optional"
    return {f.LABEL_OPTIONAL: "optional", f.LABEL_REQUIRED: "required",
            f.LABEL_REPEATED: "repeated"}[f.label]


def _type_name(f):
    if f.message_type is not None:
        return f.message_type.full_name
    if f.enum_type is not None:
        return f.enum_type.full_name
    return FD.Type.Name(f.type)[len("TYPE_"):].lower()


def _field(message, name):
    return getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[name]


def _is_packed(f):
    return f.GetOptions().packed


# ----------------------------------------------------------------------------
# caffe.desc agrees with caffe.proto

def test_descriptor_matches_proto_text():
    fields, enums = _parse_proto_text((PROTO_DIR / "caffe.proto").read_text())
    dfields, denums = _walk_descriptor(caffe_pb2.DESCRIPTOR)

    assert len(fields) > 400  # the reader really saw the file
    assert set(fields) == set(dfields), (
        f"only in caffe.proto: {sorted(set(fields) - set(dfields))}; "
        f"only in caffe.desc: {sorted(set(dfields) - set(fields))} -- "
        "rerun `python -m npcaffe.proto.build`")
    for key, (number, label, ftype, opts) in fields.items():
        f = dfields[key]
        assert f.number == number, key
        assert _label(f) == label, key
        got = _type_name(f)
        # proto text may name types relative to the enclosing message
        assert got == ftype or got.endswith("." + ftype), (key, got, ftype)
        assert _is_packed(f) == ("packed = true" in opts), key
        m = re.search(r"default\s*=\s*(\"[^\"]*\"|'[^']*'|[^,\]\s]+)", opts)
        assert f.has_default_value == bool(m), key
        if m:
            assert _same_default(f, m.group(1)), (key, f.default_value, m.group(1))
    assert enums == denums


def _same_default(f, text):
    if f.enum_type is not None:
        return f.enum_type.values_by_name[text].number == f.default_value
    if f.type in (f.TYPE_STRING, f.TYPE_BYTES):
        value = text[1:-1]
        return (value.encode() if f.type == f.TYPE_BYTES else value) == f.default_value
    if f.type == f.TYPE_BOOL:
        return {"true": True, "false": False}[text] == f.default_value
    if f.type in (f.TYPE_FLOAT, f.TYPE_DOUBLE):
        return float(text) == pytest.approx(f.default_value, rel=1e-6, abs=1e-30)
    return int(text) == f.default_value


def test_descriptor_is_one_plain_file():
    raw = (PROTO_DIR / "caffe.desc").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    assert len(fds.file) == 1
    f = fds.file[0]
    assert f.package == "caffe"
    assert list(f.dependency) == []
    assert f.name == caffe_pb2.DESCRIPTOR.name


# ----------------------------------------------------------------------------
# BVLC master facts (checked against upstream caffe.proto at 9b89154)

EXPECTED_MESSAGES = {
    "BlobShape", "BlobProto", "BlobProtoVector", "Datum", "FillerParameter",
    "NetParameter", "SolverParameter", "SolverState", "NetState", "NetStateRule",
    "ParamSpec", "LayerParameter", "TransformationParameter", "LossParameter",
    "AccuracyParameter", "ArgMaxParameter", "ClipParameter", "ConcatParameter",
    "BatchNormParameter", "BiasParameter", "ContrastiveLossParameter",
    "ConvolutionParameter", "CropParameter", "DataParameter", "DropoutParameter",
    "DummyDataParameter", "EltwiseParameter", "ELUParameter", "EmbedParameter",
    "ExpParameter", "FlattenParameter", "HDF5DataParameter", "HDF5OutputParameter",
    "HingeLossParameter", "ImageDataParameter", "InfogainLossParameter",
    "InnerProductParameter", "InputParameter", "LogParameter", "LRNParameter",
    "MemoryDataParameter", "MVNParameter", "ParameterParameter", "PoolingParameter",
    "PowerParameter", "PythonParameter", "RecurrentParameter", "ReductionParameter",
    "ReLUParameter", "ReshapeParameter", "ScaleParameter", "SigmoidParameter",
    "SliceParameter", "SoftmaxParameter", "SwishParameter", "TanHParameter",
    "TileParameter", "ThresholdParameter", "WindowDataParameter", "SPPParameter",
    "V1LayerParameter", "V0LayerParameter", "PReLUParameter",
}


def test_exact_set_of_messages_and_enums():
    assert set(caffe_pb2.DESCRIPTOR.message_types_by_name) == EXPECTED_MESSAGES
    assert set(caffe_pb2.DESCRIPTOR.enum_types_by_name) == {"Phase"}


@pytest.mark.parametrize("message,field,number,label,ftype,default", [
    ("NetParameter", "layer", 100, "repeated", "caffe.LayerParameter", None),
    ("NetParameter", "layers", 2, "repeated", "caffe.V1LayerParameter", None),
    ("NetParameter", "input_dim", 4, "repeated", "int32", None),
    ("NetParameter", "state", 6, "optional", "caffe.NetState", None),
    ("LayerParameter", "blobs", 7, "repeated", "caffe.BlobProto", None),
    ("LayerParameter", "phase", 10, "optional", "caffe.Phase", None),
    ("LayerParameter", "propagate_down", 11, "repeated", "bool", None),
    ("LayerParameter", "transform_param", 100, "optional", "caffe.TransformationParameter", None),
    ("LayerParameter", "loss_param", 101, "optional", "caffe.LossParameter", None),
    ("LayerParameter", "convolution_param", 106, "optional", "caffe.ConvolutionParameter", None),
    ("LayerParameter", "pooling_param", 121, "optional", "caffe.PoolingParameter", None),
    ("LayerParameter", "python_param", 130, "optional", "caffe.PythonParameter", None),
    ("LayerParameter", "crop_param", 144, "optional", "caffe.CropParameter", None),
    ("LayerParameter", "recurrent_param", 146, "optional", "caffe.RecurrentParameter", None),
    ("LayerParameter", "swish_param", 147, "optional", "caffe.SwishParameter", None),
    ("LayerParameter", "clip_param", 148, "optional", "caffe.ClipParameter", None),
    ("BlobShape", "dim", 1, "repeated", "int64", None),
    ("BlobProto", "shape", 7, "optional", "caffe.BlobShape", None),
    ("BlobProto", "num", 1, "optional", "int32", 0),
    ("BlobProto", "width", 4, "optional", "int32", 0),
    ("ConvolutionParameter", "pad", 3, "repeated", "uint32", None),
    ("ConvolutionParameter", "kernel_size", 4, "repeated", "uint32", None),
    ("ConvolutionParameter", "stride", 6, "repeated", "uint32", None),
    ("ConvolutionParameter", "dilation", 18, "repeated", "uint32", None),
    ("ConvolutionParameter", "group", 5, "optional", "uint32", 1),
    ("ConvolutionParameter", "bias_term", 2, "optional", "bool", True),
    ("ConvolutionParameter", "axis", 16, "optional", "int32", 1),
    ("PoolingParameter", "pool", 1, "optional", "caffe.PoolingParameter.PoolMethod", 0),
    ("PoolingParameter", "stride", 3, "optional", "uint32", 1),
    ("PoolingParameter", "pad", 4, "optional", "uint32", 0),
    ("PoolingParameter", "global_pooling", 12, "optional", "bool", False),
    ("PoolingParameter", "round_mode", 13, "optional", "caffe.PoolingParameter.RoundMode", 0),
    ("SolverParameter", "type", 40, "optional", "string", "SGD"),
    ("SolverParameter", "solver_type", 30, "optional", "caffe.SolverParameter.SolverType", 0),
    ("SolverParameter", "random_seed", 20, "optional", "int64", -1),
    ("SolverParameter", "iter_size", 36, "optional", "int32", 1),
    ("SolverParameter", "snapshot_format", 37, "optional",
     "caffe.SolverParameter.SnapshotFormat", 1),
    ("SolverParameter", "solver_mode", 17, "optional", "caffe.SolverParameter.SolverMode", 1),
    ("SolverParameter", "regularization_type", 29, "optional", "string", "L2"),
    ("SolverParameter", "layer_wise_reduce", 41, "optional", "bool", True),
    ("SolverParameter", "weights", 42, "repeated", "string", None),
    ("SolverState", "iter", 1, "optional", "int32", None),
    ("SolverState", "history", 3, "repeated", "caffe.BlobProto", None),
    ("SolverState", "current_step", 4, "optional", "int32", 0),
    ("NetState", "phase", 1, "optional", "caffe.Phase", 1),
    ("LossParameter", "ignore_label", 1, "optional", "int32", None),
    ("LossParameter", "normalize", 2, "optional", "bool", None),
    ("LossParameter", "normalization", 3, "optional",
     "caffe.LossParameter.NormalizationMode", 1),
    ("InnerProductParameter", "transpose", 6, "optional", "bool", False),
    ("InnerProductParameter", "axis", 5, "optional", "int32", 1),
    ("CropParameter", "axis", 1, "optional", "int32", 2),
    ("CropParameter", "offset", 2, "repeated", "uint32", None),
    ("ParamSpec", "lr_mult", 3, "optional", "float", 1.0),
    ("ParamSpec", "decay_mult", 4, "optional", "float", 1.0),
    ("FillerParameter", "type", 1, "optional", "string", "constant"),
    ("FillerParameter", "std", 6, "optional", "float", 1.0),
    ("FillerParameter", "sparse", 7, "optional", "int32", -1),
    ("DropoutParameter", "dropout_ratio", 1, "optional", "float", 0.5),
    ("BatchNormParameter", "moving_average_fraction", 2, "optional", "float", 0.999),
    ("BatchNormParameter", "eps", 3, "optional", "float", 1e-5),
    ("LRNParameter", "beta", 3, "optional", "float", 0.75),
    ("LRNParameter", "k", 5, "optional", "float", 1.0),
    ("ReshapeParameter", "num_axes", 3, "optional", "int32", -1),
    ("ConcatParameter", "axis", 2, "optional", "int32", 1),
    ("SliceParameter", "axis", 3, "optional", "int32", 1),
    ("ScaleParameter", "bias_term", 4, "optional", "bool", False),
    ("EltwiseParameter", "operation", 1, "optional", "caffe.EltwiseParameter.EltwiseOp", 1),
    ("EltwiseParameter", "stable_prod_grad", 3, "optional", "bool", True),
    ("PythonParameter", "param_str", 3, "optional", "string", ""),
    ("ImageDataParameter", "root_folder", 12, "optional", "string", ""),
    ("ClipParameter", "min", 1, "required", "float", None),
    ("ClipParameter", "max", 2, "required", "float", None),
    ("SwishParameter", "beta", 1, "optional", "float", 1.0),
    ("V1LayerParameter", "type", 5, "optional", "caffe.V1LayerParameter.LayerType", None),
    ("V1LayerParameter", "blobs", 6, "repeated", "caffe.BlobProto", None),
    ("V1LayerParameter", "blobs_lr", 7, "repeated", "float", None),
    ("V1LayerParameter", "layer", 1, "optional", "caffe.V0LayerParameter", None),
    ("V1LayerParameter", "param", 1001, "repeated", "string", None),
    ("V1LayerParameter", "include", 32, "repeated", "caffe.NetStateRule", None),
    ("V0LayerParameter", "kernelsize", 8, "optional", "uint32", None),
    ("V0LayerParameter", "hdf5_output_param", 1001, "optional",
     "caffe.HDF5OutputParameter", None),
])
def test_field_facts(message, field, number, label, ftype, default):
    f = _field(message, field)
    assert f.number == number
    assert _label(f) == label
    assert _type_name(f) == ftype
    if default is None:
        assert not f.has_default_value
    else:
        assert f.has_default_value
        if isinstance(default, float):
            assert f.default_value == pytest.approx(default, rel=1e-6)
        else:
            assert f.default_value == default


def test_packed_exactly_as_upstream():
    packed = {
        (m.name, f.name)
        for m in caffe_pb2.DESCRIPTOR.message_types_by_name.values()
        for f in m.fields if _is_packed(f)
    }
    assert packed == {
        ("BlobShape", "dim"),
        ("BlobProto", "data"), ("BlobProto", "diff"),
        ("BlobProto", "double_data"), ("BlobProto", "double_diff"),
    }
    assert _field("BlobProto", "data").number == 5
    assert _field("BlobProto", "diff").number == 6
    assert _field("BlobProto", "double_data").number == 8
    assert _field("BlobProto", "double_diff").number == 9
    # packed on the wire: one length-delimited record (tag 5, wire type 2)
    assert caffe_pb2.BlobProto(data=[1.0, 2.0]).SerializeToString() == (
        b"\x2a\x08" + b"\x00\x00\x80\x3f" + b"\x00\x00\x00\x40")


@pytest.mark.parametrize("enum,values", [
    ("Phase", {"TRAIN": 0, "TEST": 1}),
    ("PoolingParameter.PoolMethod", {"MAX": 0, "AVE": 1, "STOCHASTIC": 2}),
    ("PoolingParameter.RoundMode", {"CEIL": 0, "FLOOR": 1}),
    ("LossParameter.NormalizationMode", {"FULL": 0, "VALID": 1, "BATCH_SIZE": 2, "NONE": 3}),
    ("EltwiseParameter.EltwiseOp", {"PROD": 0, "SUM": 1, "MAX": 2}),
    ("HingeLossParameter.Norm", {"L1": 1, "L2": 2}),
    ("ReductionParameter.ReductionOp", {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4}),
    ("FillerParameter.VarianceNorm", {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2}),
    ("SolverParameter.SolverType", {"SGD": 0, "NESTEROV": 1, "ADAGRAD": 2, "RMSPROP": 3,
                                    "ADADELTA": 4, "ADAM": 5}),
    ("DataParameter.DB", {"LEVELDB": 0, "LMDB": 1}),
    ("ConvolutionParameter.Engine", {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}),
])
def test_enum_facts(enum, values):
    _, enums = _walk_descriptor(caffe_pb2.DESCRIPTOR)
    got = {name: num for (path, name), num in enums.items() if path == enum}
    assert got == values


def test_v1_layer_types():
    lt = caffe_pb2.V1LayerParameter.LayerType
    assert len(lt.keys()) == 40
    spot = {"NONE": 0, "ACCURACY": 1, "CONCAT": 3, "CONVOLUTION": 4, "DATA": 5,
            "DROPOUT": 6, "INNER_PRODUCT": 14, "LRN": 15, "POOLING": 17, "RELU": 18,
            "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22, "ELTWISE": 25,
            "ABSVAL": 35, "SILENCE": 36, "EXP": 38, "DECONVOLUTION": 39}
    for name, number in spot.items():
        assert lt.Value(name) == number


# ----------------------------------------------------------------------------
# caffe_pb2 behaves like generated code

def test_module_api():
    assert isinstance(caffe_pb2.DESCRIPTOR, _descriptor.FileDescriptor)
    assert caffe_pb2.DESCRIPTOR.package == "caffe"
    assert caffe_pb2.TRAIN == 0 and caffe_pb2.TEST == 1
    assert isinstance(caffe_pb2.Phase, enum_type_wrapper.EnumTypeWrapper)
    assert caffe_pb2.Phase.Name(1) == "TEST"
    assert caffe_pb2.Phase.Value("TRAIN") == 0
    for name in EXPECTED_MESSAGES:
        cls = getattr(caffe_pb2, name)
        assert cls.DESCRIPTOR.full_name == "caffe." + name
        assert name in caffe_pb2.__all__
    assert caffe_pb2.NetParameter.__module__ == caffe_pb2.__name__


def test_nested_enums_like_generated_code():
    assert caffe_pb2.PoolingParameter.MAX == 0
    assert caffe_pb2.PoolingParameter.AVE == 1
    assert caffe_pb2.PoolingParameter.FLOOR == 1
    assert isinstance(caffe_pb2.PoolingParameter.PoolMethod, enum_type_wrapper.EnumTypeWrapper)
    assert caffe_pb2.PoolingParameter.PoolMethod.Name(2) == "STOCHASTIC"
    assert caffe_pb2.V1LayerParameter.CONVOLUTION == 4
    assert caffe_pb2.V1LayerParameter.LayerType.Name(39) == "DECONVOLUTION"
    assert caffe_pb2.SolverParameter.SGD == 0
    assert caffe_pb2.SolverParameter.ADAM == 5
    assert caffe_pb2.SolverParameter.GPU == 1
    assert caffe_pb2.LossParameter.VALID == 1
    assert caffe_pb2.EltwiseParameter.SUM == 1
    assert caffe_pb2.ParamSpec.PERMISSIVE == 1


def test_defaults_and_roundtrip():
    sp = caffe_pb2.SolverParameter()
    assert sp.type == "SGD" and not sp.HasField("type")
    assert sp.solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.LayerParameter().loss_param.normalization == caffe_pb2.LossParameter.VALID
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST

    net = caffe_pb2.NetParameter(name="n")
    layer = net.layer.add(name="c", type="Convolution", bottom=["data"], top=["c"])
    layer.convolution_param.num_output = 3
    layer.convolution_param.kernel_size.append(3)
    layer.convolution_param.pad.append(1)
    layer.param.add(lr_mult=1, decay_mult=1)
    blob = layer.blobs.add()
    blob.shape.dim.extend([3, 1, 3, 3])
    blob.data.extend([0.5] * 27)
    again = caffe_pb2.NetParameter.FromString(net.SerializeToString())
    assert again == net
    assert text_format.Parse(text_format.MessageToString(net), caffe_pb2.NetParameter()) == net


def test_private_pool():
    from google.protobuf import descriptor_pool
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("caffe.NetParameter")


def test_pure_python_backend():
    """The loader also works on the pure-Python protobuf implementation."""
    code = (
        "from google.protobuf.internal import api_implementation as a\n"
        "assert a.Type() == 'python', a.Type()\n"
        "from npcaffe.proto import caffe_pb2 as p\n"
        "assert p.TEST == 1 and p.PoolingParameter.AVE == 1\n"
        "assert p.V1LayerParameter.CONVOLUTION == 4\n"
        "n = p.NetParameter(); n.layer.add(type='Pooling').pooling_param.pool = p.PoolingParameter.AVE\n"
        "assert p.NetParameter.FromString(n.SerializeToString()) == n\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(ROOT),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


# ----------------------------------------------------------------------------
# shared/ files

@pytest.mark.parametrize("rel", PROTOTXTS)
def test_shared_prototxt(rel):
    path = require_shared() / rel if rel else require_shared()
    cls = _message_for_prototxt(rel)
    text = path.read_text()
    if rel in REJECTED:
        with pytest.raises(text_format.ParseError) as info:
            text_format.Parse(text, cls())
        err = info.value
        assert "has no field named" in str(err)
        line = err.GetLine()
        assert isinstance(line, int) and line > 0
        assert re.match(rf"^{line}:\d+ ", str(err)), str(err)
        return
    msg = text_format.Parse(text, cls())
    assert msg.ByteSize() > 0
    assert text_format.Parse(text_format.MessageToString(msg), cls()) == msg
    if cls is caffe_pb2.NetParameter:
        assert len(msg.layer) + len(msg.layers) > 0


def test_rejected_files_exist():
    base = require_shared()
    for rel in REJECTED:
        assert (base / rel).is_file(), rel


def test_v1_vgg_deploy_uses_layers_field():
    path = require_shared("models", "prototxt", "VGG_ILSVRC_16_layers_deploy.prototxt")
    net = text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
    assert len(net.layer) == 0 and len(net.layers) > 0
    assert net.layers[0].type == caffe_pb2.V1LayerParameter.CONVOLUTION
    assert net.DESCRIPTOR.fields_by_name["layers"].number == 2


@pytest.mark.parametrize("rel", BINARIES)
def test_shared_binary(rel):
    path = require_shared() / rel if rel else require_shared()
    cls = caffe_pb2.SolverState if rel.endswith(".solverstate") else caffe_pb2.NetParameter
    raw = path.read_bytes()
    msg = cls.FromString(raw)
    # every field in the file is known to the schema
    known = cls()
    known.CopyFrom(msg)
    known.DiscardUnknownFields()
    assert known.ByteSize() == msg.ByteSize() == len(raw)
    out = msg.SerializeToString()
    assert cls.FromString(out) == msg
    # Caffe and protobuf both write fields in number order: bytes round-trip
    assert out == raw
    if cls is caffe_pb2.NetParameter:
        assert len(msg.layer) + len(msg.layers) > 0
    else:
        assert msg.iter > 0 and len(msg.history) > 0
