"""Tests of npcaffe/parallel.py: the engine's worker threads, the BLAS thread hold, scratch
buffers and range splitting."""
import threading

import numpy as np
import pytest

from npcaffe import parallel


@pytest.fixture
def two_threads():
    before = parallel.num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(before)


def test_chunks_cover_the_range_in_multiples():
    assert parallel.chunks(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert parallel.chunks(21, 4, multiple=8) == [(0, 8), (8, 16), (16, 21)]
    assert parallel.chunks(2, 5) == [(0, 1), (1, 2)]
    assert parallel.chunks(0, 3) == []


def test_parallel_map_keeps_order_and_uses_workers(two_threads):
    names = set()

    def work(i):
        names.add(threading.current_thread().name)
        return i * i
    assert parallel.parallel_map(work, range(8), blas=False) == [i * i for i in range(8)]
    assert any(name.startswith('npcaffe') for name in names)


def test_single_item_and_one_thread_run_inline(two_threads):
    main = threading.current_thread().name
    assert parallel.parallel_map(lambda _: threading.current_thread().name, [0]) == [main]
    parallel.set_num_threads(1)
    assert set(parallel.parallel_map(lambda _: threading.current_thread().name,
                                     range(4))) == {main}


def test_no_nesting_inside_a_worker(two_threads):
    def outer(i):
        return parallel.parallel_map(lambda j: (threading.current_thread().name, i + j),
                                     range(2))
    for inner in parallel.parallel_map(outer, range(3), blas=False):
        assert len({name for name, _ in inner}) == 1      # the worker ran both itself


def test_blas_held_at_one_thread_and_restored(two_threads):
    controls = parallel._blas_controls()
    if not controls:            # another BLAS: maps that call it run in the calling thread
        main = threading.current_thread().name
        assert set(parallel.parallel_map(lambda _: threading.current_thread().name,
                                         range(4))) == {main}
        return
    before = [getter() for _, getter in controls]
    seen = parallel.parallel_map(lambda _: [getter() for _, getter in controls], range(4))
    assert all(counts == [1] * len(controls) for counts in seen)
    with parallel.one_blas_thread():
        with parallel.one_blas_thread():
            assert [getter() for _, getter in controls] == [1] * len(controls)
        assert [getter() for _, getter in controls] == [1] * len(controls)
    assert [getter() for _, getter in controls] == before


def test_scratch_is_per_thread_and_grows():
    a = parallel.scratch('t', 10, np.float32)
    b = parallel.scratch('t', 5, np.float32)
    assert b.base is a.base or b.base is a           # the same buffer, reused
    c = parallel.scratch('t', 100, np.float32)
    assert c.size == 100 and c.dtype == np.float32
    assert parallel.scratch('t', 3, np.float64).dtype == np.float64
    other = []
    t = threading.Thread(target=lambda: other.append(parallel.scratch('t', 100, np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], c)


def test_elementwise_matches_direct(two_threads):
    x = np.random.default_rng(0).standard_normal((3, 1000, 300)).astype(np.float32)
    y = np.empty_like(x)
    parallel.elementwise(lambda a, b: np.maximum(a, 0, out=b), x, y, min_elements=1)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match='at least 1'):
        parallel.set_num_threads(0)


def test_a_forked_child_gets_its_own_workers(two_threads):
    """The pool's threads do not survive fork: a child must not wait on them forever."""
    import multiprocessing
    parallel.parallel_map(lambda i: i, range(4), blas=False)       # the parent's pool exists
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(1) as pool:
        result = pool.apply_async(_child_map).get(timeout=60)
    assert result == [0, 1, 4, 9]


def _child_map():
    return parallel.parallel_map(lambda i: i * i, range(4), blas=False)


def test_release_scratch_drops_every_threads_buffers(two_threads):
    """After release_scratch, the main thread and the workers get new buffers (the old ones
    are no longer held)."""
    def grab(_):
        return parallel.scratch('t', 1000, np.float32)
    before = [grab(0)] + parallel.parallel_map(grab, range(4), blas=False)
    bases = {id(b.base) for b in before}
    parallel.release_scratch()
    after = [grab(0)] + parallel.parallel_map(grab, range(4), blas=False)
    assert not bases & {id(b.base) for b in after}
    assert all(b.size == 1000 for b in after)


def test_a_finished_threads_scratch_is_not_held():
    """release_scratch finds the live threads' buffers without keeping a finished thread's."""
    def work():
        parallel.scratch('t', 10, np.float32)
    before = len(parallel._state.scratch_dicts)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    del thread
    import gc
    gc.collect()
    assert len(parallel._state.scratch_dicts) == before
