"""Prototxt and binary caffemodel/solverstate reading and writing."""
import os
import re

import numpy as np
import pytest

from npcaffe import formats
from npcaffe.errors import ModelFileError, PrototxtError
from npcaffe.proto import caffe_pb2
from tests.conftest import require_shared


def test_unknown_field_names_file_line_and_column():
    path = require_shared('models', 'prototxt', 'segnet_basic_inference.prototxt')
    with pytest.raises(PrototxtError) as err:
        formats.read_text(path, caffe_pb2.NetParameter())
    msg = str(err.value)
    assert msg.startswith(f"{path}:7:3:") and 'dense_image_data_param' in msg


def test_syntax_error_and_missing_or_binary_file(tmp_path):
    bad = tmp_path / 'bad.prototxt'
    bad.write_text('name: "x"\nlayer {\n  name: "a"\n')
    with pytest.raises(PrototxtError, match=r'bad\.prototxt:3:9: Expected "}"'):
        formats.read_text(bad, caffe_pb2.NetParameter())
    with pytest.raises(PrototxtError, match='no such file'):
        formats.read_text(tmp_path / 'missing.prototxt', caffe_pb2.NetParameter())
    binary = tmp_path / 'w.prototxt'
    binary.write_bytes(b'\x0a\x03abc\xff\xfe')
    with pytest.raises(PrototxtError, match='binary'):
        formats.read_text(binary, caffe_pb2.NetParameter())


def test_text_write_is_atomic_and_round_trips(tmp_path):
    net = caffe_pb2.NetParameter(name='n')
    net.layer.add(name='a', type='ReLU', bottom=['x'], top=['x'])
    path = tmp_path / 'n.prototxt'
    formats.write_text(path, net)
    assert formats.read_text(path, caffe_pb2.NetParameter()) == net
    assert [p.name for p in tmp_path.iterdir()] == ['n.prototxt']


def _sample_model():
    net = caffe_pb2.NetParameter(name='tiny')
    net.layer.add(name='conv', type='Convolution', bottom=['data'], top=['conv'])
    net.layer.add(name='relu', type='ReLU', bottom=['conv'], top=['conv'])
    rng = np.random.default_rng(0)
    blobs = [[(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), None),
              (rng.standard_normal(2).astype(np.float32), None)], []]
    return net, blobs


def test_caffemodel_round_trip_and_protobuf_agreement(tmp_path):
    net, blobs = _sample_model()
    path = tmp_path / 'tiny.caffemodel'
    formats.write_caffemodel(path, net, blobs)
    weights = formats.read_caffemodel(path)
    assert [l.name for l in weights.net.layer] == ['conv', 'relu']
    assert not weights.net.layer[0].blobs
    for (expected, _), got in zip(blobs[0], weights.blobs[0]):
        np.testing.assert_array_equal(got.data, expected)
        assert not got.legacy
    # protobuf itself reads the same file the same way
    parsed = caffe_pb2.NetParameter.FromString(path.read_bytes())
    assert list(parsed.layer[0].blobs[0].shape.dim) == [2, 3, 3, 3]
    np.testing.assert_array_equal(np.array(parsed.layer[0].blobs[1].data, np.float32),
                                  blobs[0][1][0])


def test_bad_binary_files_get_one_clear_error(tmp_path):
    net, blobs = _sample_model()
    good = tmp_path / 'good.caffemodel'
    formats.write_caffemodel(good, net, blobs)
    raw = good.read_bytes()
    cases = {
        'empty.caffemodel': (b'', 'is empty'),
        'cut.caffemodel': (raw[:len(raw) // 2], 'truncated'),
        'photo.caffemodel': (b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + bytes(range(200)), 'JPEG'),
        'net.caffemodel': (b'name: "x"\nlayer { name: "a" }\n', 'prototxt'),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelFileError) as err:
            formats.read_caffemodel(path)
        assert str(path) in str(err.value) and words in str(err.value), str(err.value)
    with pytest.raises(ModelFileError, match='no such'):
        formats.read_caffemodel(tmp_path / 'absent.caffemodel')


def test_golden_caffemodels_match_protobuf_parse():
    folder = require_shared('golden')
    for path in sorted(folder.glob('*/*.caffemodel'))[:12]:
        weights = formats.read_caffemodel(path)
        ref = caffe_pb2.NetParameter.FromString(path.read_bytes())
        ref_layers = list(ref.layer) or list(ref.layers)
        got = list(weights.layers())
        assert [n for n, _, _ in got] == [l.name for l in ref_layers]
        for (_, _, blobs), layer in zip(got, ref_layers):
            for blob, proto in zip(blobs, layer.blobs):
                np.testing.assert_array_equal(blob.data.ravel(), np.array(proto.data, np.float32))


def test_legacy_v1_weights_have_legacy_shapes():
    path = require_shared('golden', 'v1_vgg_classifier', 'weights_v1.caffemodel')
    weights = formats.read_caffemodel(path)
    assert not weights.net.layer and weights.net.layers
    by_name = {name: blobs for name, _, blobs in weights.layers()}
    fc6 = by_name['fc6']
    assert fc6[0].legacy and len(fc6[0].shape) == 4 and fc6[0].shape[:2] == (1, 1)


def test_solverstate_round_trip_and_golden(tmp_path):
    state = caffe_pb2.SolverState(iter=7, learned_net='snap_iter_7.caffemodel', current_step=2)
    hist = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2, np.float32)]
    path = tmp_path / 's.solverstate'
    formats.write_solverstate(path, state, hist)
    got, got_hist = formats.read_solverstate(path)
    assert got.iter == 7 and got.learned_net == 'snap_iter_7.caffemodel' and got.current_step == 2
    for a, b in zip(got_hist, hist):
        np.testing.assert_array_equal(a.data, b)
    golden = require_shared('golden', 'solver_small_sgd')
    for path in golden.glob('*.solverstate'):
        state, history = formats.read_solverstate(path)
        ref = caffe_pb2.SolverState.FromString(path.read_bytes())
        assert state.iter == ref.iter and len(history) == len(ref.history)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / 'model.caffemodel'
    path.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with formats.atomic_write(path) as f:
            f.write(b'new partial')
            raise RuntimeError('killed')
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['model.caffemodel']


def test_written_files_get_the_mode_open_would_give(tmp_path):
    mask = os.umask(0o022)
    try:
        formats.write_text(tmp_path / 'a.prototxt', caffe_pb2.NetParameter(name='n'))
        assert (tmp_path / 'a.prototxt').stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)


@pytest.mark.parametrize('reader', ['read_caffemodel', 'read_solverstate'])
def test_a_truncated_file_names_its_size_and_where_decoding_stopped(tmp_path, reader):
    """Every byte offset in the message lies inside the file: its size, and where the cut-off
    field starts (not the end the field would need, which is past the end of the file)."""
    net, blobs = _sample_model()
    good = tmp_path / 'good'
    if reader == 'read_caffemodel':
        formats.write_caffemodel(good, net, blobs)
    else:
        formats.write_solverstate(good, caffe_pb2.SolverState(iter=3),
                                  [arr for arr, _ in blobs[0]])
    raw = good.read_bytes()
    cut = tmp_path / 'cut'
    cut.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(ModelFileError) as err:
        getattr(formats, reader)(cut)
    message = str(err.value)
    assert f"the file is {len(raw) // 2} bytes" in message, message
    stopped = int(re.search(r'decoding stopped at byte (\d+)', message).group(1))
    assert stopped < len(raw) // 2
    assert 'cut off' in message
