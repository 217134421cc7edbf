"""convert_imageset writes Caffe's keys and Datum bytes (golden datum_interchange: raw and
encoded PNG; data_lmdb_raw: raw after resize, from the VOC images), skips unreadable images as
Caffe does, and its databases round-trip through the Data layer on both backends."""
import json

import numpy as np
import pytest

import npcaffe
from npcaffe.cli.main import main
from npcaffe.layers.data import db
from npcaffe.proto import caffe_pb2
from tests.conftest import require_shared
from tests.npcaffe.layers.data.util import need, scratch_case


def records(path, backend='lmdb'):
    database = db.open_db(str(path), backend)
    cur, out = database.cursor(), []
    while cur.valid:
        out.append((cur.key, cur.value))
        cur.next()
    database.close()
    return out


@pytest.mark.parametrize('flags, golden_key', [
    ([], 'convert_imageset'), (['-encoded'], 'convert_imageset_encoded'),
    (['--encode_type=png'], 'convert_imageset_encoded')])
def test_keys_and_datum_bytes_equal_caffes(tmp_path, monkeypatch, flags, golden_key):
    need('lmdb')
    case = scratch_case('datum_interchange', tmp_path)
    monkeypatch.chdir(case)
    assert main(['convert_imageset', *flags, './', 'png_list.txt', 'out_lmdb']) == 0
    golden = json.loads((case / 'datums.json').read_text())[golden_key]
    mine = records(case / 'out_lmdb')
    assert [(k.decode(), v.hex()) for k, v in mine] == [(g['key'], g['value_hex'])
                                                         for g in golden]
    caffes = 'cv_lmdb' if golden_key == 'convert_imageset' else 'cv_encoded_lmdb'
    assert mine == records(case / caffes)


def test_resized_raw_records_match_caffes(tmp_path):
    need('lmdb')
    case = require_shared('golden', 'data', 'data_lmdb_raw')
    voc = require_shared('data', 'voc-mini', 'VOC2012', 'JPEGImages')
    assert main(['convert_imageset', '-resize_height', '40', '-resize_width=48', '-backend',
                 'lmdb', f"{voc}/", str(case / 'images.txt'), str(tmp_path / 'db')]) == 0
    golden = np.load(case / 'blobs.npz')
    mine = records(tmp_path / 'db')
    assert len(mine) == 7
    for i, (key, value) in enumerate(mine):
        assert key == golden[f'record/{i}/key'].tobytes()
        ref = golden[f'record/{i}/value'].tobytes()
        assert value[:8] == ref[:8]                    # channels, height, width, data tag
        a = np.frombuffer(value[8:-4], np.uint8).astype(int)
        b = np.frombuffer(ref[8:-4], np.uint8).astype(int)
        assert np.abs(a - b).max() <= 1 and value[-4:] == ref[-4:]    # label, encoded


def test_gray_leveldb_round_trip_through_the_data_layer(tmp_path, monkeypatch):
    need('plyvel')
    voc = require_shared('data', 'voc-mini', 'VOC2012', 'JPEGImages')
    (tmp_path / 'list.txt').write_text('val513_000.jpg 4\nval513_008.jpg 2\n')
    status = main(['convert_imageset', '--gray', '--shuffle', '--random_seed=3',
                   '--resize_height=12', '--resize_width=10', '--check_size',
                   '--backend=leveldb', f"{voc}/", str(tmp_path / 'list.txt'),
                   str(tmp_path / 'gray_ldb')])
    assert status == 0
    keys = [k.decode() for k, _ in records(tmp_path / 'gray_ldb', 'leveldb')]
    assert sorted(keys) == keys and {k[9:] for k in keys} == {'val513_000.jpg',
                                                               'val513_008.jpg'}
    (tmp_path / 'net.prototxt').write_text(
        f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: '
        f'"{tmp_path / "gray_ldb"}" batch_size: 3 }} }}')        # backend: LEVELDB by default
    net = npcaffe.Net(str(tmp_path / 'net.prototxt'), npcaffe.TEST)
    net.forward()
    assert net.blobs['data'].shape == (3, 1, 12, 10)
    first = caffe_pb2.Datum.FromString(records(tmp_path / 'gray_ldb', 'leveldb')[0][1])
    np.testing.assert_array_equal(net.blobs['data'].data[0].ravel(),
                                  np.frombuffer(first.data, np.uint8))
    assert net.blobs['label'].data[0] == net.blobs['label'].data[2] == first.label


def test_unreadable_images_are_skipped_and_existing_dbs_refused(tmp_path, capsys):
    need('lmdb')
    from PIL import Image
    Image.new('RGB', (3, 2)).save(tmp_path / 'ok.png')
    (tmp_path / 'list.txt').write_text('ok.png 1\nmissing.png 2\nok.png 3\n')
    args = ['convert_imageset', f"{tmp_path}/", str(tmp_path / 'list.txt'),
            str(tmp_path / 'db')]
    assert main(args) == 0
    assert [k for k, _ in records(tmp_path / 'db')] == [b'00000000_ok.png', b'00000002_ok.png']
    assert 'Could not open or find file' in capsys.readouterr().err
    assert main(args) == 1
    assert 'already exists' in capsys.readouterr().err
