"""Several workers training one model (Caffe's data-parallel training, pycaffe's ``caffe.NCCL``),
over MPI between CPU processes and machines (mpi4py).

The pycaffe pattern (BVLC's python/train.py, one process per worker)::

    caffe.set_solver_count(n); caffe.set_solver_rank(rank); caffe.set_multiprocess(True)
    solver = caffe.SGDSolver('solver.prototxt')     # after the count: data layers shard by it
    nccl = caffe.NCCL(solver, caffe.NCCL.new_uid())
    nccl.bcast()                                    # rank 0's weights to every worker
    solver.add_callback(nccl)                       # all-reduce the gradients each iteration
    solver.step(solver.param.max_iter)

npcaffe's workers are the ranks of an MPI job, so the processes are started by ``mpirun -n N``
(not by the script), and :func:`init` sets the count and rank from ``MPI.COMM_WORLD``; the
``npcaffe train`` and ``fcn solve`` commands call it, so ``mpirun -n 2 npcaffe train -solver S``
trains on two workers. The ``uid`` is accepted and unused: MPI has its own rendezvous.

Contracts (Caffe's, src/caffe/parallel.cpp and solver.cpp):

* ``solver_count()`` / ``solver_rank()`` are 1 / 0 until set (or until :func:`init` under an
  MPI launcher); rank 0 is the root solver.
* each iteration, after the backward passes (``on_gradients_ready``), the learnable
  parameters' diffs are summed over the workers and scaled by ``float32(1 / solver_count)``
  (Caffe's ``ncclAllReduce(..., ncclSum)`` then ``caffe_gpu_scal(1 / solver_count)``); the
  solver then divides by ``iter_size`` as usual. So N workers with batch B make the same
  update as one worker with ``iter_size`` N reading the same batches (with N = 2 the scalings
  are powers of two and the sums have two terms: the same float32 numbers).
* ``bcast()`` copies rank 0's learnable parameters (data, not the solver history) to all;
  each worker's random seed is ``random_seed + rank`` (Caffe's), so fillers differ until then.
* only the root solver logs the display lines, runs the test nets and writes snapshots; the
  Data layer and the toolkit's data layers skip the records of the other ranks in the TRAIN
  phase (record k goes to rank k mod N, as Caffe's DataLayer::Skip).
* under MPI a failure in one rank must not leave the others waiting in an all-reduce:
  :func:`abort_on_failure` logs it and aborts the whole job (``MPI_Abort``).

MPI is imported only when a launcher's environment says this process is one of an MPI job
(:func:`launched_by_mpi`), so plain runs never load it. ``caffe.has_nccl()`` is true when
``caffe.NCCL`` can join several workers here: an MPI launcher started the process and mpi4py
is installed. All-reducing GPU memory with NCCL
needs npcaffe's CuPy engine, which is not built: asking for it raises NotSupportedError.
"""
import contextlib
import importlib.util
import logging
import os

import numpy as np

from npcaffe import device
from npcaffe.errors import CaffeError, NotSupportedError

log = logging.getLogger(__name__)

#: environment variables an MPI launcher sets in each process it starts (Open MPI, MPICH's
#: Hydra and PMI-based launchers, PMIx, Slurm's srun with --mpi)
LAUNCHER_ENV = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK', 'PMI_RANK', 'MPI_LOCALNRANKS')
#: bytes of an NCCL unique id (NCCL_UNIQUE_ID_BYTES)
UID_BYTES = 128

_state = {'count': 1, 'rank': 0, 'multiprocess': False}


# -- pycaffe's Caffe:: globals ---------------------------------------------------------------
def solver_count():
    """The number of workers (1 unless set)."""
    return _state['count']


def set_solver_count(count):
    if int(count) != count or count < 1:
        raise ValueError(f"solver count must be a whole number >= 1, got {count!r}")
    _state['count'] = int(count)


def solver_rank():
    """This worker's rank, 0 .. solver_count() - 1 (0 unless set)."""
    return _state['rank']


def set_solver_rank(rank):
    if int(rank) != rank or rank < 0:
        raise ValueError(f"solver rank must be a whole number >= 0, got {rank!r}")
    _state['rank'] = int(rank)


def multiprocess():
    return _state['multiprocess']


def set_multiprocess(value):
    """Caffe's flag: the workers are processes (always so with MPI)."""
    _state['multiprocess'] = bool(value)


def root_solver():
    """Whether this is rank 0, the worker that logs, tests and snapshots."""
    return _state['rank'] == 0


def has_mpi():
    """Whether mpi4py is installed (checked without importing it)."""
    return importlib.util.find_spec('mpi4py') is not None


def launched_by_mpi():
    """Whether an MPI launcher (mpirun, mpiexec, srun) started this process (its environment
    variables, LAUNCHER_ENV; nothing is imported)."""
    return any(name in os.environ for name in LAUNCHER_ENV)


# -- process groups ----------------------------------------------------------------------------
class Single:
    """The group of one process: nothing to reduce or send."""
    rank, size, backend = 0, 1, 'none'

    def allreduce_sum(self, buffer):
        return buffer

    def bcast(self, buffer):
        return buffer

    def barrier(self):
        pass

    def gather(self, value):
        return [value]

    def abort(self, status=1):
        raise SystemExit(status)


class MPIGroup:
    """The ranks of ``MPI.COMM_WORLD`` (mpi4py)."""
    backend = 'mpi'

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allreduce_sum(self, buffer):
        """Sum the contiguous array ``buffer`` over the ranks, in place."""
        from mpi4py import MPI
        self.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return buffer

    def bcast(self, buffer):
        """Overwrite the contiguous array ``buffer`` with rank 0's."""
        self.comm.Bcast(buffer, root=0)
        return buffer

    def barrier(self):
        self.comm.Barrier()

    def gather(self, value):
        """Every rank's (picklable) ``value`` in rank order on rank 0; None elsewhere."""
        return self.comm.gather(value, root=0)

    def abort(self, status=1):
        self.comm.Abort(status)


_world = []


def world():
    """This process's group: ``MPI.COMM_WORLD`` when an MPI launcher started it (CaffeError if
    mpi4py is then missing), else a :class:`Single`. Made once per process."""
    if not _world:
        if not launched_by_mpi():
            _world.append(Single())
        else:
            if not has_mpi():
                raise CaffeError("this process was started by an MPI launcher, but mpi4py is "
                                 "not installed; pip install 'fcn-npcaffe[mpi]' (mpi4py) to "
                                 "train on several processes")
            from mpi4py import MPI
            group = MPIGroup(MPI.COMM_WORLD)
            _world.append(group if group.size > 1 else Single())
    return _world[0]


def init():
    """Join the MPI job this process belongs to, if any: set solver_count / solver_rank (and
    multiprocess) from it, and return the group (a :class:`Single` outside MPI). Call before
    creating the solver."""
    group = world()
    if group.size > 1:
        set_solver_count(group.size)
        set_solver_rank(group.rank)
        set_multiprocess(True)
        log.info("worker %d of %d (MPI)", group.rank, group.size)
    return group


@contextlib.contextmanager
def abort_on_failure(group):
    """Inside the block, an exception in one of several ranks logs one line and aborts the
    whole MPI job (the other ranks would wait for it in a collective call for ever); with one
    process the exception goes on as usual."""
    try:
        yield group
    except BaseException as exc:
        if group.size > 1 and not (isinstance(exc, SystemExit) and not exc.code):
            log.critical("rank %d of %d failed, aborting all ranks: %s", group.rank,
                         group.size, str(exc) or type(exc).__name__)
            group.abort(1)
        raise


# -- pycaffe's NCCL ------------------------------------------------------------------------------
class _Packed:
    """The learnable parameters of a net as one contiguous buffer per dtype, for one
    collective call per iteration instead of one per blob."""

    def __init__(self, blobs):
        self.groups = {}
        for blob in blobs:
            self.groups.setdefault(np.dtype(blob.dtype), []).append(blob)
        self.buffers = {dt: np.empty(sum(b.count for b in group), dt)
                        for dt, group in self.groups.items()}

    def run(self, field, operation):
        """Pack ``blob.<field>`` of every blob, ``operation(buffer, dtype)``, unpack."""
        for dt, group in self.groups.items():
            buffer, start = self.buffers[dt], 0
            for blob in group:
                buffer[start:start + blob.count] = getattr(blob, field).reshape(-1)
                start += blob.count
            operation(buffer, dt)
            start = 0
            for blob in group:
                getattr(blob, field)[...] = buffer[start:start + blob.count].reshape(blob.shape)
                start += blob.count


class NCCL:
    """pycaffe's ``caffe.NCCL(solver, uid)``: the gradients of ``solver`` all-reduced over the
    solver_count() workers; ``solver.add_callback(nccl)`` installs it, ``bcast()`` copies rank
    0's weights to all. See the module docstring."""

    def __init__(self, solver, uid=None):
        net = getattr(solver, 'net', None)
        if net is None or not hasattr(net, 'learnable_params'):
            raise TypeError(f"caffe.NCCL takes an npcaffe solver, got {type(solver).__name__}")
        if uid is not None and not isinstance(uid, (bytes, str)):
            raise TypeError(f"caffe.NCCL: uid must be bytes (NCCL.new_uid()), got "
                            f"{type(uid).__name__}")
        if device.mode() == device.GPU:
            raise NotSupportedError("caffe.NCCL: all-reducing GPU gradients with NCCL needs "
                                    "npcaffe's CuPy engine, which is not built yet; train on "
                                    "the CPU under mpirun instead")
        set_multiprocess(True)
        self.solver = solver
        self.group = self._group()
        self._packed = _Packed(net.learnable_params)
        self._scale = {}

    @staticmethod
    def new_uid():
        """An id for the workers' session, as pycaffe's (bytes; unused by MPI)."""
        return os.urandom(UID_BYTES)

    @staticmethod
    def _group():
        count, rank = solver_count(), solver_rank()
        if count == 1:
            return Single()
        if not launched_by_mpi():
            raise CaffeError(f"caffe.NCCL: solver_count() is {count}, but this process was "
                             f"not started by an MPI launcher; npcaffe's workers are the ranks "
                             f"of an MPI job: mpirun -n {count} python SCRIPT")
        group = world()
        if (group.size, group.rank) != (count, rank):
            raise CaffeError(f"caffe.NCCL: solver_count() {count} and solver_rank() {rank} do "
                             f"not match this process, rank {group.rank} of an MPI world of "
                             f"{group.size}; set them from the MPI world "
                             f"(npcaffe.distributed.init()) before creating the solver")
        return group

    def bcast(self):
        """Copy rank 0's learnable parameters to every worker (Caffe's Broadcast)."""
        if self.group.size > 1:
            self._packed.run('data', lambda buffer, dt: self.group.bcast(buffer))

    # the solver's callback interface (Caffe's Solver::Callback)
    def on_start(self):
        """Nothing before the forward passes (as Caffe's NCCL)."""

    def on_gradients_ready(self):
        """Sum the diffs over the workers, then scale them by 1 / solver_count."""
        if self.group.size == 1:
            return
        self._packed.run('diff', self._reduce)

    def _reduce(self, buffer, dtype):
        self.group.allreduce_sum(buffer)
        scale = self._scale.get(dtype)
        if scale is None:
            f = dtype.type
            scale = self._scale[dtype] = f(1) / f(self.group.size)
        buffer *= scale
