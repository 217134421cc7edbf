"""Images as Caffe's data layers and tools see them through OpenCV, with Pillow and NumPy.

Contract (every array here is ``(H, W, C)`` uint8 in OpenCV's channel order, BGR or BGRA,
with ``C = 1`` for grayscale, the layout of a ``cv::Mat``):

* :func:`decode` / :func:`imread` are ``cv::imdecode`` / ``cv::imread`` with ``mode``
  ``'color'`` (IMREAD_COLOR: 3 channels, alpha dropped, gray replicated), ``'gray'``
  (IMREAD_GRAYSCALE) or ``'unchanged'`` (IMREAD_UNCHANGED, what Caffe's
  ``DecodeDatumToCVMatNative`` uses: 1, 3 or 4 channels as stored). Gray from a colour file is
  computed as OpenCV's codec does: a JPEG's luma plane straight from libjpeg (Pillow's
  ``draft('L')``), libpng's fixed-point ``rgb_to_gray`` for PNG, ``cv::cvtColor``'s
  fixed-point weights for other formats. 16-bit images become 8-bit by ``>> 8`` (OpenCV's
  conversion) in ``color``/``gray`` mode; ``unchanged`` refuses them, as Caffe's transformer
  requires 8-bit pixels.
* :func:`resize_linear` is ``cv::resize(..., INTER_LINEAR)`` on 8-bit images: half-pixel
  centres, no anti-aliasing, 11-bit fixed-point weights, OpenCV's vectorised rounding (a
  pixel may differ by one level where OpenCV's scalar tail rounds otherwise), and OpenCV's
  switch to INTER_AREA for an exact 2x shrink.
* :func:`encode` is ``cv::imencode`` through Pillow (JPEG quality 95 as OpenCV's default):
  the pixels decode alike, the bytes are Pillow's, not OpenCV's.
* :func:`to_chw` / :func:`datum_pixels` / :func:`mat_to_datum` convert to Caffe's planar
  ``(C, H, W)`` layout and Datums (``CVMatToDatum``: channels, height, width, data, then
  ``encoded: false``).
"""
import io
import math

import numpy as np
from PIL import Image

from npcaffe.proto import caffe_pb2

MODES = ('color', 'gray', 'unchanged')
#: OpenCV's INTER_RESIZE_COEF_BITS
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


class ImageReadError(ValueError):
    """An image file or buffer that cannot be decoded (message names the file)."""


# ------------------------------------------------------------------------------------------
# decoding
def decode(buf, mode='color', where='image'):
    """Decode the bytes of an image file as ``cv::imdecode(buf, flag)`` does; see the module
    contract. ``where`` names the source in error messages."""
    if mode not in MODES:
        raise ValueError(f"decode mode must be one of {MODES}, got {mode!r}")
    try:
        im = Image.open(io.BytesIO(buf))
        if im.format == 'JPEG' and mode == 'gray' and im.mode != 'L':
            im.draft('L', im.size)          # libjpeg's luma output, as OpenCV's JPEG codec
        im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{where}: cannot decode the image ({exc})") from None
    return _to_mat(im, mode, where)


def imread(path, mode='color'):
    """``cv::imread(path, flag)``; ImageReadError (naming the file) when it is missing or not
    an image."""
    try:
        with open(path, 'rb') as f:
            buf = f.read()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return decode(buf, mode, str(path))


def _to_8bit(arr):
    """OpenCV's conversion of 16-bit and 32-bit integer samples to 8-bit (>> 8)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in 'iu' and arr.max(initial=0) <= 0xFFFF:
        return (np.clip(arr, 0, 0xFFFF) >> 8).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _gray_from_rgb(rgb, fmt):
    """(H, W, 3) RGB uint8 -> (H, W) gray as OpenCV's decoder for ``fmt`` computes it."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    if fmt == 'PNG':   # png_set_rgb_to_gray(png, 1, 0.299, 0.587): 15-bit fixed point
        return ((9797 * r + 19234 * g + 3737 * b + 16384) >> 15).astype(np.uint8)
    # cv::cvtColor(BGR2GRAY), 14-bit fixed point
    return ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14).astype(np.uint8)


def _to_mat(im, mode, where):
    fmt = im.format
    if im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        if mode == 'unchanged':
            raise ImageReadError(f"{where}: a 16-bit image; Caffe's data layers take 8-bit "
                                 f"images only (convert it to 8 bits)")
        gray = _to_8bit(np.asarray(im))
        return gray[..., None] if mode == 'gray' else np.repeat(gray[..., None], 3, axis=2)
    if im.mode == 'P':
        im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
    elif im.mode not in ('L', 'LA', 'RGB', 'RGBA'):
        im = im.convert('RGB')               # CMYK, YCbCr, 1, F ...
    arr = np.asarray(im)
    if mode == 'gray':
        if im.mode in ('L', 'LA'):
            gray = arr if arr.ndim == 2 else arr[..., 0]
        else:
            gray = _gray_from_rgb(arr[..., :3], fmt)
        return np.ascontiguousarray(gray)[..., None]
    if im.mode in ('L', 'LA'):
        gray = arr if arr.ndim == 2 else arr[..., 0]
        if mode == 'unchanged':
            if im.mode == 'L':
                return np.ascontiguousarray(gray)[..., None]
            return np.dstack([gray, gray, gray, arr[..., 1]])
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == 'unchanged' and im.mode == 'RGBA':
        return np.ascontiguousarray(arr[..., [2, 1, 0, 3]])
    return np.ascontiguousarray(arr[..., 2::-1])      # RGB(A) -> BGR


# ------------------------------------------------------------------------------------------
# resizing: cv::resize with INTER_LINEAR on 8-bit images
def _linear_taps(src, dst):
    """Per output index: the two source indices and their 11-bit weights (OpenCV's
    computeResizeAreaTab-free linear setup, with its clamping at both borders)."""
    scale = src / dst
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    low = s < 0
    f[low], s[low] = 0, 0
    high = s >= src - 1
    f[high], s[high] = 0, src - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int64)
    return s, np.minimum(s + 1, src - 1), w0, w1


def _area_half(img):
    """INTER_AREA for an exact 2x shrink: the rounded mean of each 2x2 block."""
    a = img.astype(np.int32)
    total = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
    return ((total + 2) >> 2).astype(np.uint8)


def resize_linear(img, height, width):
    """``cv::resize(img, cv::Size(width, height))`` (INTER_LINEAR) of an (H, W, C) uint8
    image; see the module contract."""
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"resize_linear takes an (H, W, C) uint8 image, got {img.dtype} "
                         f"{img.shape}")
    src_h, src_w = img.shape[:2]
    if height <= 0 or width <= 0:
        raise ValueError(f"resize target must be positive, got {height}x{width}")
    if (src_h, src_w) == (height, width):
        return img.copy()
    if src_h == 2 * height and src_w == 2 * width:
        return _area_half(img)
    x0, x1, a0, a1 = _linear_taps(src_w, width)
    y0, y1, b0, b1 = _linear_taps(src_h, height)
    rows = img.astype(np.int64)
    horiz = rows[:, x0] * a0[None, :, None] + rows[:, x1] * a1[None, :, None]   # (H, w, C)
    top, bottom = horiz[y0] >> 4, horiz[y1] >> 4
    # OpenCV's VResizeLinearVec_32s8u: mulhi of int16 values, then (sum + 2) >> 2
    part0 = (top * b0[:, None, None]) >> 16
    part1 = (bottom * b1[:, None, None]) >> 16
    return np.clip((part0 + part1 + 2) >> 2, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# encoding
_PIL_FORMATS = {'jpg': 'JPEG', 'jpeg': 'JPEG', 'png': 'PNG', 'bmp': 'BMP', 'tif': 'TIFF',
                'tiff': 'TIFF', 'webp': 'WEBP', 'ppm': 'PPM', 'pgm': 'PPM', 'pbm': 'PPM'}


def encode(img, ext):
    """``cv::imencode("." + ext, img)`` through Pillow: bytes of ``ext``'s format (JPEG at
    quality 95, OpenCV's default) holding the (H, W, 1|3) BGR image."""
    fmt = _PIL_FORMATS.get(ext.lower().lstrip('.'))
    if fmt is None:
        raise ValueError(f"cannot encode images as {ext!r}; known: "
                         f"{', '.join(sorted(_PIL_FORMATS))}")
    if img.shape[2] == 1:
        im = Image.fromarray(img[..., 0], 'L')
    else:
        im = Image.fromarray(np.ascontiguousarray(img[..., 2::-1]), 'RGB')
    out = io.BytesIO()
    im.save(out, fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# layouts and Datums
def to_chw(img):
    """(H, W, C) -> (C, H, W), contiguous (Caffe's planar order)."""
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def mat_to_datum(img, label=None):
    """Caffe's CVMatToDatum (+ set_label): channels, height, width, planar data and
    ``encoded: false``, serialized in that field order."""
    h, w, c = img.shape
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, data=to_chw(img).tobytes())
    if label is not None:
        datum.label = int(label)
    datum.encoded = False
    return datum


def datum_pixels(datum, force_color=False, force_gray=False, where='Datum'):
    """A Datum's pixels as (C, H, W): uint8 for ``data`` (decoded first when ``encoded``:
    as stored, or 3-channel / gray when forced, as Caffe's DataTransformer), float32 for
    ``float_data``."""
    if datum.encoded:
        mode = 'color' if force_color else 'gray' if force_gray else 'unchanged'
        return to_chw(decode(datum.data, mode, where))
    shape = (datum.channels, datum.height, datum.width)
    count = math.prod(shape)
    if count <= 0:
        raise ValueError(f"{where}: a raw Datum with shape {shape} (channels, height and "
                         f"width must be positive)")
    if datum.data:
        if len(datum.data) != count:
            raise ValueError(f"{where}: {len(datum.data)} bytes of data for the shape {shape} "
                             f"({count} needed)")
        return np.frombuffer(datum.data, np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise ValueError(f"{where}: {len(datum.float_data)} float_data values for the shape "
                         f"{shape} ({count} needed)")
    return np.asarray(datum.float_data, np.float32).reshape(shape)
