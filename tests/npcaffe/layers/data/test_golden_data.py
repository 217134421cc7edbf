"""Every data-layer case of shared/golden/data (recorded with BVLC Caffe + OpenCV 4.6) through
npcaffe, within golden/FORMAT.md's tolerances: exact up to float32 rounding (1e-6 of max|b|)
for pixels from uint8 records, PNG and HDF5; labels exactly; JPEG-decoded pixels within 1 level
(x |scale|) at most and 0.1 on average; where ImageData resizes, 1 level more at most and 0.25
more on average."""
import gc
import json
import os

import numpy as np
import pytest

import npcaffe
from tests.conftest import shared_dir
from tests.npcaffe.layers.data.util import need, scratch_case

# without shared/ one placeholder case, so that the test skips (or fails under CI=true)
CASES = sorted(p.name for p in (shared_dir() / 'golden' / 'data').iterdir()
               if (p / 'meta.json').is_file()) if shared_dir() else ['(shared/ missing)']
NEEDS = {'data_leveldb_encoded': 'plyvel', 'data_lmdb_gray_mirror_train': 'lmdb',
         'data_lmdb_raw': 'lmdb', 'datum_interchange': 'lmdb'}


def tolerances(compare):
    """(max, mean) allowed |error| in levels for the case's pixels, or None for exact."""
    if compare['pixels'] == 'jpeg':
        extra = (1.0, 0.25) if compare['resize'] else (0.0, 0.0)
        return 1.0 + extra[0], 0.1 + extra[1]
    return None


@pytest.fixture
def in_case(tmp_path):
    def enter(case):
        folder = scratch_case(case, tmp_path)
        os.chdir(folder)
        return folder
    cwd = os.getcwd()
    yield enter
    os.chdir(cwd)


@pytest.mark.parametrize('case', CASES)
def test_data_case(case, in_case):
    if case in NEEDS:
        need(NEEDS[case])
    folder = in_case(case)
    meta = json.loads((folder / 'meta.json').read_text())
    golden = np.load(folder / 'blobs.npz')
    phase = npcaffe.TRAIN if meta['phase'] == 'TRAIN' else npcaffe.TEST
    net = npcaffe.Net('net.prototxt', phase)
    scale = abs(meta['compare']['scale'])
    pixel_blobs = set(meta['compare']['pixel_blobs'])
    tol = tolerances(meta['compare'])
    for k in range(meta['passes']):
        for name in meta['inputs']:
            net.blobs[name].data[...] = golden[f'in/{name}']
        net.forward()
        for name in meta['blobs']:
            expected = golden[f'pass{k}/data/{name}']
            actual = net.blobs[name].data
            assert actual.shape == expected.shape, f"{case} pass {k} {name}"
            err = np.abs(actual.astype(np.float64) - expected)
            if name in pixel_blobs and tol is not None:
                assert err.max() <= tol[0] * scale + 1e-6, f"{case} pass {k} {name}: max"
                assert err.mean() <= tol[1] * scale, f"{case} pass {k} {name}: mean"
            elif 'label' in name:
                np.testing.assert_array_equal(actual, expected, f"{case} pass {k} {name}")
            else:
                assert err.max() <= 1e-6 * max(np.abs(expected).max(), 1e-30), \
                    f"{case} pass {k} {name}: max|a-b| = {err.max()}"
    del net
    gc.collect()
    for key in golden.files:
        if key.startswith('file/'):
            import h5py
            with h5py.File(meta['output_file']['name'], 'r') as f:
                data = f[key[5:]][()]
            assert data.dtype == np.float32
            np.testing.assert_array_equal(data, golden[key])


def test_hdf5output_second_forward_is_an_error(in_case):
    """Caffe aborts on a second forward (meta second_forward); here a clear error."""
    folder = in_case('hdf5output')
    golden = np.load(folder / 'blobs.npz')
    net = npcaffe.Net('net.prototxt', npcaffe.TEST)
    net.forward(feat=golden['in/feat'], target=golden['in/target'])
    with pytest.raises(npcaffe.NetError, match=r"out\.h5 already holds"):
        net.forward()


def test_leveldb_default_backend_and_wrong_backend_named(in_case):
    """data_param's backend defaults to LEVELDB: an LMDB read without backend: LMDB is named."""
    need('lmdb')
    in_case('data_lmdb_raw')
    text = open('net.prototxt').read().replace('backend: LMDB', '')
    with open('leveldb_default.prototxt', 'w') as f:
        f.write(text)
    with pytest.raises(npcaffe.NetError, match=r"images_lmdb is a LMDB database .*backend: LMDB"):
        npcaffe.Net('leveldb_default.prototxt', npcaffe.TEST)
