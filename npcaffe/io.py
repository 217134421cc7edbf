"""pycaffe's ``caffe.io``: arrays to and from Caffe's messages, image loading and resizing, crops,
and the ``Transformer`` that turns images into net inputs. NumPy and Pillow only.

Where pycaffe calls scikit-image, this module computes the same thing itself:

* ``load_image`` reads with Pillow and scales as skimage's ``img_as_float`` (8-bit / 255, 16-bit
  / 65535, float images as they are); grayscale from colour uses skimage's ``rgb2gray`` weights
  (0.2125 R + 0.7154 G + 0.0721 B).
* ``resize_image`` computes what pycaffe's does with scipy.ndimage alone: for 1 or 3 channels
  skimage.transform.resize's half-pixel centres with ``mode='constant'`` (the image scaled to
  [0, 1], zero beyond the border, clipped), for other channel counts scipy.ndimage.zoom as
  pycaffe calls it; nearest, bilinear (the default) and spline orders 2-5. There is no
  anti-aliasing when shrinking (old skimage, which pycaffe was written against, had none).
* ``Transformer.set_mean`` resizes a per-pixel mean of another size to the input's, as pycaffe
  does (classify.py's 256 x 256 ImageNet mean for a 227 x 227 input).

Example::

    import npcaffe as caffe
    net = caffe.Net('deploy.prototxt', caffe.TEST, weights='weights.caffemodel')
    t = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
    t.set_transpose('data', (2, 0, 1))        # H x W x K -> K x H x W
    t.set_channel_swap('data', (2, 1, 0))     # RGB -> BGR
    t.set_raw_scale('data', 255)              # [0, 1] -> [0, 255]
    t.set_mean('data', np.array([104.0, 117.0, 123.0]))
    net.blobs['data'].data[0] = t.preprocess('data', caffe.io.load_image('cat.jpg'))
"""
import io as _stdio
import logging

import numpy as np
from PIL import Image

from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

#: skimage.color.rgb2gray's weights (ITU-R BT.709 luma)
GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


# ------------------------------------------------------------------------------------------
# proto / datum / ndarray conversion
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as a float64 array in the blob's shape: the legacy
    num/channels/height/width when any of them is set, else ``shape.dim``.

    Raises ValueError when the number of values does not fit the shape (e.g. no shape at all
    for more than one value).
    """
    values = blob.diff if return_diff else blob.data
    doubles = blob.double_diff if return_diff else blob.double_data
    if not len(values) and len(doubles):
        values = doubles
    data = np.array(values, dtype=np.float64)
    if any(blob.HasField(f) for f in ('num', 'channels', 'height', 'width')):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if data.size != count:
        what = 'diff' if return_diff else 'data'
        raise ValueError(f"the BlobProto holds {data.size} {what} values but its shape "
                         f"{shape} needs {count}")
    return data.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with ``shape.dim`` = ``arr.shape`` and the values of ``arr`` (and ``diff``,
    which must have as many values) as floats."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(np.float64).ravel().tolist())
    if diff is not None:
        diff = np.asarray(diff)
        if diff.size != arr.size:
            raise ValueError(f"diff has {diff.size} values, the array {arr.size}")
        blob.diff.extend(diff.astype(np.float64).ravel().tolist())
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays (as Caffe's mean files with several blobs)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


#: pycaffe's own (misspelled) name for the same function, which its scripts call
arraylist_to_blobprotovecor_str = arraylist_to_blobprotovector_str


def blobprotovector_str_to_arraylist(str):  # noqa: A002 - pycaffe's parameter name
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(str)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum from a (C, H, W) array: uint8 arrays go to ``data`` as bytes, other types to
    ``float_data``; ``label`` is set only when given."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"array_to_datum takes a 3-d (channels, height, width) array, got "
                         f"shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float64).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """A Datum's values as a (C, H, W) array: uint8 from ``data``, float64 from
    ``float_data`` (the label is ``datum.label``). An encoded Datum (``encoded: true``, an
    image file's bytes in ``data``) is decoded as Caffe's DecodeDatumToCVMat does: 3 channels
    in BGR order, or 1 (grayscale) when the Datum says ``channels: 1``."""
    if datum.encoded:
        with Image.open(_stdio.BytesIO(datum.data)) as im:
            arr = np.asarray(im.convert('L' if datum.channels == 1 else 'RGB'), dtype=np.uint8)
        return arr[None] if arr.ndim == 2 else arr[:, :, ::-1].transpose(2, 0, 1).copy()
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float64).reshape(shape)


# ------------------------------------------------------------------------------------------
# pre-processing
class Transformer:
    """Format images for a net's inputs (pycaffe's ``caffe.io.Transformer``).

    Args:
        inputs: ``{input name: blob shape (N, K, H, W)}``, e.g.
            ``{'data': net.blobs['data'].data.shape}``.

    ``preprocess(name, image)`` takes an (H', W', K) image and applies, in this order: convert
    to float32, resize to the input's (H, W), transpose, channel swap, ``* raw_scale``,
    ``- mean``, ``* input_scale``. ``deprocess`` undoes them (except the resize).
    """

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise ValueError(f"{in_!r} is not one of the net inputs: {list(self.inputs)}")

    def preprocess(self, in_, data):
        """Format ``data`` (H' x W' x K) for input ``in_``; returns the (K x H x W) float32
        array to put into the blob. ``data`` itself is never modified."""
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=True)
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        """Invert :meth:`preprocess` (not its resize): a (K x H x W) blob item, or a batch of
        one, back to an (H x W x K) image."""
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        """The order to transpose an image's axes into the blob's, e.g. (2, 0, 1) for
        H x W x K -> K x H x W."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError(f"transpose order {tuple(order)} needs {len(self.inputs[in_]) - 1} "
                             f"axes, as many as an item of input {in_!r} {self.inputs[in_][1:]}")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """The order to take the channels in, after the transpose: (2, 1, 0) maps RGB to BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError(f"channel swap {tuple(order)} needs {self.inputs[in_][1]} entries, "
                             f"one per channel of input {in_!r}")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """Scale applied after the transpose and channel swap, before the mean: 255 for models
        (CaffeNet, VGG, FCN) trained on [0, 255] images, as load_image gives [0, 1]."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """The mean to subtract: one value per channel (a 1-d array of K values), or an
        elementwise mean with the item's K channels (K x H' x W', or H' x W' for K = 1).

        An elementwise mean of another size is resized to the input's H x W with
        :func:`resize_image`, as pycaffe does (python/classify.py hands its 256 x 256 ImageNet
        mean to a 227 x 227 input); a constant mean stays constant (pycaffe divides by zero).
        """
        self._check_input(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        item = self.inputs[in_][1:]                     # (K, H, W)
        if mean.ndim == 1:
            if ms[0] != item[0]:
                raise ValueError(f"mean has {ms[0]} channels, input {in_!r} {item[0]}")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError(f"mean shape {mean.shape} is invalid: give K values, or a "
                                 f"K x H x W (or H x W) array")
            if ms[0] != item[0]:
                raise ValueError(f"mean shape {mean.shape} is incompatible with input {in_!r} "
                                 f"of item shape {item}: {ms[0]} channels, not {item[0]}")
            if ms[1:] != item[1:]:
                log.info("resizing the mean of input %r from %s to %s", in_, ms[1:], item[1:])
                if mean.ndim == 2:
                    mean = resize_image(mean, item[1:])                     # (H, W)
                else:
                    mean = resize_image(mean.transpose(1, 2, 0), item[1:]).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Scale applied last, after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale


# ------------------------------------------------------------------------------------------
# images
def _pil_to_float(im):
    """A Pillow image as a float array in [0, 1] (H x W, or H x W x C), as skimage's
    img_as_float scales the integer type it would have read."""
    mode = im.mode
    if mode == '1':
        return np.asarray(im, dtype=bool).astype(np.float64)
    if mode in ('L', 'LA', 'RGB', 'RGBA'):
        return np.asarray(im, dtype=np.uint8) / 255.0
    if mode == 'P':
        rgba = 'transparency' in im.info or im.palette.mode == 'RGBA'
        return np.asarray(im.convert('RGBA' if rgba else 'RGB'), dtype=np.uint8) / 255.0
    if mode.startswith('I;16'):
        return np.asarray(im).astype(np.float64) / 65535.0
    if mode == 'I':
        arr = np.asarray(im, dtype=np.int64)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:   # 16-bit data held as int32
            return arr / 65535.0
        return arr / float(2 ** 31 - 1)
    if mode == 'F':
        return np.asarray(im, dtype=np.float64)
    return np.asarray(im.convert('RGB'), dtype=np.uint8) / 255.0   # CMYK, YCbCr, LAB, ...


def load_image(filename, color=True):
    """Load an image as float32 in [0, 1], always 3-d: (H x W x 3) RGB when ``color`` (gray
    images repeated to 3 channels, alpha dropped), else (H x W x 1) intensity (colour images
    converted with skimage's rgb2gray weights). ``filename`` may also be a file object."""
    with Image.open(filename) as im:
        im.load()
        img = _pil_to_float(im)
    if img.ndim == 3 and img.shape[2] in (2, 4):      # gray + alpha, RGB + alpha
        img = img[:, :, :img.shape[2] - 1]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not color and img.ndim == 3:
        img = img[:, :, :3] @ GRAY_WEIGHTS
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return img


def _zoom_half_pixel(im, new_dims, order):
    """skimage.transform.resize(im, new_dims, order, mode='constant', anti_aliasing=False) of an
    (H x W x K) float64 image in [0, 1]: output pixel centre i samples the input at
    (i + 0.5) * old / new - 0.5, beyond the border the image is 0 (scipy's 'grid-constant'),
    and the result is clipped to [0, 1] (except for nearest)."""
    from scipy import ndimage
    zoom = (new_dims[0] / im.shape[0], new_dims[1] / im.shape[1], 1.0)
    out = ndimage.zoom(im, zoom, order=order, mode='grid-constant', cval=0.0, grid_mode=True)
    if order > 0:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def resize_image(im, new_dims, interp_order=1):
    """Resize an (H x W x K) image (any K; or H x W, as one channel) to ``new_dims`` =
    (height, width), as pycaffe's resize_image does.

    ``interp_order``: 0 nearest, 1 bilinear (default), 2-5 spline. Returns float32 of shape
    (new_dims[0], new_dims[1], K) (or (height, width) for an H x W image).

    For K = 1 or 3 (what pycaffe hands to skimage.transform.resize): the image is scaled to
    [0, 1] by its overall min and max, resized with half-pixel centres and ``mode='constant'``
    (zero beyond the border, so upsampled border pixels blend toward the image's minimum:
    [2, 4] to 4 pixels is [2, 2.5, 3.5, 3.5]), clipped to [0, 1] and scaled back; a constant
    image stays exactly that constant. Other K (pycaffe's scipy.ndimage.zoom branch): corner
    pixels map to corner pixels ([2, 4] to 4 pixels is [2, 2.667, 3.333, 4]), no clipping.
    Shrinking applies no anti-aliasing (skimage's resize of pycaffe's day had none).
    """
    im = np.asarray(im)
    new_h, new_w = (int(d) for d in new_dims)
    if im.ndim not in (2, 3):
        raise ValueError(f"resize_image takes an H x W x K (or H x W) image, got shape "
                         f"{im.shape}")
    if new_h <= 0 or new_w <= 0 or im.shape[0] == 0 or im.shape[1] == 0:
        raise ValueError(f"cannot resize an image of shape {im.shape} to {new_dims}")
    if interp_order not in range(6):
        raise ValueError(f"interp_order must be 0 (nearest) .. 5 (quintic spline), got "
                         f"{interp_order}")
    work = im[:, :, np.newaxis] if im.ndim == 2 else im
    work = work.astype(np.float64)                          # (H, W, K)
    if work.shape[2] in (1, 3):
        lo, hi = work.min(), work.max()
        if not hi > lo:                                     # constant: pycaffe fills
            out = np.full((new_h, new_w, work.shape[2]), lo)
        else:
            out = _zoom_half_pixel((work - lo) / (hi - lo), (new_h, new_w), interp_order)
            out = out * (hi - lo) + lo
    else:
        from scipy import ndimage
        zoom = (new_h / work.shape[0], new_w / work.shape[1], 1.0)
        out = ndimage.zoom(work, zoom, order=interp_order)  # (new_h, new_w, K)
    if im.ndim == 2:
        out = out[:, :, 0]
    return np.ascontiguousarray(out, dtype=np.float32)


def oversample(images, crop_dims):
    """Ten crops of each image: the four corners and the centre, then the same five mirrored
    left-right. ``images``: a sequence of (H x W x K) arrays of one shape; ``crop_dims``:
    (height, width). Returns float32 (10 * N, height, width, K), image by image."""
    images = images if isinstance(images, np.ndarray) else list(images)
    if not len(images):
        return np.empty((0,) + tuple(int(d) for d in crop_dims) + (0,), np.float32)
    h, w = images[0].shape[:2]
    ch, cw = (int(d) for d in crop_dims)
    if ch > h or cw > w:
        raise ValueError(f"crop {ch} x {cw} is larger than the images ({h} x {w})")
    # (top, left) of each crop; the centre crop starts at floor((size - crop) / 2), which is
    # where pycaffe's float centre +- crop/2, truncated to int, lands
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
    crops = np.empty((10 * len(images), ch, cw, images[0].shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for top, left in corners:
            crops[ix] = im[top:top + ch, left:left + cw, :]
            ix += 1
        crops[ix:ix + 5] = crops[ix - 5:ix, :, ::-1, :]    # mirrors
        ix += 5
    return crops
