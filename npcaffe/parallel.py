"""The engine's own threads: big loops split into independent pieces, one GEMM per piece.

Convolution runs as many GEMMs over bands of the column matrix (see :mod:`npcaffe.layers.conv`).
Instead of letting the BLAS split each GEMM across the cores (and spin between the small ones,
while the im2col copies run on one core), the bands themselves go to a pool of worker threads,
each doing its band's im2col, GEMM and bias with a single-threaded BLAS. NumPy releases the GIL
in both, so the cores stay busy with whole bands, and a core taken by another process only
means that the other workers take more bands (a static split of every GEMM waits for its
slowest half). Measured with FCN-8s at 500x375 on a 2-core machine with one other busy process:
forward 6.8 s with OpenBLAS's two threads per GEMM, 2.8 s with bands on two workers.

* :func:`parallel_map` runs ``fn(item)`` for every item on the workers (in the calling thread
  when there is one item or one worker) with the BLAS held to one thread meanwhile;
* :func:`scratch` hands out a per-thread work buffer that only grows, shared by all layers (as
  Caffe shares one column buffer), so memory does not grow with the number of layers.

The number of workers is the number of CPUs this process may run on, or ``NPCAFFE_THREADS``;
:func:`set_num_threads` changes it. The BLAS thread count is set through OpenBLAS's C API
(``openblas_set_num_threads``, as threadpoolctl does) and put back after each map. Where no
OpenBLAS is found (another BLAS, another platform), maps that call the BLAS run their items in
the calling thread, one after another, and the BLAS threads itself.
"""
import contextlib
import ctypes
import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from npcaffe.arraymod import xp

log = logging.getLogger(__name__)

_SET_NAMES = ('scipy_openblas_set_num_threads64_', 'scipy_openblas_set_num_threads',
              'openblas_set_num_threads64_', 'openblas_set_num_threads')
_GET_NAMES = ('scipy_openblas_get_num_threads64_', 'scipy_openblas_get_num_threads',
              'openblas_get_num_threads64_', 'openblas_get_num_threads')


def _default_threads():
    env = os.environ.get('NPCAFFE_THREADS')
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            log.warning("NPCAFFE_THREADS=%r is not a whole number; using the CPU count", env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                         # not Linux
        return os.cpu_count() or 1


def _find_openblas():
    """[(set, get)] C functions of every OpenBLAS loaded in this process (Linux)."""
    found = []
    try:
        with open('/proc/self/maps') as maps:
            paths = {line.split()[-1] for line in maps if 'openblas' in line.lower()}
    except OSError:
        return found
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SET_NAMES if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GET_NAMES if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
            found.append((setter, getter))
    return found


class _Workers:
    def __init__(self):
        self.threads = _default_threads()
        self.pool = None
        self.pool_pid = None
        self.blas = None                        # found lazily, after NumPy loaded its BLAS
        self.lock = threading.Lock()            # guards the pool and the BLAS setting
        self.holds = 0                          # blocks holding the BLAS at one thread
        self.saved = []                         # [(setter, thread count before)]
        self.local = threading.local()          # per-thread scratch; in_worker flag
        self.scratch_dicts = weakref.WeakSet()  # every live thread's scratch (release_scratch)


_state = _Workers()


def num_threads():
    """The number of worker threads the engine uses."""
    return _state.threads


def set_num_threads(n):
    """Use ``n`` worker threads from now on (1: everything in the calling thread)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    with _state.lock:
        if _state.pool is not None:
            _state.pool.shutdown(wait=True)
            _state.pool = None
        _state.threads = n


def _blas_controls():
    if _state.blas is None:
        _state.blas = _find_openblas()
        if not _state.blas:
            log.debug("no OpenBLAS found to hold at one thread; BLAS-heavy maps run serially")
    return _state.blas


@contextlib.contextmanager
def one_blas_thread():
    """Hold the BLAS at one thread inside the block (when the engine runs its own workers and
    the BLAS can be set): a BLAS call outside the workers would otherwise leave OpenBLAS's
    threads spinning for a while after it, on the cores the workers need."""
    controls = _blas_controls() if _state.threads > 1 else []
    if not controls:
        yield
        return
    with _state.lock:                # the first of nested or concurrent holds saves the count
        if _state.holds == 0:
            _state.saved = [(setter, getter()) for setter, getter in controls]
            for setter, _ in _state.saved:
                setter(1)
        _state.holds += 1
    try:
        yield
    finally:
        with _state.lock:            # the last one puts it back
            _state.holds -= 1
            if _state.holds == 0:
                for setter, count in _state.saved:
                    setter(count)


def parallel_map(fn, items, blas=True):
    """``[fn(item) for item in items]``, the items spread over the worker threads.

    The items must be independent (write disjoint outputs). With ``blas`` true, ``fn`` calls the
    BLAS, which is held to one thread meanwhile (see :func:`one_blas_thread`). Runs in the
    calling thread when there is one item, one worker, or (for ``blas``) no controllable BLAS,
    and when called from inside a worker (no nesting).
    """
    items = list(items)
    if getattr(_state.local, 'in_worker', False):
        return [fn(item) for item in items]
    with one_blas_thread() if blas else contextlib.nullcontext():
        if len(items) <= 1 or _state.threads <= 1 or (blas and not _blas_controls()):
            return [fn(item) for item in items]
        with _state.lock:
            if _state.pool is None or _state.pool_pid != os.getpid():
                # (a forked child inherits the pool object but not its threads: a new one)
                _state.pool = ThreadPoolExecutor(_state.threads, thread_name_prefix='npcaffe',
                                                 initializer=_mark_worker)
                _state.pool_pid = os.getpid()
            pool = _state.pool
        return list(pool.map(fn, items))


def _mark_worker():
    _state.local.in_worker = True


def scratch(name, count, dtype):
    """A flat work array of ``count`` elements of ``dtype`` for the calling thread.

    One buffer per (thread, name, dtype), grown when too small and never shrunk; its content is
    undefined. Valid until the same thread asks for the same name again: use it within one
    piece of work, never across layers' calls.
    """
    buffers = getattr(_state.local, 'buffers', None)
    if buffers is None:
        buffers = _state.local.buffers = _Scratch()
        with _state.lock:
            _state.scratch_dicts.add(buffers)      # weakly: a finished thread's goes with it
    key = (name, xp.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < count:
        buf = buffers[key] = None                  # free the old one first
        buf = buffers[key] = xp.empty(max(int(count), 1), dtype)
    return buf[:count]


class _Scratch(dict):
    """One thread's scratch buffers, {(name, dtype): array}: a dict that can be weakly
    referenced, hashed by identity."""

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def release_scratch():
    """Drop every thread's scratch buffers (they are allocated again when next asked for) and
    hand the C heap's free memory back to the system (glibc's ``malloc_trim``, where there is
    one): what a memory-saving pass (``Net(..., reuse_memory=True)``) does after its forward,
    so that memory one image needed is not held while the next one runs. Call it only while
    no work is running on the workers."""
    with _state.lock:
        for buffers in list(_state.scratch_dicts):
            buffers.clear()
    _malloc_trim()


def _malloc_trim():
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(None).malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):           # not glibc
            _trim = False
    if _trim:
        _trim(0)


_trim = None


def chunks(n, pieces, multiple=1):
    """Split range(n) into at most ``pieces`` contiguous (start, stop) ranges of nearly equal
    size, each boundary a multiple of ``multiple``."""
    units = -(-n // multiple)
    pieces = max(1, min(pieces, units))
    bounds = [min(n, (units * i // pieces) * multiple) for i in range(pieces + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def elementwise(fn, *arrays, min_elements=1 << 18):
    """``fn(*pieces)`` over matching ranges of the flattened ``arrays`` (contiguous, one
    size), on the worker threads when they are large; ``fn`` must work elementwise."""
    flat = [a.reshape(-1) for a in arrays]
    size = flat[0].size
    pieces = 2 * _state.threads if size >= min_elements else 1
    parallel_map(lambda rng: fn(*(a[rng[0]:rng[1]] for a in flat)),
                 chunks(size, pieces, multiple=1024), blas=False)
