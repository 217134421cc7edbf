"""The Data layer: batches of Datums read from an LMDB or LevelDB database (Caffe's DataLayer).

Example::

    layer { name: "mnist" type: "Data" top: "data" top: "label"
            transform_param { scale: 0.00390625 }
            data_param { source: "mnist_train_lmdb" batch_size: 64 backend: LMDB } }

Parameters (``data_param``): ``source`` (a database folder, relative to the working
directory), ``batch_size`` (required, > 0), ``backend`` (LEVELDB by default, as in Caffe),
``rand_skip`` (skip a random number in [0, rand_skip) of records at the start; Caffe removed
it, old nets still set it), ``prefetch`` (batches loaded ahead by a background thread, 4 by
default; 0 loads in forward). ``transform_param`` as :mod:`~npcaffe.layers.data.transformer`.

Behaviour (Caffe's): records are read in key order, and after the last one reading wraps to
the first, inside a batch (7 records, batch 3: [0,1,2] [3,4,5] [6,0,1] ...); the first Datum of
each batch gives the batch its item shape (encoded Datums are decoded as stored unless
force_color / force_gray); with one top the labels are not produced, with two the label top is
float, shape (batch,). Raw (uint8) and float (float_data) Datums are both read.

With several workers (``solver_count()`` N > 1, see :mod:`npcaffe.distributed`), a TRAIN-phase
layer of rank r keeps only the records whose running count (from the first record read,
across wraps) is r modulo N, so the workers share out the database (Caffe's DataLayer::Skip);
TEST-phase layers read every record (only the root solver tests).
"""
import logging

import numpy as np

from npcaffe import distributed
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import TEST
from npcaffe.layers.data import db as databases
from npcaffe.layers.data.image import datum_pixels
from npcaffe.layers.data.prefetch import PrefetchingDataLayer
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


class _RecordReader:
    """Datums from a cursor, wrapping to the first record, batched through a transformer.
    Used by one thread at a time (the prefetch thread after set-up)."""

    def __init__(self, cursor, source, transformer, batch_size, labels, where, share=(1, 0)):
        self.cursor, self.source, self.transformer = cursor, source, transformer
        self.batch_size, self.labels, self.where = batch_size, labels, where
        self.workers, self.rank = share         # keep record k when k % workers == rank
        self.offset = 0                          # records passed so far (Caffe's offset_)

    def skip(self):
        return self.offset % self.workers != self.rank

    def advance(self):
        self.offset += 1
        self.cursor.next()
        if not self.cursor.valid:
            log.debug("%s: restarting data prefetching from start", self.where)
            self.cursor.seek_first()

    def current(self):
        """(key, pixels (C, H, W), label) of the record under the cursor."""
        key = self.cursor.key
        what = f"record {key.decode(errors='replace')!r} of {self.source}"
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(self.cursor.value)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
            raise NetError(f"{self.where}: {what} is not a Datum ({exc})") from None
        if not datum.encoded:
            self.transformer.warn_force_on_raw()
        try:
            pixels = datum_pixels(datum, *self.transformer.decode_flags, where=what)
        except ValueError as exc:
            raise NetError(f"{self.where}: {exc}") from None
        return what, pixels, datum.label

    def load_batch(self):
        data = labels = None
        for i in range(self.batch_size):
            while self.skip():
                self.advance()
            what, pixels, label = self.current()
            if data is None:
                data = np.empty((self.batch_size,) + self.transformer.infer_shape(pixels.shape),
                                np.float32)
                labels = np.empty(self.batch_size, np.float32)
            self.transformer.transform(pixels, data[i], what)
            labels[i] = label
            self.advance()
        return data, labels if self.labels else None


@register('Data')
class DataLayer(PrefetchingDataLayer):
    """Batches of Datums from a database; see the module docstring."""
    own_param_name = 'data_param'

    def open_source(self, top):
        p = self.layer_param.data_param
        if not p.source:
            raise NetError(f"{self.where}: data_param needs a source (the database folder)")
        if p.batch_size <= 0:
            raise NetError(f"{self.where}: data_param needs a positive batch_size")
        backend = databases.backend_name(p.backend)
        try:
            database = databases.open_db(p.source, backend, 'read')
        except databases.DatabaseError as exc:
            raise NetError(f"{self.where}: {exc}") from None
        try:
            cursor = database.cursor()
            if not cursor.valid:
                raise NetError(f"{self.where}: the {backend.upper()} database {p.source} holds "
                               f"no records")
            share = ((1, 0) if self.phase == TEST else
                     (distributed.solver_count(), distributed.solver_rank()))
            reader = _RecordReader(cursor, p.source, self.transformer, p.batch_size,
                                   self.output_labels, self.where, share)
            if p.rand_skip:
                skip = int(self.rng.integers(p.rand_skip))
                log.info("%s: skipping the first %d data points", self.where, skip)
                for _ in range(skip):
                    reader.advance()
            _, pixels, _ = reader.current()
            shape = self.transformer.infer_shape(pixels.shape)
        except BaseException:
            database.close()
            raise
        return reader.load_batch, shape, p.batch_size, p.prefetch, [database.close]
