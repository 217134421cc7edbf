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

The column matrix is built in bands of output rows into a buffer kept on the layer (grow-only),
so that it stays cache-sized and each band goes straight into one BLAS GEMM per group
(``xp.matmul`` writes into the strided band of the top). 1x1 kernels with stride 1 and no padding
skip im2col: the image is its own column matrix, and all images go through one batched GEMM.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError, WeightShapeError
from npcaffe.filler import fill
from npcaffe.im2col import (col2im_buffer_shape, col2im_rows_add, conv_out_size,
                            deconv_out_size, im2col_rows, padded_into)
from npcaffe.layers import Layer, register

#: Target size (elements) of one band of the column buffer: 4M floats = 16 MB in float32.
#: (FCN-8s's convolutions at 500x375 on 2 cores: 1.95 s with 2**20, 1.62 s with 2**22, 1.60 s
#: with 2**24; the band also bounds the memory: one whole conv1_2 column matrix is 920 MB.)
COL_BAND_ELEMENTS = 1 << 22
#: A band has at least min(BAND_MIN_COLUMNS, 4 * rows of W) columns (whole rows), so that a GEMM
#: reads the weights once per many columns (fc6 as a convolution has 4096 x 25088 weights), and
#: a weight-gradient band at least BAND_MIN_COLUMNS, so that adding each band's (Cout, K)
#: product into the weight diff costs little next to the GEMM.
BAND_MIN_COLUMNS = 2048


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
        self._col_buf = None       # column band buffer (flat, grow-only)
        self._wtmp_buf = None      # weight-gradient band product (flat, grow-only)
        self._pad_buf = None       # zero-bordered padded image (flat, grow-only)
        self._pad_key = None
        self._acc_buf = None       # col2im accumulator (flat, grow-only)

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

    # -- buffers -----------------------------------------------------------------------------
    @staticmethod
    def _grow(buf, count, dtype):
        """``buf`` if it holds ``count`` elements of ``dtype``, else a new larger one."""
        if buf is None or buf.size < count or buf.dtype != dtype:
            return xp.empty(max(count, 1), dtype)
        return buf

    def _padded(self, img):
        """``img`` (C, H, W) in a zero-bordered buffer kept across calls (itself if no pad)."""
        if self.pad == (0, 0):
            return img
        c, h, w = img.shape
        shape = (c, h + 2 * self.pad[0], w + 2 * self.pad[1])
        key = (shape, img.dtype)
        count = shape[0] * shape[1] * shape[2]
        if key != self._pad_key:
            self._pad_buf = self._grow(self._pad_buf, count, img.dtype)
            self._pad_buf[:count] = 0
            self._pad_key = key
        return padded_into(img, self._pad_buf[:count].reshape(shape), self.pad)

    def _band_rows(self, for_weights=False):
        """Rows of the column side per band of the column buffer."""
        rows, width = self.col_hw
        k = self.in_ch * self.kernel[0] * self.kernel[1]
        min_cols = BAND_MIN_COLUMNS if for_weights else min(BAND_MIN_COLUMNS, 4 * self.out_ch)
        nr = max(COL_BAND_ELEMENTS // max(k * width, 1), -(-min_cols // width))
        return int(min(max(nr, 1), rows))

    def _col_band(self, nr, dtype):
        k = self.in_ch * self.kernel[0] * self.kernel[1]
        count = k * nr * self.col_hw[1]
        self._col_buf = self._grow(self._col_buf, count, dtype)
        return self._col_buf[:count].reshape(k, nr * self.col_hw[1])

    def _weights(self):
        """W as (g, out_ch/g, K) with K = in_ch/g*kh*kw (a view of blob 0's data)."""
        return self.blobs[0].data.reshape(self.group, self.out_ch // self.group, -1)

    def _weight_diff(self):
        return self.blobs[0].diff.reshape(self.group, self.out_ch // self.group, -1)

    # -- the engine ------------------------------------------------------------------------
    def _im2col_gemm(self, img, out):
        """out (out_ch, Ho*Wo) = W @ im2col(img (in_ch, H, W)), band by band, one GEMM per
        group per band (a batched matmul over the groups)."""
        g, rows, width = self.group, self.col_hw[0], self.col_hw[1]
        wmat = self._weights()
        out_g = out.reshape(g, self.out_ch // g, rows * width)
        src = self._padded(img)
        nr = self._band_rows()
        for r0 in range(0, rows, nr):
            n = min(nr, rows - r0)
            col = self._col_band(n, img.dtype)
            im2col_rows(src, col, self.kernel, self.stride, self.dilation, width, r0, n)
            xp.matmul(wmat, col.reshape(g, -1, n * width),
                      out=out_g[:, :, r0 * width:(r0 + n) * width])

    def _gemm_col2im(self, src, img_out):
        """img_out (in_ch, H, W) = col2im(W^T @ src (out_ch, Ho*Wo)), band by band."""
        g, rows, width = self.group, self.col_hw[0], self.col_hw[1]
        wmat_t = self._weights().transpose(0, 2, 1)              # (g, K, out_ch/g)
        src_g = src.reshape(g, self.out_ch // g, rows * width)
        (h, w), (ph, pw) = self.img_hw, self.pad
        shape = col2im_buffer_shape(self.in_ch, (h + 2 * ph, w + 2 * pw), self.kernel,
                                    self.stride, self.dilation, self.col_hw)
        count = shape[0] * shape[1] * shape[2]
        self._acc_buf = self._grow(self._acc_buf, count, img_out.dtype)
        acc = self._acc_buf[:count].reshape(shape)
        acc[...] = 0
        nr = self._band_rows()
        for r0 in range(0, rows, nr):
            n = min(nr, rows - r0)
            col = self._col_band(n, img_out.dtype)
            xp.matmul(wmat_t, src_g[:, :, r0 * width:(r0 + n) * width],
                      out=col.reshape(g, -1, n * width))
            col2im_rows_add(col, acc, self.kernel, self.stride, self.dilation, width, r0, n)
        img_out[...] = acc[:, ph:ph + h, pw:pw + w]

    def _weight_gemm(self, img, src):
        """blob 0's diff += src (out_ch, Ho*Wo) @ im2col(img)^T, band by band."""
        g, rows, width = self.group, self.col_hw[0], self.col_hw[1]
        dw = self._weight_diff()
        src_g = src.reshape(g, self.out_ch // g, rows * width)
        padded = self._padded(img)
        self._wtmp_buf = self._grow(self._wtmp_buf, dw.size, dw.dtype)
        tmp = self._wtmp_buf[:dw.size].reshape(dw.shape)
        nr = self._band_rows(for_weights=True)
        for r0 in range(0, rows, nr):
            n = min(nr, rows - r0)
            col = self._col_band(n, img.dtype)
            im2col_rows(padded, col, self.kernel, self.stride, self.dilation, width, r0, n)
            xp.matmul(src_g[:, :, r0 * width:(r0 + n) * width],
                      col.reshape(g, -1, n * width).transpose(0, 2, 1), out=tmp)
            dw += tmp

    # -- 1x1 (im2col is the identity): all images in one batched GEMM ------------------------
    def _batched(self, blob_array, channels):
        n = blob_array.shape[0]
        return blob_array.reshape(n, self.group, channels // self.group, -1)

    def _forward_1x1(self, img, out):
        """out (N, out_ch, HW) = W @ img (N, in_ch, HW) per group."""
        xp.matmul(self._weights(), self._batched(img, self.in_ch),
                  out=self._batched(out, self.out_ch))

    def _backward_data_1x1(self, src, img_out):
        xp.matmul(self._weights().transpose(0, 2, 1), self._batched(src, self.out_ch),
                  out=self._batched(img_out, self.in_ch))

    def _weight_grad_1x1(self, img, src):
        prod = xp.matmul(self._batched(src, self.out_ch),
                         self._batched(img, self.in_ch).transpose(0, 1, 3, 2))
        self._weight_diff()[...] += prod.sum(axis=0)

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
    def _col_from_img(self, img, out):
        """out = conv(img): the column side from the image side, all images."""
        if self.is_1x1:
            self._forward_1x1(img, out)
        else:
            out2 = out.reshape(out.shape[0], self.out_ch, -1)
            for i in range(img.shape[0]):
                self._im2col_gemm(img[i], out2[i])

    def _img_from_col(self, src, img_out):
        """img_out = conv^T(src): the image side from the column side, all images."""
        if self.is_1x1:
            self._backward_data_1x1(src, img_out)
        else:
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
        for b, t in zip(bottom, top):
            self._col_from_img(b.data, t.data)
            self._add_bias(t.data)

    def backward(self, top, propagate_down, bottom):
        for i, (b, t) in enumerate(zip(bottom, top)):
            self._bias_grad(t.diff)
            self._weight_grad(b.data, t.diff)
            if propagate_down[i]:
                self._img_from_col(t.diff, b.diff)


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
        for b, t in zip(bottom, top):
            self._img_from_col(b.data, t.data)
            self._add_bias(t.data)

    def backward(self, top, propagate_down, bottom):
        for i, (b, t) in enumerate(zip(bottom, top)):
            self._bias_grad(t.diff)
            self._weight_grad(t.diff, b.data)
            if propagate_down[i]:
                self._col_from_img(t.diff, b.diff)
