"""Convolution and Deconvolution, as Caffe's BaseConvolutionLayer computes them.

Convolution (cross-correlation), per image and per group g::

    top[g] (Cout/g, Ho*Wo) = W[g] (Cout/g, Cin/g*kh*kw) @ im2col(bottom[g]) + bias
    Ho = floor((H + 2p - (d(k-1)+1)) / s) + 1            (same for W)

Deconvolution is convolution's backward-data pass used forward::

    top = col2im(W[g]^T (Cout/g*kh*kw, Cin/g) @ bottom[g]) + bias
    Ho = s(H-1) + d(k-1) + 1 - 2p

Weights are (Cout, Cin/g, kh, kw) for Convolution and (Cin, Cout/g, kh, kw) for Deconvolution;
the bias has num_output entries. Backward: bottom diffs are overwritten; weight and bias diffs
are accumulated (+=), as Caffe does.

Both share one engine over an "image side" (the side im2col reads: a convolution's bottom, a
deconvolution's top) and a "column side" (one matrix column per window: a convolution's top, a
deconvolution's bottom):

* ``_im2col_gemm``:  col_side = W @ im2col(image)         (conv forward, deconv backward-data)
* ``_gemm_col2im``:  image    = col2im(W^T @ col_side)    (conv backward-data, deconv forward)
* ``_weight_gemm``:  dW      += col_side @ im2col(image)^T (both)

The column matrix is built in bands of output rows, each band in a per-thread scratch buffer
shared by all layers (as Caffe shares one column buffer; see :mod:`npcaffe.parallel`), so that it
stays cache-sized and goes straight into one BLAS GEMM per group (``xp.matmul`` writes into the
strided band of the top, and the bias is added there while the band is in cache). The bands run
on the engine's worker threads, one single-threaded GEMM each; col2im and the weight gradient,
whose bands would add into the same memory, are split by image channel instead. Further:

* 1x1 kernels with stride 1 and no padding skip im2col: the image is its own column matrix;
  the GEMM is split by output channel;
* with stride 1, conv^T (backward-data, a deconvolution's forward) runs as the flipped
  convolution (kernel rotated, channels swapped, pad d(k-1) - p): one GEMM with the long
  K = out_ch*kh*kw and no col2im adds, where that costs no extra work;
* 3x3 stride-1 convolutions with many input channels on a large enough map use Winograd's
  F(4x4, 3x3) (:mod:`npcaffe.winograd`).
"""
from npcaffe import winograd
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError, WeightShapeError
from npcaffe.filler import fill
from npcaffe.im2col import (col2im_buffer_shape, col2im_rows_add, conv_out_size,
                            deconv_out_size, im2col_rows, padded_into)
from npcaffe.layers import Layer, register
from npcaffe.layers.base import TEST
from npcaffe.parallel import chunks, num_threads, parallel_map, scratch

#: Target size (elements) of one band of the column buffer: 4M floats = 16 MB in float32.
#: (FCN-8s's convolutions at 500x375 on 2 cores: 1.95 s with 2**20, 1.62 s with 2**22, 1.60 s
#: with 2**24; one core with a band per worker, conv1_2/conv2_2/conv3_2 forward: 85/106/129
#: GFLOP/s with 2**20, 93/114/129 with 2**22, 87/99/122 with 2**23. The band also bounds the
#: memory: one whole conv1_2 column matrix is 920 MB.)
COL_BAND_ELEMENTS = 1 << 22
#: A band has at least min(BAND_MIN_COLUMNS, 4 * rows of W) columns (whole rows), so that a GEMM
#: reads the weights once per many columns (fc6 as a convolution has 4096 x 25088 weights), and
#: a weight-gradient band at least BAND_MIN_COLUMNS, so that adding each band's (Cout, K)
#: product into the weight diff costs little next to the GEMM.
BAND_MIN_COLUMNS = 2048
#: The weight gradient's per-band product (out_ch x a range of K) is at most this many elements:
#: fc6's whole (4096 x 25088) product would be another 411 MB.
WEIGHT_TMP_ELEMENTS = 1 << 22
#: conv^T runs as the flipped convolution when the image side has at most this many times the
#: column side's positions (the flipped convolution's extra work).
FLIPPED_MAX_GROWTH = 1.1
#: 3x3 stride-1 convolutions (forward, and conv^T as the flipped convolution) of at least this
#: many input channels and output positions run as Winograd F(4x4, 3x3). On 2 cores (another
#: job's load on them), one layer's forward, im2col + GEMM vs F(4x4) with its compiled
#: transforms and kept weights, ms: 512 ch at 36x44 (FCN's conv5 at 500x375) 119/60, at 18x22
#: 33/32; 64 ch at 573x698 (conv1_2) 661/308; 256 -> 512 at 72x88 212/86; 32 ch at 100x100
#: 5/4; but 3 ch at 573x698 (conv1_1) 67/100: the transforms cost more than the GEMM saves.
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_POSITIONS = 24 * 24
#: A Winograd band's transformed input (a^2 x channels x tiles) has at most this many elements
#: (2 cores, F(4x4), ms with 2**19/2**20/2**21: conv1_2 299/286/268, conv3 136/135/135, conv4
#: 305/230/245).
WINOGRAD_BAND_ELEMENTS = 1 << 20
#: ... but a band has at least this many tiles where the map has them: the a^2 GEMMs are (M x
#: C) @ (C x tiles), and narrow ones run slowly (512 channels, one core: 42 GFLOP/s with 44
#: tiles, 59 with 176, 63 with 396; SGEMM 66).
WINOGRAD_BAND_MIN_TILES = 192
#: Winograd's output tile m (2 or 4) by input channel count: (the least count, m), ascending.
#: F(4x4) wherever Winograd runs (see above); F(2x2) is kept as the more exact variant.
WINOGRAD_TILES = ((0, 4),)


def winograd_tile(channels):
    """The output tile m of the Winograd variant for ``channels`` input channels."""
    return [m for least, m in WINOGRAD_TILES if channels >= least][-1]


#: The weight gradient is computed transposed below this many output channels (per group).
WEIGHT_GEMM_TRANSPOSED_BELOW = 256


def _spatial_pair(layer, cp, field, default):
    """(h, w) of a repeated field (``pad``/``kernel_size``/``stride``/``dilation``) or of its
    ``_h``/``_w`` pair, with Caffe's rules: given once (both axes) or once per spatial axis."""
    hw_names = {'kernel_size': ('kernel_h', 'kernel_w'), 'stride': ('stride_h', 'stride_w'),
                'pad': ('pad_h', 'pad_w')}.get(field)
    values = list(getattr(cp, field))
    if hw_names and (cp.HasField(hw_names[0]) or cp.HasField(hw_names[1])):
        if values:
            raise NetError(f"layer {layer.name!r}: give either {field} or "
                           f"{hw_names[0]}/{hw_names[1]}, not both")
        if field == 'kernel_size' and not (cp.HasField('kernel_h') and cp.HasField('kernel_w')):
            raise NetError(f"layer {layer.name!r}: kernel_h and kernel_w must both be given")
        return (getattr(cp, hw_names[0]), getattr(cp, hw_names[1]))
    if not values:
        if default is None:
            raise NetError(f"layer {layer.name!r} ({layer.type}) needs convolution_param "
                           f"kernel_size (or kernel_h and kernel_w)")
        return (default, default)
    if len(values) == 1:
        return (values[0], values[0])
    if len(values) == 2:
        return tuple(values)
    raise NotSupportedError(f"layer {layer.name!r}: {field} given {len(values)} times; only "
                            f"2-D convolution (once, or once per spatial axis) is supported")


class _BaseConvolution(Layer):
    """Shared setup/reshape and the im2col+GEMM engine of Convolution and Deconvolution.

    Several bottoms are allowed (all of one shape, Caffe's rule); top i is bottom i convolved with
    the same weights.
    """

    min_bottoms = 1
    min_tops = 1
    #: True for Deconvolution: im2col runs over the top, the GEMMs are transposed.
    reverse = False

    # -- setup -------------------------------------------------------------------------------
    def setup(self, bottom, top):
        cp = self.layer_param.convolution_param
        if len(top) != len(bottom):
            raise NetError(f"layer {self.name!r} ({self.type}) needs one top per bottom, got "
                           f"{len(bottom)} bottoms and {len(top)} tops")
        if cp.axis != 1:
            raise NotSupportedError(f"layer {self.name!r}: convolution_param axis {cp.axis} is "
                                    f"not supported (only axis: 1, channels before H, W)")
        shape = bottom[0].shape
        if len(shape) != 4:
            raise NotSupportedError(f"layer {self.name!r}: only 2-D convolution of 4-D blobs "
                                    f"(N, C, H, W) is supported; bottom shape is {shape} "
                                    f"(N-D kernel_size/spatial axes)")
        self.kernel = _spatial_pair(self, cp, 'kernel_size', None)
        self.stride = _spatial_pair(self, cp, 'stride', 1)
        self.pad = _spatial_pair(self, cp, 'pad', 0)
        self.dilation = _spatial_pair(self, cp, 'dilation', 1)
        for field, pair in (('kernel_size', self.kernel), ('stride', self.stride),
                            ('dilation', self.dilation)):
            if min(pair) <= 0:
                raise NetError(f"layer {self.name!r}: {field} must be positive, got {pair}")
        self.is_1x1 = self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)
        self._winograd_u = {}                    # see _transformed
        self.channels = shape[1]
        self.num_output = cp.num_output
        self.group = cp.group
        if self.num_output <= 0:
            raise NetError(f"layer {self.name!r} ({self.type}) needs num_output > 0")
        if self.group <= 0 or self.channels % self.group or self.num_output % self.group:
            raise NetError(f"layer {self.name!r}: group {self.group} must divide both the "
                           f"input channels ({self.channels}) and num_output "
                           f"({self.num_output})")
        # Caffe's conv_out_channels_ / conv_in_channels_: the GEMM's row side and image side.
        if self.reverse:
            self.out_ch, self.in_ch = self.channels, self.num_output
        else:
            self.out_ch, self.in_ch = self.num_output, self.channels
        weight_shape = (self.out_ch, self.in_ch // self.group) + self.kernel
        self.bias_term = cp.bias_term
        shapes = [weight_shape] + ([(self.num_output,)] if self.bias_term else [])
        if not self.blobs:
            dtype = self.param_dtype(bottom)
            self.blobs.dtype = dtype
            for s, filler in zip(shapes, (cp.weight_filler, cp.bias_filler)):
                fill(self.blobs.add_blob(*s), filler)
        else:
            have = [b.shape for b in self.blobs]
            if have != shapes:
                raise WeightShapeError(f"layer {self.name!r} ({self.type}): parameter shapes "
                                       f"{have} do not match the expected {shapes}")
        if len(self.param_propagate_down) != len(self.blobs):
            self.param_propagate_down = [True] * len(self.blobs)

    # -- reshape -----------------------------------------------------------------------------
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4 or shape[1] != self.channels:
            raise NetError(f"layer {self.name!r} ({self.type}): bottom shape {shape} does not "
                           f"match the {self.channels} input channels it was set up with")
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != shape:
                raise NetError(f"layer {self.name!r}: all bottoms must have one shape; bottom "
                               f"{i} is {b.shape}, bottom 0 is {shape}")
        if any(t is b for t in top for b in bottom):
            raise NetError(f"layer {self.name!r} ({self.type}) cannot run in place")
        n, _, h, w = shape
        out_hw = tuple(self._out_size(size, axis) for axis, size in enumerate((h, w)))
        for t in top:
            t.reshape(n, self.num_output, *out_hw)
        # The image side is the side im2col reads; the column side has one column per window.
        if self.reverse:
            self.img_hw, self.col_hw = out_hw, (h, w)
        else:
            self.img_hw, self.col_hw = (h, w), out_hw

    def _out_size(self, size, axis):
        k, s, p, d = (self.kernel[axis], self.stride[axis], self.pad[axis],
                      self.dilation[axis])
        out = (deconv_out_size if self.reverse else conv_out_size)(size, k, s, p, d)
        if out <= 0:
            what = 'height' if axis == 0 else 'width'
            raise NetError(
                f"layer {self.name!r} ({self.type}): input {what} {size} with pad {p} is too "
                f"small for kernel {k} (dilation {d}, stride {s}): the output {what} would be "
                f"{out}")
        return out

    # -- buffers and geometry ----------------------------------------------------------------
    @staticmethod
    def _padded(img, pad):
        """``img`` (C, H, W) with its zero border, in the calling thread's scratch (itself if no
        pad). Valid until the next layer pads."""
        if pad == (0, 0):
            return img
        c, h, w = img.shape
        shape = (c, h + 2 * pad[0], w + 2 * pad[1])
        buf = scratch('pad', shape[0] * shape[1] * shape[2], img.dtype).reshape(shape)
        return padded_into(img, buf, pad, zero_border=True)

    def _band_rows(self, k, out_hw, m, for_weights=False):
        """Output rows per band of a column matrix with ``k`` rows feeding a GEMM with ``m``
        rows of weights: cache-sized, yet wide enough for an efficient GEMM; the band count a
        multiple of the workers."""
        rows, width = out_hw
        min_cols = BAND_MIN_COLUMNS if for_weights else min(BAND_MIN_COLUMNS, 4 * m)
        nr = max(COL_BAND_ELEMENTS // max(k * width, 1), -(-min_cols // width))
        nr = int(min(max(nr, 1), rows))
        workers = num_threads()
        bands = -(-rows // nr)
        if bands % workers and not for_weights:     # even out the workers' last round
            bands = -(-bands // workers) * workers
            nr = -(-rows // bands)
        return nr

    def _channel_pieces(self, k_limit=None):
        """(group, first, stop) channel ranges of the image side (per group), at least two per
        worker where there are channels enough, each with at most ``k_limit`` column rows."""
        per_group = self.in_ch // self.group
        kk = self.kernel[0] * self.kernel[1]
        pieces = -(-2 * num_threads() // self.group)
        if k_limit:
            pieces = max(pieces, -(-per_group * kk // max(k_limit, 1)))
        return [(gi, a, b) for gi in range(self.group) for a, b in chunks(per_group, pieces)]

    def _geometry(self):
        """The im2col geometry of the image side: (kernel, stride, pad, dilation, out_hw)."""
        return self.kernel, self.stride, self.pad, self.dilation, self.col_hw

    def _flipped_geometry(self):
        """With stride 1, conv^T is itself a convolution, of the column side with the kernel
        rotated by 180 degrees and pad d(k-1) - p, giving the image side: its geometry, where
        that holds (the pad is not negative) and costs no more multiplications than GEMM +
        col2im (the image side is not larger than the column side: FCN's 3x3 pad 1, not fc6's
        7x7 pad 0, whose zero-padded full convolution would take twice the work); else None."""
        if self.stride != (1, 1):
            return None
        pad = tuple(d * (k - 1) - p for k, p, d in zip(self.kernel, self.pad, self.dilation))
        (h, w), (ho, wo) = self.img_hw, self.col_hw
        if min(pad) < 0 or h * w > FLIPPED_MAX_GROWTH * ho * wo:
            return None
        return self.kernel, (1, 1), pad, self.dilation, self.img_hw

    def _weights(self):
        """W as (g, out_ch/g, K) with K = in_ch/g*kh*kw (a view of blob 0's data)."""
        return self.blobs[0].data.reshape(self.group, self.out_ch // self.group, -1)

    def _flipped_weights(self):
        """W rotated by 180 degrees with its channel axes swapped, as (g, in_ch/g,
        out_ch/g*kh*kw): the weights of the flipped convolution (a copy)."""
        g, kh, kw = self.group, self.kernel[0], self.kernel[1]
        w = self.blobs[0].data.reshape(g, self.out_ch // g, self.in_ch // g, kh, kw)
        return xp.ascontiguousarray(w[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)).reshape(
            g, self.in_ch // g, -1)

    def _weight_diff(self):
        return self.blobs[0].diff.reshape(self.group, self.out_ch // self.group, -1)

    def _bias_view(self, g):
        """The bias as (g, num_output/g, 1), or None."""
        if not self.bias_term:
            return None
        return self.blobs[1].data.reshape(g, -1, 1)

    # -- the engine ------------------------------------------------------------------------
    def _im2col_gemm(self, img, out, wmat, geometry, bias=None, kind='forward'):
        """out (g*m, Ho*Wo) = wmat (g, m, K) @ im2col(img (C, H, W)) [+ bias (g, m, 1)], band
        by band on the workers, one GEMM per group per band (a batched matmul over the
        groups). Few bands (fc6's 7x7 on a small map): each band's GEMM is split by output
        channel instead. ``kind`` names ``wmat`` ('forward': blob 0 itself, 'flipped') for the
        Winograd transforms' cache."""
        kernel, stride, pad, dilation, (rows, width) = geometry
        g, m, k_g = wmat.shape
        if self._winograd_applies(img.shape[0], geometry, g):
            self._winograd(img, out, *self._transformed(kind, wmat), pad, (rows, width), bias)
            return
        k = g * k_g
        out_g = out.reshape(g, m, rows * width)
        src = self._padded(img, pad)
        nr = self._band_rows(k, (rows, width), m)
        bands = [(r0, min(nr, rows - r0)) for r0 in range(0, rows, nr)]

        def im2col_band(r0, n):
            col = scratch('col', k * n * width, img.dtype).reshape(g, k_g, n * width)
            im2col_rows(src, col.reshape(k, n * width), kernel, stride, dilation, width, r0, n)
            return col

        def gemm(col, r0, n, m0=0, m1=None):
            dst = out_g[:, m0:m1, r0 * width:(r0 + n) * width]
            xp.matmul(wmat[:, m0:m1], col, out=dst)
            if bias is not None:
                dst += bias[:, m0:m1]

        if len(bands) >= num_threads():
            parallel_map(lambda band: gemm(im2col_band(*band), *band), bands)
            return
        for r0, n in bands:
            col = im2col_band(r0, n)
            parallel_map(lambda rng: gemm(col, r0, n, *rng),
                         chunks(m, 2 * num_threads(), multiple=8))

    @staticmethod
    def _winograd_applies(channels, geometry, groups):
        """Whether an im2col + GEMM of this geometry runs as Winograd instead: 3x3, stride 1,
        no dilation, one group, enough input channels and output positions (see
        WINOGRAD_MIN_CHANNELS)."""
        kernel, stride, _, dilation, (rows, width) = geometry
        return (kernel, stride, dilation, groups) == ((3, 3), (1, 1), (1, 1), 1) and \
            channels >= WINOGRAD_MIN_CHANNELS and rows * width >= WINOGRAD_MIN_POSITIONS

    def _transformed(self, kind, wmat):
        """(variant, U): Winograd's variant for ``wmat`` (1, M, C*9) and its transformed weights
        U (a^2, M, C), computed on the workers.

        Kept in ``self._winograd_u[kind]`` for the rest of the pass (the other images of the
        batch). A TEST-phase layer keeps them across passes too, with a copy of blob 0's data
        they came from, and reuses them while that data is unchanged (compared element by
        element each call, so that weights written in place by a pycaffe script are seen),
        which saves the transform on every forward (512x512 kernels: 16 ms on 2 cores);
        TRAIN-phase layers, and those of a net that reuses memory (``keep_derived`` false),
        forget them after each pass (:meth:`_forget_transforms`: the weights change every
        step, and U with the copy takes 5 times the weights' memory).
        """
        m, c = wmat.shape[1], wmat.shape[2] // 9
        variant = winograd.VARIANTS[winograd_tile(c)]
        source = self.blobs[0].data
        kept = self._winograd_u.get(kind)
        if kept is not None and kept[0] is variant and (
                kept[1] is None or (kept[1].shape == source.shape and
                                    xp.array_equal(kept[1], source))):
            return variant, kept[2]
        w = wmat.reshape(m, c, 3, 3)
        u = xp.empty((variant.a ** 2, m, c), wmat.dtype)
        parallel_map(lambda span: winograd.transform_weights(w, variant, u, span),
                     chunks(m * c, 2 * num_threads(), multiple=winograd.TRANSFORM_CHUNK))
        # within a pass the weights do not change: only what outlives it needs the copy
        self._winograd_u[kind] = (variant, source.copy() if self._keeps_transforms else None, u)
        return variant, u

    @property
    def _keeps_transforms(self):
        """Whether the Winograd weights outlive a pass (see :meth:`_transformed`)."""
        return self.phase == TEST and self.keep_derived

    def _forget_transforms(self):
        """Drop the Winograd weights after a pass, unless this layer keeps them."""
        if not self._keeps_transforms:
            self._winograd_u.clear()

    @staticmethod
    def _winograd(img, out, variant, u, pad, out_hw, bias=None):
        """The 3x3 stride-1 case of :meth:`_im2col_gemm` by Winograd's F(m x m, 3x3) (see
        :mod:`npcaffe.winograd`) with its transformed weights ``u`` (a^2, M, C): bands of tile
        rows on the workers, each of about WINOGRAD_BAND_ELEMENTS elements of transformed input but
        at least WINOGRAD_BAND_MIN_TILES tiles (the a^2 GEMMs' width) where the map has them."""
        c, m = img.shape[0], u.shape[1]
        th, tw = winograd.tiles(out_hw, variant)
        by_size = WINOGRAD_BAND_ELEMENTS // (variant.a ** 2 * c * tw)
        nt = max(1, min(th, max(by_size, -(-WINOGRAD_BAND_MIN_TILES // tw))))
        bands = -(-th // nt)
        bands = -(-bands // num_threads()) * num_threads()       # even rounds for the workers
        nt = -(-th // bands)
        out3 = out.reshape(m, *out_hw)
        sizes = winograd.band_scratch_sizes(c, m, nt, tw, variant)
        bias_m = None if bias is None else bias.reshape(m)

        def band(t0):
            work = [scratch(f'winograd{i}', n, img.dtype) for i, n in enumerate(sizes)]
            winograd.conv_band(img, pad, u, out3, t0, min(nt, th - t0), *work, variant,
                               bias=bias_m)
        parallel_map(band, range(0, th, nt))

    def _gemm_col2im(self, src, img_out):
        """img_out (in_ch, H, W) = col2im(W^T @ src (out_ch, Ho*Wo)), a range of image
        channels per worker (col2im adds overlap across bands, never across channels)."""
        g, rows, width = self.group, self.col_hw[0], self.col_hw[1]
        kk = self.kernel[0] * self.kernel[1]
        wmat_t = self._weights().transpose(0, 2, 1)              # (g, K, out_ch/g)
        src_g = src.reshape(g, self.out_ch // g, rows * width)
        (h, w), (ph, pw) = self.img_hw, self.pad
        shape = col2im_buffer_shape(self.in_ch, (h + 2 * ph, w + 2 * pw), self.kernel,
                                    self.stride, self.dilation, self.col_hw)
        acc_all = scratch('acc', shape[0] * shape[1] * shape[2], img_out.dtype).reshape(shape)
        per_group = self.in_ch // g

        def piece(item):
            gi, c0, c1 = item
            k = (c1 - c0) * kk
            acc = acc_all[gi * per_group + c0:gi * per_group + c1]
            acc[...] = 0
            nr = self._band_rows(k, self.col_hw, self.out_ch // g)
            for r0 in range(0, rows, nr):
                n = min(nr, rows - r0)
                col = scratch('col', k * n * width, img_out.dtype).reshape(k, n * width)
                xp.matmul(wmat_t[gi, c0 * kk:c1 * kk], src_g[gi, :, r0 * width:(r0 + n) * width],
                          out=col)
                col2im_rows_add(col, acc, self.kernel, self.stride, self.dilation, width, r0, n)
            img_out[gi * per_group + c0:gi * per_group + c1] = acc[:, ph:ph + h, pw:pw + w]

        parallel_map(piece, self._channel_pieces())

    def _weight_gemm(self, img, src):
        """blob 0's diff += src (out_ch, Ho*Wo) @ im2col(img)^T, a range of image channels (a
        block of the diff's columns) per worker, band by band."""
        g, rows, width = self.group, self.col_hw[0], self.col_hw[1]
        kk = self.kernel[0] * self.kernel[1]
        m = self.out_ch // g
        dw = self._weight_diff()
        src_g = src.reshape(g, m, rows * width)
        padded = self._padded(img, self.pad)
        per_group = self.in_ch // g

        def piece(item):
            gi, c0, c1 = item
            k = (c1 - c0) * kk
            image = padded[gi * per_group + c0:gi * per_group + c1]
            # With few output channels the BLAS runs dW^T = col @ src^T faster than dW = src @
            # col^T (Cout 64: 120 vs 93 GFLOP/s on one core); from 256 on the transposed add
            # costs more than that gains.
            transposed = m < WEIGHT_GEMM_TRANSPOSED_BELOW
            tmp = scratch('wtmp', k * m, dw.dtype).reshape((k, m) if transposed else (m, k))
            nr = self._band_rows(k, self.col_hw, m, for_weights=True)
            for r0 in range(0, rows, nr):
                n = min(nr, rows - r0)
                col = scratch('col', k * n * width, img.dtype).reshape(k, n * width)
                im2col_rows(image, col, self.kernel, self.stride, self.dilation, width, r0, n)
                band = src_g[gi, :, r0 * width:(r0 + n) * width]
                if transposed:
                    xp.matmul(col, band.T, out=tmp)
                    dw[gi, :, c0 * kk:c1 * kk] += tmp.T
                else:
                    xp.matmul(band, col.T, out=tmp)
                    dw[gi, :, c0 * kk:c1 * kk] += tmp

        parallel_map(piece, self._channel_pieces(k_limit=WEIGHT_TMP_ELEMENTS // m))

    # -- 1x1 (im2col is the identity): one GEMM per image and group, split by channel --------
    def _batched(self, blob_array, channels):
        n = blob_array.shape[0]
        return blob_array.reshape(n, self.group, channels // self.group, -1)

    def _row_pieces(self, rows):
        return chunks(rows, 2 * num_threads(), multiple=8)

    def _forward_1x1(self, img, out, bias=None):
        """out (N, out_ch, HW) = W @ img (N, in_ch, HW) per group [+ bias], output channels
        split over the workers."""
        wmat, x, y = self._weights(), self._batched(img, self.in_ch), \
            self._batched(out, self.out_ch)

        def piece(rng):
            m0, m1 = rng
            xp.matmul(wmat[:, m0:m1], x, out=y[:, :, m0:m1])
            if bias is not None:
                y[:, :, m0:m1] += bias[:, m0:m1]
        parallel_map(piece, self._row_pieces(wmat.shape[1]))

    def _backward_data_1x1(self, src, img_out):
        wmat_t = self._weights().transpose(0, 2, 1)              # (g, in_ch/g, out_ch/g)
        dy, dx = self._batched(src, self.out_ch), self._batched(img_out, self.in_ch)

        def piece(rng):
            c0, c1 = rng
            xp.matmul(wmat_t[:, c0:c1], dy, out=dx[:, :, c0:c1])
        parallel_map(piece, self._row_pieces(wmat_t.shape[1]))

    def _weight_grad_1x1(self, img, src):
        dw = self._weight_diff()                                 # (g, out_ch/g, in_ch/g)
        dy, x = self._batched(src, self.out_ch), self._batched(img, self.in_ch)

        def piece(rng):
            m0, m1 = rng
            tmp = scratch('wtmp', self.group * (m1 - m0) * dw.shape[2], dw.dtype).reshape(
                self.group, m1 - m0, dw.shape[2])
            for i in range(dy.shape[0]):
                xp.matmul(dy[i, :, m0:m1], x[i].transpose(0, 2, 1), out=tmp)
                dw[:, m0:m1] += tmp
        parallel_map(piece, self._row_pieces(dw.shape[1]))

    # -- shared bias -------------------------------------------------------------------------
    def _add_bias(self, top_data):
        if self.bias_term:
            t = top_data.reshape(top_data.shape[0], self.num_output, -1)
            t += self.blobs[1].data[None, :, None]

    def _bias_grad(self, top_diff):
        if self.bias_term and self.param_propagate_down[1]:
            t = top_diff.reshape(top_diff.shape[0], self.num_output, -1)
            self.blobs[1].diff[...] += t.sum(axis=(0, 2))

    # -- the passes, in terms of the image side and the column side -------------------------
    def _col_from_img(self, img, out, bias=None):
        """out = conv(img) [+ bias]: the column side from the image side, all images."""
        if self.is_1x1:
            self._forward_1x1(img, out, bias)
            return
        out2 = out.reshape(out.shape[0], self.out_ch, -1)
        wmat, geometry = self._weights(), self._geometry()
        for i in range(img.shape[0]):
            self._im2col_gemm(img[i], out2[i], wmat, geometry, bias)

    def _img_from_col(self, src, img_out):
        """img_out = conv^T(src): the image side from the column side, all images; with
        stride 1 as the flipped convolution (a GEMM with the long K = out_ch*kh*kw, and no
        col2im adds), else as GEMM + col2im."""
        if self.is_1x1:
            self._backward_data_1x1(src, img_out)
            return
        flipped = self._flipped_geometry()
        if flipped is not None:
            wmat = self._flipped_weights()
            out2 = img_out.reshape(img_out.shape[0], self.in_ch, -1)
            for i in range(src.shape[0]):
                self._im2col_gemm(src[i], out2[i], wmat, flipped, kind='flipped')
            return
        src2 = src.reshape(src.shape[0], self.out_ch, -1)
        for i in range(src.shape[0]):
            self._gemm_col2im(src2[i], img_out[i])

    def _weight_grad(self, img, src):
        if not self.param_propagate_down[0]:
            return
        if self.is_1x1:
            self._weight_grad_1x1(img, src)
        else:
            src2 = src.reshape(src.shape[0], self.out_ch, -1)
            for i in range(img.shape[0]):
                self._weight_gemm(img[i], src2[i])


@register("Convolution")
class ConvolutionLayer(_BaseConvolution):
    """Caffe's Convolution: top = W * bottom + b (cross-correlation, with groups).

    convolution_param: num_output, bias_term (true), kernel_size | kernel_h + kernel_w,
    stride (1) | stride_h + stride_w, pad (0) | pad_h + pad_w, dilation (1), group (1),
    weight_filler, bias_filler (constant 0). ``axis`` must be 1; ``engine`` and
    ``force_nd_im2col`` are ignored (the results are the same).

    Shapes: bottom (N, Cin, H, W) -> top (N, num_output, Ho, Wo) with
    Ho = floor((H + 2 pad - (dilation (kernel-1) + 1)) / stride) + 1;
    weights (num_output, Cin/group, kh, kw), bias (num_output,).
    """

    def forward(self, bottom, top):
        bias = self._bias_view(self.group)
        try:
            for b, t in zip(bottom, top):
                self._col_from_img(b.data, t.data, bias)    # bias added band by band
        finally:
            self._forget_transforms()

    def backward(self, top, propagate_down, bottom):
        try:
            for i, (b, t) in enumerate(zip(bottom, top)):
                self._bias_grad(t.diff)
                self._weight_grad(b.data, t.diff)
                if propagate_down[i]:
                    self._img_from_col(t.diff, b.diff)
        finally:
            self._forget_transforms()


@register("Deconvolution")
class DeconvolutionLayer(_BaseConvolution):
    """Caffe's Deconvolution (transposed convolution): the backward-data pass of a convolution
    used forward, top = col2im(W^T @ bottom) + b.

    Parameters as Convolution (convolution_param). FCN uses it with bilinear weights, lr_mult 0
    and bias_term false for learnable-free upsampling.

    Shapes: bottom (N, Cin, H, W) -> top (N, num_output, Ho, Wo) with
    Ho = stride (H-1) + dilation (kernel-1) + 1 - 2 pad;
    weights (Cin, num_output/group, kh, kw), bias (num_output,).
    """

    reverse = True

    def forward(self, bottom, top):
        try:
            for b, t in zip(bottom, top):
                self._img_from_col(b.data, t.data)
                self._add_bias(t.data)
        finally:
            self._forget_transforms()

    def backward(self, top, propagate_down, bottom):
        try:
            for i, (b, t) in enumerate(zip(bottom, top)):
                self._bias_grad(t.diff)
                self._weight_grad(t.diff, b.data)
                if propagate_down[i]:
                    self._col_from_img(t.diff, b.diff)
        finally:
            self._forget_transforms()
