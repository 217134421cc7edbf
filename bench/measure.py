"""Timing and memory helpers: medians, a child process for peak RSS, SGEMM throughput."""
import json
import statistics
import subprocess
import sys
import time

import numpy as np


def median_time(fn, repeat=3, warmup=1):
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` runs, in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sgemm_gflops(n=2048, repeat=5):
    """GFLOP/s of NumPy's float32 matrix product on n x n matrices (this run, this load)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    seconds = median_time(lambda: a @ b, repeat=repeat)
    return 2 * n ** 3 / seconds / 1e9


def peak_rss_mb():
    """This process's peak resident set size (VmHWM) in MB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def current_rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def in_child(code, timeout=1200):
    """Run Python ``code`` in a child (repository on sys.path); it prints one JSON object
    last; return it."""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
