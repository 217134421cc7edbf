"""Caffe's solvers with pycaffe's interface: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam.

One iteration is Caffe's ``Solver::Step`` body, in Caffe's order::

    clear parameter diffs
    run the test nets            when test_interval divides iter (at 0: if test_initialization)
    callbacks' on_start()
    loss = sum of iter_size forward/backward passes / iter_size   (the diffs accumulate)
    smooth the loss over the last average_loss iterations; log it when display divides iter
    callbacks' on_gradients()
    apply_update():
        rate = lr_policy(iter); clip the global L2 norm of the diffs to clip_gradients (if >= 0)
        per learnable parameter (owners only; a shared parameter uses its owner's multipliers):
            diff /= iter_size                                   (iter_size > 1)
            diff += weight_decay * decay_mult * w (L2) or * sign(w) (L1)
            diff = the solver's update value from diff, rate * lr_mult and its history
        w -= diff for every learnable parameter
    iter += 1
    snapshot when snapshot divides iter (or when asked to)

The arithmetic is Caffe's, in the parameters' float type (float32): the rate is computed in
double and rounded to float32 (Caffe's ``Dtype rate``), ``local_rate = rate * lr_mult`` and
``local_decay = weight_decay * decay_mult`` are float32 products, and the history is kept in
float32. For SGD the learning rate is folded into the momentum history (``h = momentum * h +
local_rate * diff; w -= h``), so a ``.solverstate`` written here restores in BVLC Caffe and one
written by Caffe continues here exactly.

Where this differs from Caffe on purpose (each to keep a run from being lost):

* a NaN or infinite loss stops training with :class:`TrainingDivergedError` before the update,
  and a snapshot of non-finite weights is refused, so the last good snapshot stays the newest;
* snapshots are written to a temporary file and renamed (the caffemodel before the solverstate);
* settings Caffe only checks when it first uses them (lr_policy, regularization_type, a
  writable snapshot folder) are checked before training starts;
* train_net / test_net paths are resolved against the working directory as Caffe does, and
  then, if absent there, beside the solver file; a solverstate's ``learned_net`` likewise beside
  the solverstate;
* SIGINT (Ctrl-C) during ``solve()`` or ``step()`` finishes the current iteration, snapshots
  (unless snapshot_after_train is false) and stops: ``solve()`` returns, as ``caffe train`` does,
  and ``step()`` raises KeyboardInterrupt so that a script's own loop stops too. A second
  Ctrl-C aborts at once (an interrupted snapshot write leaves no file behind).
"""
import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

import npcaffe
from npcaffe import formats, hdf5
from npcaffe.arraymod import xp
from npcaffe.errors import (CaffeError, ModelFileError, PrototxtError, SnapshotError,
                            TrainingDivergedError)
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.lr_policy import check_policy, learning_rate
from npcaffe.net import Net
from npcaffe.proto import caffe_pb2
from npcaffe.registry import Registry

log = logging.getLogger(__name__)

_SP = caffe_pb2.SolverParameter
#: the deprecated solver_type enum -> type name (Caffe's UpgradeSolverType)
_LEGACY_TYPES = {_SP.SGD: 'SGD', _SP.NESTEROV: 'Nesterov', _SP.ADAGRAD: 'AdaGrad',
                 _SP.RMSPROP: 'RMSProp', _SP.ADADELTA: 'AdaDelta', _SP.ADAM: 'Adam'}
_SOLVERS = Registry('solver type')

# requested actions (Caffe's SolverAction)
_NONE, _SNAPSHOT, _STOP = None, 'snapshot', 'stop'


_register = _SOLVERS.register


def solver_type_list():
    """Names of the solver types ``get_solver`` knows (SolverParameter.type)."""
    return _SOLVERS.names()


# ------------------------------------------------------------------------------------------
# reading the solver prototxt
def upgrade_solver_param(param, where='solver'):
    """Caffe's UpgradeSolverAsNeeded: the deprecated ``solver_type`` enum becomes ``type``."""
    if param.HasField('solver_type'):
        if param.HasField('type'):
            raise PrototxtError(f"{where}: the old solver_type field (enum) and the new type "
                                f"field (string) cannot both be given; keep type")
        param.type = _LEGACY_TYPES[param.solver_type]
        param.ClearField('solver_type')
    return param


def read_solver_param(path):
    """Read a solver prototxt as Caffe's ReadSolverParamsFromTextFileOrDie: upgrade
    ``solver_type``, and derive ``snapshot_prefix`` from the file name when it is unset (or
    append the file's stem when it names a folder)."""
    param = formats.read_text(path, caffe_pb2.SolverParameter())
    upgrade_solver_param(param, str(path))
    stem = os.path.splitext(str(path))[0]
    if not param.HasField('snapshot_prefix'):
        param.snapshot_prefix = stem
        log.info("snapshot_prefix was not specified and is set to %s", stem)
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, os.path.basename(stem))
        log.info("snapshot_prefix is a directory and is set to %s", param.snapshot_prefix)
    return param


def get_solver(solver_file):
    """The solver of the ``type`` a solver prototxt names (pycaffe's ``caffe.get_solver``).

    ``solver_file`` may also be a SolverParameter.
    """
    if isinstance(solver_file, caffe_pb2.SolverParameter):
        param = upgrade_solver_param(_copy(solver_file))
    else:
        param = read_solver_param(solver_file)
    cls = _SOLVERS.get(param.type)
    if cls is None:
        raise CaffeError(f"{_where(solver_file)}: {_SOLVERS.unknown(param.type)}")
    return cls(solver_file)


def _copy(message):
    out = type(message)()
    out.CopyFrom(message)
    return out


def _where(source):
    return 'solver parameters' if isinstance(source, caffe_pb2.SolverParameter) else str(source)


# ------------------------------------------------------------------------------------------
class _Progress:
    """A one-line progress bar on a terminal's stderr (iteration, loss, speed, time left)."""

    WIDTH = 30

    def __init__(self, stream, start, stop):
        self.stream, self.start, self.stop = stream, start, stop
        self.t0 = self.last = time.monotonic()
        self.shown = False

    def update(self, iteration, loss, force=False):
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        span = max(self.stop - self.start, 1)
        done = min(max(iteration - self.start, 0), span)
        fill = int(self.WIDTH * done / span)
        speed = done / (now - self.t0) if now > self.t0 else 0.0
        left = (span - done) / speed if speed > 0 else None
        if left is None or not math.isfinite(left):
            eta = '--:--:--'
        else:
            minutes, seconds = divmod(int(left), 60)
            eta = f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
        self.stream.write(f"\r\x1b[Kiter {iteration}/{self.stop} [{'#' * fill}"
                          f"{'.' * (self.WIDTH - fill)}] loss {loss:.6g}  {speed:.2f} it/s  "
                          f"eta {eta}")
        self.stream.flush()
        self.shown = True

    def clear(self):
        if self.shown:
            self.stream.write('\r\x1b[K')
            self.stream.flush()
            self.shown = False


# ------------------------------------------------------------------------------------------
class Solver:
    """The training loop shared by every solver type (Caffe's Solver), pycaffe's interface.

    Args:
        solver_file: a solver prototxt path, or a SolverParameter (npcaffe only).

    Attributes (pycaffe): ``net`` (the TRAIN net), ``test_nets`` (TEST nets sharing its
    weights), ``iter``, ``param`` (the SolverParameter; edits take effect at the next
    iteration), ``max_iter``. npcaffe also keeps ``history`` (the solver state arrays),
    ``smoothed_loss``, ``test_scores`` (per test net, the mean outputs of its last run as
    ``{name: value}``) and ``requested_early_exit``.
    """

    type = None
    #: history arrays per learnable parameter (AdaDelta and Adam keep two)
    history_per_param = 1
    #: scratch arrays the update needs (Caffe's update_ and temp_ blobs), shared by all params
    scratch_arrays = 1

    def __init__(self, solver_file):
        if self.type is None:
            raise TypeError("Solver is the abstract base; use get_solver(path) or one of "
                            "SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, "
                            "AdaDeltaSolver, AdamSolver")
        self._where = _where(solver_file)
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            param = upgrade_solver_param(_copy(solver_file))
            self._solver_dir = None
        else:
            param = read_solver_param(solver_file)
            self._solver_dir = Path(solver_file).resolve().parent
        if param.type != self.type:
            log.warning("%s: type is %r but a %s solver was asked for; running %s (use "
                        "get_solver() to follow the file)", self._where, param.type,
                        self.type, self.type)
        log.info("Initializing solver from parameters:\n%s", formats.to_text(param))
        self._param = param
        self.iter = 0
        self.current_step = 0
        self.requested_early_exit = False
        self.smoothed_loss = 0.0
        self._losses = []
        self._callbacks = []
        self._action = _NONE
        self._guarding = False
        self._last_snapshot = None
        self.progress = None            # None: a bar when stderr is a terminal; False: never
        self._check_param()
        if param.snapshot:
            self._check_snapshot_writable()
        if param.random_seed >= 0:
            npcaffe.set_random_seed(param.random_seed)
        self.net = self._init_train_net()
        self.test_nets = self._init_test_nets()
        self.test_scores = [{} for _ in self.test_nets]
        self._load_weights()
        for test_net in self.test_nets:
            test_net.share_with(self.net)
        self._params = self.net.learnable_params
        self._multipliers = self.net.learnable_param_multipliers
        self._param_names = self.net.learnable_param_names
        self._loss_weights = self._output_loss_weights(self.net)
        self._presolve()
        log.info("Solver scaffolding done.")

    # -- pycaffe attributes -------------------------------------------------------------------
    @property
    def param(self):
        return self._param

    @property
    def max_iter(self):
        return self._param.max_iter

    # -- set-up ---------------------------------------------------------------------------------
    def _check_param(self):
        p, where = self._param, self._where
        if p.average_loss < 1:
            raise CaffeError(f"{where}: average_loss must be at least 1, got {p.average_loss}")
        if p.iter_size < 1:
            raise CaffeError(f"{where}: iter_size must be at least 1, got {p.iter_size}")
        check_policy(p, where)
        if p.weight_decay and p.regularization_type not in ('L2', 'L1'):
            raise CaffeError(f"{where}: unknown regularization_type "
                             f"{p.regularization_type!r}; use L2 or L1")
        self._check_solver_param()

    def _check_solver_param(self):
        """Type-specific checks (Caffe's constructor_sanity_check)."""

    def _resolve(self, name, field):
        """A net path as Caffe reads it (the working directory), else beside the solver file."""
        path = Path(name)
        if path.is_absolute() or path.exists() or self._solver_dir is None:
            return path
        beside = self._solver_dir / path
        if beside.exists():
            log.info("%s: %s %r is not in the working directory; using %s beside the solver "
                     "file", self._where, field, name, beside)
            return beside
        raise PrototxtError(f"{self._where}: {field} {name!r} not found in the working "
                            f"directory ({os.getcwd()}) nor beside the solver file "
                            f"({self._solver_dir}); Caffe reads it relative to the working "
                            f"directory")

    def _build_net(self, source, phase, extra_state, what):
        """Caffe's NetState merge: the phase, then the net's own state, then the solver's
        train_state / test_state, each overriding what the previous set."""
        if isinstance(source, caffe_pb2.NetParameter):
            own = source.state
        else:
            own = formats.read_text(source, caffe_pb2.NetParameter()).state
        state = caffe_pb2.NetState(phase=phase)
        state.MergeFrom(own)
        stages = []
        if extra_state is not None:
            state.MergeFrom(extra_state)
            stages = list(extra_state.stage)
        log.info("Creating %s", what)
        # Net starts from the net's own state and appends ``stages``: the merge above
        return Net(source if isinstance(source, caffe_pb2.NetParameter) else str(source),
                   phase=state.phase, level=state.level, stages=stages)

    def _init_train_net(self):
        p = self._param
        fields = [f for f in ('net', 'net_param', 'train_net', 'train_net_param') if p.HasField(f)]
        if len(fields) != 1:
            problem = 'specifies none' if not fields else f"specifies {', '.join(fields)}"
            raise CaffeError(f"{self._where}: the solver must name the train net with exactly "
                             f"one of net, net_param, train_net, train_net_param; it "
                             f"{problem}")
        field = fields[0]
        value = getattr(p, field)
        source = value if field.endswith('_param') else self._resolve(value, field)
        train_state = p.train_state if p.HasField('train_state') else None
        what = field if field.endswith('_param') else f"{field} file {value}"
        return self._build_net(source, TRAIN, train_state, f"training net from {what}")

    def _init_test_nets(self):
        p = self._param
        generic = int(p.HasField('net')) + int(p.HasField('net_param'))
        explicit = len(p.test_net_param) + len(p.test_net)
        if generic > 1:
            raise CaffeError(f"{self._where}: net and net_param may not both be given")
        if (generic and len(p.test_iter) < explicit) or (not generic and
                                                         len(p.test_iter) != explicit):
            raise CaffeError(f"{self._where}: test_iter must be given once for each test net "
                             f"({explicit} test nets, {len(p.test_iter)} test_iter values)")
        sources = [(tp, 'test_net_param') for tp in p.test_net_param]
        sources += [(self._resolve(f, 'test_net'), f"test_net file {f}") for f in p.test_net]
        remaining = len(p.test_iter) - len(sources)
        if p.HasField('net_param'):
            sources += [(p.net_param, 'net_param')] * remaining
        elif p.HasField('net'):
            path = self._resolve(p.net, 'net')
            sources += [(path, f"net file {p.net}")] * remaining
        if p.test_state and len(p.test_state) != len(sources):
            raise CaffeError(f"{self._where}: test_state must be unspecified or given once per "
                             f"test net ({len(sources)} test nets, {len(p.test_state)} "
                             f"test_state values)")
        if sources and p.test_interval <= 0:
            raise CaffeError(f"{self._where}: test nets are given, so test_interval must be "
                             f"positive (got {p.test_interval})")
        nets = []
        for i, (source, what) in enumerate(sources):
            state = p.test_state[i] if p.test_state else None
            nets.append(self._build_net(source, TEST, state, f"test net (#{i}) specified by "
                                                             f"{what}"))
        return nets

    def _load_weights(self):
        """SolverParameter.weights: comma-separated caffemodels copied into every net."""
        for entry in self._param.weights:
            for name in filter(None, (s.strip() for s in entry.split(','))):
                for net in [self.net] + self.test_nets:
                    net.copy_from(name)

    @staticmethod
    def _output_loss_weights(net):
        weights = {}
        for name, layer in net.layer_dict.items():
            for ti, top in enumerate(net.top_names[name]):
                w = layer.loss_weight(ti)
                if w:
                    weights[top] = w
        return weights

    def _presolve(self):
        """Zero history, one array per learnable parameter (two for AdaDelta and Adam)."""
        self.history = []
        for _ in range(self.history_per_param):
            self.history += [xp.zeros(b.shape, b.dtype) for b in self._params]
        dtypes = {b.dtype for b in self._params} or {xp.dtype(xp.float32)}
        biggest = max((b.count for b in self._params), default=0)
        self._scratch = {dt: [xp.empty(biggest, dt) for _ in range(self.scratch_arrays)]
                         for dt in dtypes}

    def _temp(self, blob, k=0):
        return self._scratch[blob.dtype][k][:blob.count].reshape(blob.shape)

    # -- the loop ----------------------------------------------------------------------------
    def add_callback(self, on_start, on_gradients):
        """pycaffe: ``on_start()`` before each iteration's forward passes, ``on_gradients()``
        after the backward passes, before the update."""
        self._callbacks.append((on_start, on_gradients))

    def request_stop(self):
        """Stop after the current iteration (what SIGINT does); safe from other threads."""
        self._action = _STOP

    def request_snapshot(self):
        """Snapshot after the current iteration and go on (Caffe's SIGHUP action)."""
        if self._action is _NONE:
            self._action = _SNAPSHOT

    def _take_action(self):
        action, self._action = self._action, _NONE
        return action

    def step(self, iters):
        """Run ``iters`` iterations (Caffe's Solver::Step).

        Raises TrainingDivergedError on a NaN/infinite loss, and KeyboardInterrupt after a
        SIGINT once the iteration under way is done and snapshotted.
        """
        self.requested_early_exit = False
        with self._interrupt_guard():
            self._step(iters)
            if self.requested_early_exit:
                saved = self._snapshot_after_train()
                raise KeyboardInterrupt(f"training stopped at iteration {self.iter} on request"
                                        + (f"; snapshot {saved}" if saved else ''))

    def solve(self, resume_file=None):
        """Train up to max_iter (Caffe's Solver::Solve), resuming from a ``.solverstate``
        if given; snapshot at the end unless snapshot_after_train is false. Returns after a
        SIGINT, with a snapshot (``requested_early_exit`` is then True)."""
        log.info("Solving %s", self.net.name)
        log.info("Learning Rate Policy: %s", self._param.lr_policy)
        self.requested_early_exit = False
        if resume_file:
            log.info("Restoring previous solver status from %s", resume_file)
            self.restore(resume_file)
        p = self._param
        if p.snapshot or p.snapshot_after_train:
            self._check_snapshot_writable()
        with self._interrupt_guard():
            start_iter = self.iter
            self._step(p.max_iter - self.iter)
            self._snapshot_after_train()
            if self.requested_early_exit:
                log.info("Optimization stopped early.")
                return
            if p.display and self.iter % p.display == 0:
                loss = self.net.forward_prefilled()
                self._update_smoothed_loss(loss, start_iter, p.average_loss)
                log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
            if p.test_interval and self.iter % p.test_interval == 0:
                self.test_all()
        log.info("Optimization Done.")

    def _snapshot_after_train(self):
        p = self._param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            return self.snapshot()
        return None

    def _step(self, iters):
        p = self._param
        start_iter = self.iter
        stop_iter = self.iter + iters
        self._losses = []
        self.smoothed_loss = 0.0
        timer, iterations_last = time.monotonic(), self.iter
        bar = None
        if self.progress is not False and iters > 0 and _isatty(sys.stderr):
            bar = _Progress(sys.stderr, start_iter, stop_iter)
        try:
            while self.iter < stop_iter:
                self.net.clear_param_diffs()
                if (p.test_interval and self.iter % p.test_interval == 0
                        and (self.iter > 0 or p.test_initialization)):
                    if bar:
                        bar.clear()
                    self.test_all()
                    if self.requested_early_exit:
                        break
                for on_start, _ in self._callbacks:
                    on_start()
                display = p.display and self.iter % p.display == 0
                loss = 0.0
                for _ in range(p.iter_size):
                    loss += self.net.forward_prefilled()
                    self.net.backward()
                loss /= p.iter_size
                if not math.isfinite(loss):
                    if bar:
                        bar.clear()
                    raise self._diverged(loss)
                self._update_smoothed_loss(loss, start_iter, p.average_loss)
                if display:
                    if bar:
                        bar.clear()
                    now = time.monotonic()
                    lapse = now - timer
                    per_s = (self.iter - iterations_last) / (lapse or 1)
                    log.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s", self.iter,
                             _g(per_s), _g(lapse), p.display, _g(self.smoothed_loss))
                    timer, iterations_last = now, self.iter
                    self._log_outputs()
                for _, on_gradients in self._callbacks:
                    on_gradients()
                self.apply_update()
                self.iter += 1
                if bar:
                    bar.update(self.iter, self.smoothed_loss, force=self.iter == stop_iter)
                action = self._take_action()
                if (p.snapshot and self.iter % p.snapshot == 0) or action == _SNAPSHOT:
                    if bar:
                        bar.clear()
                    self.snapshot()
                if action == _STOP:
                    self.requested_early_exit = True
                    break
        finally:
            if bar:
                bar.update(self.iter, self.smoothed_loss, force=True)
                bar.stream.write('\n')
                bar.stream.flush()

    def _update_smoothed_loss(self, loss, start_iter, average_loss):
        """Caffe's UpdateSmoothedLoss: the mean of the last average_loss losses."""
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self._losses[idx]) / average_loss
            self._losses[idx] = loss

    def _log_outputs(self):
        index = 0
        for name in self.net.outputs:
            weight = self._loss_weights.get(name, 0)
            for value in np.asarray(self.net.blobs[name].data, np.float64).reshape(-1):
                extra = f" (* {_g(weight)} = {_g(weight * value)} loss)" if weight else ''
                log.info("    Train net output #%d: %s = %s%s", index, name, _g(value), extra)
                index += 1

    def _diverged(self, loss):
        p = self._param
        last = (f"the last good snapshot is {self._last_snapshot}" if self._last_snapshot
                else "no snapshot was written in this run")
        message = (f"training diverged at iteration {self.iter}: the loss is {loss}. This "
                   f"usually means the learning rate is too high for the loss: a loss summed "
                   f"over every pixel (SoftmaxWithLoss with normalize: false, as FCN uses) "
                   f"needs a tiny base_lr (FCN trains with 1e-10 to 1e-14 and momentum 0.99); "
                   f"lower base_lr (now {_g(p.base_lr)}), normalize the loss or set "
                   f"clip_gradients. The weights were not updated; {last}.")
        log.error(message)
        return TrainingDivergedError(message)

    # -- testing -------------------------------------------------------------------------------
    def test_all(self):
        """Run every test net (Caffe's TestAll)."""
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(i)

    def test(self, test_net_id=0):
        """Run test net ``test_net_id`` for its test_iter forward passes and log the mean of
        each output (Caffe's Test). Returns ``{output: mean}`` (also in ``test_scores``)."""
        p = self._param
        log.info("Iteration %d, Testing net (#%d)", self.iter, test_net_id)
        net = self.test_nets[test_net_id]
        net.share_with(self.net)
        n = p.test_iter[test_net_id]
        sums = {}
        loss = 0.0
        for i in range(n):
            action = self._take_action()
            if action == _SNAPSHOT:
                self.snapshot()
            elif action == _STOP:
                self.requested_early_exit = True
                break
            iter_loss = net.forward_prefilled()
            if p.test_compute_loss:
                loss += iter_loss
            for name in net.outputs:
                value = np.asarray(net.blobs[name].data, np.float64).reshape(-1)
                sums[name] = sums[name] + value if name in sums else value.copy()
        if self.requested_early_exit:
            log.info("Test interrupted.")
            return None
        if p.test_compute_loss:
            log.info("Test loss: %s", _g(loss / n))
        weights = self._output_loss_weights(net)
        scores, index = {}, 0
        for name in net.outputs:
            means = sums.get(name, np.zeros(0)) / max(n, 1)
            scores[name] = float(means[0]) if means.size == 1 else means
            w = weights.get(name, 0)
            for value in means:
                extra = f" (* {_g(w)} = {_g(w * value)} loss)" if w else ''
                log.info("    Test net output #%d: %s = %s%s", index, name, _g(value), extra)
                index += 1
        self.test_scores[test_net_id] = scores
        return scores

    # -- the update ----------------------------------------------------------------------------
    def learning_rate(self):
        """The rate of the current iteration (advances current_step as Caffe's
        GetLearningRate does for step/multistep)."""
        rate, self.current_step = learning_rate(self._param, self.iter, self.current_step)
        return rate

    def apply_update(self):
        """Caffe's SGDSolver::ApplyUpdate on the diffs already in the net (pycaffe's
        ``apply_update``; ``iter`` is not advanced)."""
        p = self._param
        rate = self.learning_rate()
        if p.display and self.iter % p.display == 0:
            log.info("Iteration %d, lr = %s", self.iter, _g(rate))
        self._clip_gradients()
        for i in range(len(self._params)):
            self._normalize(i)
            self._regularize(i)
            self._compute_update_value(i, rate)
        for blob in self._params:                  # Net::Update: data -= diff
            blob.data[...] -= blob.diff

    def _clip_gradients(self):
        clip = xp.float32(self._param.clip_gradients)
        if clip < 0:
            return
        sumsq = 0.0
        for blob in self._params:                  # Blob::sumsq_diff, a float dot product
            flat = blob.diff.reshape(-1)
            sumsq += float(xp.dot(flat, flat))
        norm = math.sqrt(sumsq)
        if norm > clip:
            scale = xp.float32(clip / norm)
            log.info("Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale "
                     "factor %s", _g(norm), _g(clip), _g(scale))
            for blob in self._params:
                blob.diff[...] *= scale.astype(blob.dtype)

    def _normalize(self, i):
        n = self._param.iter_size
        if n != 1:
            blob = self._params[i]
            blob.diff[...] *= blob.dtype.type(1) / blob.dtype.type(n)

    def _regularize(self, i):
        blob = self._params[i]
        f = blob.dtype.type
        decay = f(self._param.weight_decay) * f(self._multipliers[i][1])
        if not decay:
            return
        tmp = self._temp(blob)
        if self._param.regularization_type == 'L2':
            xp.multiply(blob.data, decay, out=tmp)
        elif self._param.regularization_type == 'L1':
            xp.sign(blob.data, out=tmp)
            tmp *= decay
        else:
            raise CaffeError(f"{self._where}: unknown regularization_type "
                             f"{self._param.regularization_type!r}; use L2 or L1")
        blob.diff[...] += tmp

    def _local_rate(self, i, rate):
        f = self._params[i].dtype.type
        return f(rate) * f(self._multipliers[i][0])

    def _divide_by_root(self, i, h, tmp, rate):
        """AdaGrad's and RMSProp's last step: diff = local_rate * diff / (sqrt(h) + delta),
        with ``tmp`` as scratch (Caffe's order of float32 operations)."""
        d = self._params[i].diff
        xp.sqrt(h, out=tmp)
        tmp += d.dtype.type(self._param.delta)
        xp.divide(d, tmp, out=tmp)
        xp.multiply(tmp, self._local_rate(i, rate), out=d)

    def _compute_update_value(self, i, rate):
        raise NotImplementedError

    # -- snapshots -----------------------------------------------------------------------------
    def _snapshot_filename(self, extension):
        return f"{self._param.snapshot_prefix}_iter_{self.iter}{extension}"

    def _check_snapshot_writable(self):
        """Caffe's CheckSnapshotWritePermissions: create and remove a probe file beside where
        the snapshots will go; SnapshotError naming the folder if that fails."""
        probe = self._snapshot_filename('.tempfile')
        folder = os.path.dirname(probe) or '.'
        try:
            with open(probe, 'wb'):
                pass
            os.remove(probe)
        except OSError as exc:
            if not os.path.exists(folder):
                reason = 'does not exist'
            elif not os.path.isdir(folder):
                reason = 'is not a folder'
            else:
                reason = f"is not writable ({exc.strerror or exc})"
            raise SnapshotError(f"{self._where}: cannot write snapshots: the folder "
                                f"{os.path.abspath(folder)} {reason} (snapshot_prefix "
                                f"{self._param.snapshot_prefix!r}); create the folder or point "
                                f"snapshot_prefix elsewhere before training") from None

    def snapshot(self):
        """Write ``{prefix}_iter_{iter}.caffemodel`` and then ``.solverstate`` (each to a
        temporary name, renamed into place); with ``snapshot_format: HDF5``,
        ``.caffemodel.h5`` and ``.solverstate.h5`` in Caffe's HDF5 layout (see
        :mod:`npcaffe.hdf5`). Returns the solver state's path."""
        p = self._param
        for blob, name in zip(self._params, self._param_names):
            if not xp.isfinite(blob.data).all():
                message = (f"iteration {self.iter}: parameter {name} holds NaN or infinite "
                           f"values, so no snapshot is written (the last good one, "
                           f"{self._last_snapshot or 'none in this run'}, stays the newest); "
                           f"the learning rate is probably too high for the loss")
                log.error(message)
                raise TrainingDivergedError(message)
        as_hdf5 = p.snapshot_format == _SP.HDF5
        model = self._snapshot_filename('.caffemodel.h5' if as_hdf5 else '.caffemodel')
        state_file = self._snapshot_filename('.solverstate.h5' if as_hdf5 else '.solverstate')
        try:
            if as_hdf5:
                log.info("Snapshotting to HDF5 file %s", model)
                self.net.save_hdf5(model, write_diff=p.snapshot_diff)
                log.info("Snapshotting solver state to HDF5 file %s", state_file)
                hdf5.write_solverstate(state_file, self.iter, model, self.current_step,
                                       self.history)
            else:
                log.info("Snapshotting to binary proto file %s", model)
                self.net.save(model, write_diff=p.snapshot_diff)
                log.info("Snapshotting solver state to binary proto file %s", state_file)
                state = caffe_pb2.SolverState(iter=self.iter, learned_net=model,
                                              current_step=self.current_step)
                formats.write_solverstate(state_file, state, self.history)
        except OSError as exc:
            raise SnapshotError(f"snapshot at iteration {self.iter} failed: {exc}") from exc
        self._last_snapshot = state_file
        return state_file

    def restore(self, state_file):
        """Continue from a ``.solverstate`` or ``.solverstate.h5`` (Caffe's or ours; a name
        ending in ``.h5`` is read as HDF5, as Caffe's Solver::Restore decides): iteration,
        current_step, history and the weights of its ``learned_net`` (looked up as written,
        i.e. relative to the working directory as Caffe does, then beside the state file)."""
        state_file = str(state_file)
        if state_file.endswith(('.caffemodel', '.caffemodel.h5')):
            raise CaffeError(f"{state_file}: restore() takes a .solverstate; to start from "
                             f"weights only, use solver.net.copy_from({state_file!r})")
        if state_file.endswith('.h5'):
            saved = hdf5.read_solverstate(state_file)
            state = caffe_pb2.SolverState(iter=saved.iter, learned_net=saved.learned_net,
                                          current_step=saved.current_step)
            history = [formats.BlobData(array) for array in saved.history]
        else:
            state, history = formats.read_solverstate(state_file)
        if len(history) != len(self.history):
            raise ModelFileError(
                f"{state_file}: holds {len(history)} history blobs but this {self.type} solver "
                f"keeps {len(self.history)} ({self.history_per_param} per learnable parameter "
                f"of {len(self._params)}); was it written by another solver type or net?")
        arrays = []
        for k, (saved, mine) in enumerate(zip(history, self.history)):
            if saved.data.size != mine.size:
                name = self._param_names[k % len(self._params)]
                raise ModelFileError(f"{state_file}: history blob {k} ({name}) has shape "
                                     f"{saved.shape}, the parameter {mine.shape}")
            arrays.append(saved.data.reshape(mine.shape))
        if state.learned_net:
            self.net.copy_from(self._find_learned_net(state.learned_net, state_file))
        for mine, saved in zip(self.history, arrays):
            mine[...] = saved
        self.iter = state.iter
        self.current_step = state.current_step
        log.info("Restored solver state from %s: iteration %d", state_file, self.iter)

    @staticmethod
    def _find_learned_net(learned_net, state_file):
        folder = Path(state_file).parent
        for candidate in (Path(learned_net), folder / learned_net,
                          folder / Path(learned_net).name):
            if candidate.is_file():
                if candidate != Path(learned_net):
                    log.info("%s: learned_net %s found as %s", state_file, learned_net,
                             candidate)
                return str(candidate)
        raise ModelFileError(f"{state_file}: its weights file (learned_net) {learned_net!r} is "
                             f"neither at that path nor beside the solverstate ({folder})")

    def share_weights(self, net):
        """pycaffe: make ``net`` share the train net's parameters (by layer name)."""
        net.share_with(self.net)

    # -- SIGINT --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _interrupt_guard(self):
        """While training in the main thread: the first SIGINT asks to stop after the
        iteration under way; a second raises KeyboardInterrupt at once. Only replaces
        Python's default handler, and puts it back afterwards."""
        if (self._guarding or threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        received = []

        def on_sigint(signum, frame):
            if received:
                raise KeyboardInterrupt
            received.append(signum)
            self._action = _STOP
            log.warning("Interrupted (SIGINT): finishing iteration %d, then snapshotting and "
                        "stopping; press Ctrl-C again to abort at once", self.iter)

        previous = signal.signal(signal.SIGINT, on_sigint)
        self._guarding = True
        try:
            yield
        finally:
            self._guarding = False
            signal.signal(signal.SIGINT, previous)

    def __repr__(self):
        return f"<npcaffe.{type(self).__name__} at iteration {self.iter}>"


def _g(value):
    """A number as C++'s ostream prints it (6 significant digits)."""
    return f"{float(value):.6g}"


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ------------------------------------------------------------------------------------------
# the update rules (Caffe's ComputeUpdateValue, CPU branch)
@_register('SGD')
class SGDSolver(Solver):
    """Momentum SGD: ``h = momentum * h + local_rate * diff; w -= h``."""

    def _compute_update_value(self, i, rate):
        blob, h = self._params[i], self.history[i]
        f = blob.dtype.type
        tmp = self._temp(blob)
        d = blob.diff
        xp.multiply(d, self._local_rate(i, rate), out=tmp)
        h *= f(self._param.momentum)
        h += tmp
        d[...] = h


@_register('Nesterov')
class NesterovSolver(Solver):
    """Nesterov momentum: ``h' = momentum * h + local_rate * diff;
    update = (1 + momentum) * h' - momentum * h``."""

    scratch_arrays = 2

    def _compute_update_value(self, i, rate):
        blob, h = self._params[i], self.history[i]
        f = blob.dtype.type
        momentum = f(self._param.momentum)
        tmp, update = self._temp(blob, 0), self._temp(blob, 1)
        d = blob.diff
        update[...] = h                               # h before this step
        xp.multiply(d, self._local_rate(i, rate), out=tmp)
        h *= momentum
        h += tmp
        update *= -momentum
        xp.multiply(h, f(1) + momentum, out=tmp)
        update += tmp
        d[...] = update


@_register('AdaGrad')
class AdaGradSolver(Solver):
    """``h += diff^2; update = local_rate * diff / (sqrt(h) + delta)``."""

    def _check_solver_param(self):
        if self._param.momentum != 0:
            raise CaffeError(f"{self._where}: momentum cannot be used with AdaGrad "
                             f"(got {self._param.momentum}); remove it")

    def _compute_update_value(self, i, rate):
        blob, h = self._params[i], self.history[i]
        tmp = self._temp(blob)
        d = blob.diff
        xp.multiply(d, d, out=tmp)
        h += tmp
        self._divide_by_root(i, h, tmp, rate)


@_register('RMSProp')
class RMSPropSolver(Solver):
    """``h = rms_decay * h + (1 - rms_decay) * diff^2;
    update = local_rate * diff / (sqrt(h) + delta)``."""

    def _check_solver_param(self):
        p = self._param
        if p.momentum != 0:
            raise CaffeError(f"{self._where}: momentum cannot be used with RMSProp "
                             f"(got {p.momentum}); remove it")
        if not 0 <= p.rms_decay < 1:
            raise CaffeError(f"{self._where}: rms_decay should lie in [0, 1), got "
                             f"{p.rms_decay}")

    def _compute_update_value(self, i, rate):
        blob, h = self._params[i], self.history[i]
        f = blob.dtype.type
        decay = f(self._param.rms_decay)
        tmp = self._temp(blob)
        d = blob.diff
        xp.multiply(d, d, out=tmp)
        tmp *= f(1) - decay
        h *= decay
        h += tmp
        self._divide_by_root(i, h, tmp, rate)


@_register('AdaDelta')
class AdaDeltaSolver(Solver):
    """Two histories, of squared gradients g and squared updates u (both decayed by
    momentum): ``g = m g + (1-m) diff^2; diff *= sqrt((u + delta) / (g + delta));
    u = m u + (1-m) diff^2; update = local_rate * diff``."""

    history_per_param = 2
    scratch_arrays = 2

    def _compute_update_value(self, i, rate):
        blob = self._params[i]
        g, u = self.history[i], self.history[len(self._params) + i]
        f = blob.dtype.type
        m = f(self._param.momentum)
        delta = f(self._param.delta)
        update, temp = self._temp(blob, 0), self._temp(blob, 1)
        d = blob.diff
        xp.multiply(d, d, out=update)
        update *= f(1) - m
        g *= m
        g += update
        xp.add(u, delta, out=update)
        xp.add(g, delta, out=temp)
        xp.divide(update, temp, out=update)
        xp.sqrt(update, out=update)
        d *= update
        xp.multiply(d, d, out=update)
        update *= f(1) - m
        u *= m
        u += update
        d *= self._local_rate(i, rate)


@_register('Adam')
class AdamSolver(Solver):
    """``m = b1 m + (1-b1) diff; v = b2 v + (1-b2) diff^2;
    update = local_rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta)``, t = iter + 1,
    b1 = momentum, b2 = momentum2."""

    history_per_param = 2

    def _compute_update_value(self, i, rate):
        blob = self._params[i]
        m, v = self.history[i], self.history[len(self._params) + i]
        f = blob.dtype.type
        b1, b2 = f(self._param.momentum), f(self._param.momentum2)
        t = self.iter + 1
        correction = f(math.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))
        tmp = self._temp(blob)
        d = blob.diff
        xp.multiply(d, f(1) - b1, out=tmp)
        m *= b1
        m += tmp
        xp.multiply(d, d, out=tmp)
        tmp *= f(1) - b2
        v *= b2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += f(self._param.delta)
        xp.divide(m, tmp, out=tmp)
        xp.multiply(tmp, self._local_rate(i, rate) * correction, out=d)
