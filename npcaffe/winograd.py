"""Winograd's minimal filtering F(2x2, 3x3) for 3x3 convolutions with stride 1 (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016).

Each 2x2 block of outputs comes from a 4x4 tile of the (padded) input, tiles overlapping by 2:

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, per input/output channel pair)

    B^T = [[1, 0,-1, 0],      G = [[ 1,   0,   0 ],      A^T = [[1, 1, 1, 0],
           [0, 1, 1, 0],           [1/2, 1/2, 1/2],             [0, 1,-1,-1]]
           [0,-1, 1, 0],           [1/2,-1/2, 1/2],
           [0, 1, 0,-1]]           [ 0,   0,   1 ]]

Summed over input channels, the 16 elementwise products become 16 GEMMs, (Cout x Cin) @
(Cin x tiles): 16 multiplications per 4 outputs instead of 36, at the price of the input and
output transforms (additions over whole arrays). On one core this pays from 256 channels on
(FCN's conv3 1.1x, conv4 1.4x, conv5 1.25x against im2col + GEMM), not below (the transforms
cost more than the GEMM saves at 64 channels). The rounding error stays within a few units of
float32 (relative 1e-6 of the largest output against the direct sum).

Layout: the padded input is stored with its columns split into even and odd (``phase_split``),
so that every transform step reads and writes contiguous rows; a band of tile rows is
transformed, multiplied and transformed back at a time (cache-sized, one per worker).
"""
from npcaffe.arraymod import xp

_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def transform_weights(w):
    """U (16, M, C) = G g G^T for every (M, C, 3, 3) kernel g, index 4a + b."""
    m, c = w.shape[:2]
    g = xp.asarray(_G, dtype=w.dtype)
    kron = xp.kron(g, g)                                   # (16, 9): U[4a+b] = kron @ g.flat
    return xp.matmul(kron, w.reshape(m * c, 9).T).reshape(16, m, c)


def tiles(out_hw):
    """(tile rows, tile columns) covering an (Ho, Wo) output with 2x2 blocks."""
    return -(-out_hw[0] // 2), -(-out_hw[1] // 2)


def phase_split_shape(channels, out_hw):
    """Shape of the split padded input: (C, 2 th + 2, 2, tw + 1), [c, h, p, t] = pad[c, h, 2t+p]."""
    th, tw = tiles(out_hw)
    return channels, 2 * th + 2, 2, tw + 1


def phase_split(img, buf, pad):
    """Fill ``buf`` (``phase_split_shape``) with ``img`` (C, H, W) zero-padded by ``pad`` (and
    by zeros past it up to the tiles' extent); return ``buf``."""
    ph, pw = pad
    _, h, w = img.shape
    buf[...] = 0
    for p in (0, 1):
        first = (p - pw) % 2                  # the first input column landing on phase p
        start = (first + pw) // 2
        count = len(range(first, w, 2))
        buf[:, ph:ph + h, p, start:start + count] = img[:, :, first::2]
    return buf


def band_scratch_sizes(channels, outputs, tile_rows, tile_cols):
    """Elements of the work arrays :func:`conv_band` needs (input, product, output side)."""
    t = tile_rows * tile_cols
    return (4 * channels * tile_rows * 2 * (tile_cols + 1) + 16 * channels * t,
            16 * outputs * t, 12 * outputs * t)


def conv_band(split, u, out, t0, nt, work_in, work_mid, work_out, bias=None):
    """Rows [2 t0, 2 (t0 + nt)) of ``out`` (M, Ho, Wo) = the 3x3 convolution of the split
    input ``split`` (C, Hs, 2, tw + 1) with transformed weights ``u`` (16, M, C) [+ bias
    (M,)]; ``work_*`` are flat scratch arrays of ``band_scratch_sizes``."""
    c, m = split.shape[0], u.shape[1]
    tw = split.shape[3] - 1
    t = nt * tw
    # input transform, rows then columns: V[4a+b] = (B^T d B)[a, b] of every tile, (C, nt, tw)
    rows = split[:, 2 * t0:2 * t0 + 2 * nt + 2]                 # (C, 2nt+2, 2, tw+1)
    d = [rows[:, i:i + 2 * nt:2] for i in range(4)]             # each (C, nt, 2, tw+1)
    r = work_in[:4 * c * nt * 2 * (tw + 1)].reshape(4, c, nt, 2, tw + 1)
    xp.subtract(d[0], d[2], out=r[0])
    xp.add(d[1], d[2], out=r[1])
    xp.subtract(d[2], d[1], out=r[2])
    xp.subtract(d[1], d[3], out=r[3])
    even0, even1 = r[..., 0, :tw], r[..., 0, 1:]                # columns 2x and 2x + 2
    odd0, odd1 = r[..., 1, :tw], r[..., 1, 1:]                  # columns 2x + 1 and 2x + 3
    v = work_in[4 * c * nt * 2 * (tw + 1):][:16 * c * t].reshape(4, 4, c, nt, tw)
    xp.subtract(even0, even1, out=v[:, 0])
    xp.add(odd0, even1, out=v[:, 1])
    xp.subtract(even1, odd0, out=v[:, 2])
    xp.subtract(odd0, odd1, out=v[:, 3])
    # the 16 GEMMs
    prod = work_mid[:16 * m * t].reshape(4, 4, m, t)
    xp.matmul(u, v.reshape(16, c, t), out=prod.reshape(16, m, t))
    # output transform, rows then columns: Y[i, j] (M, nt, tw) = output (2 t + i, 2 x + j)
    s = work_out[:8 * m * t].reshape(2, 4, m, t)
    xp.add(prod[0], prod[1], out=s[0])
    s[0] += prod[2]
    xp.subtract(prod[1], prod[2], out=s[1])
    s[1] -= prod[3]
    y = work_out[8 * m * t:][:4 * m * t].reshape(2, 2, m, t)
    for i in (0, 1):
        xp.add(s[i, 0], s[i, 1], out=y[i, 0])
        y[i, 0] += s[i, 2]
        xp.subtract(s[i, 1], s[i, 2], out=y[i, 1])
        y[i, 1] -= s[i, 3]
    if bias is not None:
        y += bias.reshape(1, 1, m, 1)
    ho, wo = out.shape[1:]
    y = y.reshape(2, 2, m, nt, tw)
    for i in (0, 1):
        rows_i = len(range(2 * t0 + i, min(ho, 2 * (t0 + nt)), 2))
        for j in (0, 1):
            cols_j = len(range(j, wo, 2))
            out[:, 2 * t0 + i:2 * (t0 + rows_i) + i:2, j::2] = y[i, j, :, :rows_i, :cols_j]
