"""Label tools: turn RGB-coloured label images into index PNGs, and check a labelled dataset.

Pure NumPy + Pillow; nothing here touches Caffe.

Segmentation labels for FCN are *index* images: each pixel holds its class number (0..N-1, and
an ignore value such as 255), stored as a P-mode PNG with a palette (as VOC ships them) or as an
L-mode (8-bit grey) / I;16 PNG. Many annotation tools instead save *RGB-coloured* labels, where
each class is a colour; opened as an array they give colours, not classes. This module maps
colours back to indices through a palette, and checks a dataset for the usual mistakes.

Command line::

    fcn labels convert SRC... --out DIR [--palette voc|FILE] [--unknown INDEX]
    fcn labels check --images DIR --labels DIR [--split FILE] --classes N [--ignore 255]

``convert`` writes ``DIR/<stem>.png`` (P mode, the palette attached) for every SRC file and every
label image in a SRC folder; exit 0 when all converted, 1 when some file could not be (its
reason on stderr: e.g. colours not in the palette), 2 on usage errors. ``check`` prints one line
per problem and then a summary of the classes present; exit 0 when no problems, 1 when some, 2
on usage errors. A palette FILE has one ``R G B`` line per index (blank lines and ``#`` comments
are skipped; anything after the three numbers is ignored, e.g. a class name).
"""
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np

from fcn import vis
from fcn.files import save_png
from fcn.metrics import class_names
from npcaffe.cli import runner

__all__ = ['INDEX_MODES', 'LABEL_EXTENSIONS', 'IMAGE_EXTENSIONS', 'LabelError',
           'UnknownColourError',
           'read_index_label', 'load_palette', 'rgb_to_index',
           'convert_file', 'CheckReport', 'check_dataset', 'main']

log = logging.getLogger(__name__)

INDEX_MODES = ('P', 'L', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', '1')  # PIL modes of index labels
LABEL_EXTENSIONS = ('.png', '.bmp', '.gif', '.tif', '.tiff', '.ppm', '.pgm')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff')
CONVERT_HINT = 'RGB-coloured label, convert it with fcn labels convert'


class LabelError(ValueError):
    """A label image that cannot be used as an index label (e.g. RGB-coloured)."""


class UnknownColourError(ValueError):
    """Pixels whose colour is not in the palette. ``colours``: [((r, g, b), pixel count), ...],
    most frequent first, all of them (the message lists up to 5)."""

    def __init__(self, colours):
        self.colours = colours
        pixels = sum(count for _, count in colours)
        shown = ', '.join(f'({r}, {g}, {b}) {count} px' for (r, g, b), count in colours[:5])
        more = f' and {len(colours) - 5} more' if len(colours) > 5 else ''
        super().__init__(f'{len(colours)} colours ({pixels} pixels) are not in the palette: '
                         f'{shown}{more}')


# --------------------------------------------------------------------------- reading and writing

def read_index_label(path):
    """Return the (H, W) integer array of the index label image at ``path``.

    Accepts the modes in ``INDEX_MODES`` (P gives the palette indices, not colours). Raises
    ``LabelError`` naming the file for an RGB/RGBA (coloured) label or any other mode, and
    ``OSError`` when the file cannot be read.
    """
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in INDEX_MODES:
            if image.mode in ('RGB', 'RGBA'):
                raise LabelError(f'{path}: {CONVERT_HINT} (mode {image.mode})')
            raise LabelError(f'{path}: mode {image.mode} is not an index label '
                             f'(expected one of {", ".join(INDEX_MODES)})')
        label = np.array(image)
    if label.dtype == np.bool_:
        label = label.astype(np.uint8)
    return label


def load_palette(spec):
    """Return a (k, 3) uint8 palette: ``'voc'`` (all 256 VOC colours) or a palette text file.

    The file has one ``R G B`` line per index, from index 0 (commas also separate; blank lines
    and ``#`` comments are skipped; text after the third number is ignored). At most 256 lines.
    Raises ``ValueError`` naming the file and line for a malformed entry, ``OSError`` when the
    file cannot be read.
    """
    if str(spec).lower() == 'voc':
        return vis.voc_palette()
    rows = []
    for number, line in enumerate(Path(spec).read_text().splitlines(), 1):
        line = line.split('#', 1)[0].replace(',', ' ').split()
        if not line:
            continue
        try:
            rgb = [int(v) for v in line[:3]]
        except ValueError:
            rgb = []
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise ValueError(f'{spec}:{number}: expected three numbers 0..255 (R G B)')
        rows.append(rgb)
    if not 1 <= len(rows) <= vis.PALETTE_SIZE:
        raise ValueError(f'{spec}: a palette has 1 to {vis.PALETTE_SIZE} colours, '
                         f'not {len(rows)}')
    return np.array(rows, dtype=np.uint8)


def _rgb_keys(rgb):
    """(..., 3) integer colours -> (...) int32 keys r << 16 | g << 8 | b."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def rgb_to_index(rgb, palette=None, unknown=None):
    """Map an (H, W, 3) RGB label (or (H, W, 4): alpha ignored) to an (H, W) uint8 index array.

    Each pixel gets the index of its colour in ``palette`` ((k, 3), k <= 256; default: the full
    VOC palette, so VOC's border colour (224, 224, 192) becomes 255). A colour listed twice maps
    to its first index. Pixels of a colour not in the palette are mapped to ``unknown`` when it
    is given (an int in [0, 255]), else ``UnknownColourError`` lists those colours with their
    pixel counts. Vectorised: colours packed into int32 keys and looked up with searchsorted.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f'an RGB label is (H, W, 3), not shape {rgb.shape}')
    if not np.issubdtype(rgb.dtype, np.integer) or (rgb.size and (rgb.min() < 0
                                                                  or rgb.max() > 255)):
        raise ValueError('RGB values must be integers in [0, 255]')
    pal = vis.voc_palette() if palette is None else np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= vis.PALETTE_SIZE:
        raise ValueError(f'a palette is (k, 3) with 1 <= k <= {vis.PALETTE_SIZE}, '
                         f'not shape {pal.shape}')
    if unknown is not None and not 0 <= int(unknown) <= 255:
        raise ValueError(f'unknown index must lie in [0, 255], not {unknown}')

    keys = _rgb_keys(rgb[..., :3])                           # (H, W)
    pal_keys = _rgb_keys(pal)                                # (k,)
    order = np.argsort(pal_keys, kind='stable')              # equal colours keep index order
    sorted_keys, first = np.unique(pal_keys[order], return_index=True)
    sorted_index = order[first]                              # palette index of each sorted key
    pos = np.searchsorted(sorted_keys, keys)                 # (H, W)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    found = sorted_keys[pos] == keys
    index = sorted_index[pos].astype(np.uint8)
    if not found.all():
        if unknown is None:
            colours, counts = np.unique(keys[~found], return_counts=True)
            ranked = np.argsort(-counts, kind='stable')
            raise UnknownColourError([(((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255),
                                       int(n)) for c, n in zip(colours[ranked], counts[ranked])])
        index[~found] = int(unknown)
    return index


def convert_file(src, dst, palette=None, unknown=None):
    """Convert the coloured label image ``src`` to the P-mode index PNG ``dst`` (atomically).

    ``palette``/``unknown`` as for ``rgb_to_index``; the palette is stored in the PNG. A P-mode
    source is read through its own palette (its colours are what count). An L/I-mode source is
    already an index label: ``LabelError``. Returns the (H, W) uint8 index array written.
    """
    from PIL import Image

    with Image.open(src) as image:
        if image.mode in INDEX_MODES and image.mode != 'P':
            raise LabelError(f'{src}: already an index label (mode {image.mode}); '
                             f'nothing to convert')
        rgb = np.array(image.convert('RGB'))                 # (H, W, 3)
    pal = vis.voc_palette() if palette is None else palette
    try:
        index = rgb_to_index(rgb, pal, unknown)
    except UnknownColourError as e:
        e.args = (f'{src}: {e.args[0]}; pass --unknown INDEX to map them or fix the palette',)
        raise
    save_png(vis.label_to_pil(index, pal), dst)
    return index


# --------------------------------------------------------------------------- dataset check

@dataclasses.dataclass
class CheckReport:
    """What ``check_dataset`` found. ``problems``: one line each (``PATH: what is wrong``).
    ``pixels[c]``/``images[c]``: pixels of class c, labels containing class c (c < classes);
    ``ignored``: pixels equal to the ignore value; ``labels``: label files read."""
    classes: int
    problems: list = dataclasses.field(default_factory=list)
    pixels: np.ndarray = None
    images: np.ndarray = None
    ignored: int = 0
    labels: int = 0

    def __post_init__(self):
        if self.pixels is None:
            self.pixels = np.zeros(self.classes, dtype=np.int64)
        if self.images is None:
            self.images = np.zeros(self.classes, dtype=np.int64)

    def summary(self, names=None):
        """The class table as text lines: index, name, pixels, labels containing it."""
        names = class_names(self.classes) if names is None else names
        total = int(self.pixels.sum())
        lines = [f'{self.labels} labels read, {len(self.problems)} problems; '
                 f'{total} labelled pixels, {self.ignored} ignored',
                 f'{"class":>5}  {"name":<14} {"pixels":>12} {"share":>7} {"labels":>7}']
        for c in range(self.classes):
            share = f'{100.0 * self.pixels[c] / total:.2f}%' if total else '-'
            lines.append(f'{c:>5}  {names[c]:<14} {int(self.pixels[c]):>12} {share:>7} '
                         f'{int(self.images[c]):>7}')
        absent = [f'{c} ({names[c]})' for c in range(self.classes) if self.pixels[c] == 0]
        if absent:
            lines.append('classes never present: ' + ', '.join(absent))
        return lines


def _find_by_stem(folder, extensions):
    """{stem: [paths]} of the files in ``folder`` with one of ``extensions`` (case-insensitive)."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions:
            found.setdefault(path.stem, []).append(path)
    return found


def _read_split(split):
    """Ids from a split list: one per line (first word), blank lines skipped; with duplicates."""
    ids = []
    for line in Path(split).read_text().splitlines():
        words = line.split()
        if words:
            ids.append(words[0])
    return ids


def check_dataset(images, labels, classes, ignore=255, split=None):
    """Check image/label pairs; return a ``CheckReport``.

    ``images``/``labels`` are folders; a label is ``labels/<id>.png`` for the image
    ``images/<id>.<jpg|png|...>``. The ids are those of ``split`` (a list file) or else every
    image. Problems found: image or label missing, several images for one id, an id listed twice,
    a label (without --split: a label without an image), label and image sizes that differ, an
    RGB-coloured label, an unreadable file, and label values outside [0, classes) other than
    ``ignore`` (None: no ignore value) -- named with their pixel counts.
    """
    from PIL import Image

    images, labels = Path(images), Path(labels)
    report = CheckReport(classes)
    image_files = _find_by_stem(images, IMAGE_EXTENSIONS)
    label_files = _find_by_stem(labels, ('.png',))
    if split is not None:
        listed = _read_split(split)
        ids = list(dict.fromkeys(listed))
        seen = {}
        for i in listed:
            seen[i] = seen.get(i, 0) + 1
        for i in ids:
            if seen[i] > 1:
                report.problems.append(f'{split}: {i} is listed {seen[i]} times')
    else:
        ids = sorted(image_files)
        for stem in sorted(set(label_files) - set(image_files)):
            report.problems.append(f'{label_files[stem][0]}: label without an image in {images}')

    for i in ids:
        image_paths = image_files.get(i, [])
        if not image_paths:
            report.problems.append(f'{images / i}: image missing (listed in {split})')
        elif len(image_paths) > 1:
            report.problems.append(f'{images / i}: several images for one id: '
                                   + ', '.join(p.name for p in image_paths))
        if i not in label_files:
            if image_paths:
                report.problems.append(f'{image_paths[0]}: label missing '
                                       f'(expected {labels / (i + ".png")})')
            continue
        label_path = label_files[i][0]
        try:
            label = read_index_label(label_path)
        except LabelError as e:
            report.problems.append(str(e))
            continue
        except OSError as e:
            report.problems.append(f'{label_path}: cannot read the label ({e})')
            continue
        report.labels += 1
        if image_paths:
            try:
                with Image.open(image_paths[0]) as image:
                    size = image.size  # (W, H), read from the header only
            except OSError as e:
                report.problems.append(f'{image_paths[0]}: cannot read the image ({e})')
            else:
                if size != (label.shape[1], label.shape[0]):
                    report.problems.append(
                        f'{label_path}: size {label.shape[1]}x{label.shape[0]} differs from '
                        f'the image {image_paths[0].name} ({size[0]}x{size[1]})')
        flat = label.ravel()
        inside = (flat >= 0) & (flat < classes)
        is_ignore = (flat == ignore) if ignore is not None else np.zeros(flat.shape, bool)
        counts = np.bincount(flat[inside & ~is_ignore].astype(np.int64), minlength=classes)
        report.pixels += counts
        report.images += counts > 0
        report.ignored += int(is_ignore.sum())
        bad = ~inside & ~is_ignore
        if bad.any():
            values, n = np.unique(flat[bad], return_counts=True)
            shown = ', '.join(f'{int(v)} ({int(c)} px)' for v, c in zip(values[:10], n[:10]))
            more = f' and {len(values) - 10} more' if len(values) > 10 else ''
            allowed = f'[0, {classes})' + (f' or {ignore}' if ignore is not None else '')
            report.problems.append(f'{label_path}: values outside {allowed}: {shown}{more}')
    return report


# --------------------------------------------------------------------------- command line

def _collect_sources(sources):
    """Label files named by ``sources`` (files, or folders: their label images), sorted."""
    files = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            files.extend(p for p in sorted(src.iterdir())
                         if p.is_file() and p.suffix.lower() in LABEL_EXTENSIONS)
        elif src.is_file():
            files.append(src)
        else:
            raise runner.UsageError(f'{src}: no such file or folder')
    if not files:
        raise runner.UsageError('no label images found in ' + ', '.join(str(s) for s in sources))
    return files


def _convert(args):
    palette = load_palette(args.palette)
    if args.unknown is not None and not 0 <= args.unknown <= 255:
        raise runner.UsageError(f'--unknown must lie in [0, 255], not {args.unknown}')
    files = _collect_sources(args.src)
    targets = {}
    for src in files:
        dst = args.out / (src.stem + '.png')
        if dst in targets:
            raise runner.UsageError(f'{targets[dst]} and {src} would both be written to {dst}')
        if dst.resolve() == src.resolve():
            raise runner.UsageError(f'{src} would be overwritten; choose another --out')
        targets[dst] = src
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for dst, src in targets.items():
        try:
            index = convert_file(src, dst, palette, args.unknown)
        except (ValueError, OSError) as e:
            failed += 1
            message = str(e) if str(src) in str(e) else f'{src}: {e}'
            print(f'error: {message}', file=sys.stderr)
            continue
        log.info('%s -> %s (classes %s)', src, dst,
                 ', '.join(str(v) for v in np.unique(index)))
    print(f'converted {len(targets) - failed} of {len(targets)} label images into {args.out}')
    return 1 if failed else 0


def _check(args):
    for name in ('images', 'labels'):
        if not getattr(args, name).is_dir():
            raise runner.UsageError(f'--{name} {getattr(args, name)} is not a folder')
    if args.split is not None and not args.split.is_file():
        raise runner.UsageError(f'--split {args.split} is not a file')
    if args.classes < 1:
        raise runner.UsageError(f'--classes must be >= 1, not {args.classes}')
    ignore = None if args.ignore < 0 else args.ignore
    report = check_dataset(args.images, args.labels, args.classes, ignore, args.split)
    if report.labels == 0 and not report.problems:
        raise runner.UsageError(f'no images in {args.images}')
    for line in report.problems:
        print(line)
    for line in report.summary():
        print(line)
    return 1 if report.problems else 0


def _parser():
    parser = runner.ArgumentParser(prog='fcn labels',
                                    description='Convert RGB-coloured label images to index '
                                                'PNGs; check a labelled segmentation dataset.')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND',
                                     parser_class=runner.SubcommandParser)
    convert = commands.add_parser(
        'convert', help='RGB-coloured labels -> P-mode index PNGs',
        description='Map every pixel colour of SRC label images to its palette index and write '
                    'OUT/<stem>.png in P mode. Exit 0: all converted; 1: some files failed '
                    '(e.g. colours not in the palette); 2: usage error.')
    convert.add_argument('src', nargs='+', type=Path, metavar='SRC',
                         help='label image files, or folders of them')
    convert.add_argument('--out', required=True, type=Path, help='output folder')
    convert.add_argument('--palette', default='voc',
                         help="'voc' (default) or a text file with one 'R G B' line per class")
    convert.add_argument('--unknown', type=int, default=None, metavar='INDEX',
                         help='index for colours not in the palette (default: an error)')
    convert.set_defaults(run=_convert, parser=convert)
    check = commands.add_parser(
        'check', help='report problems in images + index labels',
        description='One line per problem (missing label, size mismatch, RGB-coloured label, '
                    'values out of range, ...), then pixel counts per class. Exit 0: no '
                    'problems; 1: problems found; 2: usage error.')
    check.add_argument('--images', required=True, type=Path, help='folder of images')
    check.add_argument('--labels', required=True, type=Path, help='folder of <id>.png labels')
    check.add_argument('--split', type=Path, help='file listing the ids to check (default: all)')
    check.add_argument('--classes', required=True, type=int, help='number of classes')
    check.add_argument('--ignore', type=int, default=255,
                       help='label value to ignore (default 255; -1: none)')
    check.set_defaults(run=_check, parser=check)
    return parser


def _run(args):
    try:
        return args.run(args)
    except runner.UsageError as e:
        e.parser = e.parser or args.parser  # the subcommand's usage line
        raise


def main(argv=None):
    """Run ``convert`` or ``check`` (see the module docstring); return the exit status
    (``error: ...`` on stderr for a failure; ``--debug`` shows the traceback)."""
    return runner.run(_run, _parser(), argv)
