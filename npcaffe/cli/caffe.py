"""Caffe's ``caffe`` brew commands: ``train``, ``test``, ``time``, ``device_query``, with its
flags (one table shared by the four, as in tools/caffe.cpp) and its log lines.

    npcaffe train -solver S [-weights a.caffemodel,b.caffemodel | -snapshot X.solverstate]
                  [-sigint_effect stop|snapshot|none] [-sighup_effect snapshot|stop|none]
                  [-level N] [-stage s1,s2] [-gpu 0|all]
    npcaffe test -model M -weights W [-iterations 50] [-phase TEST|TRAIN] [-level] [-stage]
    npcaffe time -model M [-iterations 50] [-weights W] [-phase TRAIN|TEST]
    npcaffe device_query [-gpu ...]

What each prints (glog lines on stderr): ``train`` the solver's lines (``Iteration N (x
iter/s, ys/N iters), loss = L``, ``Iteration N, lr = R``, ``Train/Test net output #k: name =
v``, snapshots); ``test`` ``Batch i, name = v`` per batch and output value, then ``Loss: L`` and
``name = mean`` per output value (float32 sums, as Caffe); ``time`` the per-iteration
forward-backward time, then each layer's average forward and backward time and the averages
of the whole passes, in ms.

Several workers: started by an MPI launcher with more than one rank (``mpirun -n 2 npcaffe
train -solver S``), ``train`` trains data-parallel over MPI (:mod:`npcaffe.distributed`): each
rank reads its share of the Data layer's records, the gradients are averaged every iteration,
rank 0's weights are broadcast at the start, and only rank 0 logs the display lines, tests
and snapshots (a failing rank aborts the job). ``device_query`` reports the CPU (processor,
cores, memory, BLAS) and, under MPI, the world.

Differences from Caffe: there is no GPU engine, so ``-gpu`` (and ``solver_mode: GPU``) are
accepted with a warning (``caffe.set_device`` and ``caffe.set_mode_gpu`` are called, which run
on the CPU) and the CPU runs; several workers come from ``mpirun -n N``, not from ``-gpu 0,1``; ``test`` honours ``-phase`` (Caffe's always uses
TEST); ``time -weights`` loads weights first (Caffe's ignores the flag). SIGINT and SIGHUP
during ``train`` do what ``-sigint_effect`` / ``-sighup_effect`` say (Caffe's defaults: stop,
snapshot); the solver finishes the iteration under way first.
"""
import logging
import os
import platform
import signal
import time as _time

import numpy as np

import npcaffe
from npcaffe import device, distributed
from npcaffe.cli import brew, flags
from npcaffe.cli.runner import UsageError
from npcaffe.errors import CaffeError
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)
_EFFECTS = ('stop', 'snapshot', 'none')


def caffe_flags(verb):
    """The flag table of tools/caffe.cpp (shared by every verb)."""
    spec = flags.Flags(f"npcaffe {verb}", description=__doc__.split('\n\n')[0])
    spec.define('gpu', '', "Optional; run in GPU mode on given device IDs separated by ','. "
                           "npcaffe has no GPU engine: accepted, runs on the CPU")
    spec.define('solver', '', 'The solver definition protocol buffer text file.')
    spec.define('model', '', 'The model definition protocol buffer text file.')
    spec.define('phase', '', 'Optional; network phase (TRAIN or TEST). Used by time and test.')
    spec.define('level', 0, 'Optional; network level.')
    spec.define('stage', '', "Optional; network stages (not to be confused with phase), "
                             "separated by ','.")
    spec.define('snapshot', '', 'Optional; the snapshot solver state to resume training.')
    spec.define('weights', '', "Optional; the pretrained weights to initialize finetuning, "
                               "separated by ','. Cannot be set simultaneously with snapshot.")
    spec.define('iterations', 50, 'The number of iterations to run.')
    spec.define('sigint_effect', 'stop', 'Optional; action to take when a SIGINT signal is '
                                         'received: snapshot, stop or none.')
    spec.define('sighup_effect', 'snapshot', 'Optional; action to take when a SIGHUP signal is '
                                             'received: snapshot, stop or none.')
    return spec


def _g(value):
    """A number as C++'s ostream prints it (6 significant digits)."""
    return f"{float(value):.6g}"


def _no_positional(args, verb):
    if args.positional:
        raise UsageError(f"npcaffe {verb} takes only flags; unexpected argument(s): "
                         f"{' '.join(args.positional)}")


def _phase(args, default):
    if not args.phase:
        return default
    if args.phase not in ('TRAIN', 'TEST'):
        raise UsageError(f'-phase must be "TRAIN" or "TEST", got {args.phase!r}')
    return TRAIN if args.phase == 'TRAIN' else TEST


def _gpus(args):
    """The device ids of -gpu (``all``: device 0, the only one npcaffe can name)."""
    if not args.gpu:
        return []
    if args.gpu == 'all':
        return [0]
    try:
        ids = [int(g) for g in flags.split_list(args.gpu)]
    except ValueError:
        raise UsageError(f"-gpu {args.gpu}: give device ids separated by ',' (e.g. 0,1) or "
                         f"all") from None
    if any(i < 0 for i in ids):
        raise UsageError(f"-gpu {args.gpu}: device ids are >= 0")
    return ids


def _use_cpu(args, solver_gpu=False):
    """Caffe's device choice (set_device(first id); set_mode_gpu()), on an engine that has the
    CPU only: the calls warn and the CPU is used."""
    gpus = _gpus(args)
    if gpus:
        npcaffe.set_device(gpus[0])
        npcaffe.set_mode_gpu()
    if gpus and device.mode() == device.GPU:
        log.info("Using GPUs %s", args.gpu)
        return
    if len(gpus) > 1:
        log.warning("-gpu %s: npcaffe's workers are the ranks of an MPI job; start them with "
                    "mpirun -n %d npcaffe train ...", args.gpu, len(gpus))
    if args.gpu:
        log.warning("npcaffe has no GPU engine yet: -gpu %s is ignored and the CPU is used",
                    args.gpu)
    elif solver_gpu:
        log.warning("the solver asks for solver_mode: GPU; npcaffe has no GPU engine yet, so "
                    "the CPU is used")
    log.info("Use CPU.")


def _effect(value, flag):
    if value not in _EFFECTS:
        raise UsageError(f'invalid signal effect "{value}" for -{flag}; use stop, snapshot or '
                         f'none')
    return value


class _SignalActions:
    """Caffe's SignalHandler: SIGINT / SIGHUP ask the solver to stop or snapshot."""

    def __init__(self, solver, sigint, sighup):
        self.solver, self.effects = solver, {signal.SIGINT: sigint}
        if hasattr(signal, 'SIGHUP'):
            self.effects[signal.SIGHUP] = sighup
        self.previous = {}

    def _handle(self, signum, frame):
        effect = self.effects[signum]
        name = signal.Signals(signum).name
        if effect == 'stop':
            log.warning("Received %s: stopping after iteration %d (with a snapshot unless "
                        "snapshot_after_train is false)", name, self.solver.iter)
            self.solver.request_stop()
        elif effect == 'snapshot':
            log.info("Received %s: snapshotting after iteration %d", name, self.solver.iter)
            self.solver.request_snapshot()
        else:
            log.info("Received %s: ignored (-%s_effect none)", name, name[3:].lower())

    def __enter__(self):
        for signum in self.effects:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------------------------------
def train(args):
    _no_positional(args, 'train')
    if not args.solver:
        raise UsageError("Need a solver definition to train: -solver solver.prototxt")
    if args.snapshot and args.weights:
        raise UsageError("Give a snapshot to resume training or weights to finetune but not "
                         "both.")
    sigint = _effect(args.sigint_effect, 'sigint_effect')
    sighup = _effect(args.sighup_effect, 'sighup_effect')
    from npcaffe.solver import read_solver_param
    param = read_solver_param(args.solver)
    param.train_state.level = args.level
    param.train_state.stage.extend(flags.split_list(args.stage))
    _use_cpu(args, param.HasField('solver_mode') and
             param.solver_mode == caffe_pb2.SolverParameter.GPU)
    if args.snapshot:
        param.ClearField('weights')
    elif args.weights:
        param.ClearField('weights')
        param.weights.append(args.weights)
    for name in flags.split_list(args.weights):
        if not os.path.isfile(name):
            raise CaffeError(f"-weights: {name} does not exist")
    group = distributed.init()                # several ranks under mpirun: data-parallel
    with distributed.abort_on_failure(group):
        solver = npcaffe.get_solver(param)
        with _SignalActions(solver, sigint, sighup):
            if args.snapshot:
                log.info("Resuming from %s", args.snapshot)
                solver.restore(args.snapshot)
            if group.size > 1:
                log.info("Training on %d workers (MPI ranks)", group.size)
                nccl = npcaffe.NCCL(solver)
                nccl.bcast()
                solver.add_callback(nccl)
            log.info("Starting Optimization")
            solver.solve()
    log.info("Optimization Done.")
    return 0


def _net(args, phase, verb):
    if not args.model:
        raise UsageError(f"Need a model definition to {verb}: -model net.prototxt")
    net = npcaffe.Net(args.model, phase, level=args.level, stages=flags.split_list(args.stage))
    for name in flags.split_list(args.weights):
        net.copy_from(name)
    return net


def test(args):
    _no_positional(args, 'test')
    if not args.model:
        raise UsageError("Need a model definition to score: -model net.prototxt")
    if not args.weights:
        raise UsageError("Need model weights to score: -weights model.caffemodel")
    phase = _phase(args, TEST)
    _use_cpu(args)
    net = _net(args, phase, 'score')
    log.info("Running for %d iterations.", args.iterations)
    names, sums, loss = [], None, 0.0
    for i in range(args.iterations):
        loss += net.forward_prefilled()
        scores = []
        for name in net.outputs:
            values = np.asarray(net.blobs[name].data, np.float32).reshape(-1)
            for value in values:
                log.info("Batch %d, %s = %s", i, name, _g(value))
            if i == 0:
                names += [name] * values.size
            scores.append(values)
        scores = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        sums = scores.copy() if sums is None else sums + scores
    loss /= max(args.iterations, 1)
    log.info("Loss: %s", _g(loss))
    weights = net.blob_loss_weights
    for name, total in zip(names, sums if sums is not None else []):
        mean = np.float32(total) / np.float32(args.iterations)
        weight = weights.get(name, 0.0)
        extra = f" (* {_g(weight)} = {_g(np.float32(weight) * mean)} loss)" if weight else ''
        log.info("%s = %s%s", name, _g(mean), extra)
    return 0


def time(args):  # noqa: A001 - Caffe's verb
    _no_positional(args, 'time')
    phase = _phase(args, TRAIN)
    _use_cpu(args)
    net = _net(args, phase, 'time')
    names = [name for name in net.layer_dict]
    if len(set(names)) != len(names):
        raise CaffeError(f"{args.model}: layer names repeat, so layers cannot be timed one by "
                         f"one; give every layer its own name")
    log.info("Performing Forward")
    log.info("Initial loss: %s", _g(net.forward_prefilled()))
    log.info("Performing Backward")
    net.backward()
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", args.iterations)
    forward_per_layer = [0.0] * len(names)
    backward_per_layer = [0.0] * len(names)
    forward_time = backward_time = 0.0
    clock = _time.perf_counter
    total_start = clock()
    for j in range(args.iterations):
        iter_start = clock()
        for i, name in enumerate(names):
            t = clock()
            net.forward(start=name, end=name)
            forward_per_layer[i] += clock() - t
        forward_time += clock() - iter_start
        backward_start = clock()
        for i in range(len(names) - 1, -1, -1):
            t = clock()
            net.backward(start=names[i], end=names[i])
            backward_per_layer[i] += clock() - t
        backward_time += clock() - backward_start
        log.info("Iteration: %d forward-backward time: %s ms.", j + 1,
                 _g((clock() - iter_start) * 1000))
    total = clock() - total_start
    n = max(args.iterations, 1)
    log.info("Average time per layer: ")
    for i, name in enumerate(names):
        log.info("%10s\tforward: %s ms.", name, _g(forward_per_layer[i] * 1000 / n))
        log.info("%10s\tbackward: %s ms.", name, _g(backward_per_layer[i] * 1000 / n))
    log.info("Average Forward pass: %s ms.", _g(forward_time * 1000 / n))
    log.info("Average Backward pass: %s ms.", _g(backward_time * 1000 / n))
    log.info("Average Forward-Backward: %s ms.", _g(total * 1000 / n))
    log.info("Total Time: %s ms.", _g(total * 1000))
    log.info("*** Benchmark ends ***")
    return 0


def device_query(args):
    _no_positional(args, 'device_query')
    log.info("Querying GPUs %s", args.gpu)
    if args.gpu:
        log.warning("npcaffe has no GPU engine yet: there are no GPU devices to query "
                    "(-gpu %s)", args.gpu)
    log.info("Device: CPU (the only device npcaffe runs on)")
    log.info("Processor: %s", _processor())
    log.info("Logical cores: %s (this process may use %d)", os.cpu_count(),
             len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else
             os.cpu_count())
    memory = _memory_bytes()
    if memory:
        log.info("Memory: %.1f GiB", memory / 2 ** 30)
    log.info("NumPy: %s", np.__version__)
    log.info("BLAS: %s", _blas())
    from npcaffe import parallel
    log.info("Engine threads: %d", parallel.num_threads())
    if distributed.launched_by_mpi():
        group = distributed.world()
        hosts = group.gather(platform.node())
        if group.rank == 0:
            log.info("MPI world: %d rank(s) on %s", group.size,
                     ', '.join(sorted(set(hosts))))
    return 0


def _processor():
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes():
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        return None


def _blas():
    """The BLAS NumPy calls (name and version from NumPy's build configuration)."""
    try:
        config = np.show_config(mode='dicts')
        blas = config['Build Dependencies']['blas']
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    except (TypeError, KeyError, AttributeError):      # NumPy < 1.26
        return 'unknown'


_BODIES = {'train': train, 'test': test, 'time': time, 'device_query': device_query}


def main_for(verb):
    """The ``main(argv=None)`` of one verb (argv: the arguments after the verb)."""
    def main(argv=None):
        return brew.run(caffe_flags(verb), _BODIES[verb], argv)
    main.__name__ = f"main_{verb}"
    main.__doc__ = f"npcaffe {verb}: see npcaffe.cli.caffe."
    return main


main_train = main_for('train')
main_test = main_for('test')
main_time = main_for('time')
main_device_query = main_for('device_query')
