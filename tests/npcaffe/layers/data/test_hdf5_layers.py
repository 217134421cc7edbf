"""HDF5Data and HDF5Output beyond the golden cases: integer datasets become float32, shuffle
keeps every row, the refusals (transform_param, a missing dataset) name what is wrong, and
WindowData is refused by name."""
import h5py
import numpy as np
import pytest

import npcaffe


def _net(folder, text, phase=npcaffe.TEST):
    (folder / 'net.prototxt').write_text(text)
    return npcaffe.Net(str(folder / 'net.prototxt'), phase)


def _files(folder, rows):
    names = []
    start = 0
    for i, n in enumerate(rows):
        with h5py.File(folder / f"p{i}.h5", 'w') as f:
            f['data'] = np.arange(start, start + n, dtype=np.int32).reshape(n, 1)
            f['label'] = np.arange(start, start + n, dtype=np.float64)
        names.append(str(folder / f"p{i}.h5"))
        start += n
    (folder / 'list.txt').write_text('\n'.join(names))


def test_integer_datasets_become_float_and_shuffle_keeps_every_row(tmp_path):
    _files(tmp_path, [3, 4])
    npcaffe.set_random_seed(0)
    net = _net(tmp_path, f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" '
                         f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 7 '
                         f'shuffle: true }} }}')
    net.forward()
    assert net.blobs['data'].data.dtype == np.float32
    assert sorted(net.blobs['label'].data.tolist()) == list(range(7))
    np.testing.assert_array_equal(net.blobs['data'].data[:, 0], net.blobs['label'].data)


def test_transform_param_and_missing_datasets_are_refused(tmp_path):
    _files(tmp_path, [2])
    with pytest.raises(npcaffe.NetError, match="HDF5Data does not transform data"):
        _net(tmp_path, f'layer {{ name: "h" type: "HDF5Data" top: "data" transform_param '
                       f'{{ scale: 2 }} hdf5_data_param {{ source: "{tmp_path / "list.txt"}" '
                       f'batch_size: 1 }} }}')
    with pytest.raises(npcaffe.NetError, match=r"has no dataset 'feat' .*data, label"):
        _net(tmp_path, f'layer {{ name: "h" type: "HDF5Data" top: "feat" hdf5_data_param '
                       f'{{ source: "{tmp_path / "list.txt"}" batch_size: 1 }} }}')


def test_window_data_is_refused_by_name(tmp_path):
    with pytest.raises(npcaffe.NotSupportedError, match="layer 'win': WindowData"):
        _net(tmp_path, 'layer { name: "win" type: "WindowData" top: "data" top: "label" '
                       'window_data_param { source: "w.txt" batch_size: 1 } }')


def test_layer_type_list_names_the_data_layers():
    assert {'Data', 'ImageData', 'HDF5Data', 'HDF5Output'} <= set(npcaffe.layer_type_list())
