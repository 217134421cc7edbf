"""The FCN family (Long, Shelhamer, Darrell) from one parametric generator.

``fcn(variant, num_classes, data)`` builds the train, val or deploy net of a variant with
pycaffe's NetSpec API; ``solver(variant)`` its reference schedule; ``generate(...)`` writes
``train.prototxt``, ``val.prototxt``, ``deploy.prototxt`` and ``solver.prototxt``.

=============  ========  ===============================================  ===========
variant        backbone  head                                             base_lr
=============  ========  ===============================================  ===========
fcn32s         VGG16     score_fr, upsample x32                           1e-10
fcn16s         VGG16     + pool4 skip, upsample x16                       1e-12
fcn8s          VGG16     + pool4 and pool3 skips, upsample x8             1e-14
fcn8s-atonce   VGG16     fcn8s with pool4 x0.01 and pool3 x0.0001 (fixed  1e-10
                         Scale layers), trained in one go
fcn-alexnet    AlexNet   score_fr, upsample x32 (63x63 kernel),           1e-4
                         normalized loss, iter_size 20
=============  ========  ===============================================  ===========

With ``num_classes=21`` and width 1 the train and val nets equal the reference FCN
prototxts layer for layer (names, tops, parameters, crop offsets), apart from the data
layer's module and param_str. Upsampling factors and every crop offset are computed from
the layer geometry (``npcaffe.coord_map``), never written in.
"""
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from npcaffe import coord_map, formats
from npcaffe.net_spec import NetSpec, layers as L, params as P
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

MEAN = (104.00699, 116.66877, 122.67892)
"""The BGR mean of the reference models' training images."""
SEED = 1337
IGNORE_LABEL = 255
DEPLOY_SHAPE = (1, 3, 500, 500)

LEARNED = (dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0))
"""Weight and bias multipliers of learned convolutions (biases: double rate, no decay)."""
FIXED = (dict(lr_mult=0),)
"""A parameter that is set once (bilinear kernels, at-once scales) and never learned."""


class NetsError(ValueError):
    """A bad request to the generator: unknown variant, bad width or classes, bad data options."""


# ---------------------------------------------------------------------------------------------
# builder helpers: one layer (or a conv + ReLU pair) each, as the reference nets write them


def _param(multipliers):
    return [dict(m) for m in multipliers]


def conv_relu(bottom, nout, ks=3, stride=1, pad=1, group=None, param=LEARNED):
    """A Convolution and its in-place ReLU: returns (conv top, relu top).

    ``group`` is written only when given; ``param`` (the lr/decay multipliers) only when not
    None — the reference VGG16 nets carry multipliers, the AlexNet one groups instead.
    """
    kwargs = dict(kernel_size=ks, stride=stride, num_output=nout, pad=pad)
    if group is not None:
        kwargs['group'] = group
    if param is not None:
        kwargs['param'] = _param(param)
    conv = L.Convolution(bottom, **kwargs)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom, ks=2, stride=2):
    """MAX Pooling (Caffe's ceil rounding)."""
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def lrn(bottom, local_size=5, alpha=1e-4, beta=0.75):
    """Local response normalization across channels (AlexNet's norm1, norm2)."""
    return L.LRN(bottom, local_size=local_size, alpha=alpha, beta=beta)


def dropout(bottom, ratio=0.5):
    """In-place Dropout (train and val nets only)."""
    return L.Dropout(bottom, dropout_ratio=ratio, in_place=True)


def score_conv(bottom, num_classes):
    """The 1x1 convolution that scores ``num_classes`` classes (score_fr, score_pool4, ...)."""
    return L.Convolution(bottom, num_output=num_classes, kernel_size=1, pad=0,
                         param=_param(LEARNED))


def upsample(bottom, num_channels, factor, ks=None):
    """A fixed Deconvolution upsampling by ``factor`` (kernel ``ks``, default 2 x factor,
    the size of a bilinear kernel), without bias; its weights are set by surgery."""
    return L.Deconvolution(bottom, param=_param(FIXED), convolution_param=dict(
        num_output=num_channels, kernel_size=ks or 2 * factor, stride=factor, bias_term=False))


def fixed_scale(bottom, value):
    """A Scale layer fixed at ``value`` (at-once FCN-8s scales its skip features)."""
    return L.Scale(bottom, filler=dict(type='constant', value=value), param=_param(FIXED))


def fuse(a, b):
    """Elementwise sum of two aligned score maps."""
    return L.Eltwise(a, b, operation=P.Eltwise.SUM)


# ---------------------------------------------------------------------------------------------
# backbones as tables of layer specs


@dataclass(frozen=True)
class _Build:
    """What a layer spec needs to build itself."""
    width: float
    multiple: int
    learned: bool
    dropout: bool

    def channels(self, nout):
        """``nout`` scaled by the width, rounded to a positive multiple of ``multiple``."""
        return max(self.multiple, round(nout * self.width / self.multiple) * self.multiple)


@dataclass(frozen=True)
class Conv:
    """Convolution + in-place ReLU (+ in-place Dropout named ``drop`` in train/val nets)."""
    name: str
    relu: str
    nout: int
    ks: int
    pad: int
    stride: int = 1
    group: int | None = None  # written only where the reference writes it (AlexNet)
    drop: str | None = None

    def build(self, bottom, how):
        conv, relu = conv_relu(bottom, how.channels(self.nout), self.ks, self.stride, self.pad,
                               self.group, LEARNED if how.learned else None)
        built = [(self.name, conv), (self.relu, relu)]
        if self.drop and how.dropout:
            built.append((self.drop, dropout(relu)))
        return built


@dataclass(frozen=True)
class Pool:
    """MAX pooling."""
    name: str
    ks: int
    stride: int

    def build(self, bottom, how):
        return [(self.name, max_pool(bottom, self.ks, self.stride))]


@dataclass(frozen=True)
class Norm:
    """LRN with AlexNet's settings."""
    name: str

    def build(self, bottom, how):
        return [(self.name, lrn(bottom))]


@dataclass(frozen=True)
class Backbone:
    """A classifier turned fully convolutional: its layers up to fc7, in order.

    ``learned``: its convolutions carry lr/decay multipliers; ``multiple``: channel counts stay
    multiples of this under ``width`` (the largest group count, so grouped convolutions work).
    """
    name: str
    layers: tuple
    learned: bool
    multiple: int = 1


def _vgg16():
    specs = []
    for stage, (convs, nout) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(1, convs + 1):
            # pad 100 on the first layer: any input size then leaves an output to crop back
            specs.append(Conv(f'conv{stage}_{i}', f'relu{stage}_{i}', nout, 3,
                              pad=100 if stage == i == 1 else 1))
        specs.append(Pool(f'pool{stage}', 2, 2))
    specs += [Conv('fc6', 'relu6', 4096, 7, pad=0, drop='drop6'),
              Conv('fc7', 'relu7', 4096, 1, pad=0, drop='drop7')]
    return Backbone('VGG16', tuple(specs), learned=True)


ALEXNET = Backbone('AlexNet', (
    Conv('conv1', 'relu1', 96, 11, pad=100, stride=4, group=1),
    Pool('pool1', 3, 2), Norm('norm1'),
    Conv('conv2', 'relu2', 256, 5, pad=2, group=2),
    Pool('pool2', 3, 2), Norm('norm2'),
    Conv('conv3', 'relu3', 384, 3, pad=1, group=1),
    Conv('conv4', 'relu4', 384, 3, pad=1, group=2),
    Conv('conv5', 'relu5', 256, 3, pad=1, group=2),
    Pool('pool5', 3, 2),
    Conv('fc6', 'relu6', 4096, 6, pad=0, group=1, drop='drop6'),
    Conv('fc7', 'relu7', 4096, 1, pad=0, group=1, drop='drop7'),
), learned=False, multiple=2)
VGG16 = _vgg16()


# ---------------------------------------------------------------------------------------------
# variants


_SOLVER_COMMON = dict(test_iter=736, test_interval=999999999, display=20, average_loss=20,
                      lr_policy='fixed', max_iter=100000, weight_decay=0.0005, snapshot=4000,
                      snapshot_prefix='snapshot/train', test_initialization=False,
                      momentum=0.99, iter_size=1)


@dataclass(frozen=True)
class Variant:
    """One member of the family.

    ``skips``: backbone tops fused into the scores, coarse to fine; ``skip_scales``: fixed
    Scale factors applied to skip features first (at-once); ``final_ks``: kernel of the last
    upsampling (default 2 x factor); ``normalize_loss``: SoftmaxWithLoss ``normalize``;
    ``solver``: overrides of the common schedule.
    """
    name: str
    summary: str
    backbone: Backbone
    skips: tuple = ()
    skip_scales: dict = field(default_factory=dict)
    final_ks: int | None = None
    normalize_loss: bool = False
    solver: dict = field(default_factory=dict)


VARIANTS = {v.name: v for v in [
    Variant('fcn32s', 'VGG16, single stream, 32-pixel stride output', VGG16,
            solver=dict(base_lr=1e-10)),
    Variant('fcn16s', 'VGG16 + pool4 skip, 16-pixel stride (start from fcn32s weights)', VGG16,
            skips=('pool4',), solver=dict(base_lr=1e-12)),
    Variant('fcn8s', 'VGG16 + pool4 and pool3 skips, 8-pixel stride (start from fcn16s)',
            VGG16, skips=('pool4', 'pool3'), solver=dict(base_lr=1e-14)),
    Variant('fcn8s-atonce', 'fcn8s in one training from VGG16; fixed skip scales 0.01, 1e-4',
            VGG16, skips=('pool4', 'pool3'),
            skip_scales={'pool4': 0.01, 'pool3': 0.0001},
            solver=dict(base_lr=1e-10, max_iter=300000)),
    Variant('fcn-alexnet', 'AlexNet, single stream, 63x63 upsampling, normalized loss',
            ALEXNET, final_ks=63, normalize_loss=True,
            solver=dict(base_lr=1e-4, momentum=0.9, iter_size=20)),
]}


#: variants of other modules (nets.datasets: SIFT Flow, NYUDv2, PASCAL-Context), by name
DATASET_VARIANTS = {}


def register_variant(variant):
    """Add ``variant`` (a generator of another module, e.g. nets.datasets) to the variants
    ``get_variant`` and the command line know; NetsError when its name is taken."""
    if variant.name in VARIANTS or variant.name in DATASET_VARIANTS:
        raise NetsError(f"variant {variant.name!r} is already registered")
    DATASET_VARIANTS[variant.name] = variant
    return variant


def all_variants():
    """{name: Variant}: the VOC family (VARIANTS) and the registered dataset variants."""
    return {**VARIANTS, **DATASET_VARIANTS}


def get_variant(name):
    """The Variant called ``name``; NetsError naming the known ones otherwise."""
    known = all_variants()
    try:
        return known[name]
    except KeyError:
        raise NetsError(f"unknown variant {name!r}; choose one of "
                        f"{', '.join(known)}") from None


# ---------------------------------------------------------------------------------------------
# data layers


@dataclass(frozen=True)
class DataLayer:
    """A Python data layer producing ``data`` and ``label``: module, class, parameters.

    ``param_str`` is the Python-literal dict of ``params`` (read with ``ast.literal_eval``).
    """
    module: str
    layer: str
    params: dict
    split_list: str | None = None   # the split list file, where the params do not say it

    @property
    def param_str(self):
        return str(self.params)


def voc_data(voc_dir, split, train):
    """PASCAL VOC: ``voc_dir/ImageSets/Segmentation/<split>.txt``, JPEGImages, SegmentationClass."""
    return DataLayer('layers.voc', 'VOCSegDataLayer', dict(
        voc_dir=_abspath(voc_dir), split=split, mean=MEAN, seed=SEED, randomize=train))


def sbd_data(sbdd_dir, split, train):
    """SBD (Hariharan et al.): ``sbdd_dir/<split>.txt``, img/*.jpg, cls/*.mat."""
    return DataLayer('layers.voc', 'SBDDSegDataLayer', dict(
        sbdd_dir=_abspath(sbdd_dir), split=split, mean=MEAN, seed=SEED, randomize=train))


def folder_data(root, split, train, num_classes, ignore_label=IGNORE_LABEL):
    """One's own data: a folder of image/label pairs (see ``layers.folder``)."""
    return DataLayer('layers.folder', 'FolderSegDataLayer', dict(
        root=_abspath(root), split=split, num_classes=num_classes, ignore_label=ignore_label,
        mean=MEAN, seed=SEED, randomize=train))


def _abspath(path):
    return os.path.abspath(os.fspath(path))


def data_sources(voc_dir=None, sbd_dir=None, folder_dir=None, num_classes=21,
                 ignore_label=IGNORE_LABEL, train_split=None, val_split=None):
    """{'train': DataLayer, 'val': DataLayer} for the given data options, or None for none.

    - ``voc_dir`` alone: VOC ``train`` / ``val``;
    - ``sbd_dir`` alone: SBD ``train`` / ``val``;
    - ``sbd_dir`` and ``voc_dir``: SBD ``train`` / VOC ``seg11valid`` (the reference setup:
      seg11valid.txt = VOC2011 val minus SBD train, in ``voc_dir/ImageSets/Segmentation``);
    - ``folder_dir``: ``train`` / ``val`` of a folder dataset (not combined with the others).

    ``train_split`` / ``val_split`` replace the default split names. Directories must exist.
    """
    for option, path in (('--voc-dir', voc_dir), ('--sbd-dir', sbd_dir),
                         ('--folder-dir', folder_dir)):
        if path is not None and not os.path.isdir(path):
            raise NetsError(f"{option} {path}: not a directory")
    if folder_dir is not None and (voc_dir is not None or sbd_dir is not None):
        raise NetsError("--folder-dir cannot be combined with --voc-dir or --sbd-dir")
    if folder_dir is not None:
        train = folder_data(folder_dir, train_split or 'train', True, num_classes, ignore_label)
        val = folder_data(folder_dir, val_split or 'val', False, num_classes, ignore_label)
    elif sbd_dir is not None:
        train = sbd_data(sbd_dir, train_split or 'train', True)
        val = (voc_data(voc_dir, val_split or 'seg11valid', False) if voc_dir is not None
               else sbd_data(sbd_dir, val_split or 'val', False))
    elif voc_dir is not None:
        train = voc_data(voc_dir, train_split or 'train', True)
        val = voc_data(voc_dir, val_split or 'val', False)
    else:
        return None
    return {'train': train, 'val': val}


# ---------------------------------------------------------------------------------------------
# the generator


def _upscore_name(source, factor, final):
    """The reference nets' names for upsampling layers (kept so reference weights load by name):
    ``upscore`` (score_fr to the output), ``upscore2`` (score_fr to the first skip),
    ``upscore_pool4`` (fuse_pool4 to the next skip), ``upscore16`` (fuse_pool4 to the output)."""
    if source == 'score_fr':
        return 'upscore' if final else f'upscore{factor}'
    return f'upscore{factor}' if final else 'upscore_' + source[len('fuse_'):]


def _factor(n, coarse, fine):
    """The upsampling factor from top ``coarse`` to top ``fine``, from their strides."""
    coarse_stride = coord_map.stride(coarse, n.data)
    fine_stride = coord_map.stride(fine, n.data)
    if coarse_stride % fine_stride:
        raise NetsError(f"stride {coarse_stride} is not a multiple of stride {fine_stride}")
    return coarse_stride // fine_stride


def _backbone(n, backbone, width, dropout):
    """Add the backbone's layers on ``n.data`` to ``n``; returns its last top (fc7's)."""
    how = _Build(width, backbone.multiple, backbone.learned, dropout)
    top = n.data
    for spec in backbone.layers:
        for name, top in spec.build(top, how):
            n[name] = top
    return top


def _head(n, v, num_classes):
    """Add the skip stages and the last upsampling on ``n.score_fr``; returns the upsampled
    top (to be cropped to the input). Each skip upsamples the scores to the skip feature's
    stride, scores the feature (scaled first in at-once), crops it to the upsampled scores
    and adds the two."""
    scores, source = n.score_fr, 'score_fr'
    for skip in v.skips:
        feature = n[skip]
        factor = _factor(n, scores, feature)
        up = _upscore_name(source, factor, final=False)
        n[up] = upsample(scores, num_classes, factor)
        if skip in v.skip_scales:
            n['scale_' + skip] = fixed_scale(feature, v.skip_scales[skip])
            feature = n['scale_' + skip]
        n['score_' + skip] = score_conv(feature, num_classes)
        n[f'score_{skip}c'] = coord_map.crop(n['score_' + skip], n[up])
        n['fuse_' + skip] = fuse(n[up], n[f'score_{skip}c'])
        scores, source = n['fuse_' + skip], 'fuse_' + skip
    factor = coord_map.stride(scores, n.data)
    up = _upscore_name(source, factor, final=True)
    n[up] = upsample(scores, num_classes, factor, v.final_ks)
    return n[up]


def fcn(variant, num_classes=21, data=None, width=1.0, input_shape=DEPLOY_SHAPE):
    """The NetParameter of an FCN variant.

    ``data`` (a DataLayer) makes a train/val net: Python data layer with tops data and label,
    Dropout after fc6 and fc7, SoftmaxWithLoss (``ignore_label`` 255). ``data=None`` makes the
    deploy net: an Input layer ``data`` of ``input_shape`` (N, C, H, W), no dropout, no loss;
    its output is the top ``score`` (N, num_classes, H, W). ``width`` scales the backbone's
    channel counts (fc6/fc7 included), rounded, at least 1 (2 where convolutions are grouped).
    """
    v = get_variant(variant) if isinstance(variant, str) else variant
    if getattr(v, 'build_net', None) is not None:      # a dataset variant (nets.datasets)
        return v.build_net(num_classes, data, width, input_shape)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise NetsError(f"num_classes must be a positive integer, not {num_classes!r}")
    if not width > 0:
        raise NetsError(f"width must be > 0, not {width!r}")
    n = NetSpec()
    if data is not None:
        n.data, n.label = L.Python(module=data.module, layer=data.layer, ntop=2,
                                   param_str=data.param_str)
    else:
        n.data = L.Input(shape=dict(dim=[int(d) for d in input_shape]))

    features = _backbone(n, v.backbone, width, dropout=data is not None)
    n.score_fr = score_conv(features, num_classes)
    n.score = coord_map.crop(_head(n, v, num_classes), n.data)
    if data is not None:
        n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(
            normalize=v.normalize_loss, ignore_label=IGNORE_LABEL))
    net = n.to_proto()
    log.debug("%s: crop offsets %s", v.name, {layer.name: list(layer.crop_param.offset)
                                             for layer in net.layer if layer.type == 'Crop'})
    return net


def solver(variant, train_net='train.prototxt', test_net='val.prototxt', test_iter=None):
    """The SolverParameter of the variant's reference schedule (FCN_FACTS.md).

    Net paths are written as given (Caffe resolves them against the working directory of the
    training process); ``test_iter`` defaults to 736, the size of seg11valid.
    """
    v = get_variant(variant) if isinstance(variant, str) else variant
    settings = dict(_SOLVER_COMMON, **v.solver)
    if test_iter is not None:
        settings['test_iter'] = test_iter
    s = caffe_pb2.SolverParameter(train_net=train_net, test_net=[test_net])
    for key, value in settings.items():
        if key == 'test_iter':
            s.test_iter.append(value)
        else:
            setattr(s, key, value)
    return s


def _split_size(data):
    """The number of images in a VOC or SBD DataLayer's split list; None where unknown."""
    p = data.params
    if data.split_list is not None:
        listing = data.split_list
    elif 'voc_dir' in p:
        listing = os.path.join(p['voc_dir'], 'ImageSets', 'Segmentation', p['split'] + '.txt')
    elif 'sbdd_dir' in p:
        listing = os.path.join(p['sbdd_dir'], p['split'] + '.txt')
    elif p.get('root') and p.get('split'):  # the folder layer: a path, or ROOT/<split>.txt
        split = p['split']
        listing = split if os.path.isfile(split) else os.path.join(
            p['root'], split if split.endswith('.txt') else split + '.txt')
    else:
        return None
    try:
        with open(listing, encoding='utf-8') as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        log.warning("split list %s not found (the data layer will need it); "
                    "solver test_iter left at 736", listing)
        return None


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically: an existing file is either kept or replaced whole."""
    with formats.atomic_write(path, 'w') as f:
        f.write(text)


def generate(variant, out_dir, num_classes=21, width=1.0, data=None,
             input_shape=DEPLOY_SHAPE):
    """Write the variant's nets into ``out_dir`` (created if needed); returns the paths written.

    ``data`` is ``data_sources(...)``'s dict: with it, train.prototxt, val.prototxt,
    deploy.prototxt and solver.prototxt; without it (None), deploy.prototxt only.
    All nets are built before anything is written.
    """
    v = get_variant(variant) if isinstance(variant, str) else variant
    files = {'deploy.prototxt': fcn(v, num_classes, None, width, input_shape)}
    if data is not None:
        files['train.prototxt'] = fcn(v, num_classes, data['train'], width)
        files['val.prototxt'] = fcn(v, num_classes, data['val'], width)
        files['solver.prototxt'] = solver(v, test_iter=_split_size(data['val']))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ('train.prototxt', 'val.prototxt', 'deploy.prototxt', 'solver.prototxt'):
        if name in files:
            write_text_atomic(out_dir / name, str(files[name]))
            written.append(out_dir / name)
            log.info("wrote %s", out_dir / name)
    return written
