"""Data-parallel training (npcaffe.distributed): the pycaffe API without MPI, and with two MPI
ranks on this machine the same weights as one process with ``iter_size`` 2 reading the same
batches in the order the ranks read them (through the pycaffe NCCL pattern of BVLC's
python/train.py and through ``npcaffe train``).

The MPI tests need ``mpirun`` (Open MPI or MPICH) and mpi4py: they skip without them, and fail
under CI=true, where ``.ci/run`` installs them.

Tolerance: the two ranks' gradients are summed in float32 and scaled by 1/2, as one process
sums its two passes and scales by 1/iter_size, so the weights should agree to float32
rounding; the test allows 1e-6 of the weights' largest magnitude (a few float32 ulps).
"""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import npcaffe
from npcaffe import distributed
from tests.npcaffe.layers.data.util import raw_datums, write_db

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDS, BATCH, ITERS = 12, 2, 3
TOLERANCE = 1e-6                 # of max |w|: float32 rounding

NET = '''name: "small"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 4 kernel_size: 3 weight_filler {{ type: "xavier" }}
                      bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
'''
SOLVER = '''net: "{net}"
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "fixed"
display: 1
max_iter: {iters}
iter_size: {iter_size}
snapshot_prefix: "{prefix}"
random_seed: 3
'''
# BVLC's python/train.py solve(), with the ranks an MPI job's
SCRIPT = '''
import sys
from mpi4py import MPI
import npcaffe as caffe
comm = MPI.COMM_WORLD
caffe.set_solver_count(comm.size)
caffe.set_solver_rank(comm.rank)
caffe.set_multiprocess(True)
solver = caffe.SGDSolver(sys.argv[1])
nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
nccl.bcast()
solver.add_callback(nccl)
solver.step(solver.param.max_iter)
solver.net.save(sys.argv[2] % comm.rank)
# one file per rank: the ranks' stdout lines may interleave mid-line under mpirun
with open(sys.argv[2] % comm.rank + '.txt', 'w') as f:
    f.write(f"rank {caffe.solver_rank()} of {caffe.solver_count()} nccl {caffe.has_nccl()}")
'''


def mpirun_command(n):
    """``mpirun -n N`` with the options this machine needs (skip or, under CI, fail without
    mpirun or mpi4py)."""
    mpirun = shutil.which('mpirun') or shutil.which('mpiexec')
    missing = [what for what, ok in (('mpirun', mpirun), ('mpi4py', distributed.has_mpi()))
               if not ok]
    if missing:
        message = (f"{' and '.join(missing)} not installed (apt-get install openmpi-bin; "
                   f"pip install '.[mpi]')")
        if os.environ.get('CI') == 'true':
            pytest.fail(message + "; under CI=true they are required")
        pytest.skip(message)
    version = subprocess.run([mpirun, '--version'], capture_output=True, text=True).stdout
    extra = ['--oversubscribe'] if 'Open MPI' in version or 'OpenRTE' in version else []
    return [mpirun, '-n', str(n)] + extra


def mpi_env():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT='1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM='1',
               NPCAFFE_THREADS='1', OMPI_MCA_rmaps_base_oversubscribe='1',
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    for name in distributed.LAUNCHER_ENV:       # (when pytest itself runs under a launcher)
        env.pop(name, None)
    return env


def run_mpi(n, *argv, cwd):
    proc = subprocess.run(mpirun_command(n) + [str(a) for a in argv], capture_output=True,
                          text=True, cwd=cwd, env=mpi_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    arrays = [rng.integers(0, 256, (1, 6, 6), dtype=np.uint8) for _ in range(n)]
    return arrays, labels


def rank_order(n, workers, batch):
    """The record order in which one process with iter_size ``workers`` reads, pass after pass,
    the batches that ``workers`` ranks read side by side (rank r: records r, r + N, ...)."""
    shares = [list(range(r, n, workers)) for r in range(workers)]
    order = []
    for start in range(0, len(shares[0]), batch):
        for share in shares:
            order += share[start:start + batch]
    return order


def setup_run(folder, order, iter_size, iters=ITERS):
    arrays, labels = images(RECORDS)
    folder.mkdir()
    write_db(folder / 'db', raw_datums([arrays[i] for i in order], [labels[i] for i in order]))
    (folder / 'net.prototxt').write_text(NET.format(db=folder / 'db', batch=BATCH))
    solver = folder / 'solver.prototxt'
    solver.write_text(SOLVER.format(net=folder / 'net.prototxt', iters=iters,
                                    iter_size=iter_size, prefix=folder / 'snap'))
    return solver


def params_of(net):
    return {f"{name}/{i}": np.array(b.data) for name, blobs in net.params.items()
            for i, b in enumerate(blobs)}


def load_params(net_file, caffemodel):
    return params_of(npcaffe.Net(str(net_file), str(caffemodel), npcaffe.TEST))


def iter_size_reference(tmp_path):
    """The weights of one process with iter_size 2 over the ranks' batches, in their order."""
    solver_file = setup_run(tmp_path / 'one', rank_order(RECORDS, 2, BATCH), iter_size=2)
    solver = npcaffe.get_solver(str(solver_file))
    solver.step(ITERS)
    return params_of(solver.net), solver_file.parent / 'net.prototxt'


def differences(a, b):
    """(max abs difference, that over max |w|) over all parameters."""
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    scale = max(float(np.abs(a[k]).max()) for k in a)
    return diff, diff / scale


# ------------------------------------------------------------------------------------------
# without MPI
def test_defaults_and_setters_as_pycaffe():
    assert npcaffe.solver_count() == 1 and npcaffe.solver_rank() == 0
    assert distributed.root_solver() and not distributed.multiprocess()
    try:
        npcaffe.set_solver_count(4)
        npcaffe.set_solver_rank(3)
        npcaffe.set_multiprocess(True)
        assert (npcaffe.solver_count(), npcaffe.solver_rank()) == (4, 3)
        assert not distributed.root_solver() and distributed.multiprocess()
        with pytest.raises(ValueError, match='solver count must be a whole number >= 1, got 0'):
            npcaffe.set_solver_count(0)
        with pytest.raises(ValueError, match='got -1'):
            npcaffe.set_solver_rank(-1)
    finally:
        npcaffe.set_solver_count(1)
        npcaffe.set_solver_rank(0)
        npcaffe.set_multiprocess(False)


def test_nccl_of_one_worker_leaves_the_gradients_and_add_callback_takes_it(tmp_path,
                                                                            monkeypatch):
    for name in distributed.LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    assert not npcaffe.has_nccl()            # not started by an MPI launcher
    uid = npcaffe.NCCL.new_uid()
    assert isinstance(uid, bytes) and len(uid) == 128        # BVLC's test_nccl
    solver_file = setup_run(tmp_path / 'one', list(range(RECORDS)), iter_size=1, iters=2)
    plain = npcaffe.get_solver(str(solver_file))
    plain.step(2)
    solver = npcaffe.get_solver(str(solver_file))
    nccl = npcaffe.NCCL(solver, uid)
    nccl.bcast()
    solver.add_callback(nccl)
    solver.step(2)
    for key, value in params_of(plain.net).items():
        np.testing.assert_array_equal(params_of(solver.net)[key], value)
    assert distributed.multiprocess()        # NCCL(solver, uid) sets it, as Caffe's
    npcaffe.set_multiprocess(False)
    with pytest.raises(TypeError, match='on_gradients_ready.*got int'):
        solver.add_callback(3)
    with pytest.raises(TypeError, match='uid must be bytes'):
        npcaffe.NCCL(solver, 5)


def test_several_workers_need_an_mpi_launcher(tmp_path, monkeypatch):
    for name in distributed.LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    solver_file = setup_run(tmp_path / 'one', list(range(RECORDS)), iter_size=1, iters=1)
    solver = npcaffe.get_solver(str(solver_file))
    monkeypatch.setitem(distributed._state, 'count', 2)
    with pytest.raises(npcaffe.CaffeError, match='not started by an MPI launcher.*mpirun -n 2'):
        npcaffe.NCCL(solver, npcaffe.NCCL.new_uid())


def test_other_ranks_neither_snapshot_nor_display(tmp_path, monkeypatch, caplog):
    solver_file = setup_run(tmp_path / 'one', list(range(RECORDS)), iter_size=1, iters=2)
    monkeypatch.setitem(distributed._state, 'count', 2)
    monkeypatch.setitem(distributed._state, 'rank', 1)
    solver = npcaffe.get_solver(str(solver_file))
    with caplog.at_level('INFO', logger='npcaffe.solver.display'):
        solver.solve()                      # snapshot_after_train: on rank 0 only
    assert solver.iter == 2 and not list(tmp_path.glob('one/snap_iter_*'))
    assert not [r for r in caplog.records if r.name == 'npcaffe.solver.display']
    with pytest.raises(npcaffe.CaffeError, match='root solver .rank 0. only; this is rank 1'):
        solver.snapshot()


def test_data_layer_shares_out_the_records(tmp_path, monkeypatch):
    # Caffe's DataLayer::Skip: rank r keeps record k when k % N == r, counting across wraps
    arrays = [np.full((1, 1, 1), i, np.uint8) for i in range(5)]
    write_db(tmp_path / 'db', raw_datums(arrays, range(5)))
    net_file = tmp_path / 'net.prototxt'
    net_file.write_text(f'''layer {{ name: "d" type: "Data" top: "data" top: "label"
      data_param {{ source: "{tmp_path / 'db'}" batch_size: 3 backend: LMDB prefetch: 0 }} }}''')
    seen = {}
    for rank in (0, 1):
        monkeypatch.setitem(distributed._state, 'count', 2)
        monkeypatch.setitem(distributed._state, 'rank', rank)
        net = npcaffe.Net(str(net_file), npcaffe.TRAIN)
        seen[rank] = [net.forward()['label'].astype(int).tolist() for _ in range(2)]
        test_net = npcaffe.Net(str(net_file), npcaffe.TEST)
        assert test_net.forward()['label'].tolist() == [0, 1, 2]        # TEST: every record
    assert seen == {0: [[0, 2, 4], [1, 3, 0]], 1: [[1, 3, 0], [2, 4, 1]]}


def test_rank_order():
    assert rank_order(8, 2, 2) == [0, 2, 1, 3, 4, 6, 5, 7]


# ------------------------------------------------------------------------------------------
# two MPI ranks
def test_two_ranks_make_the_update_of_iter_size_two(tmp_path):
    mpirun_command(2)                                     # (skips without MPI)
    expected, net_file = iter_size_reference(tmp_path)
    solver_file = setup_run(tmp_path / 'two', list(range(RECORDS)), iter_size=1)
    script = tmp_path / 'train.py'
    script.write_text(textwrap.dedent(SCRIPT))
    run_mpi(2, sys.executable, script, solver_file, tmp_path / 'rank%d.caffemodel', cwd=tmp_path)
    assert [(tmp_path / f'rank{r}.caffemodel.txt').read_text() for r in (0, 1)] == [
        'rank 0 of 2 nccl True', 'rank 1 of 2 nccl True']
    ranks = [load_params(net_file, tmp_path / f'rank{r}.caffemodel') for r in (0, 1)]
    for key in ranks[0]:                                  # one model on both workers
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    start = params_of(npcaffe.get_solver(str(solver_file)).net)
    assert differences(start, ranks[0])[0] > 1e-3         # (it did train)
    diff, rel = differences(expected, ranks[0])
    print(f"2 ranks vs iter_size 2: max abs {diff:.3g}, relative to max |w| {rel:.3g}")
    assert rel <= TOLERANCE


def test_npcaffe_train_under_mpirun(tmp_path):
    mpirun_command(2)
    expected, net_file = iter_size_reference(tmp_path)
    solver_file = setup_run(tmp_path / 'two', list(range(RECORDS)), iter_size=1)
    proc = run_mpi(2, sys.executable, '-m', 'npcaffe', 'train', '-solver', solver_file,
                   cwd=tmp_path)
    snapshots = sorted(p.name for p in (tmp_path / 'two').glob('snap_iter_*'))
    assert snapshots == ['snap_iter_3.caffemodel', 'snap_iter_3.solverstate']   # rank 0 only
    assert proc.stderr.count('Iteration 2, lr = ') == 1      # display lines of rank 0 only
    assert 'Training on 2 workers' in proc.stderr
    rel = differences(expected, load_params(net_file, tmp_path / 'two/snap_iter_3.caffemodel'))[1]
    assert rel <= TOLERANCE


def test_device_query_under_mpirun_reports_the_world(tmp_path):
    proc = run_mpi(2, sys.executable, '-m', 'npcaffe', 'device_query', cwd=tmp_path)
    assert proc.stderr.count('MPI world: 2 rank(s) on ') == 1
    assert proc.stderr.count('Device: CPU') == 2


def test_a_failing_rank_aborts_the_job(tmp_path):
    # rank 1 cannot read its solver: the job ends (status != 0) instead of rank 0 waiting
    solver_file = setup_run(tmp_path / 'two', list(range(RECORDS)), iter_size=1)
    script = tmp_path / 'fail.py'
    script.write_text(textwrap.dedent('''
        import logging, sys
        from npcaffe import distributed
        import npcaffe
        logging.basicConfig()
        group = distributed.init()
        with distributed.abort_on_failure(group):
            solver = npcaffe.get_solver(sys.argv[1] if group.rank == 0 else 'missing.prototxt')
            nccl = npcaffe.NCCL(solver)
            nccl.bcast()
    '''))
    proc = subprocess.run(mpirun_command(2) + [sys.executable, str(script), str(solver_file)],
                          capture_output=True, text=True, cwd=tmp_path, env=mpi_env(),
                          timeout=120)
    assert proc.returncode != 0
    assert 'rank 1 of 2 failed, aborting all ranks' in proc.stderr
