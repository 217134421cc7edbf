"""Segment images with an FCN: ``python infer.py --deploy D.prototxt --weights W.caffemodel
--out DIR IMAGE... | FOLDER``.

For every image, writes ``DIR/<name>.png``: a P-mode label image of the input's size whose
pixel values are class indices, coloured with the VOC palette (a longer palette of the same
rule when there are more than 21 classes). Optionally ``<name>_overlay.jpg`` (labels blended
over the image) and ``<name>_scores.npy`` (the (classes, H, W) float32 scores).

Any input size works (FCN's conv1 pad and crop layers line the output up with the input).
Images are preprocessed as the data layers do it: RGB → BGR, float32, mean subtracted,
channels first. Greyscale, RGBA, palette, CMYK and 16-bit images are converted to RGB.
"""
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from fcn import backend, vis
from fcn.files import atomic_write, save_image, save_png
from npcaffe.cli import runner

log = logging.getLogger('infer')

VOC_MEAN = (104.00699, 116.66877, 122.67892)   # BGR, as the reference FCN data layers
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')


# ------------------------------------------------------------------------------------------
# images in
def image_to_rgb(image):
    """An (H, W, 3) uint8 RGB array from a PIL image of any common mode.

    16-bit and 32-bit greyscale are scaled to 0..255 by their type's range (65535 for I;16),
    float images are clipped to 0..255; alpha is dropped."""
    mode = image.mode
    if mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith('I;16'):
            arr = arr / 257.0
        elif mode == 'I':
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode != 'RGB':
        image = image.convert('RGB')
    return np.asarray(image, dtype=np.uint8)


def preprocess(rgb, mean=VOC_MEAN):
    """(1, 3, H, W) float32 network input: BGR, mean subtracted, channels first."""
    bgr = rgb[:, :, ::-1].astype(np.float32)
    bgr -= np.asarray(mean, dtype=np.float32)
    return bgr.transpose(2, 0, 1)[None]          # (1, 3, H, W)


def load_image(path):
    """RGB uint8 array of the image file at ``path``; ValueError naming it when unreadable."""
    try:
        with Image.open(path) as image:
            image.load()
            return image_to_rgb(image)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot read the image ({exc})") from None


def collect_images(sources):
    """Image paths from files and folders (a folder's images in name order)."""
    paths = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(p for p in source.iterdir()
                           if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                raise ValueError(f"{source}: no images ({', '.join(IMAGE_EXTENSIONS)}) "
                                 f"in this folder")
            paths += found
        elif source.exists():
            paths.append(source)
        else:
            raise ValueError(f"{source}: no such image or folder")
    stems = {}
    for p in paths:
        if p.stem in stems:
            raise ValueError(f"{stems[p.stem]} and {p} would both be written as {p.stem}.png; "
                             f"segment them into different --out folders")
        stems[p.stem] = p
    return paths


# ------------------------------------------------------------------------------------------
# the net
def available_memory():
    """Bytes of memory available (Linux MemAvailable), or None when unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Segmenter:
    """A deploy net with its weights, segmenting one image at a time.

    Args:
        deploy: deploy prototxt (an Input layer, no loss).
        weights: caffemodel.
        score_blob: the blob holding class scores (default 'score', else the only output).
        mean: BGR mean subtracted from every image.
    """

    def __init__(self, deploy, weights, score_blob=None, mean=VOC_MEAN):
        caffe = backend.caffe
        self.net = caffe.Net(str(deploy), str(weights), caffe.TEST)
        if not self.net.inputs:
            raise ValueError(f"{deploy}: the net has no input blob (an Input layer named "
                             f"'data' is expected in a deploy prototxt)")
        self.input = self.net.inputs[0]
        outputs = list(self.net.outputs)
        if score_blob is None:
            score_blob = 'score' if 'score' in self.net.blobs else outputs[0]
        if score_blob not in self.net.blobs:
            raise ValueError(f"{deploy}: no blob named {score_blob!r}; outputs: {outputs}")
        self.score_blob = score_blob
        self.mean = mean
        shape = self.net.blobs[self.input].data.shape
        self._base_pixels = max(shape[-1] * shape[-2], 1)
        self._base_bytes = sum(b.data.nbytes for b in self.net.blobs.values())

    @property
    def num_classes(self):
        return self.net.blobs[self.score_blob].data.shape[1]

    def check_memory(self, height, width, name):
        """MemoryError with an estimate when the image will not fit in memory."""
        need = 2 * self._base_bytes * (height * width) / self._base_pixels
        have = available_memory()
        if have is not None and need > have:
            raise MemoryError(f"{name}: a {width}x{height} image needs about "
                              f"{need / 2**30:.1f} GiB to segment, but only "
                              f"{have / 2**30:.1f} GiB is available; downscale it with "
                              f"--max-size")

    def scores(self, rgb):
        """(classes, H, W) float32 scores for an RGB uint8 image."""
        data = preprocess(rgb, self.mean)
        blob = self.net.blobs[self.input]
        blob.reshape(*data.shape)
        blob.data[...] = data
        self.net.forward()
        out = self.net.blobs[self.score_blob].data[0]
        if out.shape[1:] != rgb.shape[:2]:
            raise ValueError(f"the net's {self.score_blob!r} is {out.shape[1]}x{out.shape[2]} "
                             f"for a {rgb.shape[0]}x{rgb.shape[1]} input; a deploy net must "
                             f"crop its scores to the input size")
        return out.copy()


def segment_file(seg, path, out_dir, max_size=None, overlay=False, save_scores=False):
    """Segment the image at ``path``; write its outputs into ``out_dir``; return the label."""
    rgb = load_image(path)
    height, width = rgb.shape[:2]
    small = rgb
    if max_size and max(height, width) > max_size:
        factor = max_size / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    seg.check_memory(small.shape[0], small.shape[1], path)
    scores = seg.scores(small)
    label = scores.argmax(axis=0).astype(np.uint8)       # (H, W)
    if small is not rgb:
        label = np.asarray(Image.fromarray(label).resize((width, height), Image.NEAREST))
    pal = vis.palette(max(seg.num_classes, 21))
    stem = Path(path).stem
    save_png(vis.label_to_pil(label, pal), out_dir / f"{stem}.png")
    if overlay:
        blended = Image.fromarray(vis.overlay(rgb, label, palette=pal))
        save_image(blended, out_dir / f"{stem}_overlay.jpg", 'JPEG', quality=90)
    if save_scores:
        with atomic_write(out_dir / f"{stem}_scores.npy") as f:
            np.save(f, scores)
    return label



# ------------------------------------------------------------------------------------------
def build_parser():
    parser = runner.ArgumentParser(
        prog='fcn infer',
        description="Segment images with a trained FCN into label PNGs (class indices, VOC "
                    "palette) the size of each input.",
        epilog=__doc__.split('\n\n', 1)[1].replace('``', '') +
        "\nexample:\n  python infer.py --deploy voc-fcn8s/deploy.prototxt "
        "--weights fcn8s.caffemodel --out seg/ photos/\n")
    parser.add_argument('inputs', nargs='+', metavar='IMAGE|FOLDER',
                        help='images, or folders of images')
    parser.add_argument('--deploy', required=True, help='deploy prototxt')
    parser.add_argument('--weights', required=True, help='trained caffemodel')
    parser.add_argument('--out', required=True, type=Path, help='output folder (created)')
    parser.add_argument('--overlay', action='store_true',
                        help='also write <name>_overlay.jpg (labels over the image)')
    parser.add_argument('--save-scores', action='store_true',
                        help='also write <name>_scores.npy, the (classes, H, W) scores')
    parser.add_argument('--score-blob', help="blob with the class scores (default 'score')")
    parser.add_argument('--mean', type=float, nargs=3, default=VOC_MEAN, metavar=('B', 'G', 'R'),
                        help='BGR mean to subtract (default: the VOC mean of the reference)')
    parser.add_argument('--max-size', type=int, metavar='PIXELS',
                        help='downscale images whose longer side exceeds this, and upscale '
                             'the labels back')
    backend.add_argument(parser)
    return parser


def run(args):
    if args.backend:
        backend.use(args.backend)
    paths = collect_images(args.inputs)
    args.out.mkdir(parents=True, exist_ok=True)
    seg = Segmenter(args.deploy, args.weights, args.score_blob, tuple(args.mean))
    for path in runner.progress(paths, label='segmenting'):
        segment_file(seg, path, args.out, args.max_size, args.overlay, args.save_scores)
        log.info("%s -> %s", path, args.out / f"{Path(path).stem}.png")
    print(f"segmented {len(paths)} image(s) into {args.out}")


def main(argv=None):
    return runner.run(run, build_parser(), argv)
