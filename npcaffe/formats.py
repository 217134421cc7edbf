"""Caffe's file formats: prototxt (protobuf text) and binary caffemodel / solverstate.

Binary files are read and written with a small protobuf wire-format scanner for the
parameter blobs, so blob data never passes through Python lists: a packed ``repeated float``
field is handed to NumPy as it lies in the file (``frombuffer``), and written back the same
way. Everything around the blobs (layer names, types, parameters) goes through the protobuf
message classes of ``npcaffe.proto.caffe_pb2``.

Every writer goes to a temporary file in the target folder and renames it into place, so an
interrupted write never leaves a half-written file under the final name.
"""
from pathlib import Path

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf import text_format

from npcaffe.atomic import atomic_write
from npcaffe.errors import ModelFileError, PrototxtError
from npcaffe.proto import caffe_pb2

# Field numbers of the messages that carry blobs (caffe.proto).
NET_LAYER, NET_V1_LAYERS = 100, 2           # NetParameter.layer / .layers
LAYER_BLOBS, V1_LAYER_BLOBS = 7, 6          # LayerParameter.blobs / V1LayerParameter.blobs
SOLVERSTATE_HISTORY = 3                     # SolverState.history
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_DIFF, BLOB_SHAPE, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF = 5, 6, 7, 8, 9

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


# ------------------------------------------------------------------------------------------
# text
def parse_text(text, message, path='<string>'):
    """Parse protobuf text into ``message``; PrototxtError names path:line:column."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        detail = str(exc)
        prefix = f"{line}:{col} : "
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
        where = f"{path}:{line}:{col}" if line else str(path)
        raise PrototxtError(f"{where}: {detail}") from None
    return message


def read_text(path, message):
    """Read the prototxt at ``path`` into ``message`` (a caffe_pb2 message instance)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PrototxtError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PrototxtError(f"{path}: is a directory, not a prototxt file") from None
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise PrototxtError(f"{path}: not a text prototxt (it is binary; a .caffemodel "
                            f"or .solverstate goes where weights are expected)") from None
    return parse_text(text, message, path)


def to_text(message):
    """Protobuf text of ``message``, as Caffe and pycaffe write it."""
    return text_format.MessageToString(message)


def write_text(path, message):
    """Write ``message`` as prototxt to ``path``, atomically."""
    with atomic_write(path, 'w') as f:
        f.write(to_text(message))


# ------------------------------------------------------------------------------------------
# wire format scanning
class _Truncated(Exception):
    """The buffer ends inside a field: args (where the field starts, the end it needs)."""

    def describe(self, size):
        start, needed = self.args
        return (f"the file is {size} bytes and decoding stopped at byte {start}, inside a "
                f"field that runs to byte {needed}: the file was cut off (an incomplete "
                f"download or copy?)")


def _varint(buf, pos, end):
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _Truncated(start, pos + 1)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"malformed varint at byte {pos}")


def _fields(buf, start, end):
    """Yield (field_number, wire_type, value_start, value_end, int_value) for a message."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {field_start}")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, field_start, pos, value
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos, end)
            vstart, pos = pos, pos + length
        elif wire == _I32:
            vstart, pos = pos, pos + 4
        elif wire == _I64:
            vstart, pos = pos, pos + 8
        else:
            raise ValueError(f"wire type {wire} (field {number}) at byte {field_start}")
        if pos > end:
            raise _Truncated(field_start, pos)
        yield number, wire, field_start, pos, vstart


def _encode_varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number, wire):
    return _encode_varint((number << 3) | wire)


# ------------------------------------------------------------------------------------------
# blobs
class BlobData:
    """A blob read from a binary file: ``data`` (NumPy array in the blob's shape, a read-only
    view of the file's bytes until copied), optional ``diff``, and ``legacy`` (True when the
    shape came from the old num/channels/height/width fields)."""

    __slots__ = ('data', 'diff', 'legacy')

    def __init__(self, data, diff=None, legacy=False):
        self.data, self.diff, self.legacy = data, diff, legacy

    @property
    def shape(self):
        return self.data.shape


def _decode_blob(buf, start, end):
    shape = None
    legacy = {}
    arrays = {}
    for number, wire, fstart, fend, val in _fields(buf, start, end):
        if number == BLOB_SHAPE and wire == _LEN:
            msg = caffe_pb2.BlobShape.FromString(bytes(buf[val:fend]))
            shape = tuple(int(d) for d in msg.dim)
        elif number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and wire == _VARINT:
            legacy[number] = val if val < 1 << 31 else val - (1 << 64)
        elif number in (BLOB_DATA, BLOB_DIFF, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF):
            dtype = '<f8' if number in (BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF) else '<f4'
            if wire == _LEN:
                piece = np.frombuffer(buf, dtype, (fend - val) // np.dtype(dtype).itemsize, val)
            elif wire in (_I32, _I64):
                piece = np.frombuffer(buf, dtype, 1, val)
            else:
                raise ValueError(f"blob field {number} has wire type {wire}")
            arrays.setdefault(number, []).append(piece)
    is_legacy = bool(legacy)
    if is_legacy:
        shape = tuple(legacy.get(n, 0) for n in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH))
    elif shape is None:   # Caffe writes no shape field for a 0-axis (scalar) blob
        shape = ()

    def join(numbers):
        for n in numbers:
            if n in arrays:
                parts = arrays[n]
                return parts[0] if len(parts) == 1 else np.concatenate(parts)
        return None

    data = join((BLOB_DOUBLE_DATA, BLOB_DATA))
    diff = join((BLOB_DOUBLE_DIFF, BLOB_DIFF))
    count = int(np.prod(shape, dtype=np.int64))

    def shaped(arr, what):
        if arr is None:
            return None
        if arr.size != count:
            raise ValueError(f"a blob of shape {shape} holds {arr.size} {what} values")
        return arr.reshape(shape)

    if data is None:
        data = np.zeros(0, np.float32)
        if count:
            raise ValueError(f"a blob of shape {shape} holds no data")
    return BlobData(shaped(data, 'data'), shaped(diff, 'diff'), is_legacy)


def _encode_blob(array, diff=None):
    """BlobProto bytes with shape and packed float data (and diff)."""
    array = np.ascontiguousarray(array, dtype='<f4')
    shape = caffe_pb2.BlobShape(dim=list(array.shape)).SerializeToString()
    parts = [_key(BLOB_SHAPE, _LEN), _encode_varint(len(shape)), shape]
    payloads = [(BLOB_DATA, array)]
    if diff is not None:
        payloads.append((BLOB_DIFF, np.ascontiguousarray(diff, dtype='<f4')))
    for number, arr in payloads:
        parts += [_key(number, _LEN), _encode_varint(arr.nbytes), memoryview(arr).cast('B')]
    return parts


def _parts_len(parts):
    return sum(len(p) if not isinstance(p, memoryview) else p.nbytes for p in parts)


# ------------------------------------------------------------------------------------------
# caffemodel
class Weights:
    """A caffemodel as read: ``net`` is the NetParameter with every layer's ``blobs`` left
    empty, ``blobs[i]`` the list of BlobData of ``net.layer[i]`` (V2) and ``v1_blobs[i]`` of
    ``net.layers[i]`` (legacy V1 files)."""

    def __init__(self, net, blobs, v1_blobs):
        self.net, self.blobs, self.v1_blobs = net, blobs, v1_blobs

    def layers(self):
        """Yield (name, type, [BlobData]) for every layer of either format, in file order."""
        for layer, blobs in zip(self.net.layer, self.blobs):
            yield layer.name, layer.type, blobs
        for layer, blobs in zip(self.net.layers, self.v1_blobs):
            yield layer.name, caffe_pb2.V1LayerParameter.LayerType.Name(layer.type), blobs


def _read_bytes(path, what):
    path = Path(path)
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a {what} file") from None
    if not buf:
        raise ModelFileError(f"{path}: the {what} file is empty")
    return buf


def _not_protobuf(path, what, buf, detail):
    kind = _sniff(buf)
    hint = f" It looks like {kind}." if kind else ''
    return ModelFileError(f"{path}: not a valid Caffe {what} ({detail}); the file may be "
                          f"truncated or of another kind.{hint}")


def _sniff(buf):
    head = bytes(buf[:16])
    for magic, kind in ((b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG', 'a PNG image'),
                        (b'\x89HDF', 'an HDF5 file (use an .h5 loader)'),
                        (b'PK\x03\x04', 'a zip archive'), (b'\x1f\x8b', 'a gzip archive'),
                        (b'<', 'an HTML or XML page (a failed download?)')):
        if head.startswith(magic):
            return kind
    if head.lstrip().startswith((b'name', b'layer', b'input', b'net', b'#')):
        return 'a text prototxt'
    return None


def _split_message(buf, blob_fields, path, what):
    """Scan a message for the given repeated-message fields; return (rest bytes, {field: [spans]})."""
    rest = []
    spans = {f: [] for f in blob_fields}
    try:
        for number, wire, fstart, fend, val in _fields(buf, 0, len(buf)):
            if number in spans and wire == _LEN:
                spans[number].append((val, fend))
            else:
                rest.append(bytes(buf[fstart:fend]))
    except _Truncated as exc:
        raise _not_protobuf(path, what, buf, exc.describe(len(buf))) from None
    except ValueError as exc:
        raise _not_protobuf(path, what, buf, str(exc)) from None
    return b''.join(rest), spans


def _parse_layer(buf, start, end, blob_field, cls, path):
    rest = []
    blobs = []
    for number, wire, fstart, fend, val in _fields(buf, start, end):
        if number == blob_field and wire == _LEN:
            blobs.append(_decode_blob(buf, val, fend))
        else:
            rest.append(bytes(buf[fstart:fend]))
    return cls.FromString(b''.join(rest)), blobs


def read_caffemodel(path):
    """Read a binary NetParameter (caffemodel, V1 or V2) into :class:`Weights`.

    Raises ModelFileError for an empty, truncated or non-protobuf file.
    """
    buf = _read_bytes(path, 'caffemodel')
    rest, spans = _split_message(buf, (NET_LAYER, NET_V1_LAYERS), path, 'caffemodel')
    try:
        net = caffe_pb2.NetParameter.FromString(rest)
        blobs, v1_blobs = [], []
        for field, target, blob_field, cls in (
                (NET_LAYER, blobs, LAYER_BLOBS, caffe_pb2.LayerParameter),
                (NET_V1_LAYERS, v1_blobs, V1_LAYER_BLOBS, caffe_pb2.V1LayerParameter)):
            container = net.layer if field == NET_LAYER else net.layers
            for start, end in spans[field]:
                layer, layer_blobs = _parse_layer(buf, start, end, blob_field, cls, path)
                container.add().CopyFrom(layer)
                target.append(layer_blobs)
    except (pb_message.DecodeError, ValueError, _Truncated) as exc:
        detail = exc.describe(len(buf)) if isinstance(exc, _Truncated) else str(exc)
        raise _not_protobuf(path, 'caffemodel', buf, detail) from None
    for layer, layer_blobs in zip(net.layers, v1_blobs):
        if layer.HasField('layer') and not layer_blobs:   # V0 weights inside V1
            layer_blobs.extend(_decode_blob(memoryview(b.SerializeToString()).cast('B'), 0,
                                            b.ByteSize()) for b in layer.layer.blobs)
            layer.layer.ClearField('blobs')
    if not net.layer and not net.layers:
        raise _not_protobuf(path, 'caffemodel', buf, 'it holds no layers')
    return Weights(net, blobs, v1_blobs)


def write_caffemodel(path, net_param, layer_blobs, write_diff=False):
    """Write ``net_param`` (layers without blobs) with ``layer_blobs[i]`` = list of (data, diff)
    arrays for ``net_param.layer[i]``, as a binary caffemodel, atomically."""
    head = caffe_pb2.NetParameter()
    head.CopyFrom(net_param)
    head.ClearField('layer')
    with atomic_write(path) as f:
        f.write(head.SerializeToString())
        for layer, blobs in zip(net_param.layer, layer_blobs):
            body = caffe_pb2.LayerParameter()
            body.CopyFrom(layer)
            body.ClearField('blobs')
            parts = [body.SerializeToString()]
            for data, diff in blobs:
                blob_parts = _encode_blob(data, diff if write_diff else None)
                parts += [_key(LAYER_BLOBS, _LEN), _encode_varint(_parts_len(blob_parts))]
                parts += blob_parts
            f.write(_key(NET_LAYER, _LEN) + _encode_varint(_parts_len(parts)))
            for p in parts:
                f.write(p)


# ------------------------------------------------------------------------------------------
# solverstate
def read_solverstate(path):
    """Read a binary SolverState: returns (SolverState without history, [BlobData])."""
    buf = _read_bytes(path, 'solverstate')
    rest, spans = _split_message(buf, (SOLVERSTATE_HISTORY,), path, 'solverstate')
    try:
        state = caffe_pb2.SolverState.FromString(rest)
        history = [_decode_blob(buf, s, e) for s, e in spans[SOLVERSTATE_HISTORY]]
    except (pb_message.DecodeError, ValueError, _Truncated) as exc:
        detail = exc.describe(len(buf)) if isinstance(exc, _Truncated) else str(exc)
        raise _not_protobuf(path, 'solverstate', buf, detail) from None
    if not state.HasField('iter') and not history:
        raise _not_protobuf(path, 'solverstate', buf, 'it holds no iteration or history')
    return state, history


def write_solverstate(path, state, history):
    """Write SolverState ``state`` (history left empty) plus ``history`` arrays, atomically."""
    head = caffe_pb2.SolverState()
    head.CopyFrom(state)
    head.ClearField('history')
    with atomic_write(path) as f:
        f.write(head.SerializeToString())
        for arr in history:
            parts = _encode_blob(arr)
            f.write(_key(SOLVERSTATE_HISTORY, _LEN) + _encode_varint(_parts_len(parts)))
            for p in parts:
                f.write(p)
