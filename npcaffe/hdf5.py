"""Caffe's HDF5 files: ``.caffemodel.h5`` weights and ``.solverstate.h5`` solver states.

The layouts are those BVLC Caffe writes and reads (net.cpp ``ToHDF5`` /
``CopyTrainedLayersFromHDF5``, sgd_solver.cpp ``SnapshotSolverStateToHDF5`` /
``RestoreSolverStateFromHDF5``)::

    weights.caffemodel.h5
        data/<layer name>/0, 1, ...     float32 datasets in the blob's shape; one group per
                                        layer of the net (empty for layers without parameters);
                                        a parameter shared from another layer is not written
        diff/<layer name>/0, 1, ...     only with write_diff (every parameter, shared or not)

    state.solverstate.h5
        iter            int32 scalar
        learned_net     fixed-length, null-terminated string: the weights file written with it
        current_step    int32 scalar
        history/0 .. n-1  float32 datasets, the solver's history blobs in Caffe's order

Files are written to a temporary name beside the target and renamed into place, as the binary
writers in :mod:`npcaffe.formats` do. ``h5py`` is imported on first use, so the engine works
without it until an HDF5 file is asked for.
"""
import contextlib
import logging
import os

import numpy as np

from npcaffe.atomic import atomic_path
from npcaffe.errors import ModelFileError, WeightShapeError

log = logging.getLogger(__name__)

#: the 8-byte signature every HDF5 file starts with (at offset 0 when it has no user block)
HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'


def _h5py():
    try:
        import h5py
    except ImportError as exc:   # pragma: no cover - h5py is a dependency
        raise ImportError("reading or writing Caffe's HDF5 files needs h5py "
                          "(pip install h5py)") from exc
    return h5py


def is_hdf5(path):
    """True when ``path`` names an HDF5 weights file: it ends in ``.h5`` (Caffe's rule for
    weights and solver states) or its first bytes are the HDF5 signature (newer Caffe's
    ``H5Fis_hdf5``). A file that cannot be read counts as not HDF5."""
    path = str(path)
    if path.endswith('.h5'):
        return True
    try:
        with open(path, 'rb') as f:
            return f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


@contextlib.contextmanager
def _atomic_h5(path):
    """An h5py File open for writing at a temporary name; renamed to ``path`` on success."""
    h5py = _h5py()
    with atomic_path(path) as tmp, h5py.File(tmp, 'w') as f:
        yield f


def _open(path, what):
    """An h5py File open for reading; ModelFileError naming the file when that fails."""
    h5py = _h5py()
    path = str(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such {what} file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not a {what} file")
    try:
        return h5py.File(path, 'r')
    except OSError as exc:
        raise ModelFileError(f"{path}: not an HDF5 {what} ({exc}); binary Caffe files "
                             f"(.caffemodel, .solverstate) are read when the name does not "
                             f"end in .h5") from None


def _float_dataset(group, name, array):
    """A contiguous float32 dataset in the blob's shape (Caffe's hdf5_save_nd_dataset)."""
    group.create_dataset(name, data=np.ascontiguousarray(array, dtype='<f4'))


def _group_path(group, name):
    """The (sub)group for a layer name; a '/' in a name nests groups, as HDF5 paths do."""
    return group.require_group(name)


# ------------------------------------------------------------------------------------------
# weights
def write_weights(path, layers, write_diff=False):
    """Write ``layers`` = [(layer name, [(data, diff, owned)])] as a Caffe ``.caffemodel.h5``.

    ``owned`` is False for a parameter shared from another layer: Caffe writes only the owner's
    data, but every diff (when ``write_diff``).
    """
    with _atomic_h5(path) as f:
        data = f.create_group('data')
        diff = f.create_group('diff') if write_diff else None
        for name, blobs in layers:
            layer_data = _group_path(data, name)
            layer_diff = _group_path(diff, name) if write_diff else None
            for j, (values, grads, owned) in enumerate(blobs):
                if owned:
                    _float_dataset(layer_data, str(j), values)
                if write_diff:
                    _float_dataset(layer_diff, str(j), grads)


def _layer_groups(group, prefix=''):
    """Yield (layer name, group) for every layer group under ``group``: a group's own datasets
    are its layer's parameters; its subgroups are layers whose names continue with '/'."""
    h5py = _h5py()
    for key in group:                       # HDF5's link order: by name, as Caffe iterates
        item = group[key]
        if not isinstance(item, h5py.Group):
            continue
        name = prefix + key
        kinds = [isinstance(child, h5py.Group) for child in item.values()]
        if not all(kinds) or not kinds:   # datasets of its own, or an empty (param-less) layer
            yield name, item
        if any(kinds):
            yield from _layer_groups(item, name + '/')


def read_weights(path):
    """Read a ``.caffemodel.h5``: a list of (layer name, {index: float array}) in file order."""
    h5py = _h5py()
    with _open(path, 'HDF5 weights') as f:
        data = f.get('data')
        if not isinstance(data, h5py.Group):
            raise ModelFileError(f"{path}: an HDF5 file without the group 'data' is not Caffe "
                                 f"weights (Caffe writes data/<layer>/<index>)")
        layers = []
        for name, group in _layer_groups(data):
            blobs = {}
            for key, item in group.items():
                if isinstance(item, h5py.Dataset):
                    if not key.isdigit():
                        raise ModelFileError(f"{path}: layer {name!r} holds a dataset named "
                                             f"{key!r}; Caffe names parameter datasets 0, 1, "
                                             f"...")
                    blobs[int(key)] = _read_float(item, path)
            layers.append((name, blobs))
    return layers


def _read_float(dataset, path):
    kind = dataset.dtype.kind
    if kind not in 'fiu':
        raise ModelFileError(f"{path}: dataset {dataset.name} holds {dataset.dtype} values, "
                             f"not numbers")
    return np.asarray(dataset[()], dtype=dataset.dtype if kind == 'f' else np.float32)


# ------------------------------------------------------------------------------------------
# solver state
def _save_string(f, name, text):
    """A scalar fixed-length null-terminated string (Caffe's H5LTmake_dataset_string)."""
    h5py = _h5py()
    raw = text.encode('utf-8') + b'\0'
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dset = h5py.h5d.create(f.id, name.encode(), tid, space)
    dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw, dtype=f'S{len(raw)}'))


def write_solverstate(path, iteration, learned_net, current_step, history):
    """Write a Caffe ``.solverstate.h5``: iter, learned_net, current_step and history/<i>."""
    with _atomic_h5(path) as f:
        f.create_dataset('iter', data=np.int32(iteration))
        _save_string(f, 'learned_net', str(learned_net))
        f.create_dataset('current_step', data=np.int32(current_step))
        group = f.create_group('history')
        for i, array in enumerate(history):
            _float_dataset(group, str(i), array)


class SolverStateH5:
    """A ``.solverstate.h5`` as read: ``iter``, ``learned_net`` ('' when absent),
    ``current_step`` and ``history`` (float arrays in the order of their indices)."""

    def __init__(self, iteration, learned_net, current_step, history):
        self.iter, self.learned_net = iteration, learned_net
        self.current_step, self.history = current_step, history


def read_solverstate(path):
    """Read a Caffe ``.solverstate.h5`` into :class:`SolverStateH5`."""
    h5py = _h5py()
    with _open(path, 'HDF5 solver state') as f:
        if 'iter' not in f or not isinstance(f.get('history'), h5py.Group):
            raise ModelFileError(f"{path}: not a Caffe HDF5 solver state (it needs the dataset "
                                 f"'iter' and the group 'history')")
        iteration = int(f['iter'][()])
        current_step = int(f['current_step'][()]) if 'current_step' in f else 0
        learned_net = ''
        if 'learned_net' in f:
            value = f['learned_net'][()]
            learned_net = value.decode('utf-8').rstrip('\0') if isinstance(value, bytes) \
                else str(value)
        group = f['history']
        names = sorted(group, key=lambda k: int(k) if k.isdigit() else -1)
        if names != [str(i) for i in range(len(names))]:
            raise ModelFileError(f"{path}: the history group holds {sorted(group)}; Caffe "
                                 f"writes datasets named 0 .. n-1")
        history = [_read_float(group[k], path) for k in names]
    return SolverStateH5(iteration, learned_net, current_step, history)


# ------------------------------------------------------------------------------------------
# a Net's parameters (Caffe's Net::ToHDF5 / CopyTrainedLayersFromHDF5)
def _param_owned(net):
    """{(layer index, blob index): True when the parameter owns its data}."""
    return {key: owner < 0 for key, owner in zip(net._param_layer_indices,
                                                 net._param_owners)}

def save_net_weights(net, filename, write_diff=False):
    """Write the parameters as Caffe's HDF5 weights (``data/<layer>/<i>``; ``diff/...``
    too with ``write_diff``), whatever the file's extension (pycaffe's ``save_hdf5``).
    Parameters shared from another layer are written only with their owner, as Caffe
    does."""
    owned = _param_owned(net)
    layers = []
    for li, (name, layer) in enumerate(zip(net._layer_names, net.layers)):
        layers.append((name, [(blob.data, blob.diff if write_diff else None,
                               owned.get((li, j), True))
                              for j, blob in enumerate(layer.blobs)]))
    write_weights(filename, layers, write_diff)

def load_net_weights(net, filename):
    """Copy parameters from Caffe's HDF5 weights, matching layers by name (pycaffe's
    ``load_hdf5``, Caffe's CopyTrainedLayersFromHDF5): source layers absent here are
    ignored; a source layer may lack only parameters this net shares from another layer.
    Returns the names of the layers copied.

    Raises WeightShapeError (naming the file and the layer) for a count or shape mismatch.
    """
    where = str(filename)
    owned = _param_owned(net)
    copied = []
    for name, source in read_weights(filename):
        li = net._layer_index.get(name)
        if li is None:
            log.info("%s: ignoring source layer %s", where, name)
            continue
        target = net.layers[li].blobs
        if len(source) > len(target) or any(j >= len(target) for j in source):
            raise WeightShapeError(
                f"{where}: layer {name!r} has {len(source)} parameter datasets in the "
                f"weights but {len(target)} parameter blobs in the net; to learn this "
                f"layer from scratch instead, rename it in the prototxt")
        for j, dst in enumerate(target):
            if j not in source:
                if owned.get((li, j), True):
                    raise WeightShapeError(
                        f"{where}: layer {name!r} has no dataset {j} in the weights "
                        f"(data/{name}/{j}) but the net has {len(target)} parameter "
                        f"blobs there")
                continue            # shared in this net: the owner brings the values
            src = source[j]
            if tuple(src.shape) != tuple(dst.shape):
                raise WeightShapeError(
                    f"{where}: cannot copy parameter {j} of layer {name!r}: its shape is "
                    f"{' x '.join(map(str, src.shape)) or 'scalar'} in the weights but "
                    f"{dst.shape} in the net; to learn this layer from scratch instead, "
                    f"rename it in the prototxt")
            dst.data[...] = src
        if target:
            copied.append(name)
    log.info("%s: copied parameters of %d layer(s)", where, len(copied))
    return copied
