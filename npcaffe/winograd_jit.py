"""Compiled kernels (Numba) for Winograd's F(4x4, 3x3) transforms, used by
:func:`npcaffe.winograd.conv_band` when Numba is installed (the ``fast`` extra).

The NumPy path of :mod:`npcaffe.winograd` is the reference: it pads the band's rows, gathers
every 6x6 tile into a (6, 6, C, tiles) array, transforms it by two matrix products, and after
the GEMMs transforms back by two more and scatters the 4x4 blocks into the output: seven passes
over arrays 1 to 2.25 times the size of the input or output, which are memory-bound on the
small-channel layers (FCN's conv1_2: 64 channels at 573x698, the transforms take two thirds of
the layer). The two kernels here do the same arithmetic in one pass each, reading the input
(zero padding included) straight into the transformed tiles, and the products straight into the
output rows (bias included):

* :func:`input_tiles`: V[6 i + j, c, t] = (B^T d_t B)[i, j] for the band's tiles t;
* :func:`output_tiles`: out[ch, 4 ty + i, 4 tx + j] = (A^T P_t A)[i, j] + bias[ch].

Each is B^T (or A^T) applied along the tile's rows, then along its columns, with the matrices'
small integer coefficients written out (:data:`npcaffe.winograd.F4`); they release the GIL, so
the engine's worker threads run their bands at once. The results agree with the NumPy path to
float32 rounding (the sums are ordered differently; tests hold them to 1e-5 of the output).

``NPCAFFE_JIT=0`` in the environment (or :func:`set_enabled` (False)) turns them off. Numba
compiles them on first use (a few seconds) and caches the machine code beside this file (or in
Numba's per-user cache when this folder is read-only).
"""
import logging
import os

import numpy as np

log = logging.getLogger(__name__)

_kernels = None          # (input_tiles, output_tiles) once compiled, False if unavailable
_enabled = os.environ.get('NPCAFFE_JIT', '1').strip().lower() not in ('0', 'false', 'no', 'off')


def set_enabled(flag):
    """Use the compiled kernels (where Numba is installed) or, with False, the NumPy path."""
    global _enabled
    _enabled = bool(flag)


def kernels():
    """(input_tiles, output_tiles) when enabled and Numba imports, else None."""
    global _kernels
    if not _enabled:
        return None
    if _kernels is None:
        _kernels = _build() or False
    return _kernels or None


def _jit(fn):
    import numba
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:                 # no cache folder this process may write
        return numba.njit(nogil=True)(fn)


def _build():
    try:
        import numba  # noqa: F401
    except ImportError:
        log.debug("Numba is not installed: Winograd runs on the NumPy path")
        return None
    return _jit(_input_tiles), _jit(_output_tiles)


def _input_tiles(img, ph, pw, ty0, nt, tw, v):
    """v (36, C, nt*tw) = B^T d B for the 6x6 tiles of tile rows [ty0, ty0 + nt) of ``img``
    (C, H, W) zero-padded by (ph, pw); tile (ty, tx) starts at padded row 4 ty, column 4 tx."""
    cn, h, w = img.shape
    wp = 4 * tw + 2
    d = v.dtype.type
    rows = np.zeros((6, wp), v.dtype)            # the tile row's 6 padded input rows
    r = np.empty((6, wp), v.dtype)               # ... transformed along the rows
    lo, hi = pw, min(pw + w, wp)                 # where the image's columns land
    for c in range(cn):
        for ty in range(nt):
            y0 = 4 * (ty0 + ty) - ph
            for i in range(6):
                y = y0 + i
                if 0 <= y < h:
                    rows[i, lo:hi] = img[c, y, :hi - lo]
                else:
                    rows[i, lo:hi] = 0
            for x in range(wp):
                d0 = rows[0, x]
                d1 = rows[1, x]
                d2 = rows[2, x]
                d3 = rows[3, x]
                d4 = rows[4, x]
                d5 = rows[5, x]
                r[0, x] = d(4) * d0 - d(5) * d2 + d4
                r[1, x] = -d(4) * d1 - d(4) * d2 + d3 + d4
                r[2, x] = d(4) * d1 - d(4) * d2 - d3 + d4
                r[3, x] = -d(2) * d1 - d2 + d(2) * d3 + d4
                r[4, x] = d(2) * d1 - d2 - d(2) * d3 + d4
                r[5, x] = d(4) * d1 - d(5) * d3 + d5
            base = ty * tw
            for i in range(6):
                k = 6 * i
                for tx in range(tw):
                    x = 4 * tx
                    e0 = r[i, x]
                    e1 = r[i, x + 1]
                    e2 = r[i, x + 2]
                    e3 = r[i, x + 3]
                    e4 = r[i, x + 4]
                    e5 = r[i, x + 5]
                    t = base + tx
                    v[k, c, t] = d(4) * e0 - d(5) * e2 + e4
                    v[k + 1, c, t] = -d(4) * e1 - d(4) * e2 + e3 + e4
                    v[k + 2, c, t] = d(4) * e1 - d(4) * e2 - e3 + e4
                    v[k + 3, c, t] = -d(2) * e1 - e2 + d(2) * e3 + e4
                    v[k + 4, c, t] = d(2) * e1 - e2 - d(2) * e3 + e4
                    v[k + 5, c, t] = d(4) * e1 - d(5) * e3 + e5


def _output_tiles(prod, out, ty0, nt, tw, bias, has_bias):
    """Rows [4 ty0, 4 (ty0 + nt)) of ``out`` (M, Ho, Wo) = A^T P A (+ bias (M,) where
    ``has_bias``) for the products ``prod`` (36, M, nt*tw) of the band's tiles."""
    mo = prod.shape[1]
    ho, wo = out.shape[1], out.shape[2]
    d = prod.dtype.type
    half = np.empty((4, 6, tw), prod.dtype)      # transformed along the tile's rows
    y4 = np.empty((4, tw), prod.dtype)           # one output row's 4 phases
    full = min(tw, wo // 4)                      # tiles whose 4 columns are all inside
    for ch in range(mo):
        b = bias[ch] if has_bias else d(0)
        for ty in range(nt):
            base = ty * tw
            for j in range(6):
                for tx in range(tw):
                    t = base + tx
                    p0 = prod[j, ch, t]
                    p1 = prod[6 + j, ch, t]
                    p2 = prod[12 + j, ch, t]
                    p3 = prod[18 + j, ch, t]
                    p4 = prod[24 + j, ch, t]
                    p5 = prod[30 + j, ch, t]
                    half[0, j, tx] = p0 + p1 + p2 + p3 + p4
                    half[1, j, tx] = p1 - p2 + d(2) * p3 - d(2) * p4
                    half[2, j, tx] = p1 + p2 + d(4) * p3 + d(4) * p4
                    half[3, j, tx] = p1 - p2 + d(8) * p3 - d(8) * p4 + p5
            for i in range(4):
                y = 4 * (ty0 + ty) + i
                if y >= ho:
                    break
                for tx in range(tw):
                    q0 = half[i, 0, tx]
                    q1 = half[i, 1, tx]
                    q2 = half[i, 2, tx]
                    q3 = half[i, 3, tx]
                    q4 = half[i, 4, tx]
                    q5 = half[i, 5, tx]
                    y4[0, tx] = q0 + q1 + q2 + q3 + q4 + b
                    y4[1, tx] = q1 - q2 + d(2) * q3 - d(2) * q4 + b
                    y4[2, tx] = q1 + q2 + d(4) * q3 + d(4) * q4 + b
                    y4[3, tx] = q1 - q2 + d(8) * q3 - d(8) * q4 + q5 + b
                row = out[ch, y]
                for tx in range(full):
                    row[4 * tx] = y4[0, tx]
                    row[4 * tx + 1] = y4[1, tx]
                    row[4 * tx + 2] = y4[2, tx]
                    row[4 * tx + 3] = y4[3, tx]
                for x in range(4 * full, wo):
                    row[x] = y4[x - 4 * full, full]

