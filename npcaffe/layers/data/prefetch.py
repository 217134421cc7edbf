"""Background batch loading and the layer base built on it (Caffe's
BasePrefetchingDataLayer). A :class:`Prefetcher`'s thread calls ``load()``
ahead of the net and keeps up to ``depth`` batches in a queue; ``next()`` hands them out in
order. ``depth`` 0 loads in the caller's thread (no thread at all).

An exception raised by ``load()`` stops the thread and is raised again, with its own type and
message, by the ``next()`` that would have received that batch (and every later one). The
thread holds only ``load`` (never the layer), so a layer that owns a Prefetcher can be garbage
collected; the layer registers ``stop`` with ``weakref.finalize``. ``stop()`` is idempotent.

Example::

    p = Prefetcher(loader.load_batch, depth=4, name="layer 'data'")
    data, labels = p.next()
    p.stop()
"""
import logging
import queue
import threading
import weakref

import numpy as np

from npcaffe import filler
from npcaffe.layers.base import Layer
from npcaffe.layers.data.transformer import DataTransformer
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

_POLL_S = 0.1


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class Prefetcher:
    def __init__(self, load, depth, name='data'):
        self._load = load
        self._depth = int(depth)
        self._failure = None
        if self._depth <= 0:
            self._thread = None
            return
        self._queue = queue.Queue(maxsize=self._depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prefetch {name}", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                item = self._load()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer as is
                item = _Failure(exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failure):
                return

    def next(self):
        """The next batch (waits for it); raises what ``load()`` raised."""
        if self._failure is not None:
            raise self._failure
        if self._thread is None:
            return self._load()
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("the prefetch thread has stopped") from None
        if isinstance(item, _Failure):
            self._failure = item.exc
            raise item.exc
        return item

    def stop(self):
        """Stop the thread and drop the queued batches."""
        if self._thread is None:
            return
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None


# ------------------------------------------------------------------------------------------
# the layer base shared by Data and ImageData
#: fields of data_param / image_data_param that old nets use instead of transform_param
_DEPRECATED_TRANSFORM = ('scale', 'mean_file', 'crop_size', 'mirror')


def layer_rng():
    """A generator for one layer, seeded from the engine's (``npcaffe.set_random_seed``,
    the solver's random_seed), as Caffe seeds each prefetch thread from caffe_rng_rand()."""
    return np.random.default_rng(int(filler.rng().integers(2 ** 63)))


def merged_transform_param(layer_param, own_param, where):
    """transform_param plus the deprecated transform fields of ``own_param`` (the layer's
    data_param / image_data_param) that it does not set itself: Caffe's upgrade moves them
    into transform_param for old (V1) nets; here they are honoured in every net, with a
    warning, rather than ignored."""
    merged = caffe_pb2.TransformationParameter()
    merged.CopyFrom(layer_param.transform_param)
    moved = [f for f in _DEPRECATED_TRANSFORM
             if own_param.HasField(f) and not merged.HasField(f)]
    for field in moved:
        setattr(merged, field, getattr(own_param, field))
    if moved:
        log.warning("%s: %s in %s is deprecated; using it as transform_param", where,
                    ', '.join(moved), own_param.DESCRIPTOR.name)
    return merged


def _shutdown(prefetcher, closers):
    prefetcher.stop()
    for close in closers:
        close()


class PrefetchingDataLayer(Layer):
    """Caffe's BasePrefetchingDataLayer: tops ``data`` and optionally ``label`` (float,
    (batch,)); batches come from a :class:`Prefetcher` ``prefetch`` deep.

    Subclasses implement ``open_source(top)`` returning ``(load_batch, item_shape,
    batch_size, prefetch_depth, closers)``; ``load_batch()`` returns ``(data, labels)``
    arrays and may run in another thread.
    """
    exact_bottoms = 0
    min_tops = 1
    max_tops = 2
    #: the *_param holding the deprecated transform fields
    own_param_name = None

    @property
    def where(self):
        return f"layer {self.name!r} ({self.type})"

    def setup(self, bottom, top):
        self.output_labels = len(top) > 1
        self.rng = layer_rng()
        own = getattr(self.layer_param, self.own_param_name)
        self.transformer = DataTransformer(
            merged_transform_param(self.layer_param, own, self.where), self.phase, self.rng,
            self.where)
        load, shape, batch_size, depth, closers = self.open_source(top)
        top[0].reshape((batch_size,) + tuple(shape))
        if self.output_labels:
            top[1].reshape(batch_size)
        log.info("%s: output data size: %s", self.where,
                 ','.join(map(str, (batch_size,) + tuple(shape))))
        self._prefetcher = Prefetcher(load, depth, self.where)
        self._finalizer = weakref.finalize(self, _shutdown, self._prefetcher, list(closers))

    def open_source(self, top):
        raise NotImplementedError

    def forward(self, bottom, top):
        data, labels = self._prefetcher.next()
        top[0].reshape(data.shape)
        top[0].data[...] = data
        if self.output_labels:
            top[1].reshape(labels.shape)
            top[1].data[...] = labels

    def close(self):
        """Stop prefetching and close the source now (also done when the layer is
        collected)."""
        self._finalizer()
