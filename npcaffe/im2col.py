"""im2col / col2im: the column transforms behind Caffe's convolution (src/caffe/util/im2col.cpp).

A 2-D convolution of a (C, H, W) image with a (kh, kw) kernel, stride (sh, sw), zero padding
(ph, pw) and dilation (dh, dw) is one matrix product ``W (M, C*kh*kw) @ col`` where

    col[(c*kh + i)*kw + j, ho*Wo + wo] = pad(img)[c, ho*sh + i*dh, wo*sw + j*dw]

(rows ordered channel, kernel row, kernel column, as Caffe's im2col_cpu), with
``Ho = (H + 2ph - (dh*(kh-1)+1)) // sh + 1`` (same for W). ``col2im`` is the adjoint: it adds
every column entry back into the (padded) image position it came from, so overlapping windows
sum up -- the backward-data pass of convolution and the forward pass of deconvolution.

Both transforms loop over the kh*kw kernel offsets (never over pixels): im2col is one strided copy
(a read-only ``as_strided`` view of the padded image), col2im is kh*kw strided adds, or, for large
kernels with dilation 1 (FCN's 16x16 and 64x64 upsampling kernels), ceil(kh/sh)*ceil(kw/sw) adds
of whole blocks of the image seen as sh x sw phases (a 64x64 kernel with stride 32 takes 4 adds
instead of 4096, which pays once the per-offset adds get small and many).

The functions work on a band of output rows ``[r0, r0 + nr)`` so that a caller can keep the
column buffer small (cache-sized) and interleave it with the GEMM, as a blocked Caffe would.
"""
from npcaffe.arraymod import xp

_as_strided = xp.lib.stride_tricks.as_strided

#: col2im adds whole phase blocks instead of single offsets from this many kernel offsets on.
#: Measured on 2 cores, 21-channel FCN deconvolutions (offsets vs phases): 4x4/2 0.65 vs 2.3 ms,
#: 8x8/4 6.9 vs 13.4 ms, 16x16/8 52 vs 53 ms, 64x64/32 90 vs 34 ms.
PHASE_MIN_OFFSETS = 256


def _use_phases(kernel, dilation):
    return dilation == (1, 1) and kernel[0] * kernel[1] >= PHASE_MIN_OFFSETS


def conv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Caffe's convolution output size: floor((size + 2p - (d(k-1)+1)) / s) + 1 (may be <= 0)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Caffe's deconvolution output size: s(size-1) + d(k-1) + 1 - 2p (may be <= 0)."""
    return stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * pad


def padded_into(img, buf, pad, zero_border=False):
    """Copy ``img`` (C, H, W) into the interior of ``buf`` (C, H+2ph, W+2pw); return ``buf``.

    The border of ``buf`` is zeroed with ``zero_border``, else left as it is (a caller that
    allocated it zeroed once). With no padding ``img`` itself is returned and ``buf`` is not
    touched.
    """
    ph, pw = pad
    if ph == 0 and pw == 0:
        return img
    _, h, w = img.shape
    if zero_border:
        buf[:, :ph] = 0
        buf[:, ph + h:] = 0
        buf[:, ph:ph + h, :pw] = 0
        buf[:, ph:ph + h, pw + w:] = 0
    buf[:, ph:ph + h, pw:pw + w] = img
    return buf


def im2col_rows(img_pad, col, kernel, stride, dilation, out_w, r0, nr):
    """Write the columns of output rows ``[r0, r0+nr)`` of a padded image into ``col``.

    Args:
        img_pad: (C, Hp, Wp) array, already zero-padded.
        col: contiguous (C*kh*kw, nr*out_w) array, overwritten.
        kernel, stride, dilation: (h, w) pairs.
        out_w: the output width Wo.
    """
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    c = img_pad.shape[0]
    s_c, s_h, s_w = img_pad.strides
    band = img_pad[:, r0 * sh:, :]
    # (C, kh, kw, nr, Wo) view: window offset (i, j) of output (ho, wo) is band[c, ho*sh + i*dh,
    # wo*sw + j*dw]; one copy fills the whole band of columns.
    windows = _as_strided(band, shape=(c, kh, kw, nr, out_w),
                          strides=(s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w), writeable=False)
    xp.copyto(col.reshape(c, kh, kw, nr, out_w), windows)
    return col


def col2im_buffer_shape(channels, padded_hw, kernel, stride, dilation, out_hw):
    """Shape of the accumulation buffer :func:`col2im_rows_add` needs: the padded image, enlarged
    where the phase-block view reaches past it (nothing is ever added there)."""
    hp, wp = padded_hw
    if _use_phases(kernel, dilation):
        (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
        hp = max(hp, (ho + -(-kh // sh) - 1) * sh)
        wp = max(wp, (wo + -(-kw // sw) - 1) * sw)
    return (channels, hp, wp)


def col2im_rows_add(col, img_acc, kernel, stride, dilation, out_w, r0, nr):
    """Add the columns of output rows ``[r0, r0+nr)`` back into the padded image ``img_acc``.

    Args:
        col: (C*kh*kw, nr*out_w) columns (as :func:`im2col_rows` lays them out).
        img_acc: (C, Hp, Wp) accumulator, shaped by :func:`col2im_buffer_shape`; added to.
    """
    kh, kw = kernel
    sh, sw = stride
    c = img_acc.shape[0]
    col5 = col.reshape(c, kh, kw, nr, out_w)            # (C, kh, kw, nr, Wo)
    if _use_phases(kernel, dilation):
        # Phase blocks: kernel row i = a*sh + b lands on image row (r0 + ho + a)*sh + b, so
        # for a fixed block (a, a2) every (b, b2) phase is one slab of an (.., sh, .., sw) view.
        ka, kb = -(-kh // sh), -(-kw // sw)
        hq, wq = nr + ka - 1, out_w + kb - 1
        band = img_acc[:, r0 * sh:(r0 * sh + hq * sh), :wq * sw]
        if band.shape[1] == hq * sh and band.shape[2] == wq * sw:
            phases = band.reshape(c, hq, sh, wq, sw)
            for a in range(ka):
                bh = min(sh, kh - a * sh)
                for a2 in range(kb):
                    bw = min(sw, kw - a2 * sw)
                    src = col5[:, a * sh:a * sh + bh, a2 * sw:a2 * sw + bw]  # (C,bh,bw,nr,Wo)
                    dst = phases[:, a:a + nr, :bh, a2:a2 + out_w, :bw]       # (C,nr,bh,Wo,bw)
                    xp.add(dst, src.transpose(0, 3, 1, 4, 2), out=dst)
            return img_acc
    dh, dw = dilation
    for i in range(kh):
        h0 = r0 * sh + i * dh
        for j in range(kw):
            w0 = j * dw
            dst = img_acc[:, h0:h0 + sh * (nr - 1) + 1:sh, w0:w0 + sw * (out_w - 1) + 1:sw]
            xp.add(dst, col5[:, i, j], out=dst)
    return img_acc


def im2col(img, kernel, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """The whole column matrix (C*kh*kw, Ho*Wo) of one (C, H, W) image (a convenience for tests
    and one-off uses; the layers work in bands with reused buffers)."""
    c, h, w = img.shape
    ho = conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
    wo = conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
    buf = xp.zeros((c, h + 2 * pad[0], w + 2 * pad[1]), img.dtype)
    col = xp.empty((c * kernel[0] * kernel[1], ho * wo), img.dtype)
    return im2col_rows(padded_into(img, buf, pad), col, kernel, stride, dilation, wo, 0, ho)


def col2im(col, image_shape, kernel, stride=(1, 1), pad=(0, 0), dilation=(1, 1)):
    """The (C, H, W) image whose windows sum ``col`` (C*kh*kw, Ho*Wo) back: the adjoint of
    :func:`im2col` (a convenience for tests and one-off uses)."""
    c, h, w = image_shape
    ho = conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
    wo = conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
    hp, wp = h + 2 * pad[0], w + 2 * pad[1]
    acc = xp.zeros(col2im_buffer_shape(c, (hp, wp), kernel, stride, dilation, (ho, wo)),
                   col.dtype)
    col2im_rows_add(col, acc, kernel, stride, dilation, wo, 0, ho)
    return acc[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w].copy()
