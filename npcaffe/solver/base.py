"""The training loop every solver type shares (Caffe's Solver), with pycaffe's interface; the
update rules are in ``npcaffe.solver.rules``, snapshots in ``npcaffe.solver.snapshot``."""
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
from npcaffe import distributed, formats
from npcaffe.arraymod import xp
from npcaffe.errors import CaffeError, PrototxtError, TrainingDivergedError
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.lr_policy import check_policy, learning_rate
from npcaffe.net import Net
from npcaffe.proto import caffe_pb2
from npcaffe.solver import snapshot
from npcaffe.solver.params import copy_param, describe, read_solver_param, upgrade_solver_param
from npcaffe.solver.progress import ProgressBar, isatty
from npcaffe.solver.progress import caffe_number as _g   # numbers as Caffe prints them

log = logging.getLogger(__name__)
#: Caffe's display lines (``Iteration N (... iter/s ...), loss = ...``, ``lr = ...``, the train
#: and test net outputs): a logger of their own, so that a tool can show them alone
display_log = logging.getLogger('npcaffe.solver.display')

# requested actions (Caffe's SolverAction)
_NONE, _SNAPSHOT, _STOP = None, 'snapshot', 'stop'


class Solver:
    """The training loop shared by every solver type (Caffe's Solver), pycaffe's interface.

    Args:
        solver_file: a solver prototxt path, or a SolverParameter (npcaffe only).

    Attributes (pycaffe): ``net`` (the TRAIN net), ``test_nets`` (TEST nets sharing its
    weights), ``iter``, ``param`` (the SolverParameter; edits take effect at the next
    iteration), ``max_iter``. npcaffe also keeps ``history`` (the solver state arrays),
    ``smoothed_loss``, ``test_scores`` (per test net, the mean outputs of its last run as
    ``{name: value}``) and ``requested_early_exit``.

    ``share_diffs`` (npcaffe only, True by default): the steps' backward passes keep the inner
    blobs' diffs in shared buffers, and drop them after the passes (the rule is "Training
    memory" in :mod:`npcaffe.net`); False keeps every diff as Caffe does.
    """

    type = None
    #: history arrays per learnable parameter (AdaDelta and Adam keep two)
    history_per_param = 1
    #: scratch arrays the update needs (Caffe's update_ and temp_ blobs), shared by all params
    scratch_arrays = 1
    #: elements of a parameter updated at a time. Every step of the update is elementwise, so
    #: the pieces give the very float32 results of whole-array operations (Caffe's), with
    #: scratch arrays of this size instead of the largest parameter's (FCN's fc6: 411 MB)
    update_piece = 1 << 16

    def __init__(self, solver_file):
        if self.type is None:
            raise TypeError("Solver is the abstract base; use get_solver(path) or one of "
                            "SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, "
                            "AdaDeltaSolver, AdamSolver")
        self._where = describe(solver_file)
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            param = upgrade_solver_param(copy_param(solver_file))
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
        self.share_diffs = True
        self._check_param()
        if param.snapshot:
            self._check_snapshot_writable()
        if param.random_seed >= 0:             # each worker its own seed (Caffe's)
            npcaffe.set_random_seed(param.random_seed + distributed.solver_rank())
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
        size = min(max((b.count for b in self._params), default=0), self.update_piece)
        self._scratch = {dt: [xp.empty(size, dt) for _ in range(self.scratch_arrays)]
                         for dt in dtypes}

    # -- the loop ----------------------------------------------------------------------------
    def add_callback(self, on_start, on_gradients=None):
        """pycaffe: ``on_start()`` before each iteration's forward passes, ``on_gradients()``
        after the backward passes, before the update. ``add_callback(nccl)`` (pycaffe's other
        overload) installs an object's ``on_start`` and ``on_gradients_ready``."""
        if on_gradients is None:
            callback = on_start
            try:
                on_start, on_gradients = callback.on_start, callback.on_gradients_ready
            except AttributeError:
                raise TypeError(f"add_callback takes (on_start, on_gradients) or an object with "
                                f"on_start() and on_gradients_ready() (caffe.NCCL), got "
                                f"{type(callback).__name__}") from None
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
            root = distributed.root_solver()      # (the other workers only Step, as Caffe's)
            if root and p.display and self.iter % p.display == 0:
                loss = self.net.forward_prefilled()
                self._update_smoothed_loss(loss, start_iter, p.average_loss)
                display_log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
            if root and p.test_interval and self.iter % p.test_interval == 0:
                self.test_all()
        log.info("Optimization Done.")

    def _snapshot_after_train(self):
        p = self._param
        if (p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0)
                and distributed.root_solver()):
            return self.snapshot()
        return None

    def _step(self, iters):
        p = self._param
        start_iter = self.iter
        stop_iter = self.iter + iters
        self._losses = []
        self.smoothed_loss = 0.0
        timer, iterations_last = time.monotonic(), self.iter
        root = distributed.root_solver()          # only the root tests, logs and snapshots
        bar = None
        if self.progress is not False and iters > 0 and isatty(sys.stderr) and root:
            bar = ProgressBar(sys.stderr, start_iter, stop_iter)
        try:
            while self.iter < stop_iter:
                self.net.clear_param_diffs()
                if (p.test_interval and self.iter % p.test_interval == 0 and root
                        and (self.iter > 0 or p.test_initialization)):
                    if bar:
                        bar.clear()
                    self.test_all()
                    if self.requested_early_exit:
                        break
                for on_start, _ in self._callbacks:
                    on_start()
                display = p.display and self.iter % p.display == 0 and root
                loss = 0.0
                try:
                    for _ in range(p.iter_size):
                        loss += self.net.forward_prefilled()
                        if self.share_diffs:
                            self.net._share_diffs()
                        self.net.backward()
                finally:
                    self.net._unshare_diffs(free=not self.share_diffs)
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
                    display_log.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s",
                                     self.iter, _g(per_s), _g(lapse), p.display,
                                     _g(self.smoothed_loss))
                    timer, iterations_last = now, self.iter
                    self._log_outputs()
                for _, on_gradients in self._callbacks:
                    on_gradients()
                self.apply_update()
                self.iter += 1
                if bar:
                    bar.update(self.iter, self.smoothed_loss, force=self.iter == stop_iter)
                action = self._take_action()
                if root and ((p.snapshot and self.iter % p.snapshot == 0)
                             or action == _SNAPSHOT):
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
                display_log.info("    Train net output #%d: %s = %s%s", index, name, _g(value),
                                 extra)
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
        display_log.info("Iteration %d, Testing net (#%d)", self.iter, test_net_id)
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
            display_log.info("Test loss: %s", _g(loss / n))
        weights = self._output_loss_weights(net)
        scores, index = {}, 0
        for name in net.outputs:
            means = sums.get(name, np.zeros(0)) / max(n, 1)
            scores[name] = float(means[0]) if means.size == 1 else means
            w = weights.get(name, 0)
            for value in means:
                extra = f" (* {_g(w)} = {_g(w * value)} loss)" if w else ''
                display_log.info("    Test net output #%d: %s = %s%s", index, name, _g(value),
                                 extra)
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
        if p.display and self.iter % p.display == 0 and distributed.root_solver():
            display_log.info("Iteration %d, lr = %s", self.iter, _g(rate))
        self._clip_gradients()
        n = len(self._params)
        for i, blob in enumerate(self._params):    # piece by piece (see update_piece)
            data, diff = blob.data.reshape(-1), blob.diff.reshape(-1)
            history = [h.reshape(-1) for h in self.history[i::n]]
            for start in range(0, blob.count, self.update_piece):
                part = slice(start, start + self.update_piece)
                d = diff[part]
                tmp = [t[:d.size] for t in self._scratch[blob.dtype]]
                self._normalize(d)
                self._regularize(i, data[part], d, tmp[0])
                self._compute_update_value(i, rate, d, [h[part] for h in history], tmp)
                data[part] -= d                    # Net::Update: data -= diff

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

    def _normalize(self, d):
        """diff /= iter_size on ``d``, a piece of a parameter's diff (Caffe's Normalize)."""
        n = self._param.iter_size
        if n != 1:
            d *= d.dtype.type(1) / d.dtype.type(n)

    def _regularize(self, i, w, d, tmp):
        """diff += local decay * (w, or sign(w) for L1) on pieces ``w`` and ``d`` of parameter
        ``i``'s data and diff, ``tmp`` scratch of their size (Caffe's Regularize)."""
        f = d.dtype.type
        decay = f(self._param.weight_decay) * f(self._multipliers[i][1])
        if not decay:
            return
        if self._param.regularization_type == 'L2':
            xp.multiply(w, decay, out=tmp)
        elif self._param.regularization_type == 'L1':
            xp.sign(w, out=tmp)
            tmp *= decay
        else:
            raise CaffeError(f"{self._where}: unknown regularization_type "
                             f"{self._param.regularization_type!r}; use L2 or L1")
        d += tmp

    def _local_rate(self, i, rate):
        f = self._params[i].dtype.type
        return f(rate) * f(self._multipliers[i][0])

    def _divide_by_root(self, i, rate, d, h, tmp):
        """AdaGrad's and RMSProp's last step: d = local_rate * d / (sqrt(h) + delta),
        with ``tmp`` as scratch (Caffe's order of float32 operations)."""
        xp.sqrt(h, out=tmp)
        tmp += d.dtype.type(self._param.delta)
        xp.divide(d, tmp, out=tmp)
        xp.multiply(tmp, self._local_rate(i, rate), out=d)

    def _compute_update_value(self, i, rate, d, history, tmp):
        """Turn ``d``, a piece of parameter ``i``'s diff, into its update value in place
        (Caffe's ComputeUpdateValue): ``history`` holds the same piece of each of the
        parameter's history arrays, ``tmp`` ``scratch_arrays`` scratch arrays of its size."""
        raise NotImplementedError

    # -- snapshots (npcaffe.solver.snapshot) ---------------------------------------------------
    def _snapshot_filename(self, extension):
        return snapshot.filename(self, extension)

    def _check_snapshot_writable(self):
        if distributed.root_solver():              # the one that writes them (Caffe's check)
            snapshot.check_writable(self)

    def snapshot(self):
        """Write ``{prefix}_iter_{iter}.caffemodel`` and then ``.solverstate`` (each to a
        temporary name, renamed into place); with ``snapshot_format: HDF5``,
        ``.caffemodel.h5`` and ``.solverstate.h5`` in Caffe's HDF5 layout (see
        :mod:`npcaffe.hdf5`). Returns the solver state's path. Only the root solver (rank
        0) writes snapshots, as in Caffe."""
        if not distributed.root_solver():
            raise CaffeError(f"snapshots are written by the root solver (rank 0) only; this is "
                             f"rank {distributed.solver_rank()} of {distributed.solver_count()}")
        return snapshot.write(self)

    def restore(self, state_file):
        """Continue from a ``.solverstate`` or ``.solverstate.h5`` (Caffe's or ours): iteration,
        current_step, history and the weights of its ``learned_net``."""
        snapshot.restore(self, state_file)

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
