"""Image and label loading shared by the segmentation data layers, and their common base class.

Loading (pure NumPy + Pillow / SciPy; nothing here depends on the engine):

* ``load_image(path, mean)`` -> (3, H, W) float32: RGB -> BGR, mean subtracted, as the
  reference FCN layers feed Caffe;
* ``read_label_image(path)`` -> (H, W) integer indices from a P/L-mode PNG (RGB-coloured labels
  are refused with a pointer to ``fcn labels convert``);
* ``read_sbd_label(path)`` -> (H, W) uint8 from SBD's ``cls/*.mat`` (``GTcls.Segmentation``);
* ``check_label_values`` and ``check_same_size``: the label checks, with messages that name the
  files and values at fault;
* ``read_split(path)``: the ids of a split list.

``SegDataLayer`` is the base of ``layers.voc`` and ``layers.folder``: a Python layer with tops
``data`` (1, 3, H, W) and ``label`` (1, 1, H, W), one image per forward, whose subclasses only say
which parameters they take and where the samples are (a *source*). It keeps the reference
layers' order of samples (list order, or ``random.randint`` draws from ``seed``) and loads the
next samples ahead in a daemon thread (``Prefetcher``).
"""
import collections
import logging
import os
import queue
import random
import threading
from concurrent.futures import Future

import numpy as np

from fcn.backend import caffe
from layers.params import (Param, ParamError, boolean, mean_values, non_negative_integer,
                           optional, integer, parse_params)

__all__ = ['DataError', 'LABEL_CONVERT_HINT', 'INDEX_LABEL_MODES', 'load_image',
           'check_label_mode', 'read_label_image', 'read_sbd_label', 'check_label_values', 'check_same_size',
           'read_split', 'PairSource', 'Prefetcher', 'COMMON_PARAMS', 'SegDataLayer']

log = logging.getLogger(__name__)

#: PIL modes of index label images: palette indices (P), 8-bit grey (L), 16/32-bit integers
INDEX_LABEL_MODES = ('P', 'L', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', '1')
LABEL_CONVERT_HINT = ("convert RGB-coloured labels into index PNGs with "
                      "`fcn labels convert LABELS... --out DIR`")


class DataError(ValueError):
    """A dataset file that is missing, unreadable or inconsistent (the message names it)."""


# ------------------------------------------------------------------------------------------
# loading


def _open_image(path):
    from PIL import Image, UnidentifiedImageError
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    return image


def load_image(path, mean, mean_dtype=np.float64):
    """The image at ``path`` as Caffe input: (3, H, W) float32, BGR, ``mean`` (B, G, R)
    subtracted.

    RGB images are used as decoded (as the reference layers: ``np.array(Image.open(p),
    dtype=float32)``); other modes (grey, palette, RGBA, CMYK) are converted to RGB first. The
    mean is subtracted in float64 and rounded once to float32, as the reference's
    ``in_ -= np.array(mean)`` does; ``mean_dtype=np.float32`` subtracts a float32 mean in
    float32 instead, as the SIFT Flow, NYUDv2 and PASCAL-Context layers do.
    """
    image = _open_image(path)
    with image:
        if image.mode != 'RGB':
            image = image.convert('RGB')
        rgb = np.array(image, dtype=np.float32)           # (H, W, 3) RGB
    bgr = rgb[:, :, ::-1]                                   # (H, W, 3) BGR
    bgr = np.subtract(bgr, np.asarray(mean, dtype=mean_dtype)).astype(np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1))     # (3, H, W)


def _label_mode_error(path, mode):
    """The DataError for a label image of a mode that holds no class numbers (None if fine)."""
    if mode in INDEX_LABEL_MODES:
        return None
    if mode in ('RGB', 'RGBA'):
        return DataError(f"{path}: the label is an RGB-coloured image (mode {mode}), not an "
                         f"index image of class numbers; {LABEL_CONVERT_HINT}")
    return DataError(f"{path}: mode {mode} is not an index label (expected P or L mode PNG of "
                     f"class numbers)")


def check_label_mode(path):
    """DataError naming ``path`` when the label image is not an index image; reads only the
    file's header (fast enough to check a whole dataset before training)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            error = _label_mode_error(path, image.mode)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    if error is not None:
        raise error


def read_label_image(path):
    """The (H, W) integer array of the index label image at ``path`` (palette indices for P
    mode, grey values for L mode).

    Raises DataError naming the file for RGB-coloured labels (with a pointer to
    ``fcn labels convert``), other non-index modes and unreadable files.
    """
    image = _open_image(path)
    with image:
        error = _label_mode_error(path, image.mode)
        if error is not None:
            raise error
        label = np.array(image)
    return label.astype(np.uint8) if label.dtype == np.bool_ else label


def read_sbd_label(path):
    """The (H, W) uint8 class map of an SBD ``cls/<id>.mat`` file (struct ``GTcls``, field
    ``Segmentation``), as the reference ``SBDDSegDataLayer`` reads it."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the .mat file ({exc})") from None
    try:
        segmentation = mat['GTcls'][0]['Segmentation'][0]
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError(f"{path}: no GTcls.Segmentation in the .mat file ({exc})") from None
    return np.asarray(segmentation).astype(np.uint8)


def check_label_values(label, path, num_classes, ignore_label=None):
    """Raise DataError naming ``path`` and the values when ``label`` holds a value outside
    [0, num_classes) that is not ``ignore_label``."""
    values = np.unique(label)
    bad = values[((values < 0) | (values >= num_classes))
                 & ((values != ignore_label) if ignore_label is not None else True)]
    if bad.size:
        shown = ', '.join(str(int(v)) for v in bad[:10]) + (' ...' if bad.size > 10 else '')
        ignore = f" or the ignore label {ignore_label}" if ignore_label is not None else ''
        raise DataError(f"{path}: label value{'s' if bad.size > 1 else ''} {shown} "
                        f"outside [0, {num_classes}){ignore} "
                        f"({int(np.isin(label, bad).sum())} pixels); check num_classes and "
                        f"ignore_label, or the label image")


def check_same_size(image, image_path, label, label_path):
    """Raise DataError naming both files and sizes when the (3, H, W) image and the (H, W)
    label differ in size."""
    if image.shape[-2:] != label.shape[-2:]:
        (ih, iw), (lh, lw) = image.shape[-2:], label.shape[-2:]
        raise DataError(f"image {image_path} is {iw}x{ih} (width x height) but its label "
                        f"{label_path} is {lw}x{lh}")


def read_split(path):
    """The ids of a split list: the first word of each non-blank line, in file order."""
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: split list not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the split list ({exc})") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise DataError(f"{path}: the split list is empty")
    return ids


class PairSource:
    """The samples of a split, each an image file and a label file.

    Subclasses set ``ids`` and ``mean`` and implement ``paths(id)`` -> (image path, label path);
    they may override ``read_label(path)`` (default: an index PNG) and ``check_label(label,
    path)`` (default: no check). ``load(id)`` reads, checks and returns one sample.
    """

    ids = ()
    mean = (0.0, 0.0, 0.0)

    def paths(self, sample_id):
        raise NotImplementedError

    def read_label(self, label_path):
        return read_label_image(label_path)

    def check_label(self, label, label_path):
        """Raise DataError naming ``label_path`` for a label that cannot be used."""

    def check_label_file(self, label_path):
        """Raise DataError naming ``label_path`` when its header shows it cannot be a label
        (default: an image that is not an index image; .mat labels are not checked)."""
        if not str(label_path).lower().endswith('.mat'):
            check_label_mode(label_path)

    def load(self, sample_id):
        """((3, H, W) float32 image, (H, W) integer label) of ``sample_id``."""
        image_path, label_path = self.paths(sample_id)
        image = load_image(image_path, self.mean)                  # (3, H, W)
        label = self.read_label(label_path)                        # (H, W)
        check_same_size(image, image_path, label, label_path)
        self.check_label(label, label_path)
        return image, label


# ------------------------------------------------------------------------------------------
# loading ahead


def _prefetch_worker(requests):
    """Run (load, key, future) requests until the None sentinel (or interpreter exit)."""
    while True:
        request = requests.get()
        if request is None:
            return
        load, key, future = request
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(load(key))
        except BaseException as exc:  # handed to the consumer's thread by future.result()
            future.set_exception(exc)


class Prefetcher:
    """A FIFO of samples loaded ahead in one daemon thread.

    ``schedule(key)`` queues ``load(key)``; ``next()`` returns the result of the oldest scheduled
    key (waiting for it, re-raising its exception in the caller's thread). Results come back in
    the order keys were scheduled, so the sequence does not depend on thread timing. With
    ``threaded=False`` every load runs synchronously in ``next()``.

    The thread holds only the request queue, so a Prefetcher that is garbage collected stops its
    thread; an unpickled Prefetcher schedules the same keys again in a thread of its own.
    """

    def __init__(self, load, threaded=True):
        self._load = load
        self._threaded = threaded
        self._pending = collections.deque()        # (key, Future or None)
        self._requests = None
        self._thread = None

    def _start(self):
        self._requests = queue.SimpleQueue()
        self._thread = threading.Thread(target=_prefetch_worker, args=(self._requests,),
                                        name='seg-data-prefetch', daemon=True)
        self._thread.start()

    def schedule(self, key):
        """Start loading ``key`` in the background (in order after the earlier keys)."""
        future = None
        if self._threaded:
            if self._thread is None or not self._thread.is_alive():
                self._start()
            future = Future()
            self._requests.put((self._load, key, future))
        self._pending.append((key, future))

    def next(self):
        """(key, load(key)) for the oldest scheduled key."""
        if not self._pending:
            raise IndexError("no sample scheduled")
        key, future = self._pending.popleft()
        return key, (self._load(key) if future is None else future.result())

    def clear(self):
        """Forget every scheduled key (loads in flight finish and are dropped)."""
        for _, future in self._pending:
            if future is not None:
                future.cancel()
        self._pending.clear()

    @property
    def keys(self):
        return [key for key, _ in self._pending]

    def close(self):
        self.clear()
        if self._requests is not None:
            self._requests.put(None)
        self._requests = self._thread = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass

    def __getstate__(self):
        return {'load': self._load, 'threaded': self._threaded, 'keys': self.keys}

    def __setstate__(self, state):
        self.__init__(state['load'], state['threaded'])
        for key in state['keys']:
            self.schedule(key)


# ------------------------------------------------------------------------------------------
# the layer

#: the parameters every segmentation data layer takes (subclasses add where the data is)
COMMON_PARAMS = {
    'mean': Param(mean_values, required=True,
                  doc='(B, G, R) means subtracted from the image, e.g. (104.00699, 116.66877, '
                      '122.67892)'),
    'randomize': Param(boolean, default=True,
                       doc='draw samples at random (TRAIN phase only); default True'),
    'seed': Param(optional(integer), default=None,
                  doc='seed of the random order; default None (a different order every run)'),
    'prefetch': Param(non_negative_integer, default=2,
                      doc='samples loaded ahead in a background thread (0: load in forward); '
                          'default 2'),
}


_COUNTS = {1: 'one', 2: 'two', 3: 'three', 4: 'four'}


def _top_shape(array):
    """The top shape of one sample's array: (C, H, W) -> (1, C, H, W); (H, W) -> (1, 1, H, W)."""
    return (1, *array.shape) if array.ndim == 3 else (1, 1, *array.shape)


class SegDataLayer(caffe.Layer):
    """Base of the segmentation data layers: tops ``data`` (1, 3, H, W) float32 BGR minus mean
    and ``label`` (1, 1, H, W) class indices, one image per forward, no bottoms.

    Subclasses set ``PARAMS`` ({name: layers.params.Param}) and implement
    ``make_source(params)``, returning a ``PairSource``: ``ids`` (the list of sample ids),
    ``paths(id)`` (the files of one sample, checked to exist at setup) and ``load(id)`` ->
    ``((3, H, W) float32 image, (H, W) integer label)``. A layer with other tops overrides
    ``top_names(params)`` and its source's ``load`` returns one array per top, (C, H, W) or
    (H, W) (SIFT Flow: data, sem, geo; NYUDv2: the tops it is given).

    Order: with ``randomize`` (and ``self.random_allowed(params)``), the first sample and each
    next one are ``random.randint(0, len(ids) - 1)`` draws from a generator seeded with ``seed``
    (the reference layers' sequence, without touching the global ``random`` state); otherwise the
    ids in list order, wrapping around. ``reshape`` loads the current sample and shapes the tops
    to it; ``forward`` writes it and moves on. ``prefetch`` samples ahead are loaded in a daemon
    thread. ``reset()`` starts the sequence again from the beginning.

    Several workers (``caffe.solver_count()`` N > 1, TRAIN phase): rank r takes samples r,
    r + N, r + 2N, ... of that sequence, as Caffe's DataLayer shares out its records; give a
    ``seed`` with ``randomize`` so that all ranks follow one sequence.
    """

    PARAMS = COMMON_PARAMS

    # -- subclass hooks -------------------------------------------------------------------------
    def make_source(self, params):
        raise NotImplementedError

    def top_names(self, params):
        """The names of the layer's tops, in order (default data and label); the source's
        ``load(id)`` returns one array per top: (C, H, W) or (H, W) (shaped (1, 1, H, W))."""
        return ('data', 'label')

    def random_allowed(self, params):
        """Whether ``randomize`` may take effect: only in the TRAIN phase (a TEST net reads the
        list in order, so that evaluation is deterministic)."""
        phase = getattr(self, 'phase', None)
        return phase is None or phase == caffe.TRAIN

    # -- caffe.Layer ---------------------------------------------------------------------------
    def setup(self, bottom, top):
        where = type(self).__name__
        if len(bottom) != 0:
            raise ParamError(f"{where} is a data layer and takes no bottom (got {len(bottom)})")
        self.params = parse_params(self.param_str, self.PARAMS, where)
        names = tuple(self.top_names(self.params))
        if len(top) != len(names):
            count = _COUNTS.get(len(names), str(len(names)))
            listed = ', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1 else names[0]
            raise ParamError(f"{where} needs {count} top{'s' if len(names) > 1 else ''}, "
                             f"{listed} (got {len(top)})")
        self.mean = np.array(self.params['mean'], dtype=np.float64)
        self.source = self.make_source(self.params)
        self.indices = list(self.source.ids)
        if not self.indices:
            raise DataError(f"{where}: the split has no samples")
        self._check_files()
        self.random = bool(self.params['randomize']) and self.random_allowed(self.params)
        self.seed = self.params['seed']
        self.prefetch = self.params['prefetch']
        self._prefetcher = Prefetcher(self.source.load, threaded=self.prefetch > 0)
        self.reset()

    def reset(self):
        """Start the sequence again: the first sample of the list, or the first draw after
        seeding with ``seed``."""
        self._rng = random.Random(self.seed)
        self._share = self._worker_share()
        self._prefetcher.clear()
        self._current = None
        self.idx = self._draw(None)
        self._upcoming = collections.deque([self.idx])
        self._prefetcher.schedule(self.indices[self.idx])
        for _ in range(max(self.prefetch, 0)):
            self._schedule_next()

    def reshape(self, bottom, top):
        for blob, array in zip(top, self._sample()):
            blob.reshape(*_top_shape(array))             # (1, C, H, W) / (1, 1, H, W)

    def forward(self, bottom, top):
        for blob, array in zip(top, self._sample()):
            blob.reshape(*_top_shape(array))
            blob.data[...] = array.reshape(_top_shape(array))
        # move on to the next sample
        self._current = None
        self._schedule_next()
        self._upcoming.popleft()
        self.idx = self._upcoming[0]

    def backward(self, top, propagate_down, bottom):
        """A data layer has no gradient."""

    # -- toolkit hooks (fcn.train) ---------------------------------------------------------------
    def check_labels(self):
        """DataError naming the first label file of the split that is not an index image (an
        RGB-coloured label, say), from the files' headers only: run before training."""
        for sample_id in dict.fromkeys(self.indices):
            self.source.check_label_file(self.source.paths(sample_id)[1])

    def get_state(self):
        """Where the sequence stands between two forwards, as JSON-able data: the samples
        drawn ahead (the next one first) and the random generator after drawing them."""
        version, internal, gauss = self._rng.getstate()
        return {'upcoming': list(self._upcoming), 'rng': [version, list(internal), gauss]}

    def set_state(self, state):
        """Continue the sequence from a :meth:`get_state` (the same split and seed)."""
        upcoming = [int(i) for i in state['upcoming']]
        if not upcoming or not all(0 <= i < len(self.indices) for i in upcoming):
            raise DataError(f"{type(self).__name__}: the saved data position {upcoming[:3]} "
                            f"does not fit this split of {len(self.indices)} samples")
        version, internal, gauss = state['rng']
        self._rng.setstate((version, tuple(internal), gauss))
        self._prefetcher.clear()
        self._current = None
        self._upcoming = collections.deque(upcoming)
        self.idx = upcoming[0]
        for i in upcoming:
            self._prefetcher.schedule(self.indices[i])

    # -- helpers ----------------------------------------------------------------------------
    @property
    def current_id(self):
        """The id of the sample the next forward writes."""
        return self.indices[self.idx]

    def _worker_share(self):
        """(workers, rank) among which the sequence is shared: (1, 0) in the TEST phase."""
        if getattr(self, 'phase', None) == caffe.TEST:
            return 1, 0
        count = getattr(caffe, 'solver_count', None)      # absent in old pycaffe
        rank = getattr(caffe, 'solver_rank', None)
        return (count(), rank()) if count and rank else (1, 0)

    def _draw(self, idx):
        """This worker's next sample after ``idx`` (None: its first)."""
        workers, rank = self._share
        for _ in range(rank + 1 if idx is None else workers):
            idx = self._next_of_sequence(idx)
        return idx

    def _next_of_sequence(self, idx):
        if self.random:
            return self._rng.randint(0, len(self.indices) - 1)
        return 0 if idx is None else (idx + 1) % len(self.indices)

    def _schedule_next(self):
        nxt = self._draw(self._upcoming[-1])
        self._upcoming.append(nxt)
        self._prefetcher.schedule(self.indices[nxt])

    def _sample(self):
        """The current arrays (image, label, ...), loaded once however often reshape is
        called."""
        if self._current is None:
            sample_id, arrays = self._prefetcher.next()
            assert sample_id == self.current_id, (sample_id, self.current_id)
            self._current = tuple(arrays)
            log.debug("%s: sample %r, image %s", type(self).__name__, sample_id,
                      self._current[0].shape)
        return self._current

    def _check_files(self):
        """DataError naming the first missing file (and how many are missing) of the split."""
        missing = [p for sample_id in dict.fromkeys(self.indices)
                   for p in self.source.paths(sample_id) if not os.path.isfile(p)]
        if missing:
            more = f" (and {len(missing) - 1} more missing files)" if len(missing) > 1 else ''
            raise DataError(f"{type(self).__name__}: {missing[0]} does not exist{more}")
