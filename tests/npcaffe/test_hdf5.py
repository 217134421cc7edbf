"""Caffe's HDF5 files: net.save_hdf5 / load_hdf5 / copy_from('.h5') in Caffe's layout
(data/<layer>/<i>), and solvers with snapshot_format: HDF5 writing .caffemodel.h5 and
.solverstate.h5 (iter, learned_net, current_step, history/<i>) that restore bit-exactly."""
import h5py
import numpy as np
import pytest
from google.protobuf import text_format

import npcaffe as caffe
from npcaffe.errors import CaffeError, ModelFileError, WeightShapeError
from npcaffe.proto import caffe_pb2
from tests.npcaffe.test_pycaffe_api import simple_net_text, write

SHARED_NET = """name: 'shared'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 3 } } }
layer { name: 'a' type: 'InnerProduct' bottom: 'data' top: 'a'
        param { name: 'w' } param { name: 'b' }
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 1 }
                              bias_filler { type: 'gaussian' std: 1 } } }
layer { name: 'b' type: 'InnerProduct' bottom: 'a' top: 'b'
        param { name: 'w' } param { name: 'b' }
        inner_product_param { num_output: 3 } }
"""

UNSHARED_NET = SHARED_NET.replace("param { name: 'w' } param { name: 'b' }\n        "
                                  "inner_product_param { num_output: 3 } }",
                                  "inner_product_param { num_output: 3 } }")


@pytest.fixture
def net(tmp_path):
    caffe.set_random_seed(11)
    return caffe.Net(write(tmp_path, simple_net_text()), caffe.TRAIN)


def params_of(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_same_params(expected, net):
    assert list(expected) == list(net.params)
    for name, arrays in expected.items():
        for a, b in zip(arrays, net.params[name]):
            np.testing.assert_array_equal(a, b.data)


def test_save_hdf5_load_hdf5_round_trip_any_extension(tmp_path, net):
    # pycaffe's test_save_hdf5: a temporary file name without .h5
    path = str(tmp_path / 'weights_tmp')
    net.save_hdf5(path)
    other = caffe.Net(write(tmp_path, simple_net_text(), 'other.prototxt'), caffe.TRAIN)
    assert other.load_hdf5(path) == ['conv', 'ip']
    assert_same_params(params_of(net), other)
    # copy_from decides by content as newer Caffe (H5Fis_hdf5) does, and by '.h5'
    other2 = caffe.Net(write(tmp_path, simple_net_text(), 'o2.prototxt'), caffe.TRAIN)
    other2.copy_from(path)
    assert_same_params(params_of(net), other2)


def test_caffemodel_h5_layout_is_caffes(tmp_path, net):
    path = tmp_path / 'w.caffemodel.h5'
    net.save_hdf5(str(path))
    with h5py.File(path, 'r') as f:
        assert list(f) == ['data']                               # no diff unless asked for
        assert sorted(f['data']) == ['conv', 'data', 'ip', 'loss']   # a group per layer
        assert len(f['data/data']) == 0 and len(f['data/loss']) == 0
        assert sorted(f['data/conv']) == ['0', '1']
        weight = f['data/conv/0']
        assert weight.shape == (11, 2, 2, 2) and weight.dtype == np.dtype('<f4')
        assert f['data/conv/1'].shape == (11,)
        assert f['data/ip/0'].shape == (13, 11 * 8 * 9)        # conv out: 8 x 9 (pad 3, k 2)
        np.testing.assert_array_equal(weight[()], net.params['conv'][0].data)
    net.forward()
    net.backward()
    net.save_hdf5(str(path), write_diff=True)
    with h5py.File(path, 'r') as f:
        assert sorted(f) == ['data', 'diff']
        np.testing.assert_array_equal(f['diff/ip/0'][()], net.params['ip'][0].diff)


def test_weights_written_by_hand_in_caffes_layout_load(tmp_path, net):
    """A file made with h5py alone, as Caffe's ToHDF5 lays it out (layers in any order, extra
    layers, float64 values), loads through Net(..., weights=) and copy_from."""
    rng = np.random.default_rng(3)
    conv_w = rng.standard_normal((11, 2, 2, 2))
    conv_b = rng.standard_normal(11)
    path = tmp_path / 'caffe_written.caffemodel.h5'
    with h5py.File(path, 'w') as f:
        f.create_group('data/not_in_this_net').create_dataset('0', data=np.ones(3, 'f4'))
        conv = f.create_group('data/conv')
        conv.create_dataset('0', data=conv_w)
        conv.create_dataset('1', data=conv_b.astype('f4'))
    loaded = caffe.Net(write(tmp_path, simple_net_text(), 'n.prototxt'), caffe.TRAIN,
                       weights=str(path))
    np.testing.assert_array_equal(loaded.params['conv'][0].data, conv_w.astype(np.float32))
    np.testing.assert_array_equal(loaded.params['conv'][1].data, conv_b.astype(np.float32))


def test_shared_parameters_are_written_once_and_load_back(tmp_path):
    caffe.set_random_seed(2)
    shared = caffe.Net(write(tmp_path, SHARED_NET, 's.prototxt'), caffe.TEST)
    path = str(tmp_path / 's.caffemodel.h5')
    shared.save_hdf5(path)
    with h5py.File(path, 'r') as f:
        assert sorted(f['data/a']) == ['0', '1'] and len(f['data/b']) == 0
    again = caffe.Net(write(tmp_path, SHARED_NET, 's2.prototxt'), caffe.TEST, weights=path)
    for j in range(2):
        np.testing.assert_array_equal(again.params['b'][j].data, shared.params['a'][j].data)
    # where 'b' owns its parameters, the file lacks them: Caffe's "Incompatible number"
    unshared = caffe.Net(write(tmp_path, UNSHARED_NET, 'u.prototxt'), caffe.TEST)
    with pytest.raises(WeightShapeError, match=r"layer 'b' has no dataset 0"):
        unshared.load_hdf5(path)


def test_mismatches_name_the_file_and_layer(tmp_path, net):
    path = str(tmp_path / 'bad.h5')
    with h5py.File(path, 'w') as f:
        f.create_dataset('data/conv/0', data=np.zeros((11, 2, 3, 3), 'f4'))
        f.create_dataset('data/conv/1', data=np.zeros(11, 'f4'))
    with pytest.raises(WeightShapeError, match=r"bad.h5: cannot copy parameter 0 of layer "
                                               r"'conv'.*11 x 2 x 3 x 3"):
        net.copy_from(path)
    with h5py.File(path, 'w') as f:
        for j in range(3):
            f.create_dataset(f'data/conv/{j}', data=np.zeros(11, 'f4'))
    with pytest.raises(WeightShapeError, match="3 parameter datasets"):
        net.load_hdf5(path)
    with h5py.File(path, 'w') as f:
        f.create_dataset('weights', data=np.zeros(3))
    with pytest.raises(ModelFileError, match="group 'data'"):
        net.load_hdf5(path)
    with pytest.raises(ModelFileError, match='no such'):
        net.copy_from(str(tmp_path / 'missing.caffemodel.h5'))
    (tmp_path / 'text.h5').write_text('not hdf5')
    with pytest.raises(ModelFileError, match='not an HDF5'):
        net.copy_from(str(tmp_path / 'text.h5'))


# ------------------------------------------------------------------------------------------
# solver snapshots
NET = """name: 'regress'
layer { name: 'x' type: 'Input' top: 'x' top: 't'
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y'
        inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 0.3 }
                              bias_filler { type: 'constant' value: 0.1 } } }
layer { name: 'loss' type: 'EuclideanLoss' bottom: 'y' bottom: 't' top: 'loss' }
"""


def make_solver(tmp_path, solver_type='SGD', prefix='snap', **fields):
    param = caffe_pb2.SolverParameter(base_lr=0.05, lr_policy='step', stepsize=3, gamma=0.5,
                                      max_iter=10, random_seed=4, type=solver_type,
                                      snapshot_prefix=str(tmp_path / prefix),
                                      snapshot_format=caffe_pb2.SolverParameter.HDF5,
                                      snapshot_after_train=False)
    if solver_type in ('SGD', 'Nesterov', 'Adam'):
        param.momentum = 0.9
    for key, value in fields.items():
        setattr(param, key, value)
    text_format.Parse(NET, param.net_param)
    solver = caffe.get_solver(param)
    rng = np.random.default_rng(0)                 # the same data for every solver
    for name in ('x', 't'):
        blob = solver.net.blobs[name]
        blob.data[...] = rng.standard_normal(blob.data.shape)
    return solver


def net_file(tmp_path):
    return write(tmp_path, NET, 'regress.prototxt')


@pytest.mark.parametrize('solver_type', ['SGD', 'Adam'])
def test_hdf5_snapshot_layout_and_bit_exact_restore(tmp_path, solver_type):
    reference = make_solver(tmp_path, solver_type, prefix='ref')
    reference.step(6)
    expected = params_of(reference.net)

    first = make_solver(tmp_path, solver_type, snapshot=4)
    first.step(4)                                  # snapshots at iteration 4 (.h5 both)
    model = tmp_path / 'snap_iter_4.caffemodel.h5'
    state = tmp_path / 'snap_iter_4.solverstate.h5'
    assert model.is_file() and state.is_file()
    assert not (tmp_path / 'snap_iter_4.caffemodel').exists()
    history = [h.copy() for h in first.history]
    with h5py.File(state, 'r') as f:
        assert sorted(f) == ['current_step', 'history', 'iter', 'learned_net']
        assert f['iter'].shape == () and f['iter'].dtype == np.dtype('<i4')
        assert int(f['iter'][()]) == 4 and int(f['current_step'][()]) == 1
        learned = f['learned_net']
        assert learned[()] == str(model).encode()
        string_type = learned.id.get_type()                    # H5LTmake_dataset_string's
        assert string_type.get_strpad() == h5py.h5t.STR_NULLTERM
        assert string_type.get_size() == len(str(model)) + 1
        assert sorted(f['history'], key=int) == [str(i) for i in range(len(history))]
        for i, h in enumerate(history):
            np.testing.assert_array_equal(f[f'history/{i}'][()], h)
    with h5py.File(model, 'r') as f:
        np.testing.assert_array_equal(f['data/ip/0'][()], first.net.params['ip'][0].data)

    resumed = make_solver(tmp_path, solver_type, prefix='resumed')
    resumed.restore(str(state))
    assert resumed.iter == 4 and resumed.current_step == 1
    for a, b in zip(history, resumed.history):
        np.testing.assert_array_equal(a, b)
    resumed.step(2)
    assert_same_params(expected, resumed.net)                  # bit-exact continuation


def test_solve_snapshots_at_the_end_in_hdf5(tmp_path):
    solver = make_solver(tmp_path, max_iter=3, snapshot_after_train=True)
    solver.solve()
    assert (tmp_path / 'snap_iter_3.caffemodel.h5').is_file()
    assert (tmp_path / 'snap_iter_3.solverstate.h5').is_file()
    net = caffe.Net(net_file(tmp_path), caffe.TEST,
                    weights=str(tmp_path / 'snap_iter_3.caffemodel.h5'))
    assert_same_params(params_of(solver.net), net)



def test_restore_errors(tmp_path):
    solver = make_solver(tmp_path)
    solver.step(1)
    state = solver.snapshot()
    assert state.endswith('snap_iter_1.solverstate.h5')
    with pytest.raises(CaffeError, match='copy_from'):
        solver.restore(str(tmp_path / 'snap_iter_1.caffemodel.h5'))
    adam = make_solver(tmp_path, 'Adam', prefix='adam')
    with pytest.raises(ModelFileError, match='holds 2 history blobs but this Adam solver '
                                             'keeps 4'):
        adam.restore(state)
    with h5py.File(tmp_path / 'junk.solverstate.h5', 'w') as f:
        f.create_dataset('iter', data=np.int32(3))
    with pytest.raises(ModelFileError, match="'history'"):
        solver.restore(str(tmp_path / 'junk.solverstate.h5'))
