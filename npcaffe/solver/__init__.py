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
from npcaffe.errors import CaffeError, SnapshotError, TrainingDivergedError
from npcaffe.proto import caffe_pb2
from npcaffe.solver.base import Solver
from npcaffe.solver.params import copy_param, describe, read_solver_param, upgrade_solver_param
from npcaffe.solver.rules import (SOLVERS, AdaDeltaSolver, AdaGradSolver, AdamSolver,
                                  NesterovSolver, RMSPropSolver, SGDSolver)

__all__ = ['Solver', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
           'AdaDeltaSolver', 'AdamSolver', 'get_solver', 'solver_type_list',
           'read_solver_param', 'upgrade_solver_param', 'SnapshotError', 'TrainingDivergedError']


def solver_type_list():
    """Names of the solver types ``get_solver`` knows (SolverParameter.type)."""
    return SOLVERS.names()


def get_solver(solver_file):
    """The solver of the ``type`` a solver prototxt names (pycaffe's ``caffe.get_solver``).

    ``solver_file`` may also be a SolverParameter.
    """
    if isinstance(solver_file, caffe_pb2.SolverParameter):
        param = upgrade_solver_param(copy_param(solver_file))
    else:
        param = read_solver_param(solver_file)
    cls = SOLVERS.get(param.type)
    if cls is None:
        raise CaffeError(f"{describe(solver_file)}: {SOLVERS.unknown(param.type)}")
    return cls(solver_file)
