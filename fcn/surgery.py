"""Net surgery for FCN: move a classifier's weights into a fully convolutional net.

- ``transplant(new_net, net, suffix='')``: copy every parameter of ``net`` into the layer of
  the same name (plus ``suffix``) of ``new_net``: same shape -> copied; same number of values in
  another shape -> *coerced* by flat copy (fully connected fc6/fc7, O x I, become convolutions,
  O x C x H x W with I = C*H*W, whose weights are the same numbers); anything else -> dropped.
  Returns a ``TransplantReport`` naming every parameter and what happened to it, and logs it.
  ``read_caffemodel_params(path)`` gives a caffemodel's parameters, without a prototxt, in a
  form ``transplant`` takes as its source.
- ``upsample_filt(size)``: FCN's 2-D bilinear kernel; ``interp(net, layers)`` sets
  deconvolution layers to bilinear upsampling with it; ``deconv_layers(net)`` finds them by
  type.
- ``expand_score(new_net, new_layer, net, layer)``: copy a k-class score layer into the first k
  channels of a wider one (adding classes to a trained net).

Command line (a classifier such as VGG16 ILSVRC, V1 or V2 files, into the initial weights of a
generated FCN net)::

    python surgery.py --classifier-deploy VGG_ILSVRC_16_layers_deploy.prototxt \\
        --classifier-weights VGG_ILSVRC_16_layers.caffemodel \\
        --fcn voc-fcn32s/train.prototxt --out voc-fcn32s/init.caffemodel

Only the pycaffe API is used (the nets' ``params``, ``layers``, ``save``), so these functions
work on BVLC pycaffe nets as on npcaffe ones.
"""
import argparse
import logging
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from fcn import backend
from fcn.files import atomic_path
from npcaffe.cli import runner

__all__ = ['SurgeryError', 'ParamTransfer', 'TransplantReport', 'transplant',
           'ParamBlob', 'CaffemodelParams', 'read_caffemodel_params', 'upsample_filt', 'interp',
           'deconv_layers', 'expand_score', 'main']

log = logging.getLogger('surgery')


class SurgeryError(ValueError):
    """Parameters that cannot be used as asked (the message names the layers and shapes)."""


# ------------------------------------------------------------------------------------------
# transplant


def _shape_str(shape):
    return 'x'.join(str(d) for d in shape) if shape is not None else '-'


@dataclass(frozen=True)
class ParamTransfer:
    """One parameter blob: ``layer``/``index`` in the source net, ``new_layer`` in the target,
    and both shapes (``new_shape`` None where the target has no such parameter)."""
    layer: str
    index: int
    shape: tuple
    new_layer: str
    new_shape: tuple = None
    reason: str = ''

    def __str__(self):
        name = (f"{self.layer}/{self.index}" if self.new_layer == self.layer
                else f"{self.layer}/{self.index} -> {self.new_layer}/{self.index}")
        shapes = (f"{_shape_str(self.shape)} -> {_shape_str(self.new_shape)}"
                  if self.new_shape is not None and self.new_shape != self.shape
                  else _shape_str(self.shape))
        return f"{name} {shapes}" + (f" ({self.reason})" if self.reason else '')


@dataclass
class TransplantReport:
    """What ``transplant`` did with every parameter of the source net (``copied``: same shape;
    ``coerced``: flat copy into another shape of the same size; ``dropped``: not copied, with the
    reason) and which parameters of the new net it did not write (``untouched``, e.g. the new
    score and deconvolution layers, which keep their initial values)."""
    copied: list = field(default_factory=list)
    coerced: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    untouched: list = field(default_factory=list)

    @property
    def transferred(self):
        """Number of parameters written into the new net (copied + coerced)."""
        return len(self.copied) + len(self.coerced)

    def lines(self):
        out = [f"transplant: {len(self.copied)} copied, {len(self.coerced)} coerced, "
               f"{len(self.dropped)} dropped, {len(self.untouched)} of the new net untouched"]
        for title, entries in (('copied', self.copied), ('coerced', self.coerced),
                               ('dropped', self.dropped), ('untouched', self.untouched)):
            out.extend(f"  {title:9s} {entry}" for entry in entries)
        return out

    def summary(self):
        """One line: how many parameters were copied, coerced, dropped, left untouched."""
        return self.lines()[0][len('transplant: '):]

    def __str__(self):
        return '\n'.join(self.lines())


def _params(net):
    """[(layer name, [parameter blobs])] of a net, in net order."""
    return [(name, list(blobs)) for name, blobs in net.params.items()]


def transplant(new_net, net, suffix=''):
    """Copy the parameters of ``net`` into the same-named layers (``name + suffix``) of
    ``new_net``; return a TransplantReport (also logged).

    For parameter i of layer L of ``net`` and parameter i of layer L+suffix of ``new_net``:
    equal shapes are copied; equal sizes in different shapes are coerced by a flat copy in C
    order (a fully connected O x (C*H*W) matrix is the O x C x H x W convolution kernel); a
    different size, a layer absent from ``new_net`` or an index it does not have is dropped.
    Nothing is skipped silently: every parameter appears in the report.
    """
    report = TransplantReport()
    written = set()
    new_params = dict(_params(new_net))
    for name, blobs in _params(net):
        new_name = name + suffix
        targets = new_params.get(new_name)
        for i, src in enumerate(blobs):
            shape = tuple(src.data.shape)
            if targets is None:
                report.dropped.append(ParamTransfer(name, i, shape, new_name, None,
                                                    'no such layer in the new net'))
                continue
            if i >= len(targets):
                report.dropped.append(ParamTransfer(
                    name, i, shape, new_name, None,
                    f'the new layer has {len(targets)} parameter(s)'))
                continue
            dst = targets[i].data
            entry = ParamTransfer(name, i, shape, new_name, tuple(dst.shape))
            if dst.shape == src.data.shape:
                dst[...] = src.data
                report.copied.append(entry)
            elif dst.size == src.data.size:
                dst[...] = np.reshape(src.data, dst.shape)      # flat copy, C order
                report.coerced.append(entry)
            else:
                report.dropped.append(ParamTransfer(
                    name, i, shape, new_name, tuple(dst.shape),
                    f'{src.data.size} values do not fit {dst.size}'))
                continue
            written.add((new_name, i))
    for new_name, targets in new_params.items():
        for i, dst in enumerate(targets):
            if (new_name, i) not in written:
                report.untouched.append(ParamTransfer(new_name, i, tuple(dst.data.shape),
                                                      new_name))
    log.info('%s', report)
    mismatched = [e for e in report.dropped if e.new_layer in new_params]
    if mismatched:
        log.warning('transplant dropped %d parameter(s) of same-named layers that do not fit: '
                    '%s; those layers keep their initial values (to learn a layer from scratch '
                    'without this warning, rename it in the prototxt)', len(mismatched),
                    '; '.join(str(e) for e in mismatched))
    if not report.transferred:
        log.warning('transplant: no parameter of the source net matched a layer of the new net '
                    'by name; the new net keeps its initial parameters')
    return report


# ------------------------------------------------------------------------------------------
# parameters straight from a caffemodel


@dataclass
class ParamBlob:
    """One parameter blob read from a caffemodel: ``data`` (a NumPy array)."""
    data: np.ndarray


@dataclass
class CaffemodelParams:
    """The parameters of a caffemodel without its prototxt, shaped like a net's for
    ``transplant``: ``params`` {layer: [ParamBlob]} in file order, ``types`` {layer: type}."""
    path: str
    params: dict
    types: dict


def _blob_array(blob, layer, index, path):
    values = blob.double_data if len(blob.double_data) else blob.data
    data = np.array(values, dtype=np.float64 if len(blob.double_data) else np.float32)
    if blob.HasField('shape'):
        shape, legacy = tuple(blob.shape.dim), False
    else:
        shape, legacy = (blob.num, blob.channels, blob.height, blob.width), True
    count = int(np.prod(shape, dtype=np.int64))
    if count != data.size:
        raise SurgeryError(f"{path}: parameter {index} of layer {layer!r} has shape "
                           f"{_shape_str(shape)} ({count} values) but holds {data.size} values")
    return data.reshape(shape), legacy


_MAGIC = ((b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG', 'a PNG image'),
          (b'\x89HDF', 'an HDF5 file'), (b'PK\x03\x04', 'a zip archive'),
          (b'\x1f\x8b', 'a gzip archive'), (b'<', 'an HTML or XML page (a failed download?)'))


def _file_kind(raw):
    """What a file that is not a caffemodel looks like, from its first bytes; None if unknown."""
    for magic, kind in _MAGIC:
        if raw.startswith(magic):
            return kind
    if raw[:16].lstrip().startswith((b'name', b'layer', b'input', b'net', b'#')):
        return 'a text prototxt'
    return None


def read_caffemodel_params(path):
    """The parameters of the caffemodel at ``path`` (V1 or V2) as a ``CaffemodelParams``, which
    ``transplant`` accepts as its source net; no prototxt is needed.

    Blobs keep their stored shapes, except that legacy (V1) 4-D shapes lose the singleton axes
    Caffe pads them with where the layer type tells what they are: a bias (1, 1, 1, N) is (N,),
    an InnerProduct weight (1, 1, O, I) is (O, I) -- the shapes a net built from the prototxt
    would give them.
    """
    from fcn.backend import caffe
    caffe_pb2 = caffe.proto.caffe_pb2
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as exc:
        raise SurgeryError(f"{path}: cannot read the caffemodel ({exc.strerror or exc})") from None
    if not raw:
        raise SurgeryError(f"{path}: the caffemodel file is empty")
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        kind = _file_kind(raw)
        raise SurgeryError(f"{path}: not a binary caffemodel ({exc}); the "
                           f"file may be truncated (an interrupted download?) or of another "
                           f"kind.{f' It looks like {kind}.' if kind else ''}") from None
    params, types = {}, {}
    v1_names = caffe_pb2.V1LayerParameter.LayerType
    layers = [(lp.name, lp.type, lp.blobs) for lp in param.layer]
    for lp in param.layers:                            # V1 (and V0 nested in V1)
        blobs = lp.blobs if len(lp.blobs) or not lp.HasField('layer') else lp.layer.blobs
        name = lp.name or lp.layer.name
        kind = v1_names.Name(lp.type) if lp.type else lp.layer.type
        layers.append((name, kind, blobs))
    for name, kind, blobs in layers:
        if not len(blobs):
            continue
        arrays = []
        for i, blob in enumerate(blobs):
            data, legacy = _blob_array(blob, name, i, path)
            if legacy and data.shape[:3] == (1, 1, 1) and i == 1:
                data = data.reshape(data.shape[3])                    # bias (N,)
            elif legacy and data.shape[:2] == (1, 1) and i == 0 and \
                    kind in ('INNER_PRODUCT', 'InnerProduct', 'innerproduct'):
                data = data.reshape(data.shape[2:])                   # weight (O, I)
            arrays.append(ParamBlob(data))
        params[name] = arrays
        types[name] = kind
    if not params:
        raise SurgeryError(f"{path}: the caffemodel holds no parameters")
    return CaffemodelParams(str(path), params, types)


# ------------------------------------------------------------------------------------------
# bilinear upsampling


def upsample_filt(size):
    """The (size, size) bilinear kernel that upsamples by ``factor = (size + 1) // 2``:
    ``(1 - |i - c| / factor) * (1 - |j - c| / factor)`` with centre ``c = factor - 1`` for an
    odd size and ``factor - 0.5`` for an even one (FCN's kernel; size 2f upsamples by f)."""
    size = int(size)
    if size < 1:
        raise SurgeryError(f"upsample_filt: size must be >= 1, got {size}")
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size, dtype=np.float64)
    profile = 1 - np.abs(og - center) / factor                 # (size,)
    return profile[:, None] * profile[None, :]                 # (size, size)


def _layer_types(net):
    """[(layer name, layer type)] in net order (pycaffe's ``_layer_names`` and ``layers``)."""
    names = getattr(net, 'layer_dict', None)
    names = list(names) if names is not None else list(net._layer_names)
    return [(name, layer.type) for name, layer in zip(names, net.layers)]


def deconv_layers(net):
    """Names of the net's Deconvolution layers that have parameters, in net order (found by
    layer type, not by name)."""
    return [name for name, kind in _layer_types(net)
            if kind == 'Deconvolution' and name in net.params]


def interp(net, layers):
    """Set each of ``layers`` (Deconvolution layers with weights (m, k, h, w)) to bilinear
    upsampling: weight[c, c] (or weight[c, 0] for one channel per group, k == 1) is
    ``upsample_filt(h)``, every other weight 0, and a bias, if any, 0.

    Raises SurgeryError naming the layer and its shape when the kernel is not square or the
    channels cannot be mapped one to one (m != k and k != 1), and for a layer without weights.
    """
    for name in layers:
        if name not in net.params:
            raise SurgeryError(f"interp: layer {name!r} has no parameters in the net "
                               f"(its Deconvolution layers: {', '.join(deconv_layers(net)) or 'none'})")
        blobs = net.params[name]
        weights = blobs[0].data
        if weights.ndim != 4:
            raise SurgeryError(f"interp: layer {name!r} has weights of shape "
                               f"{_shape_str(weights.shape)}; a 2-D deconvolution has 4 axes "
                               f"(in channels, out channels per group, h, w)")
        m, k, h, w = weights.shape
        if m != k and k != 1:
            raise SurgeryError(f"interp: layer {name!r} has weights {m}x{k}x{h}x{w}: bilinear "
                               f"upsampling maps each channel to itself, so the input and "
                               f"output channels must be equal ({m} != {k}), or one output "
                               f"channel per group (group: {m})")
        if h != w:
            raise SurgeryError(f"interp: layer {name!r} has weights {m}x{k}x{h}x{w}: the "
                               f"kernel must be square for bilinear upsampling ({h} != {w})")
        weights[...] = 0
        channels = np.arange(m)
        weights[channels, channels if k == m else 0] = upsample_filt(h)
        for bias in blobs[1:]:
            bias.data[...] = 0
        log.info('interp: %s %dx%dx%dx%d set to bilinear upsampling by %d', name, m, k, h, w,
                 (h + 1) // 2)


def expand_score(new_net, new_layer, net, layer):
    """Copy the k-class score layer ``layer`` of ``net`` into the first k output channels of
    ``new_layer`` of ``new_net``, which has k' >= k classes (the reference's semantics: the old
    classes keep their indices 0..k-1; channels k..k'-1 keep their initial values). Weights are
    (classes, inputs, kh, kw) and must agree on everything but the classes; the bias, if both
    layers have one, is copied the same way. Returns k."""
    for n, lname, what in ((net, layer, 'old'), (new_net, new_layer, 'new')):
        if lname not in n.params:
            raise SurgeryError(f"expand_score: the {what} net has no layer {lname!r} with "
                               f"parameters")
    old, new = net.params[layer], new_net.params[new_layer]
    old_w, new_w = old[0].data, new[0].data
    old_cl, new_cl = old_w.shape[0], new_w.shape[0]
    if old_w.shape[1:] != new_w.shape[1:] or old_cl > new_cl:
        raise SurgeryError(f"expand_score: cannot put {layer!r} {_shape_str(old_w.shape)} into "
                           f"the first channels of {new_layer!r} {_shape_str(new_w.shape)}: "
                           f"the new layer needs at least {old_cl} classes and the same "
                           f"{_shape_str(old_w.shape[1:])} per class")
    new_w[:old_cl] = old_w
    if len(old) > 1 and len(new) > 1:
        old_b = np.reshape(old[1].data, -1)
        new_b = new[1].data.reshape(-1)      # a view: legacy (1, 1, 1, k) biases too
        if old_b.size != old_cl or new_b.size != new_cl:
            raise SurgeryError(f"expand_score: biases {_shape_str(old[1].data.shape)} and "
                               f"{_shape_str(new[1].data.shape)} do not match {old_cl} and "
                               f"{new_cl} classes")
        new_b[:old_cl] = old_b
    log.info('expand_score: %s (%d classes) -> first %d of %s (%d classes)', layer, old_cl,
             old_cl, new_layer, new_cl)
    return old_cl


# ------------------------------------------------------------------------------------------
# command line


def _stub_data_layers(prototxt, data_shape, caffe):
    """A NetParameter text of ``prototxt`` in which every Python layer without bottoms (a data
    layer reading files) is an Input layer: data (1, *data_shape), the other tops
    (1, 1, H, W); or None when there is no such layer."""
    from google.protobuf import text_format
    caffe_pb2 = caffe.proto.caffe_pb2
    param = caffe_pb2.NetParameter()
    with open(prototxt, encoding='utf-8') as f:
        text_format.Merge(f.read(), param)
    changed = []
    for layer in param.layer:
        if layer.type == 'Python' and not layer.bottom:
            tops = list(layer.top)
            layer.ClearField('python_param')
            layer.type = 'Input'
            layer.input_param.ClearField('shape')
            for j, _ in enumerate(tops):
                shape = layer.input_param.shape.add()
                shape.dim.extend([1, *data_shape] if j == 0 else [1, 1, *data_shape[1:]])
            changed.append(layer.name)
    if not changed:
        return None
    log.info('surgery: data layer(s) %s replaced by Input layers of shape 1x%s (only the '
             'parameter shapes matter here)', ', '.join(changed), _shape_str(data_shape))
    return text_format.MessageToString(param)


def _data_shape(text):
    try:
        dims = tuple(int(d) for d in text.replace('x', ',').split(','))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 3,224,224, not {text!r}")
    return dims


def _parser():
    p = runner.ArgumentParser(
        prog='fcn surgery',
        description='Turn a classifier (deploy prototxt + caffemodel, V1 or V2 format) into the '
                    'initial weights of an FCN net: every parameter of a same-named layer is '
                    'copied (fully connected layers coerced into convolutions by flat copy), and '
                    'every Deconvolution layer is set to bilinear upsampling. Prints what was '
                    'copied, coerced and dropped.')
    p.add_argument('--classifier-deploy', required=True, metavar='D.prototxt',
                   help="the classifier's deploy prototxt (e.g. VGG16 ILSVRC)")
    p.add_argument('--classifier-weights', required=True, metavar='W.caffemodel',
                   help="the classifier's weights")
    p.add_argument('--fcn', required=True, metavar='NET.prototxt',
                   help='the FCN net (train, val or deploy prototxt)')
    p.add_argument('--out', required=True, metavar='INIT.caffemodel',
                   help='where to write the FCN initial weights (written atomically)')
    p.add_argument('--suffix', default='',
                   help="suffix of the FCN layer names, e.g. '_new' (default: none)")
    p.add_argument('--data-shape', type=_data_shape, default=(3, 224, 224), metavar='C,H,W',
                   help='shape of the Input layers that replace the FCN net\'s Python data '
                        'layers while it is built (default 3,224,224)')
    backend.add_argument(p)
    p.add_argument('-q', '--quiet', action='store_true', help='print only the summary line')
    return p


def _write_atomic(net, out):
    """``net.save`` to a temporary name beside ``out``, then rename it to ``out``."""
    with atomic_path(out) as tmp:
        net.save(tmp)


def run(args):
    """Build both nets, transplant, interp every Deconvolution layer, save; return the report."""
    from fcn.backend import caffe
    for option, path in (('--classifier-deploy', args.classifier_deploy),
                         ('--classifier-weights', args.classifier_weights),
                         ('--fcn', args.fcn)):
        if not os.path.isfile(path):
            raise SurgeryError(f"{option} {path}: no such file")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise SurgeryError(f"--out {args.out}: folder {out_dir} does not exist")
    classifier = caffe.Net(args.classifier_deploy, args.classifier_weights, caffe.TEST)
    stub = _stub_data_layers(args.fcn, args.data_shape, caffe)
    if stub is None:
        fcn = caffe.Net(args.fcn, caffe.TEST)
    else:
        with tempfile.NamedTemporaryFile('w', suffix='.prototxt', delete=False) as f:
            f.write(stub)
        try:
            fcn = caffe.Net(f.name, caffe.TEST)
        finally:
            os.remove(f.name)
    report = transplant(fcn, classifier, args.suffix)
    if not report.transferred:
        raise SurgeryError(f"no parameter of {args.classifier_weights} matched a layer of "
                           f"{args.fcn} by name{' + ' + repr(args.suffix) if args.suffix else ''}"
                           f"; nothing written (the FCN net would keep its random initial "
                           f"weights)")
    deconvs = deconv_layers(fcn)
    interp(fcn, deconvs)
    _write_atomic(fcn, args.out)
    return report, deconvs


def _run(args):
    if args.backend:
        backend.use(args.backend)
    report, deconvs = run(args)
    print(report.lines()[0] if args.quiet else report)
    print(f"interp: {len(deconvs)} Deconvolution layer(s) set to bilinear upsampling"
          + (f": {', '.join(deconvs)}" if deconvs else ''))
    print(f"wrote {args.out}")


def main(argv=None):
    """The command line (see the module docstring); returns the exit status: 0 when the weights
    were written, 1 on bad input, 2 on a bad command line (a message on stderr, no traceback)."""
    return runner.run(_run, _parser(), argv)
