"""The reference FCNs of SIFT Flow, NYUDv2 and PASCAL-Context, registered beside ``nets.VARIANTS``.

Importing ``nets`` registers them; ``python -m nets VARIANT --out DIR`` (or ``fcn nets``) and
``nets.fcn(name, ...)`` / ``nets.generate(name, ...)`` then build them like the VOC variants:

=========================  ======================================  ===========  =======
variant                    net                                     data tops    base_lr
=========================  ======================================  ===========  =======
siftflow-fcn32s/16s/8s     VGG16, two heads: ``_sem`` (33 classes,  data sem     1e-10 /
                           loss ``loss``) and ``_geo`` (3, loss     geo          1e-12 /
                           ``loss_geo``), outputs score_sem and                  1e-12
                           score_geo
nyud-fcn32s-color          VGG16 FCN-32s on BGR, 40 classes         data label   1e-10
nyud-fcn32s-hha            VGG16 FCN-32s on HHA                     data label   1e-10
nyud-fcn32s-color-d        early fusion: Concat(color, depth) ->    color depth  1e-10
                           4 channels into ``conv1_1_bgrd``         label
nyud-fcn32s-color-hha      late fusion: two VGG16 streams suffixed  color hha    1e-12
                           ``color`` / ``hha``, ``score_fused`` =   label
                           0.5 score_frcolor + 0.5 score_frhha
pascalcontext-fcn32s/16s/  VGG16 FCN-32s/16s/8s, 60 classes         data label   1e-10 /
8s                         (background + the 59)                                 1e-12 /
                                                                                 1e-14
=========================  ======================================  ===========  =======

Layer names, tops, parameters and crop offsets are those of the reference ``net.py`` of each
folder (fcn.berkeleyvision.org), so its caffemodels load by name; crop offsets and upsampling
factors are computed (``npcaffe.coord_map``). Solvers: the reference ones (fixed rate, momentum
0.99, weight decay 5e-4, 300,000 iterations; test_iter = the val split's size, else 200 / 654 /
5105). Deploy nets replace the data layer by Input layers of the same tops (``data``, or
``color`` and ``depth`` / ``hha``) and drop dropout and losses. The class count of a dataset
variant is fixed: ``num_classes`` None or equal to it.
"""
import os
from dataclasses import dataclass

from npcaffe import coord_map
from npcaffe.net_spec import NetSpec, layers as L, params as P

from .fcn import (DATASET_VARIANTS, DEPLOY_SHAPE, IGNORE_LABEL, SEED, VGG16, DataLayer, NetsError, Variant,
                  _Build, _abspath, _factor, _upscore_name, register_variant, score_conv,
                  upsample)

__all__ = ['DatasetVariant', 'DATASET_VARIANTS', 'siftflow_data', 'nyud_data', 'context_data',
           'SIFTFLOW_MEAN', 'NYUD_MEAN', 'NYUD_HHA_MEAN', 'NYUD_LOGD_MEAN', 'CONTEXT_MEAN']

SIFTFLOW_MEAN = (114.578, 115.294, 108.353)
NYUD_MEAN = (116.190, 97.203, 92.318)
NYUD_HHA_MEAN = (132.431, 94.076, 118.477)
NYUD_LOGD_MEAN = 7.844
CONTEXT_MEAN = (104.007, 116.669, 122.679)


# ---------------------------------------------------------------------------------------------
# data layers

def siftflow_data(siftflow_dir, split, train):
    """SIFT Flow: ``siftflow_dir/<split>.txt`` (tops data, sem, geo; layers.siftflow)."""
    root = _abspath(siftflow_dir)
    return DataLayer('layers.siftflow', 'SIFTFlowSegDataLayer', dict(
        siftflow_dir=root, split=split, seed=SEED, randomize=train),
        split_list=os.path.join(root, f'{split}.txt'))


def nyud_data(nyud_dir, split, train, tops):
    """NYUDv2: ``nyud_dir/<split>.txt``; ``tops`` from color, depth, hha, label (layers.nyud)."""
    root = _abspath(nyud_dir)
    return DataLayer('layers.nyud', 'NYUDSegDataLayer', dict(
        nyud_dir=root, split=split, tops=list(tops), seed=SEED, randomize=train),
        split_list=os.path.join(root, f'{split}.txt'))


def context_data(voc_dir, context_dir, split, train):
    """PASCAL-Context: images of ``voc_dir/VOC2010``, labels of ``context_dir``
    (layers.pascalcontext)."""
    voc = _abspath(voc_dir)
    return DataLayer('layers.pascalcontext', 'PASCALContextSegDataLayer', dict(
        voc_dir=voc, context_dir=_abspath(context_dir), split=split, seed=SEED,
        randomize=train),
        split_list=os.path.join(voc, 'VOC2010', 'ImageSets', 'Main', f'{split}.txt'))


# ---------------------------------------------------------------------------------------------
# builders

def _stream(n, bottom, width, dropout, suffix='', first=None):
    """VGG16 up to fc7 on ``bottom``, every name + ``suffix`` (conv1_1 named ``first`` when
    given); returns fc7's top (relu7 / drop7)."""
    how = _Build(width, VGG16.multiple, VGG16.learned, dropout)
    top = bottom
    for spec in VGG16.layers:
        for name, top in spec.build(top, how):
            n[(first if first and name == 'conv1_1' else name) + suffix] = top
    return top


def _head(n, features, skips, num_classes, suffix, data):
    """score_fr + suffix on ``features``, the skip stages and the last upsampling, cropped to
    ``data``: the reference names with ``suffix`` appended (crop tops ``score_pool4<suffix>c``);
    returns the score top."""
    n['score_fr' + suffix] = score_conv(features, num_classes)
    scores, source = n['score_fr' + suffix], 'score_fr'
    for skip in skips:
        factor = _factor(n, scores, n[skip])
        up = _upscore_name(source, factor, final=False) + suffix
        n[up] = upsample(scores, num_classes, factor)
        n[f'score_{skip}{suffix}'] = score_conv(n[skip], num_classes)
        n[f'score_{skip}{suffix}c'] = coord_map.crop(n[f'score_{skip}{suffix}'], n[up])
        n[f'fuse_{skip}{suffix}'] = L.Eltwise(n[up], n[f'score_{skip}{suffix}c'],
                                              operation=P.Eltwise.SUM)
        scores, source = n[f'fuse_{skip}{suffix}'], f'fuse_{skip}'
    factor = coord_map.stride(scores, data)
    up = _upscore_name(source, factor, final=True) + suffix
    n[up] = upsample(scores, num_classes, factor)
    return coord_map.crop(n[up], data)


def _loss(score, label):
    return L.SoftmaxWithLoss(score, label, loss_param=dict(normalize=False,
                                                           ignore_label=IGNORE_LABEL))


def _deploy_inputs(n, tops, input_shape):
    """One Input per (name, channels) of ``tops``, of ``input_shape``'s batch and size."""
    batch, _, height, width = (int(d) for d in input_shape)
    for name, channels in tops:
        n[name] = L.Input(shape=dict(dim=[batch, channels, height, width]))


def _python_layer(n, data, names):
    outs = L.Python(module=data.module, layer=data.layer, ntop=len(names),
                    param_str=data.param_str)
    for name, top in zip(names, outs):
        n[name] = top


def _build_siftflow(v, data, width, input_shape):
    n = NetSpec()
    if data is not None:
        _python_layer(n, data, ('data', 'sem', 'geo'))
    else:
        _deploy_inputs(n, (('data', 3),), input_shape)
    features = _stream(n, n.data, width, dropout=data is not None)
    # reference order: the semantic head and its loss, then the geometric head and loss_geo
    n.score_sem = _head(n, features, v.skips, v.classes, '_sem', n.data)
    if data is not None:
        n.loss = _loss(n.score_sem, n.sem)
    n.score_geo = _head(n, features, v.skips, v.geo_classes, '_geo', n.data)
    if data is not None:
        n.loss_geo = _loss(n.score_geo, n.geo)
    return n.to_proto()


def _build_single(v, data, width, input_shape):
    """One VGG16 stream on ``data`` (NYUD color / hha, PASCAL-Context)."""
    n = NetSpec()
    if data is not None:
        _python_layer(n, data, ('data', 'label'))
    else:
        _deploy_inputs(n, (('data', 3),), input_shape)
    features = _stream(n, n.data, width, dropout=data is not None)
    n.score = _head(n, features, v.skips, v.classes, '', n.data)
    if data is not None:
        n.loss = _loss(n.score, n.label)
    return n.to_proto()


def _build_early(v, data, width, input_shape):
    """NYUD color-d: Concat(color, depth) -> data -> conv1_1_bgrd ..."""
    n = NetSpec()
    if data is not None:
        _python_layer(n, data, ('color', 'depth', 'label'))
    else:
        _deploy_inputs(n, (('color', 3), ('depth', 1)), input_shape)
    n.data = L.Concat(n.color, n.depth)
    features = _stream(n, n.data, width, dropout=data is not None, first='conv1_1_bgrd')
    n.score = _head(n, features, v.skips, v.classes, '', n.data)
    if data is not None:
        n.loss = _loss(n.score, n.label)
    return n.to_proto()


def _build_late(v, data, width, input_shape):
    """NYUD color-hha: a VGG16 stream per modality (names suffixed ``color`` / ``hha``), the
    two score_fr averaged (Eltwise SUM, coeff 0.5 0.5), one upscore cropped to ``color``."""
    n = NetSpec()
    if data is not None:
        _python_layer(n, data, ('color', 'hha', 'label'))
    else:
        _deploy_inputs(n, (('color', 3), ('hha', 3)), input_shape)
    dropout = data is not None
    for modality in ('color', 'hha'):
        features = _stream(n, n[modality], width, dropout, suffix=modality)
        n['score_fr' + modality] = score_conv(features, v.classes)
    n.score_fused = L.Eltwise(n.score_frcolor, n.score_frhha, operation=P.Eltwise.SUM,
                              coeff=[0.5, 0.5])
    n.upscore = upsample(n.score_fused, v.classes, coord_map.stride(n.score_fused, n.color))
    n.score = coord_map.crop(n.upscore, n.color)
    if data is not None:
        n.loss = _loss(n.score, n.label)
    return n.to_proto()


_BUILDERS = {'siftflow': _build_siftflow, 'single': _build_single, 'early': _build_early,
             'late': _build_late}

#: dataset -> (data option names, train split, val split)
_DATA_OPTIONS = {
    'siftflow': (('siftflow_dir',), 'trainval', 'test'),
    'nyud': (('nyud_dir',), 'trainval', 'test'),
    'pascalcontext': (('voc_dir', 'context_dir'), 'train', 'val'),
}


@dataclass(frozen=True)
class DatasetVariant(Variant):
    """A reference FCN of another dataset: ``kind`` picks the builder (siftflow, single,
    early, late), ``classes`` is fixed (``geo_classes``: SIFT Flow's second head),
    ``inputs`` the deploy net's (input top, channels), ``tops`` the NYUD layer's tops."""
    dataset: str = ''
    kind: str = 'single'
    classes: int = 0
    geo_classes: int = 0
    inputs: tuple = (('data', 3),)
    tops: tuple = ()

    def check_classes(self, num_classes):
        if num_classes is not None and num_classes != self.classes:
            raise NetsError(f"{self.name} has {self.classes} classes (the {self.dataset} "
                            f"task), not {num_classes}")

    def build_net(self, num_classes, data, width, input_shape=DEPLOY_SHAPE):
        """The train/val net for the DataLayer ``data``, or the deploy net (data None)."""
        self.check_classes(num_classes)
        if not width > 0:
            raise NetsError(f"width must be > 0, not {width!r}")
        return _BUILDERS[self.kind](self, data, width, input_shape)

    def data_sources(self, train_split=None, val_split=None, **dirs):
        """{'train': DataLayer, 'val': DataLayer} from the dataset folders (keyword arguments
        ``siftflow_dir``, ``nyud_dir``, or ``voc_dir`` and ``context_dir``); None when none
        is given. NetsError naming the missing or non-folder option."""
        needed, train, val = _DATA_OPTIONS[self.dataset]
        given = {k: dirs.get(k) for k in needed}
        if all(p is None for p in given.values()):
            return None
        for key, folder in given.items():
            option = '--' + key.replace('_', '-')
            if folder is None:
                raise NetsError(f"{self.name} needs {option} as well "
                                f"({', '.join('--' + k.replace('_', '-') for k in needed)})")
            if not os.path.isdir(folder):
                raise NetsError(f"{option} {folder}: not a directory")
        train, val = train_split or train, val_split or val
        if self.dataset == 'siftflow':
            make = lambda split, is_train: siftflow_data(given['siftflow_dir'], split, is_train)
        elif self.dataset == 'nyud':
            make = lambda split, is_train: nyud_data(given['nyud_dir'], split, is_train,
                                                     self.tops)
        else:
            make = lambda split, is_train: context_data(given['voc_dir'], given['context_dir'],
                                                        split, is_train)
        return {'train': make(train, True), 'val': make(val, False)}


def _solver(base_lr, test_iter, **more):
    return dict(base_lr=base_lr, max_iter=300000, test_iter=test_iter, **more)


_SKIPS = {'32s': (), '16s': ('pool4',), '8s': ('pool4', 'pool3')}
_STRIDE = {'32s': 32, '16s': 16, '8s': 8}

_DEFINED = []
for _stride, _lr in (('32s', 1e-10), ('16s', 1e-12), ('8s', 1e-12)):
    _DEFINED.append(DatasetVariant(
        f'siftflow-fcn{_stride}', f'SIFT Flow, VGG16, {_STRIDE[_stride]}-pixel stride, '
        f'semantic (33) + geometric (3) heads', VGG16, skips=_SKIPS[_stride],
        solver=_solver(_lr, 200), dataset='siftflow', kind='siftflow', classes=33,
        geo_classes=3))
for _stride, _lr in (('32s', 1e-10), ('16s', 1e-12), ('8s', 1e-14)):
    _DEFINED.append(DatasetVariant(
        f'pascalcontext-fcn{_stride}', f'PASCAL-Context (59 + background), VGG16, '
        f'{_STRIDE[_stride]}-pixel stride', VGG16, skips=_SKIPS[_stride],
        solver=_solver(_lr, 5105), dataset='pascalcontext', classes=60))
_DEFINED += [
    DatasetVariant('nyud-fcn32s-color', 'NYUDv2 40 classes, VGG16 FCN-32s on color (BGR)',
                   VGG16, solver=_solver(1e-10, 654, snapshot=2000), dataset='nyud',
                   classes=40, tops=('color', 'label')),
    DatasetVariant('nyud-fcn32s-hha', 'NYUDv2 40 classes, VGG16 FCN-32s on HHA', VGG16,
                   solver=_solver(1e-10, 654, snapshot=2000), dataset='nyud', classes=40,
                   tops=('hha', 'label')),
    DatasetVariant('nyud-fcn32s-color-d', 'NYUDv2, early fusion: color + log depth as 4 '
                   'input channels', VGG16, solver=_solver(1e-10, 654, snapshot=2000),
                   dataset='nyud', kind='early', classes=40,
                   inputs=(('color', 3), ('depth', 1)), tops=('color', 'depth', 'label')),
    DatasetVariant('nyud-fcn32s-color-hha', 'NYUDv2, late fusion of a color and an HHA '
                   'stream (start from the two 32s nets)', VGG16,
                   solver=_solver(1e-12, 654, snapshot=2000), dataset='nyud', kind='late',
                   classes=40, inputs=(('color', 3), ('hha', 3)),
                   tops=('color', 'hha', 'label')),
]
for _variant in _DEFINED:
    register_variant(_variant)
