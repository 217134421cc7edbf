"""Segment images with an FCN: ``python infer.py --deploy D.prototxt --weights W.caffemodel
--out DIR IMAGE... | FOLDER``.

For every image, writes ``DIR/<name>.png``: a P-mode label image of the input's size whose
pixel values are class indices, coloured with the VOC palette (a longer palette of the same
rule when there are more than 21 classes). Optionally ``<name>_overlay.jpg`` (labels blended
over the image) and ``<name>_scores.npy`` (the (classes, H, W) float32 scores).

Any input size works (FCN's conv1 pad and crop layers line the output up with the input).
Images are preprocessed as the data layers do it: RGB → BGR, float32, mean subtracted,
channels first. Greyscale, RGBA, palette, CMYK and 16-bit images are converted to RGB.

Started by an MPI launcher (``mpirun -n N python infer.py ...``), rank r segments images r,
r + N, ... of the sorted list (each image once, on several machines if the job spans them);
rank 0 reports the total and every rank's failures. ``--gpu N``: ``caffe.set_device(N);
caffe.set_mode_gpu()`` (npcaffe warns and runs on the CPU).
"""
import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from fcn import backend, surgery, tiles, vis
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


@contextlib.contextmanager
def _pixel_limit(limit):
    """Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) set to ``limit`` while
    inside (None: no limit)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _target_size(width, height, max_size):
    """(width, height) scaled so that the longer side is at most ``max_size``."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    factor = max_size / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def load_image(path, max_size=None):
    """(RGB uint8 array, (width, height) of the file) of the image at ``path``, downscaled so
    that its longer side is at most ``max_size`` (when given). ValueError naming the file when
    it cannot be read.

    With ``max_size`` the image is decoded at a reduced size where the format allows it (JPEG)
    and Pillow's pixel limit does not apply, since the pixels are never all held at full size;
    without it an image above Pillow's limit is refused with the size and the way out."""
    limit = None if max_size else Image.MAX_IMAGE_PIXELS
    try:
        with _pixel_limit(limit), Image.open(path) as image:
            size = image.size
            target = _target_size(*size, max_size)
            if target != size:
                image.draft('RGB', target)         # JPEG: decode at 1/2, 1/4 or 1/8 size
                image = image.convert('RGB') if image.mode != 'RGB' else image
                image = image.resize(target, Image.BILINEAR, reducing_gap=2.0)
            else:
                image.load()
            return image_to_rgb(image), size
    except FileNotFoundError:
        raise ValueError(f"{path}: no such image") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: {exc}; segment it downscaled with --max-size (e.g. "
                         f"--max-size 4000), the labels are scaled back to its size") from None
    except (OSError, SyntaxError, ValueError) as exc:
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


class UntouchedLayersError(ValueError):
    """Weights that leave parameter layers of the deploy net at their fillers."""


def load_weights(net, weights):
    """Copy ``weights`` into ``net`` as Caffe does (layers matched by name); return the names of
    the net's layers with parameters that the file did not reach."""
    copied = net.copy_from(str(weights))
    if copied is None:              # BVLC pycaffe reports nothing: read the file's layer names
        copied = surgery.read_caffemodel_params(weights).params
    return [name for name in net.params if name not in set(copied)]


class Segmenter:
    """A deploy net with its weights, segmenting one image at a time.

    Args:
        deploy: deploy prototxt (an Input layer, no loss).
        weights: caffemodel.
        score_blob: the blob holding class scores (default 'score', else the only output).
        mean: BGR mean subtracted from every image.
        allow_untouched: segment even when the weights leave layers with parameters at their
            fillers (otherwise UntouchedLayersError: their zeros make every pixel class 0).
        engine: ``'caffe'`` (the backend's own forward) or ``'onnxruntime'`` (the net exported
            to ONNX once, into the cache, and run by ONNX Runtime; npcaffe backend only).
    """

    ENGINES = ('caffe', 'onnxruntime')

    def __init__(self, deploy, weights, score_blob=None, mean=VOC_MEAN, allow_untouched=False,
                 engine='caffe'):
        if engine not in self.ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(self.ENGINES)}")
        caffe = backend.caffe
        self.deploy = deploy
        self.net = caffe.Net(str(deploy), caffe.TEST)
        untouched = load_weights(self.net, weights)
        if untouched:
            shown = ', '.join(untouched[:6]) + (' ...' if len(untouched) > 6 else '')
            message = (f"{weights} leaves {len(untouched)} of the {len(self.net.params)} layers "
                       f"with parameters of {deploy} untouched ({shown}): they keep their "
                       f"fillers (zeros unless the prototxt says otherwise), so the scores are "
                       f"meaningless, typically every pixel background. Are these the weights "
                       f"of another net (FCN-8s weights on an FCN-32s deploy name other "
                       f"layers)? Pass --allow-untouched to segment anyway")
            if not allow_untouched:
                raise UntouchedLayersError(message)
            log.warning(message)
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
        self.engine = None
        if engine == 'onnxruntime':
            if backend.name() != 'npcaffe':
                raise ValueError("--engine onnxruntime exports the net with npcaffe; it does "
                                 "not run with --backend caffe")
            from fcn.onnx_engine import OnnxRuntimeEngine
            self.engine = OnnxRuntimeEngine(self.net, deploy, weights, score_blob)
        self.class_names = None     # names of the classes, for the overlay's legend

    @classmethod
    def from_pretrained(cls, name, mirror=None, cache=None, score_blob=None, **options):
        """The Segmenter of a published model (``fcn models list``), its weights fetched into
        the cache, with its mean and class names (``fcn.models``):
        ``Segmenter.from_pretrained('voc-fcn8s')``; ``options`` as for the constructor
        (``engine='onnxruntime'``, say)."""
        from fcn import models
        deploy, weights, blob, mean, names = models.pretrained(name, mirror, cache, score_blob)
        seg = cls(deploy, weights, blob, mean, **options)
        seg.class_names = names
        return seg

    @property
    def num_classes(self):
        return self.net.blobs[self.score_blob].data.shape[1]

    def memory_needed(self, height, width):
        """Bytes a forward of a ``height`` x ``width`` image holds: the net's blobs reshaped to
        that input (the weights are already in memory). Reshaping computes shapes only."""
        blob = self.net.blobs[self.input]
        blob.reshape(1, blob.data.shape[1], height, width)
        self.net.reshape()
        return sum(int(np.prod(b.data.shape)) * b.data.itemsize
                   for b in self.net.blobs.values())

    def check_memory(self, height, width, name):
        """MemoryError with an estimate when the image will not fit in memory."""
        need = self.memory_needed(height, width)
        have = available_memory()
        if have is not None and need > have:
            raise MemoryError(f"{name}: a {width}x{height} image needs about "
                              f"{need / 2**30:.1f} GiB to segment, but only "
                              f"{have / 2**30:.1f} GiB is available; downscale it with "
                              f"--max-size")

    def scores(self, rgb):
        """(classes, H, W) float32 scores for an RGB uint8 image."""
        data = preprocess(rgb, self.mean)
        if self.engine is not None:
            out = self.engine.scores(np.ascontiguousarray(data))[0]
        else:
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


def segment_file(seg, path, out_dir, max_size=None, overlay=False, save_scores=False,
                 tiler=None):
    """Segment the image at ``path``; write its outputs into ``out_dir``; return the label.
    With ``tiler`` (an ``fcn.tiles.Tiler``), in overlapping tiles (the same scores)."""
    small, (width, height) = load_image(path, max_size)
    if tiler is not None:
        scores = tiler.scores(small) if save_scores else None
        label = tiler.label(small) if scores is None else scores.argmax(axis=0).astype(np.uint8)
        small_label = label
    else:
        seg.check_memory(small.shape[0], small.shape[1], path)
        scores = seg.scores(small)
        label = small_label = scores.argmax(axis=0).astype(np.uint8)       # (H, W)
    if small.shape[:2] != (height, width):
        with warnings.catch_warnings(), _pixel_limit(None):    # the file's own size
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            label = np.asarray(Image.fromarray(label).resize((width, height), Image.NEAREST))
    pal = vis.palette(max(seg.num_classes, 21))
    stem = Path(path).stem
    save_png(vis.label_to_pil(label, pal), out_dir / f"{stem}.png")
    if overlay:
        if small.shape[:2] != (height, width):        # blend at the size segmented
            label = small_label
        blended = Image.fromarray(vis.overlay_with_legend(small, label, seg.class_names, pal))
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
    parser.add_argument('--deploy', help='deploy prototxt (required without --model)')
    parser.add_argument('--weights', help='trained caffemodel (required without --model)')
    parser.add_argument('--model', metavar='NAME',
                        help='a published model (fcn models list): fetched into the cache, '
                             'its deploy net, mean and class names; overlays with a legend')
    parser.add_argument('--mirror', metavar='URL', help='with --model: fetch the weights as '
                        'URL/<file> (a local copy)')
    parser.add_argument('--cache', metavar='DIR', help='with --model: the model cache '
                        '(default FCN_CACHE, else ~/.cache/fcn)')
    parser.add_argument('--out', type=Path, help='output folder (created; required without '
                        '--model, else seg-NAME)')
    parser.add_argument('--overlay', action='store_true',
                        help='also write <name>_overlay.jpg (labels over the image)')
    parser.add_argument('--save-scores', action='store_true',
                        help='also write <name>_scores.npy, the (classes, H, W) scores')
    parser.add_argument('--score-blob', help="blob with the class scores (default 'score')")
    parser.add_argument('--mean', type=float, nargs=3, default=VOC_MEAN, metavar=('B', 'G', 'R'),
                        help='BGR mean to subtract (default: the VOC mean of the reference)')
    parser.add_argument('--max-size', type=int, metavar='PIXELS',
                        help='downscale images whose longer side exceeds this, and upscale '
                             'the labels back (also lifts Pillow\'s pixel limit)')
    parser.add_argument('--engine', choices=Segmenter.ENGINES, default='caffe',
                        help="run the net with the backend (caffe, default) or with ONNX "
                             "Runtime (exported once into the cache: $FCN_CACHE/onnx)")
    parser.add_argument('--gpu', type=int, metavar='N',
                        help='segment on GPU N (npcaffe has no GPU engine yet: it warns and '
                             'runs on the CPU)')
    parser.add_argument('--allow-untouched', action='store_true',
                        help='segment even when the weights leave layers with parameters at '
                             'their fillers')
    parser.add_argument('--tile', type=int, metavar='PIXELS',
                        help='segment in tiles of this many pixels a side, overlapping by the '
                             "net's receptive field (the same scores; for images larger than "
                             'memory)')
    backend.add_argument(parser)
    return parser


def run(args):
    """Segment every image; one that cannot be read or segmented is reported and skipped, the
    others are done, and the run then fails (status 1) listing the failures."""
    if args.backend:
        backend.use(args.backend)
    if args.max_size is not None and args.max_size < 1:
        raise runner.UsageError(f"--max-size {args.max_size}: give the longer side in pixels")
    if args.gpu is not None:
        if args.gpu < 0:
            raise runner.UsageError(f"--gpu {args.gpu}: GPU ids are >= 0")
        backend.caffe.set_device(args.gpu)
        backend.caffe.set_mode_gpu()
    if args.model:
        from fcn import models
        models.prepare_infer_args(args)
    elif not (args.deploy and args.weights and args.out):
        missing = [o for o, v in (('--deploy', args.deploy), ('--weights', args.weights),
                                  ('--out', args.out)) if not v]
        raise runner.UsageError(f"the following arguments are required: {', '.join(missing)} "
                                f"(or --model NAME)")
    paths = collect_images(args.inputs)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file, not a folder; choose another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    dist = getattr(backend.caffe, 'distributed', None)     # npcaffe's; pycaffe: one process
    group = dist.world() if dist is not None else None     # the MPI job under mpirun
    rank, size = (group.rank, group.size) if group else (0, 1)
    with dist.abort_on_failure(group) if group else contextlib.nullcontext():
        options = dict(allow_untouched=args.allow_untouched, engine=args.engine)
        if args.model:
            seg = Segmenter.from_pretrained(args.model, args.mirror, args.cache,
                                            args.score_blob, **options)
        else:
            seg = Segmenter(args.deploy, args.weights, args.score_blob, tuple(args.mean),
                            **options)
        tiler = tiles.Tiler(seg, seg.deploy, args.tile) if args.tile else None
        mine = paths[rank::size]
        failed = []
        for path in runner.progress(mine, label='segmenting', unit='images'):
            try:
                segment_file(seg, path, args.out, args.max_size, args.overlay,
                             args.save_scores, tiler)
            except (ValueError, MemoryError) as exc:
                log.error("%s", exc)
                failed.append((path, exc))
                continue
            log.info("%s -> %s", path, args.out / f"{Path(path).stem}.png")
        if size > 1:                    # every rank's failures, on rank 0
            gathered = group.gather([(str(path), str(exc)) for path, exc in failed])
            if rank:
                return 1 if failed else 0
            failed = [(path, ValueError(text)) for part in gathered for path, text in part]
    done = len(paths) - len(failed)
    print(f"segmented {done} image(s) into {args.out}")
    if failed:
        raise ValueError(f"{len(failed)} of {len(paths)} images could not be segmented: "
                         + '; '.join(str(exc) for _, exc in failed[:5])
                         + (' ...' if len(failed) > 5 else ''))


def main(argv=None):
    return runner.run(run, build_parser(), argv)
