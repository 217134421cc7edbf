"""Pooling, as Caffe's PoolingLayer (src/caffe/layers/pooling_layer.cpp) computes it.

Output size (round_mode CEIL, the default; FLOOR uses floor)::

    Ho = ceil((H + 2 pad - kernel) / stride) + 1
    if pad > 0 and (Ho - 1) * stride >= H + pad:  Ho -= 1   # the last window must start inside

Window of output row ho: rows [ho*stride - pad, ho*stride - pad + kernel).

* MAX: the maximum over the window clipped to the input (padding never wins); ties go to the
  FIRST maximum in row-major window order (Caffe compares with a strict ``>``), and backward
  routes each top diff to that arg max. An optional second top holds the arg max as Caffe's
  mask: the index h * W + w within the input plane, as a float. The arg max is kept in
  forward in the TRAIN phase or with a mask top; in the TEST phase backward recomputes it
  from the bottom (inference does not pay for it). One difference: a NaN input propagates
  to the top here, where Caffe's ``>`` would skip it.
* AVE: the sum over the window clipped to the input, divided by the window size clipped to
  H + pad (``hend = min(hstart + k, H + pad)``): padding counts, the overhang past it does not.
* STOCHASTIC: only the TEST-phase rule of Caffe's GPU code (sum x^2 / sum x over the window,
  0 where the sum is not positive) -- Caffe's CPU code implements neither phase; TRAIN and
  backward raise NotSupportedError.
* global_pooling: the kernel is the whole plane (pad 0, stride 1), output 1 x 1.

The vectorised form loops over the kernel offsets (i, j): for each, the strided slice of the
input that offset reads, restricted to the outputs whose windows hold it inside the input, is
combined with the matching slice of the top (no padded copy is made). When the windows tile the
input (kernel == stride, no pad: FCN's 2x2/2 pools), MAX forward is separable instead: the
maximum over each window's rows (whole contiguous rows, 2x faster), then over its columns; the
ceil-mode edge row and column are windows cut short. MAX pooling of large blobs runs on the
worker threads, a range of channels each.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, NotSupportedError
from npcaffe.layers import Layer, TRAIN, register
from npcaffe.parallel import chunks, num_threads, parallel_map
from npcaffe.proto import caffe_pb2

_P = caffe_pb2.PoolingParameter
_FLT_MAX = float(xp.finfo(xp.float32).max)
_METHOD_NAMES = {_P.MAX: 'MAX', _P.AVE: 'AVE', _P.STOCHASTIC: 'STOCHASTIC'}
#: MAX pooling of larger inputs runs on the worker threads, a range of channels each.
PARALLEL_MIN_ELEMENTS = 1 << 16


def _by_channels(fn, arrays, min_elements=PARALLEL_MIN_ELEMENTS):
    """``fn(*views)`` over ranges of channels (axis 1) of the (N, C, ...) ``arrays``, on the
    worker threads when the first array is large (the pieces write disjoint channels)."""
    channels = arrays[0].shape[1]
    pieces = 2 * num_threads() if arrays[0].size >= min_elements else 1
    parallel_map(lambda rng: fn(*(a[:, rng[0]:rng[1]] for a in arrays)),
                 chunks(channels, pieces), blas=False)


def _max_of(out, arrays):
    """out = the elementwise maximum of ``arrays`` (NaN propagates)."""
    if len(arrays) == 1:
        out[...] = arrays[0]
        return
    xp.maximum(arrays[0], arrays[1], out=out)
    for a in arrays[2:]:
        xp.maximum(out, a, out=out)


def pooled_size(size, kernel, stride, pad, ceil_mode=True):
    """Caffe's pooled output size, with the pad correction (may be <= 0 for bad geometry)."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _offset_slices(size, out, kernel, stride, pad):
    """For each kernel offset i along one axis: (out slice, in slice) of the outputs whose
    window position i lies inside the input, or None when there is none."""
    result = []
    for i in range(kernel):
        lo = max(0, -(-(pad - i) // stride))                 # first o with o*s - p + i >= 0
        hi = min(out, (size - 1 + pad - i) // stride + 1)     # one past the last inside
        if hi <= lo:
            result.append(None)
            continue
        start = lo * stride - pad + i
        result.append((slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)))
    return result


def _ave_divisors(size, out, kernel, stride, pad):
    """Caffe's AVE window size along one axis: min(start + k, size + pad) - start."""
    start = xp.arange(out) * stride - pad
    return xp.minimum(start + kernel, size + pad) - start


@register("Pooling")
class PoolingLayer(Layer):
    """Caffe's Pooling: MAX / AVE (/ STOCHASTIC at TEST) over 2-D windows of (N, C, H, W).

    pooling_param: pool (MAX), kernel_size | kernel_h + kernel_w, stride (1) | stride_h +
    stride_w, pad (0) | pad_h + pad_w, global_pooling (false), round_mode (CEIL); ``engine``
    is ignored. Tops: the pooled blob (N, C, Ho, Wo) and, for MAX only, an optional mask of the
    same shape (arg max index h * W + w within the plane, as floats).

    Example: ``kernel_size: 2 stride: 2 pad: 1`` on 5 x 5: ceil((5+2-2)/2)+1 = 4, but the last
    window would start at (4-1)*2 = 6 >= 5 + 1 (in the padding), so the output is 3 x 3.
    """

    exact_bottoms = 1
    min_tops = 1
    max_tops = 2

    def setup(self, bottom, top):
        pp = self.layer_param.pooling_param
        self.method = pp.pool
        if self.method not in _METHOD_NAMES:
            raise NotSupportedError(f"layer {self.name!r}: pooling method {self.method} is "
                                    f"not supported (pool: MAX, AVE or STOCHASTIC)")
        self.global_pooling = pp.global_pooling
        self.ceil_mode = pp.round_mode == _P.CEIL
        has = pp.HasField
        where = f"layer {self.name!r} (Pooling)"
        if self.global_pooling:
            if has('kernel_size') or has('kernel_h') or has('kernel_w'):
                raise NetError(f"{where}: with global_pooling the kernel size cannot be given")
        elif has('kernel_size') == (has('kernel_h') and has('kernel_w')):
            raise NetError(f"{where}: give kernel_size, or kernel_h and kernel_w (both), "
                           f"not both forms")
        if has('pad_h') != has('pad_w') or (has('pad') and has('pad_h')):
            raise NetError(f"{where}: give pad, or pad_h and pad_w (both)")
        if has('stride_h') != has('stride_w') or (has('stride') and has('stride_h')):
            raise NetError(f"{where}: give stride, or stride_h and stride_w (both)")
        self.pad = (pp.pad_h, pp.pad_w) if has('pad_h') else (pp.pad, pp.pad)
        self.stride = (pp.stride_h, pp.stride_w) if has('stride_h') else (pp.stride, pp.stride)
        if self.global_pooling:
            if self.pad != (0, 0) or self.stride != (1, 1):
                raise NetError(f"{where}: with global_pooling only pad 0 and stride 1 are "
                               f"allowed, got pad {self.pad} and stride {self.stride}")
            self.kernel = None                      # the plane size, set in reshape
        else:
            self.kernel = ((pp.kernel_size, pp.kernel_size) if has('kernel_size')
                           else (pp.kernel_h, pp.kernel_w))
            if min(self.kernel) <= 0:
                raise NetError(f"{where}: kernel dimensions must be positive, got "
                               f"{self.kernel}")
        if min(self.stride) <= 0:
            raise NetError(f"{where}: stride must be positive, got {self.stride}")
        if self.pad != (0, 0):
            if self.method not in (_P.MAX, _P.AVE):
                raise NetError(f"{where}: padding is implemented only for MAX and AVE pooling")
            if not self.global_pooling and (self.pad[0] >= self.kernel[0]
                                            or self.pad[1] >= self.kernel[1]):
                raise NetError(f"{where}: pad {self.pad} must be smaller than the kernel "
                               f"{self.kernel}")
        if len(top) > 1 and self.method != _P.MAX:
            raise NetError(f"{where}: only MAX pooling has a second (mask) top")
        if self.method == _P.STOCHASTIC and self.phase == TRAIN:
            raise NotSupportedError(f"{where}: pool: STOCHASTIC is not supported in the TRAIN "
                                    f"phase (random sampling); only its TEST rule is")
        self._geometry_key = None
        self._arg = None            # arg max as kernel offset i*kw + j, per output
        self._arg_valid = False

    # -- geometry -----------------------------------------------------------------------------
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != 4:
            raise NetError(f"layer {self.name!r} (Pooling): the bottom must have 4 axes "
                           f"(N, C, H, W), got shape {shape}")
        if any(t is bottom[0] for t in top):
            raise NetError(f"layer {self.name!r} (Pooling) cannot run in place")
        n, c, h, w = shape
        kernel = (h, w) if self.global_pooling else self.kernel
        key = (h, w, kernel)
        if key != self._geometry_key:
            self._set_geometry(h, w, kernel)
            self._geometry_key = key
        ho, wo = self.out_hw
        for t in top:
            t.reshape(n, c, ho, wo)
        self._arg_valid = False

    def _set_geometry(self, h, w, kernel):
        self.cur_kernel = kernel
        out = []
        for axis, size in enumerate((h, w)):
            k, s, p = kernel[axis], self.stride[axis], self.pad[axis]
            o = pooled_size(size, k, s, p, self.ceil_mode)
            if o <= 0:
                what = 'height' if axis == 0 else 'width'
                raise NetError(f"layer {self.name!r} (Pooling): input {what} {size} with pad "
                               f"{p} is too small for kernel {k} (stride {s}): the output "
                               f"{what} would be {o}")
            out.append(o)
        self.out_hw = tuple(out)
        self._rows = _offset_slices(h, out[0], kernel[0], self.stride[0], self.pad[0])
        self._cols = _offset_slices(w, out[1], kernel[1], self.stride[1], self.pad[1])
        self._inv_div = {}          # per dtype, AVE only
        kw = kernel[1]
        # (offset id i*kw + j, out (rows, cols), in (rows, cols)) for each kernel offset that
        # reads some input, in row-major kernel order (Caffe's order within a window).
        self._offset_list = [(i * kw + j, (r[0], c[0]), (r[1], c[1]))
                             for i, r in enumerate(self._rows) if r is not None
                             for j, c in enumerate(self._cols) if c is not None]
        full = slice(0, out[0]), slice(0, out[1])
        self._first_covers_all = self._offset_list[0][1] == full
        # windows that tile the input: each input entry lies in at most one window
        self._tiled = tuple(kernel) == self.stride and self.pad == (0, 0)

    def _inverse_divisor(self, h, w, dtype):
        if dtype not in self._inv_div:
            (kh, kw), (sh, sw), (ph, pw), (ho, wo) = (self.cur_kernel, self.stride, self.pad,
                                                      self.out_hw)
            div = xp.outer(_ave_divisors(h, ho, kh, sh, ph), _ave_divisors(w, wo, kw, sw, pw))
            self._inv_div[dtype] = (1.0 / div).astype(dtype)        # (Ho, Wo)
        return self._inv_div[dtype]

    def _reduce_offsets(self, x, y, start, op):
        """y = op-reduction of the in-input window entries, in row-major kernel order:
        ``start`` where no offset has been seen yet (the first offset is copied when it
        covers every output)."""
        offsets = self._offset_list
        if self._first_covers_all:
            _, _, (ih, iw) = offsets[0]
            y[...] = x[:, :, ih, iw]
            offsets = offsets[1:]
        else:
            y[...] = start
        for _, (oh, ow), (ih, iw) in offsets:
            t = y[:, :, oh, ow]
            op(t, x[:, :, ih, iw], out=t)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        if self.method == _P.MAX:
            track = len(top) > 1 or self.phase == TRAIN
            self._max_forward(x, y, track)
            if len(top) > 1:
                top[1].data[...] = self._mask_indices(x.shape[3])
        elif self.method == _P.AVE:
            self._ave_forward(x, y)
        else:
            self._stochastic_test_forward(x, y)

    def _max_forward(self, x, y, track):
        """y = window max; with ``track``, also the first arg max (as a kernel offset id)."""
        if self.global_pooling:
            flat = x.reshape(x.shape[0], x.shape[1], -1)
            arg = xp.argmax(flat, axis=2)[..., None]    # first maximum, row-major
            y.reshape(flat.shape[0], flat.shape[1], 1)[...] = \
                xp.take_along_axis(flat, arg, axis=2)
            if track:
                self._arg = arg.reshape(y.shape)
                self._arg_valid = True
            return
        if self._tiled:
            _by_channels(self._max_tiled, [x, y])
        else:
            # Caffe starts from -FLT_MAX; the windows always hold an input entry.
            _by_channels(lambda xs, ys: self._reduce_offsets(xs, ys, -_FLT_MAX, xp.maximum),
                         [x, y])
        if track:
            self._track_argmax(x, y)

    def _max_tiled(self, x, y):
        """Separable MAX of windows that tile the input: rows, then columns (see module doc)."""
        (kh, kw), (ho, wo) = self.cur_kernel, self.out_hw
        h, w = x.shape[2:]
        hf, wf = h // kh, w // kw                               # whole windows
        rows = xp.empty(x.shape[:2] + (ho, w), x.dtype)         # (N, C, Ho, W)
        _max_of(rows[:, :, :hf], [x[:, :, i:hf * kh:kh] for i in range(kh)])
        if ho > hf:                                             # ceil mode: the cut last row
            _max_of(rows[:, :, hf], [x[:, :, i] for i in range(hf * kh, h)])
        _max_of(y[..., :wf], [rows[..., j:wf * kw:kw] for j in range(kw)])
        if wo > wf:
            _max_of(y[..., wf], [rows[..., j] for j in range(wf * kw, w)])

    def _track_argmax(self, x, y):
        """The FIRST kernel offset (row-major) whose entry equals the window max: Caffe's arg
        max, which updates only on a strict ``>``. As the smallest matching offset id:
        arg = min over offsets of (ij where x == max, else a sentinel), all in SIMD-friendly
        arithmetic (masked writes with random masks are slow). The arg max stays (backward
        reads it); the work arrays (one byte and one ``dtype`` per output) go with the call."""
        big = self.cur_kernel[0] * self.cur_kernel[1]
        dtype = xp.uint8 if big < 255 else xp.int32
        if self._arg is None or self._arg.shape != y.shape or self._arg.dtype != dtype:
            self._arg = xp.empty(y.shape, dtype)
        eq, key = xp.empty(y.shape, bool), xp.empty(y.shape, dtype)
        sentinel = dtype(big)

        def track(x, y, arg, eq, key):
            arg[...] = big
            for ij, (oh, ow), (ih, iw) in self._offset_list:
                e, k, a = eq[:, :, oh, ow], key[:, :, oh, ow], arg[:, :, oh, ow]
                xp.equal(x[:, :, ih, iw], y[:, :, oh, ow], out=e)
                xp.multiply(e, dtype(big - ij), out=k)          # big - ij where equal, else 0
                xp.subtract(sentinel, k, out=k)                 # ij where equal, else big
                xp.minimum(a, k, out=a)
        _by_channels(track, [x, y, self._arg, eq, key])
        self._arg_valid = True

    def _mask_indices(self, width):
        """Caffe's mask: the arg max as h * W + w within the input plane."""
        if self.global_pooling:
            return self._arg
        kw = self.cur_kernel[1]
        (sh, sw), (ph, pw), (ho, wo) = self.stride, self.pad, self.out_hw
        arg = self._arg.astype(xp.int64)
        rows = (xp.arange(ho) * sh - ph)[:, None] + arg // kw
        cols = (xp.arange(wo) * sw - pw)[None, :] + arg % kw
        return rows * width + cols

    def _ave_forward(self, x, y):
        h, w = x.shape[2:]
        if self.global_pooling:
            y[...] = x.sum(axis=(2, 3), keepdims=True)
            y *= y.dtype.type(1.0 / (h * w))
            return
        self._reduce_offsets(x, y, 0, xp.add)       # Caffe's summation order
        y *= self._inverse_divisor(h, w, y.dtype)

    def _stochastic_test_forward(self, x, y):
        """Caffe's StoPoolForwardTest: sum(x^2) / sum(x) over the clipped window (0 if the
        sum is not positive); there is no padding (Caffe refuses it for STOCHASTIC)."""
        total = xp.zeros_like(y)
        squares = xp.zeros_like(y)
        for _, (oh, ow), (ih, iw) in self._offset_list:
            v = x[:, :, ih, iw]
            total[:, :, oh, ow] += v
            squares[:, :, oh, ow] += v * v
        positive = total > 0
        y[...] = 0
        xp.divide(squares, total, out=y, where=positive)

    # -- backward -----------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy, dx = top[0].diff, bottom[0].diff
        if self.method == _P.MAX:
            if not self._arg_valid:        # TEST phase: the arg max was not kept in forward
                self._max_forward(bottom[0].data, xp.empty_like(top[0].data), track=True)
            self._max_backward(dy, dx)
        elif self.method == _P.AVE:
            self._ave_backward(dy, dx)
        else:
            raise NotSupportedError(f"layer {self.name!r}: pool: STOCHASTIC has no backward "
                                    f"here (Caffe's needs the TRAIN-phase samples)")

    def _max_backward(self, dy, dx):
        if self.global_pooling:
            dx[...] = 0
            flat = dx.reshape(dx.shape[0], dx.shape[1], -1)
            xp.put_along_axis(flat, self._arg.reshape(flat.shape[0], flat.shape[1], 1),
                              dy.reshape(flat.shape[0], flat.shape[1], 1), axis=2)
            return
        _by_channels(self._max_backward_part, [dy, dx, self._arg])

    def _max_backward_part(self, dy, dx, arg):
        if self._tiled:
            # Each input entry is in at most one window: write, and zero only what no window
            # covers (the FLOOR-mode remainder).
            (kh, kw), (ho, wo) = self.cur_kernel, self.out_hw
            dx[:, :, ho * kh:] = 0
            dx[:, :, :, wo * kw:] = 0
            for ij, (oh, ow), (ih, iw) in self._offset_list:
                xp.multiply(dy[:, :, oh, ow], arg[:, :, oh, ow] == ij, out=dx[:, :, ih, iw])
            return
        dx[...] = 0
        for ij, (oh, ow), (ih, iw) in self._offset_list:
            # Within one offset the inputs read are distinct, so += never collides.
            d = dx[:, :, ih, iw]
            d += dy[:, :, oh, ow] * (arg[:, :, oh, ow] == ij)

    def _ave_backward(self, dy, dx):
        h, w = dx.shape[2:]
        if self.global_pooling:
            dx[...] = dy * dx.dtype.type(1.0 / (h * w))
            return
        scaled = dy * self._inverse_divisor(h, w, dy.dtype)
        dx[...] = 0
        for _, (oh, ow), (ih, iw) in self._offset_list:
            d = dx[:, :, ih, iw]
            d += scaled[:, :, oh, ow]
