"""compute_image_mean (bytes equal to Caffe's), extract_features (float Datums under %010d
keys), and the three upgrade verbs."""
import numpy as np

import npcaffe
from npcaffe import formats
from npcaffe.cli.main import main
from npcaffe.layers.data import db
from npcaffe.proto import caffe_pb2
from tests.npcaffe.layers.data.util import need, raw_datums, scratch_case, write_db


def test_compute_image_mean_writes_caffes_bytes(tmp_path, monkeypatch, capsys):
    need('plyvel')
    case = scratch_case('data_leveldb_encoded', tmp_path)
    monkeypatch.chdir(case)
    assert main(['compute_image_mean', '-backend', 'leveldb', 'images_leveldb', 'm.bin']) == 0
    golden = np.load(case / 'blobs.npz')
    assert (case / 'm.bin').read_bytes() == golden['compute_image_mean/binaryproto'].tobytes()
    printed = [float(line.rsplit(': ', 1)[1]) for line in capsys.readouterr().err.splitlines()
               if 'mean_value channel' in line]
    assert printed == golden['compute_image_mean/channel_means_printed'].tolist()


def test_extract_features_writes_float_datums(tmp_path, monkeypatch):
    need('lmdb')
    monkeypatch.chdir(tmp_path)
    write_db(tmp_path / 'in', raw_datums([np.full((1, 2, 2), i) for i in range(3)], range(3)))
    (tmp_path / 'net.prototxt').write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" '
        'data_param { source: "in" batch_size: 2 backend: LMDB } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }')
    net = npcaffe.Net('net.prototxt', npcaffe.TEST)
    net.save('w.caffemodel')
    assert main(['extract_features', 'w.caffemodel', 'net.prototxt', 'ip,data',
                 'f_ip,f_data', '2', 'lmdb']) == 0
    database = db.open_db('f_ip', 'lmdb')
    cur, datums = database.cursor(), []
    while cur.valid:
        datums.append((cur.key, caffe_pb2.Datum.FromString(cur.value)))
        cur.next()
    database.close()
    assert [k for k, _ in datums] == [b'0000000000', b'0000000001', b'0000000002',
                                      b'0000000003']
    weights = net.params['ip'][0].data
    expected = weights @ np.array([0, 0, 0, 0], np.float32) + net.params['ip'][1].data
    first = datums[0][1]
    assert (first.channels, first.height, first.width) == (3, 1, 1) and not first.data
    np.testing.assert_allclose(first.float_data, expected, atol=1e-6)
    data_db = db.open_db('f_data', 'lmdb')
    assert len(data_db) == 4
    data_db.close()


def test_upgrade_net_text_moves_v1_data_transformations(tmp_path):
    v1 = tmp_path / 'v1.prototxt'
    v1.write_text('name: "old"\nlayers { name: "d" type: DATA top: "data" top: "label" '
                  'data_param { source: "db" batch_size: 4 scale: 0.5 crop_size: 3 } }\n'
                  'layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" '
                  'blobs_lr: 1 blobs_lr: 2 inner_product_param { num_output: 2 } }')
    assert main(['upgrade_net_proto_text', str(v1), str(tmp_path / 'new.prototxt')]) == 0
    new = formats.read_text(tmp_path / 'new.prototxt', caffe_pb2.NetParameter())
    assert [l.type for l in new.layer] == ['Data', 'InnerProduct'] and not new.layers
    assert new.layer[0].transform_param.scale == 0.5
    assert new.layer[0].transform_param.crop_size == 3
    assert not new.layer[0].data_param.HasField('scale')
    assert [p.lr_mult for p in new.layer[1].param] == [1, 2]


def test_upgrade_net_binary_keeps_the_weights(tmp_path):
    v1 = caffe_pb2.NetParameter(name='old')
    layer = v1.layers.add(name='ip', type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    blob = layer.blobs.add(num=1, channels=1, height=2, width=3)
    blob.data.extend([1, 2, 3, 4, 5, 6])
    (tmp_path / 'old.caffemodel').write_bytes(v1.SerializeToString())
    assert main(['upgrade_net_proto_binary', str(tmp_path / 'old.caffemodel'),
                 str(tmp_path / 'new.caffemodel')]) == 0
    weights = formats.read_caffemodel(tmp_path / 'new.caffemodel')
    assert [l.type for l in weights.net.layer] == ['InnerProduct'] and not weights.net.layers
    np.testing.assert_array_equal(weights.blobs[0][0].data.ravel(), [1, 2, 3, 4, 5, 6])


def test_upgrade_solver_text(tmp_path):
    (tmp_path / 's.prototxt').write_text('net: "n.prototxt"\nbase_lr: 0.1\nsolver_type: ADAM\n')
    assert main(['upgrade_solver_proto_text', str(tmp_path / 's.prototxt'),
                 str(tmp_path / 'out.prototxt')]) == 0
    solver = formats.read_text(tmp_path / 'out.prototxt', caffe_pb2.SolverParameter())
    assert solver.type == 'Adam' and not solver.HasField('solver_type')
