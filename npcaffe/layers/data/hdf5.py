"""HDF5Data (rows of HDF5 datasets as tops) and HDF5Output (bottoms written to an HDF5 file),
as Caffe's HDF5DataLayer and HDF5OutputLayer.

HDF5Data example::

    layer { name: "data" type: "HDF5Data" top: "data" top: "label"
            hdf5_data_param { source: "train_h5.txt" batch_size: 64 shuffle: true } }

``source`` is a text file of HDF5 file names, whitespace-separated, relative to the working
directory (not to the list). Top ``t`` reads the dataset named ``t`` of each file; all datasets
of a file share their first dimension; top shape = (batch_size,) + dataset.shape[1:]; values
become float32 (integer and double datasets too; other kinds are refused). Batches are filled
row by row across file boundaries, wrapping from the last file to the first. ``shuffle``
shuffles the file order at set-up and at every wrap, and the rows of each file whenever it is
(re)started (Caffe's order of shuffles; random numbers seeded from npcaffe.set_random_seed).
transform_param is refused (HDF5Data does not transform data).

HDF5Output example::

    layer { name: "out" type: "HDF5Output" bottom: "feat" bottom: "label"
            hdf5_output_param { file_name: "out.h5" } }

The file (relative to the working directory) is created, truncated, at set-up; the forward
writes bottom 0 as dataset ``data`` and bottom 1 as ``label`` (fixed names), float32, reshaped
to 4-D (num, channels, height, width). Like Caffe, one forward per net: a second one is an
error (Caffe aborts) rather than a silent overwrite.
"""
import logging
import os

import numpy as np

from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.layers.data.prefetch import layer_rng

log = logging.getLogger(__name__)


def _h5py():
    import h5py
    return h5py


def legacy_shape(shape, where):
    """Caffe's (num, channels, height, width) of a blob: its axes, then 1 for missing ones
    (Blob::LegacyShape; a (2,) blob is (2, 1, 1, 1))."""
    if len(shape) > 4:
        raise NetError(f"{where}: a blob of shape {shape} has more than 4 axes; HDF5Output "
                       f"writes 4-D (num, channels, height, width) datasets")
    return tuple(shape) + (1,) * (4 - len(shape))


def read_hdf5_list(source, where):
    """The HDF5 file names of a list file (whitespace-separated tokens)."""
    try:
        with open(source, encoding='utf-8') as f:
            names = f.read().split()
    except FileNotFoundError:
        raise NetError(f"{where}: the HDF5 file list {source} does not exist (it is read "
                       f"relative to the working directory)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NetError(f"{where}: cannot read the HDF5 file list {source} ({exc})") from None
    if not names:
        raise NetError(f"{where}: the HDF5 file list {source} names no file")
    return names


def load_hdf5_rows(path, names, where):
    """{name: float32 array} of the datasets ``names`` of the file ``path``, checked."""
    h5py = _h5py()
    if not os.path.isfile(path):
        raise NetError(f"{where}: the HDF5 file {path} does not exist (names in the list are "
                       f"relative to the working directory {os.getcwd()})")
    arrays = {}
    try:
        with h5py.File(path, 'r') as f:
            for name in names:
                if name not in f or not isinstance(f[name], h5py.Dataset):
                    raise NetError(f"{where}: {path} has no dataset {name!r} (each top reads "
                                   f"the dataset of its name; the file holds "
                                   f"{', '.join(sorted(f.keys())) or 'nothing'})")
                ds = f[name]
                if ds.dtype.kind not in 'fiub':
                    raise NetError(f"{where}: dataset {name!r} of {path} has type {ds.dtype}; "
                                   f"HDF5Data reads float and integer datasets only")
                if ds.ndim < 1:
                    raise NetError(f"{where}: dataset {name!r} of {path} is a scalar; it "
                                   f"needs at least 1 axis (rows)")
                arrays[name] = np.asarray(ds[()], dtype=np.float32)
    except OSError as exc:
        raise NetError(f"{where}: cannot read the HDF5 file {path} ({exc})") from None
    rows = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(rows.values())) > 1:
        raise NetError(f"{where}: the datasets of {path} have different numbers of rows "
                       f"{rows}; they must share the first dimension")
    if not next(iter(rows.values())):
        raise NetError(f"{where}: the datasets of {path} have no rows")
    return arrays


@register('HDF5Data')
class HDF5DataLayer(Layer):
    """Rows of HDF5 datasets; see the module docstring."""
    exact_bottoms = 0
    min_tops = 1

    @property
    def where(self):
        return f"layer {self.name!r} (HDF5Data)"

    def setup(self, bottom, top):
        if self.layer_param.HasField('transform_param'):
            raise NetError(f"{self.where}: HDF5Data does not transform data; remove "
                           f"transform_param")
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise NetError(f"{self.where}: hdf5_data_param needs a positive batch_size")
        self.batch_size, self.shuffle = p.batch_size, p.shuffle
        self.names = list(self.layer_param.top)
        self.files = read_hdf5_list(p.source, self.where)
        log.info("%s: %d HDF5 file(s) listed in %s", self.where, len(self.files), p.source)
        self.rng = layer_rng()
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self.current_file = 0
        self._load(self.files[self.file_order[0]])
        for blob, name in zip(top, self.names):
            blob.reshape((self.batch_size,) + self.arrays[name].shape[1:])

    def _load(self, path):
        self.arrays = load_hdf5_rows(path, self.names, self.where)
        self.rows = len(next(iter(self.arrays.values())))
        self.row_order = np.arange(self.rows)
        if self.shuffle:
            self.rng.shuffle(self.row_order)
        self.current_row = 0
        self.path = path

    def _next(self):
        self.current_row += 1
        if self.current_row == self.rows:
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        self.rng.shuffle(self.file_order)
                self._load(self.files[self.file_order[self.current_file]])
            self.current_row = 0
            if self.shuffle:
                self.rng.shuffle(self.row_order)

    def reshape(self, bottom, top):
        for blob, name in zip(top, self.names):
            shape = (self.batch_size,) + self.arrays[name].shape[1:]
            if blob.shape != shape:
                raise NetError(f"{self.where}: dataset {name!r} of {self.path} has rows of "
                               f"shape {shape[1:]}, the earlier files {blob.shape[1:]}")

    def forward(self, bottom, top):
        for i in range(self.batch_size):
            self.reshape(bottom, top)
            row = self.row_order[self.current_row]
            for blob, name in zip(top, self.names):
                blob.data[i] = self.arrays[name][row]
            self._next()


@register('HDF5Output')
class HDF5OutputLayer(Layer):
    """Writes bottoms 0 and 1 as datasets ``data`` and ``label``; see the module docstring."""
    exact_bottoms = 2
    exact_tops = 0

    @property
    def where(self):
        return f"layer {self.name!r} (HDF5Output)"

    def setup(self, bottom, top):
        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise NetError(f"{self.where}: hdf5_output_param needs a file_name")
        try:
            _h5py().File(self.file_name, 'w').close()
        except OSError as exc:
            raise NetError(f"{self.where}: cannot create {self.file_name} ({exc})") from None
        self._written = False

    def forward(self, bottom, top):
        data, label = bottom
        shapes = [legacy_shape(b.shape, self.where) for b in bottom]
        if shapes[0][0] != shapes[1][0]:
            raise NetError(f"{self.where}: the bottoms have {shapes[0][0]} and {shapes[1][0]} "
                           f"rows; "
                           f"data and label need the same number")
        if self._written:
            raise NetError(f"{self.where}: {self.file_name} already holds the datasets of an "
                           f"earlier forward; HDF5Output writes one batch per net (Caffe aborts "
                           f"here), so build a new net for the next batch")
        with _h5py().File(self.file_name, 'a') as f:
            for name, blob, legacy in zip(('data', 'label'), bottom, shapes):
                f.create_dataset(name, data=np.asarray(blob.data, np.float32).reshape(legacy))
        self._written = True
        log.info("%s: saved %d rows to %s", self.where, shapes[0][0], self.file_name)
