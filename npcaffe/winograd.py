"""Winograd's minimal filtering F(m x m, 3x3) for 3x3 convolutions with stride 1 (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016), for output tiles of m = 2 and m = 4.

Each m x m block of outputs comes from an a x a tile (a = m + 2) of the zero-padded input, tiles
overlapping by 2:

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, per input/output channel pair)

Summed over input channels, the a^2 elementwise products become a^2 GEMMs, (Cout x Cin) @
(Cin x tiles): a^2 multiplications per m^2 outputs instead of 9 m^2, at the price of the input
and output transforms, which cost in proportion to Cin + Cout while the GEMMs cost Cin * Cout.

    F(2x2, 3x3): 16 / 4 = 4 multiplications an output (2.25x fewer than 9)
    F(4x4, 3x3): 36 / 16 = 2.25 multiplications an output (4x fewer)

The matrices (F(2x2): points 0, 1, -1; F(4x4): points 0, 1, -1, 2, -2, as in Lavin & Gray)::

    F(2x2): B^T = [[1, 0,-1, 0],   G = [[1, 0, 0],        A^T = [[1, 1, 1, 0],
                   [0, 1, 1, 0],        [1/2, 1/2, 1/2],          [0, 1,-1,-1]]
                   [0,-1, 1, 0],        [1/2,-1/2, 1/2],
                   [0, 1, 0,-1]]        [0, 0, 1]]

    F(4x4): B^T = [[4, 0,-5, 0, 1, 0],   G = [[ 1/4,    0,    0],   A^T = [[1, 1, 1, 1, 1, 0],
                   [0,-4,-4, 1, 1, 0],        [-1/6, -1/6, -1/6],          [0, 1,-1, 2,-2, 0],
                   [0, 4,-4,-1, 1, 0],        [-1/6,  1/6, -1/6],          [0, 1, 1, 4, 4, 0],
                   [0,-2,-1, 2, 1, 0],        [1/24, 1/12,  1/6],          [0, 1,-1, 8,-8, 1]]
                   [0, 2,-1,-2, 1, 0],        [1/24,-1/12,  1/6],
                   [0, 4, 0,-5, 0, 1]]        [   0,    0,    1]]

The larger tile's transforms have larger coefficients, so its float32 rounding error is larger:
measured on FCN-like data (inputs ~50, weights ~0.1, 512 channels), the largest difference from
the exact (float64) product is 3.3e-7 (F(2x2)) and 4.4e-6 (F(4x4)) of the largest output
(float32 im2col + GEMM: 1.8e-7); the tiny golden FCNs with F(4x4) on every 3x3 layer stay
within 3.0e-6 forward and 1.9e-5 backward of BVLC Caffe (tolerances 1e-4 and 1e-3).

Every step is a matrix product, so that each runs as one BLAS call over a whole band of tiles:
a band of ``nt`` tile rows (all ``tw`` tile columns) pads its own rows of the input (no
padded copy of the whole input is kept), gathers its tiles as d (a, a, C, nt, tw) (one strided
copy), transforms them by V = B^T d B (two products with B^T, over the tile's rows then its
columns), multiplied (the a^2 GEMMs U (a^2, M, C) @ V (a^2, C, t)),
transformed back by A^T . A and written into the output's m x m phases (with the bias). Bands
are cache-sized and run one per worker. Where Numba is installed, F(4x4)'s transforms run as
two compiled kernels instead (:mod:`npcaffe.winograd_jit`: input to V in one pass, products to
the output in another; the GEMMs stay BLAS); this NumPy path is their reference.
"""
from collections import namedtuple

import numpy as np

from npcaffe import winograd_jit
from npcaffe.arraymod import xp

_as_strided = xp.lib.stride_tricks.as_strided

#: One Winograd variant: output tile m, input tile a = m + 2, and its three matrices.
Variant = namedtuple('Variant', 'm a bt g at')

F2 = Variant(2, 4,
             bt=((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
             g=((1, 0, 0), (.5, .5, .5), (.5, -.5, .5), (0, 0, 1)),
             at=((1, 1, 1, 0), (0, 1, -1, -1)))
F4 = Variant(4, 6,
             bt=((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
                 (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
             g=((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
                (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
             at=((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0),
                 (0, 1, -1, 8, -8, 1)))
VARIANTS = {2: F2, 4: F4}


#: Kernels transformed per float64 product in :func:`transform_weights` (keeps its float64
#: temporaries, 36 x this many, cache-sized: 512x512 kernels in 31 ms instead of 113 ms).
TRANSFORM_CHUNK = 8192


def transform_weights(w, variant, out=None, span=None):
    """U (a^2, M, C) = G g G^T for every (M, C, 3, 3) kernel g, index a*i + j; computed in
    float64 (G's 1/6 and 1/24 are not exact in float32) and stored in ``w``'s dtype.

    ``span`` (p0, p1) limits the work to the kernels p0 <= m*C + c < p1 (written into ``out``,
    which must then be given), so that workers can share a layer's kernels; returns ``out``.
    """
    m, c = w.shape[:2]
    if out is None:
        out = xp.empty((variant.a ** 2, m, c), w.dtype)
    g = np.asarray(variant.g, dtype=np.float64)
    kron = xp.asarray(np.kron(g, g))                          # (a^2, 9): U = kron @ g.flat
    flat_w, flat_u = w.reshape(m * c, 9), out.reshape(variant.a ** 2, m * c)
    p0, p1 = span if span is not None else (0, m * c)
    for q in range(p0, p1, TRANSFORM_CHUNK):
        r = min(q + TRANSFORM_CHUNK, p1)
        flat_u[:, q:r] = xp.matmul(kron, flat_w[q:r].T.astype(np.float64))
    return out


def tiles(out_hw, variant):
    """(tile rows, tile columns) covering an (Ho, Wo) output with m x m blocks."""
    m = variant.m
    return -(-out_hw[0] // m), -(-out_hw[1] // m)


def compiled_kernels(variant):
    """The compiled transforms (:mod:`npcaffe.winograd_jit`) :func:`conv_band` uses for
    ``variant``, or None (the NumPy path: no Numba, turned off, F(2x2), or another array
    module)."""
    if variant.m != 4 or xp is not np:
        return None
    return winograd_jit.kernels()


def band_scratch_sizes(channels, outputs, tile_rows, tile_cols, variant):
    """Elements of the four work arrays :func:`conv_band` needs: the band's padded input rows
    (C (m nt + 2) (m tw + 2)), two of the input side (a^2 C t each, t = tile_rows *
    tile_cols) and one of the product (a^2 M t and the output transform's half); with the
    compiled transforms only the second and the product's a^2 M t (the others are 0)."""
    m, a = variant.m, variant.a
    t = tile_rows * tile_cols
    if compiled_kernels(variant) is not None:
        return 0, a * a * channels * t, 0, a * a * outputs * t
    return (channels * (m * tile_rows + 2) * (m * tile_cols + 2), a * a * channels * t,
            a * a * channels * t, a * a * outputs * t + m * a * outputs * t)


def pad_rows(img, buf, pad, r0):
    """Fill ``buf`` (C, R, Wp) with rows [r0, r0 + R) of ``img`` (C, H, W) zero-padded by
    ``pad`` at the top left and by zeros past its end; return ``buf``."""
    ph, pw = pad
    _, h, w = img.shape
    rows = buf.shape[1]
    first, stop = max(r0 - ph, 0), min(r0 + rows - ph, h)         # the image rows inside
    if stop <= first:
        buf[...] = 0
        return buf
    top, bottom = first + ph - r0, stop + ph - r0
    buf[:, :top] = 0
    buf[:, bottom:] = 0
    buf[:, top:bottom, :pw] = 0
    buf[:, top:bottom, pw + w:] = 0
    buf[:, top:bottom, pw:pw + w] = img[:, first:stop]
    return buf


def conv_band(img, pad, u, out, t0, nt, work_pad, work_a, work_b, work_mid, variant,
              bias=None):
    """Rows [m t0, m (t0 + nt)) of ``out`` (M, Ho, Wo) = the 3x3 convolution of ``img``
    (C, H, W) zero-padded by ``pad``, with transformed weights ``u`` (a^2, M, C) [+ bias
    (M,)]; ``work_*`` are flat scratch arrays of ``band_scratch_sizes``."""
    m, a = variant.m, variant.a
    c, mo = img.shape[0], u.shape[1]
    tw = tiles(out.shape[1:], variant)[1]
    t = nt * tw
    jit = compiled_kernels(variant)
    if jit is not None:                        # the same steps, fused (npcaffe.winograd_jit)
        input_tiles, output_tiles = jit
        v = work_a[:a * a * c * t].reshape(a * a, c, t)
        input_tiles(img, pad[0], pad[1], t0, nt, tw, v)
        prod = work_mid[:a * a * mo * t].reshape(a * a, mo, t)
        xp.matmul(u, v, out=prod)
        output_tiles(prod, out, t0, nt, tw, img[:0, 0, 0] if bias is None else bias,
                     bias is not None)
        return
    bt = xp.asarray(variant.bt, dtype=img.dtype)
    at = xp.asarray(variant.at, dtype=img.dtype)
    # the band's padded rows, then the tiles: d[i, j, c, y, x] = band[c, m y + i, m x + j]
    band = pad_rows(img, work_pad[:c * (m * nt + 2) * (m * tw + 2)].reshape(
        c, m * nt + 2, m * tw + 2), pad, m * t0)
    s_c, s_h, s_w = band.strides
    d = work_a[:a * a * c * t].reshape(a, a, c, nt, tw)                # (a, a, C, nt, tw)
    xp.copyto(d, _as_strided(band, shape=(a, a, c, nt, tw),
                             strides=(s_h, s_w, s_c, m * s_h, m * s_w), writeable=False))
    # input transform: rows (index i) then columns (index j): V = B^T d B    (a, a, C t)
    rows = work_b[:a * a * c * t].reshape(a, a * c * t)
    xp.matmul(bt, d.reshape(a, a * c * t), out=rows)
    v = d.reshape(a, a, c * t)
    xp.matmul(bt, rows.reshape(a, a, c * t), out=v)
    # the a^2 GEMMs: P[k] (M, t) = U[k] (M, C) @ V[k] (C, t)
    prod = work_mid[:a * a * mo * t].reshape(a * a, mo, t)
    xp.matmul(u, v.reshape(a * a, c, t), out=prod)
    # output transform: rows then columns: Y = A^T P A                     (m, m, M, nt, tw)
    half = work_mid[a * a * mo * t:][:m * a * mo * t].reshape(m, a, mo * t)
    xp.matmul(at, prod.reshape(a, a * mo * t), out=half.reshape(m, a * mo * t))
    y = prod.reshape(-1)[:m * m * mo * t].reshape(m, m, mo * t)
    xp.matmul(at, half, out=y)
    y = y.reshape(m, m, mo, nt, tw)
    if bias is not None:
        y += bias.reshape(1, 1, mo, 1, 1)
    ho, wo = out.shape[1:]
    for i in range(m):
        rows_i = len(range(m * t0 + i, min(ho, m * (t0 + nt)), m))
        for j in range(m):
            cols_j = len(range(j, wo, m))
            out[:, m * t0 + i:m * (t0 + rows_i - 1) + i + 1:m, j::m] = \
                y[i, j, :, :rows_i, :cols_j]
