"""Snapshots: the caffemodel and solverstate Caffe writes (binary proto, or HDF5 with
``snapshot_format: HDF5``), each to a temporary name renamed into place, and restoring from
them. Functions of a Solver (its parameters, history arrays, iteration and nets)."""
import logging
import os
from pathlib import Path

from npcaffe import formats, hdf5
from npcaffe.arraymod import xp
from npcaffe.errors import CaffeError, ModelFileError, SnapshotError, TrainingDivergedError
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

_SP = caffe_pb2.SolverParameter


def filename(solver, extension):
    """``{snapshot_prefix}_iter_{iter}{extension}``."""
    return f"{solver._param.snapshot_prefix}_iter_{solver.iter}{extension}"

def check_writable(solver):
    """Caffe's CheckSnapshotWritePermissions: create and remove a probe file beside where
    the snapshots will go; SnapshotError naming the folder if that fails."""
    probe = filename(solver, '.tempfile')
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
        raise SnapshotError(f"{solver._where}: cannot write snapshots: the folder "
                            f"{os.path.abspath(folder)} {reason} (snapshot_prefix "
                            f"{solver._param.snapshot_prefix!r}); create the folder or point "
                            f"snapshot_prefix elsewhere before training") from None

def write(solver):
    """Write ``{prefix}_iter_{iter}.caffemodel`` and then ``.solverstate`` (each to a
    temporary name, renamed into place); with ``snapshot_format: HDF5``,
    ``.caffemodel.h5`` and ``.solverstate.h5`` in Caffe's HDF5 layout (see
    :mod:`npcaffe.hdf5`). Returns the solver state's path."""
    p = solver._param
    for blob, name in zip(solver._params, solver._param_names):
        if not xp.isfinite(blob.data).all():
            message = (f"iteration {solver.iter}: parameter {name} holds NaN or infinite "
                       f"values, so no snapshot is written (the last good one, "
                       f"{solver._last_snapshot or 'none in this run'}, stays the newest); "
                       f"the learning rate is probably too high for the loss")
            log.error(message)
            raise TrainingDivergedError(message)
    as_hdf5 = p.snapshot_format == _SP.HDF5
    model = filename(solver, '.caffemodel.h5' if as_hdf5 else '.caffemodel')
    state_file = filename(solver, '.solverstate.h5' if as_hdf5 else '.solverstate')
    try:
        if as_hdf5:
            log.info("Snapshotting to HDF5 file %s", model)
            solver.net.save_hdf5(model, write_diff=p.snapshot_diff)
            log.info("Snapshotting solver state to HDF5 file %s", state_file)
            hdf5.write_solverstate(state_file, solver.iter, model, solver.current_step,
                                   solver.history)
        else:
            log.info("Snapshotting to binary proto file %s", model)
            solver.net.save(model, write_diff=p.snapshot_diff)
            log.info("Snapshotting solver state to binary proto file %s", state_file)
            state = caffe_pb2.SolverState(iter=solver.iter, learned_net=model,
                                          current_step=solver.current_step)
            formats.write_solverstate(state_file, state, solver.history)
    except OSError as exc:
        raise SnapshotError(f"snapshot at iteration {solver.iter} failed: {exc}") from exc
    solver._last_snapshot = state_file
    return state_file

def restore(solver, state_file):
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
    if len(history) != len(solver.history):
        raise ModelFileError(
            f"{state_file}: holds {len(history)} history blobs but this {solver.type} solver "
            f"keeps {len(solver.history)} ({solver.history_per_param} per learnable parameter "
            f"of {len(solver._params)}); was it written by another solver type or net?")
    arrays = []
    for k, (saved, mine) in enumerate(zip(history, solver.history)):
        if saved.data.size != mine.size:
            name = solver._param_names[k % len(solver._params)]
            raise ModelFileError(f"{state_file}: history blob {k} ({name}) has shape "
                                 f"{saved.shape}, the parameter {mine.shape}")
        arrays.append(saved.data.reshape(mine.shape))
    if state.learned_net:
        solver.net.copy_from(find_learned_net(state.learned_net, state_file))
    for mine, saved in zip(solver.history, arrays):
        mine[...] = saved
    solver.iter = state.iter
    solver.current_step = state.current_step
    log.info("Restored solver state from %s: iteration %d", state_file, solver.iter)

def find_learned_net(learned_net, state_file):
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
