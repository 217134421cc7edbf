"""The published FCN models: a registry, a download cache, and ready-made segmenters.

``fcn models list|fetch NAME...|verify NAME...|remove NAME... [--mirror URL] [--cache DIR]``,
``fcn infer --model NAME IMAGE...`` and ``Segmenter.from_pretrained(NAME)`` use it.

The registry (``REGISTRY``, ``get(name)``, ``register(model)``) holds one ``PublishedModel`` per
model of the reference repository (fcn.berkeleyvision.org, master 1305c73): its weights'
address (the ``caffemodel-url`` of its folder), the net variant of ``nets`` its deploy net is
generated from, the dataset, class names, BGR mean, the deploy net's inputs and channels, and
the scores the reference README (VOC) or the papers (one SIFT Flow, one PASCAL-Context model)
publish. No size or checksum is published for any of them: the size shown is the weights'
bytes (4 per parameter of the deploy net, computed); a download smaller than that cannot hold
the weights and is refused; the SHA-256 is recorded at the first download (trust on first use,
``checksums.json`` of the cache) and checked on every later ``verify``/``fetch``. A model
registered with ``size`` and ``sha256`` (tests, mirrors of known files) is checked against both
exactly. nyud-fcn32s-color-d has no published weights: it is listed, its nets generate, a fetch
says so.

The cache: ``FCN_CACHE``, else ``$XDG_CACHE_HOME/fcn``, else ``~/.cache/fcn``; a model's files
are ``<cache>/models/<name>/<weights file>`` and ``deploy.prototxt`` (generated), listed in
``<cache>/models/<name>/files.json``; ``remove`` deletes only the files listed there (and their
``.part``/``.bad``), never others a user put there. Downloads go through
``fcn.downloads.obtain``: resume of a ``.part`` with HTTP ranges, a progress bar on a terminal,
a file that fails its check moved aside to ``.bad``. ``mirror`` fetches ``MIRROR/<weights
file>`` instead (``file:///srv/models`` or ``http://host/models``).

Segmenting images needs a model whose input is one RGB image (VOC, SIFT Flow, PASCAL-Context,
NYUDv2 color); the HHA and RGB-D models take other inputs, and ``pretrained`` says so: build
their net with ``load_net(name)`` and fill its inputs.
"""
import dataclasses
import json
import logging
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fcn import downloads
from fcn.files import cache_dir

log = logging.getLogger(__name__)

__all__ = ['ModelError', 'PublishedModel', 'REGISTRY', 'register', 'get', 'cache_root',
           'model_dir', 'fetch', 'verify', 'remove', 'deploy_prototxt', 'load_net',
           'pretrained', 'listing', 'main']

BASE_URL = 'http://dl.caffe.berkeleyvision.org'
VOC_MEAN = (104.00699, 116.66877, 122.67892)
MANIFEST = 'files.json'


class ModelError(ValueError):
    """An unknown model, a model without weights or an input it cannot segment, a cache file
    that fails its checks (the message names the model and the file)."""


# ------------------------------------------------------------------------------------------
# facts of the reference repository
VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
               'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
SIFTFLOW_CLASSES = ('awning', 'balcony', 'bird', 'boat', 'bridge', 'building', 'bus', 'car',
                    'cow', 'crosswalk', 'desert', 'door', 'fence', 'field', 'grass', 'moon',
                    'mountain', 'person', 'plant', 'pole', 'river', 'road', 'rock', 'sand',
                    'sea', 'sidewalk', 'sign', 'sky', 'staircase', 'streetlight', 'sun', 'tree',
                    'window')
SIFTFLOW_GEOMETRIC = ('sky', 'horizontal', 'vertical')
NYUD_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
                'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain',
                'dresser', 'pillow', 'mirror', 'floor mat', 'clothes', 'ceiling', 'books',
                'refridgerator', 'television', 'paper', 'towel', 'shower curtain', 'box',
                'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp', 'bathtub',
                'bag', 'otherstructure', 'otherfurniture', 'otherprop')
CONTEXT_CLASSES = VOC_CLASSES + (
    'bag', 'bed', 'bench', 'book', 'building', 'cabinet', 'ceiling', 'clothes', 'computer',
    'cup', 'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'keyboard', 'light',
    'mountain', 'mouse', 'curtain', 'platform', 'sign', 'plate', 'road', 'rock', 'shelves',
    'sidewalk', 'sky', 'snow', 'bedcloth', 'track', 'tree', 'truck', 'wall', 'water', 'window',
    'wood')
SIFTFLOW_MEAN = (114.578, 115.294, 108.353)
NYUD_MEAN = (116.190, 97.203, 92.318)
CONTEXT_MEAN = (104.007, 116.669, 122.679)


@dataclass(frozen=True)
class PublishedModel:
    """One model: ``url`` of its weights (None: none published), the ``variant`` of ``nets``
    and ``width`` its deploy net is generated from, ``dataset``, ``classes`` (names in output
    order of ``score_blob``; ``heads`` names further outputs and their classes), ``mean``
    (BGR of the color input), ``inputs`` ((deploy input, channels, what it is), ...), the
    published ``scores`` ({metric: value}) and their ``source``; ``size`` and ``sha256``
    when known exactly (else the size is the weights' bytes and the SHA-256 is recorded on
    first download)."""
    name: str
    url: str | None
    variant: str
    dataset: str
    classes: tuple
    mean: tuple = VOC_MEAN
    inputs: tuple = (('data', 3, 'rgb'),)
    scores: dict = field(default_factory=dict)
    source: str = ''
    score_blob: str = 'score'
    heads: dict = field(default_factory=dict)
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    width: float = 1.0
    note: str = ''

    @property
    def filename(self):
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name if self.url else None

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def takes_rgb_image(self):
        return len(self.inputs) == 1 and self.inputs[0][2] == 'rgb'

    @property
    def input_text(self):
        return ' + '.join(f"{what} ({channels})" for _, channels, what in self.inputs)

    def deploy_net(self, height=500, width=500):
        """The deploy NetParameter (nets generator), inputs of ``height`` x ``width``."""
        import nets
        return nets.fcn(self.variant, self.num_classes, None, self.width,
                        (1, 3, int(height), int(width)))

    def weight_bytes(self):
        """4 x the parameters of the deploy net (float32 weights), computed from the
        prototxt without building the net."""
        return 4 * count_parameters(self.deploy_net(64, 64))

    def resource(self):
        """The fcn.downloads.Resource of the weights."""
        return downloads.Resource(self.name, self.url, self.md5, self.size or 0,
                                  f'models/{self.name}', sha256=self.sha256, note=self.note)


def count_parameters(net):
    """The parameters of a NetParameter's Convolution, Deconvolution and Scale layers (the
    FCN's only learned layers), channel counts followed from its Input layers."""
    channels, total = {}, 0
    for layer in net.layer:
        bottoms = [channels.get(b, 0) for b in layer.bottom]
        if layer.type == 'Input':
            for top, shape in zip(layer.top, layer.input_param.shape):
                channels[top] = int(shape.dim[1])
            continue
        out = bottoms[0] if bottoms else 0
        if layer.type in ('Convolution', 'Deconvolution'):
            p = layer.convolution_param
            k = (p.kernel_size[0] ** 2 if p.kernel_size else p.kernel_h * p.kernel_w)
            group = p.group or 1
            out = p.num_output
            total += (bottoms[0] * out // group) * k + (out if p.bias_term else 0)
        elif layer.type == 'Scale' and len(layer.bottom) == 1:
            total += bottoms[0] * (2 if layer.scale_param.bias_term else 1)
        elif layer.type == 'Concat':
            out = sum(bottoms)
        for top in layer.top:
            channels[top] = out
    return total


def _voc(name, file, variant, iu, **more):
    return PublishedModel(name, f'{BASE_URL}/{file}', variant, 'PASCAL VOC', VOC_CLASSES,
                          scores={'seg11valid mean IU': iu, **more.pop('scores', {})},
                          source='reference README', **more)


_NYUD = dict(dataset='NYUDv2', classes=NYUD_CLASSES, mean=NYUD_MEAN)

REGISTRY = {}


def register(model, replace=False):
    """Add ``model`` to the registry; ModelError when its name is taken (unless ``replace``)."""
    if model.name in REGISTRY and not replace:
        raise ModelError(f"a model named {model.name!r} is already registered")
    REGISTRY[model.name] = model
    return model


for _model in [
    _voc('voc-fcn32s', 'fcn32s-heavy-pascal.caffemodel', 'fcn32s', 63.6),
    _voc('voc-fcn16s', 'fcn16s-heavy-pascal.caffemodel', 'fcn16s', 65.0),
    _voc('voc-fcn8s', 'fcn8s-heavy-pascal.caffemodel', 'fcn8s', 65.5,
         scores={'seg11valid pixel acc.': 91.2, 'seg11valid mean acc.': 77.6,
                 'seg11valid f.w. IU': 84.6, 'VOC2012 test mean IU': 67.2}),
    _voc('voc-fcn8s-atonce', 'fcn8s-atonce-pascal.caffemodel', 'fcn8s-atonce', 65.4),
    _voc('voc-fcn-alexnet', 'fcn-alexnet-pascal.caffemodel', 'fcn-alexnet', 48.0),
    *[PublishedModel(f'siftflow-fcn{s}', f'{BASE_URL}/siftflow-fcn{s}-heavy.caffemodel',
                     f'siftflow-fcn{s}', 'SIFT Flow', SIFTFLOW_CLASSES, SIFTFLOW_MEAN,
                     score_blob='score_sem', heads={'score_geo': SIFTFLOW_GEOMETRIC},
                     scores=({'pixel acc.': 85.2, 'mean acc.': 51.7, 'mean IU': 39.5,
                              'f.w. IU': 76.1, 'geometric acc.': 94.3} if s == '16s' else {}),
                     source='paper (CVPR 2015 / PAMI)' if s == '16s' else '',
                     note='semantic scores on test miss cow, desert, moon')
      for s in ('32s', '16s', '8s')],
    *[PublishedModel(f'pascalcontext-fcn{s}', f'{BASE_URL}/pascalcontext-fcn{s}-heavy.caffemodel',
                     f'pascalcontext-fcn{s}', 'PASCAL-Context', CONTEXT_CLASSES, CONTEXT_MEAN,
                     scores=({'pixel acc.': 65.9, 'mean acc.': 46.5, 'mean IU': 35.1,
                              'f.w. IU': 51.0} if s == '8s' else {}),
                     source='paper (CVPR 2015 / PAMI)' if s == '8s' else '')
      for s in ('32s', '16s', '8s')],
    PublishedModel('nyud-fcn32s-color', f'{BASE_URL}/nyud-fcn32s-color-heavy.caffemodel',
                   'nyud-fcn32s-color', **_NYUD),
    PublishedModel('nyud-fcn32s-hha', f'{BASE_URL}/nyud-fcn32s-hha-heavy.caffemodel',
                   'nyud-fcn32s-hha', inputs=(('data', 3, 'hha'),), **_NYUD),
    PublishedModel('nyud-fcn32s-color-d', None, 'nyud-fcn32s-color-d',
                   inputs=(('color', 3, 'rgb'), ('depth', 1, 'log depth')),
                   note='no published weights (the reference folder has no caffemodel-url)',
                   **_NYUD),
    PublishedModel('nyud-fcn32s-color-hha', f'{BASE_URL}/nyud-fcn32s-color-hha-heavy.caffemodel',
                   'nyud-fcn32s-color-hha', inputs=(('color', 3, 'rgb'), ('hha', 3, 'hha')),
                   **_NYUD),
]:
    register(_model)


def get(name):
    """The registered model ``name``; ModelError listing the known ones otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ''
        raise ModelError(f"unknown model {name!r}{hint}; known models: "
                         f"{', '.join(REGISTRY)}") from None


# ------------------------------------------------------------------------------------------
# the cache
#: the cache folder (see fcn.files.cache_dir)
cache_root = cache_dir


def model_dir(name, cache=None):
    return cache_root(cache) / 'models' / get(name).name


def _record(cache):
    return downloads.ChecksumRecord(cache_root(cache) / 'checksums.json')


def _note_files(folder, *names):
    """Add ``names`` to the folder's manifest of files the cache wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    known = json.loads(manifest.read_text()) if manifest.exists() else []
    for n in names:
        if n not in known:
            known.append(n)
    tmp = manifest.with_name(MANIFEST + '.tmp')
    tmp.write_text(json.dumps(known, indent=1) + '\n')
    os.replace(tmp, manifest)


def _size_check(model):
    def check(path):
        size = path.stat().st_size
        if model.size is not None:
            if size != model.size:
                raise downloads.DataError(f"{path}: {size} bytes, not the {model.size} bytes of "
                                          f"{model.name}; the download is incomplete or "
                                          f"another file")
        elif size < model.weight_bytes():
            raise downloads.DataError(f"{path}: {size} bytes cannot hold the "
                                      f"{model.weight_bytes()} bytes of {model.name}'s "
                                      f"weights; the download is incomplete or another file")
    return check


def weights_path(name, cache=None):
    model = get(name)
    if model.url is None:
        raise ModelError(f"{name}: {model.note or 'no published weights'}")
    return model_dir(name, cache) / model.filename


def fetch(name, mirror=None, cache=None):
    """The path of ``name``'s weights in the cache, downloading them first when absent
    (resuming a .part; from ``mirror``/<file> when given); size and checksum checked, a
    failing file moved to ``.bad`` (ModelError)."""
    model = get(name)
    path = weights_path(name, cache)
    url = f"{mirror.rstrip('/')}/{model.filename}" if mirror else model.url
    _note_files(path.parent, path.name, path.name + '.part', path.name + '.bad')
    resource = model.resource()
    if not model.size:
        resource = dataclasses.replace(resource, size=model.weight_bytes())
    try:
        how = downloads.obtain(resource, url, path, _record(cache), _size_check(model))
    except downloads.DataError as exc:
        raise ModelError(f"{name}: {exc}") from None
    print(f"  {name}: {how}")
    return path


def verify(name, cache=None):
    """Check the cached weights of ``name`` again (size, checksum); returns the sentence of
    the check; ModelError when absent or failing (the file is then moved to ``.bad``)."""
    model = get(name)
    path = weights_path(name, cache)
    if not path.exists():
        raise ModelError(f"{name}: not in the cache ({path}); fetch it with "
                         f"`fcn models fetch {name}`")
    try:
        _size_check(model)(path)
        return downloads.verify(model.resource(), path, _record(cache))
    except downloads.DataError as exc:
        bad = path.with_name(path.name + '.bad')
        os.replace(path, bad)
        raise ModelError(f"{name}: {exc} (moved to {bad})") from None


def remove(name, cache=None):
    """Delete the files the cache wrote for ``name`` (its manifest's); returns their paths.
    The checksum recorded at the first download stays in checksums.json, so that a new
    download is checked against it."""
    folder = model_dir(name, cache)
    manifest = folder / MANIFEST
    if not manifest.exists():
        return []
    removed = []
    for n in json.loads(manifest.read_text()):
        p = folder / PurePosixPath(n).name
        if p.is_file():
            p.unlink()
            removed.append(p)
    manifest.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return removed


def deploy_prototxt(name, cache=None):
    """The path of ``name``'s deploy net in the cache (generated from nets when absent)."""
    from nets.fcn import write_text_atomic
    folder = model_dir(name, cache)
    path = folder / 'deploy.prototxt'
    if not path.exists():
        _note_files(folder, path.name)
        write_text_atomic(path, str(get(name).deploy_net()))
    return path


def load_net(name, mirror=None, cache=None):
    """A caffe.Net (TEST) of ``name``'s deploy net with its weights (any model)."""
    from fcn.backend import caffe
    weights = fetch(name, mirror, cache)
    return caffe.Net(str(deploy_prototxt(name, cache)), str(weights), caffe.TEST)


def pretrained(name, mirror=None, cache=None, score_blob=None):
    """What a Segmenter of ``name`` is made of: (deploy prototxt, weights, score blob, mean,
    class names), the weights fetched and the deploy net generated; ``score_blob`` picks
    another head (SIFT Flow's score_geo). ModelError for a model whose input is not one RGB
    image. ``fcn.segment.Segmenter.from_pretrained`` builds the Segmenter from it."""
    model = get(name)
    if not model.takes_rgb_image:
        raise ModelError(f"{name} takes {model.input_text}, not one RGB image; build its net "
                         f"with fcn.models.load_net({name!r}) and fill its inputs")
    blob = score_blob or model.score_blob
    names = model.classes if blob == model.score_blob else model.heads.get(blob)
    if names is None:
        raise ModelError(f"{name} has no output {blob!r}; outputs: "
                         f"{', '.join([model.score_blob, *model.heads])}")
    weights = fetch(name, mirror, cache)
    return deploy_prototxt(name, cache), weights, blob, model.mean, tuple(names)


def prepare_infer_args(args):
    """``fcn infer --model``: refuse --deploy/--weights beside it; default --out to
    ``seg-<model>`` and write overlays (with their legend)."""
    if args.deploy or args.weights:
        from npcaffe.cli import runner
        raise runner.UsageError(f"--model {args.model} brings its own deploy net and weights; "
                                f"drop --deploy/--weights")
    get(args.model)
    if args.out is None:
        args.out = Path(f'seg-{args.model}')
    args.overlay = True


# ------------------------------------------------------------------------------------------
# the command line
def _size_text(model):
    n = model.size or model.weight_bytes()
    return ('' if model.size else '~') + f"{n / 2**20:.0f} MiB"


def listing(cache=None):
    """The lines of ``fcn models list``: one per model, then its scores."""
    record = _record(cache)
    rows = [('model', 'dataset', 'classes', 'input', 'size', 'checksum', 'cached')]
    for m in REGISTRY.values():
        if m.url is None:
            check, cached = 'no weights', '-'
        else:
            path = weights_path(m.name, cache)
            known = record.get(m.filename)
            check = ('sha256 published' if m.sha256 else 'md5 published' if m.md5 else
                     'sha256 recorded' if known else 'sha256 on first fetch')
            cached = 'yes' if path.exists() else 'no'
        rows.append((m.name, m.dataset, str(m.num_classes) + (
            ' + ' + ' + '.join(str(len(c)) for c in m.heads.values()) if m.heads else ''),
            m.input_text, _size_text(m) if m.url else '-', check, cached))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append('')
    lines.append('published scores:')
    for m in REGISTRY.values():
        if m.scores:
            scores = ', '.join(f"{k} {v}" for k, v in m.scores.items())
            lines.append(f"  {m.name}: {scores} ({m.source})")
    lines.append(f"cache: {cache_root(cache) / 'models'}")
    return lines


def build_parser():
    from npcaffe.cli import runner
    parser = runner.ArgumentParser(
        prog='fcn models',
        description='The published FCN models (fcn.berkeleyvision.org): list them, fetch '
                    'their weights into the cache (resumed, size and checksum checked), '
                    'verify and remove them. The cache is FCN_CACHE, else ~/.cache/fcn.',
        epilog="examples:\n  fcn models list\n  fcn models fetch voc-fcn8s\n"
               "  fcn models fetch voc-fcn8s --mirror file:///srv/models\n"
               "  fcn models verify voc-fcn8s\n  fcn models remove voc-fcn8s\n"
               "  fcn infer --model voc-fcn8s photo.jpg\n")
    parser.add_argument('action', choices=('list', 'fetch', 'verify', 'remove'))
    parser.add_argument('names', nargs='*', metavar='NAME', help='models (fetch/verify/remove)')
    parser.add_argument('--mirror', metavar='URL',
                        help='fetch MIRROR/<weights file> instead of the published address')
    parser.add_argument('--cache', metavar='DIR', help='cache folder (default: FCN_CACHE, '
                                                       'else ~/.cache/fcn)')
    return parser


def run(args):
    from npcaffe.cli import runner
    if args.action == 'list':
        if args.names:
            raise runner.UsageError("list takes no model names")
        print('\n'.join(listing(args.cache)))
        return 0
    if not args.names:
        raise runner.UsageError(f"{args.action} needs one or more model names")
    for name in args.names:
        get(name)
    for name in args.names:
        if args.action == 'fetch':
            print(f"{name}: {fetch(name, args.mirror, args.cache)}")
            deploy_prototxt(name, args.cache)
        elif args.action == 'verify':
            print(f"{name}: {verify(name, args.cache)}")
        else:
            removed = remove(name, args.cache)
            print(f"{name}: removed {len(removed)} file(s)" +
                  (f" ({', '.join(p.name for p in removed)})" if removed else ''))
    return 0


def main(argv=None):
    from npcaffe.cli import runner
    return runner.run(run, build_parser(), argv)
