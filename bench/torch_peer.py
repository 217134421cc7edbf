"""The PyTorch CPU peer of an FCN: the same net, built from the same prototxt and caffemodel.

``TorchNet(net)`` turns a built npcaffe :class:`~npcaffe.Net` (a TEST deploy net with its
weights copied in) into a ``torch.nn.Module`` that runs the same layers with Caffe's
semantics:

* Convolution: ``conv2d`` with the layer's pad (FCN's pad 100 on conv1_1), stride, dilation,
  group and bias;
* Deconvolution: ``conv_transpose2d`` with the same (bilinear) weights, Caffe's weight layout
  (in, out / group, kh, kw) being PyTorch's;
* Pooling MAX: ``max_pool2d(ceil_mode=True)``, whose output size rule is Caffe's (ceil, and one
  less where the last window would start in the padding);
* Crop: the offsets of the layer's ``crop_param`` (those the net generator computed from
  the coordinate maps), on every axis from ``crop_param.axis``;
* Eltwise (SUM with coefficients, PROD, MAX), Scale (the at-once variants' skip scaling),
  ReLU, Split; Dropout is the identity (as in TEST);
* the loss of the train net: SoftmaxWithLoss with ``ignore_label`` 255 and ``normalize:
  false``, i.e. the cross-entropy summed over the pixels not ignored, divided by the batch size.

The weights are shared with the npcaffe net (``torch.from_numpy``): no copy is made, and the
npcaffe net can be dropped once the module is built. ``sgd(module, solver_param, train_param)``
is Caffe's SGD (momentum, weight decay, each parameter's lr_mult and decay_mult of the train
net) as ``torch.optim.SGD`` parameter groups: Caffe's history is PyTorch's momentum buffer
times the (fixed) rate.

PyTorch is an optional benchmark dependency, not an extra of the package (it is large):
``pip install torch==2.13.0`` (the CPU wheel). ``available()`` says whether it imports.
"""
import importlib

import numpy as np

IGNORE_LABEL = 255


def available():
    """True when ``import torch`` works."""
    try:
        importlib.import_module('torch')
    except ImportError:
        return False
    return True


def _torch():
    import torch
    return torch


def _hw(param, field, default):
    """(h, w) of a convolution/pooling field: its repeated values, else ``field_h``/``_w``."""
    values = list(getattr(param, field, []) or [])
    if values:
        return (int(values[0]), int(values[-1]))
    h, w = f'{field}_h', f'{field}_w'
    if field == 'kernel_size':
        h, w = 'kernel_h', 'kernel_w'
    if hasattr(param, h) and param.HasField(h):
        return (int(getattr(param, h)), int(getattr(param, w)))
    return (default, default)


def _pool_hw(param, field, default):
    alias = {'kernel_size': ('kernel_h', 'kernel_w'), 'stride': ('stride_h', 'stride_w'),
             'pad': ('pad_h', 'pad_w')}[field]
    if param.HasField(alias[0]):
        return (int(getattr(param, alias[0])), int(getattr(param, alias[1])))
    if param.HasField(field):
        value = int(getattr(param, field))
        return (value, value)
    return (default, default)


class _Step:
    """One layer: a callable of (bottom tensors) -> list of top tensors."""

    def __init__(self, name, kind, bottoms, tops, fn):
        self.name, self.kind, self.bottoms, self.tops, self.fn = name, kind, bottoms, tops, fn


def build_module(net):
    """A ``torch.nn.Module`` running ``net``'s layers (see the module docstring); its forward
    takes the input tensor (N, C, H, W) and returns {blob name: tensor} of every top."""
    torch = _torch()
    F = torch.nn.functional

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = []
            self.input = net.inputs[0]
            self.param_layers = {}
            for name, layer in zip(net._layer_names, net.layers):
                self._add(name, layer)

        def _params(self, name, layer):
            """The layer's parameter blobs as torch Parameters sharing their memory."""
            ps = []
            for j, blob in enumerate(net.params[name] if name in net.params else []):
                p = torch.nn.Parameter(torch.from_numpy(blob.data))
                self.register_parameter(f'{name.replace(".", "_")}__{j}', p)
                ps.append(p)
            if ps:
                self.param_layers[name] = ps
            return ps

        def _add(self, name, layer):
            lp, kind = layer.layer_param, layer.type
            bottoms, tops = list(net.bottom_names[name]), list(net.top_names[name])
            fn = None
            if kind in ('Input', 'MemoryData'):
                return
            if kind in ('Convolution', 'Deconvolution'):
                cp = lp.convolution_param
                ps = self._params(name, layer)
                pad, stride = _hw(cp, 'pad', 0), _hw(cp, 'stride', 1)
                dilation = _hw(cp, 'dilation', 1)
                group = int(cp.group or 1)
                bias = ps[1] if len(ps) > 1 else None
                if kind == 'Convolution':
                    def fn(x, w=ps[0], b=bias):
                        return [F.conv2d(x, w, b, stride, pad, dilation, group)]
                else:
                    def fn(x, w=ps[0], b=bias):
                        return [F.conv_transpose2d(x, w, b, stride, pad, 0, group, dilation)]
            elif kind == 'ReLU':
                slope = float(lp.relu_param.negative_slope)
                if slope:
                    def fn(x):
                        return [F.leaky_relu(x, slope)]
                else:
                    def fn(x):
                        return [F.relu(x)]
            elif kind == 'Pooling':
                pp = lp.pooling_param
                if pp.pool != pp.MAX or pp.global_pooling:
                    raise NotImplementedError(f"layer {name!r}: only MAX pooling has a peer")
                k, s = _pool_hw(pp, 'kernel_size', 1), _pool_hw(pp, 'stride', 1)
                pad = _pool_hw(pp, 'pad', 0)

                def fn(x):
                    return [F.max_pool2d(x, k, s, pad, ceil_mode=True)]
            elif kind == 'Crop':
                cp = lp.crop_param
                axis = int(cp.axis)
                offsets = [int(o) for o in cp.offset]

                def fn(x, ref):
                    axes = range(axis % x.dim(), x.dim())
                    index = [slice(None)] * x.dim()
                    for i, a in enumerate(axes):
                        o = offsets[0] if len(offsets) == 1 else (offsets[i] if offsets else 0)
                        index[a] = slice(o, o + ref.shape[a])
                    return [x[tuple(index)]]
            elif kind == 'Eltwise':
                ep = lp.eltwise_param
                coeffs = [float(c) for c in ep.coeff]
                op = ep.operation

                def fn(*xs):
                    if op == ep.PROD:
                        out = xs[0]
                        for x in xs[1:]:
                            out = out * x
                    elif op == ep.MAX:
                        out = xs[0]
                        for x in xs[1:]:
                            out = torch.maximum(out, x)
                    else:
                        c = coeffs or [1.0] * len(xs)
                        out = xs[0] * c[0] if c[0] != 1 else xs[0]
                        for ci, x in zip(c[1:], xs[1:]):
                            out = out + (x * ci if ci != 1 else x)
                    return [out]
            elif kind == 'Scale':
                ps = self._params(name, layer)
                if len(bottoms) != 1 or int(lp.scale_param.axis) != 1:
                    raise NotImplementedError(f"layer {name!r}: Scale peer is per-channel only")

                def fn(x, ps=ps):
                    shape = (1, -1) + (1,) * (x.dim() - 2)
                    out = x * ps[0].view(shape)
                    return [out + ps[1].view(shape) if len(ps) > 1 else out]
            elif kind == 'Split':
                def fn(x, n=len(tops)):
                    return [x] * n
            elif kind == 'Dropout':
                def fn(x):
                    return [x]
            else:
                raise NotImplementedError(f"layer {name!r}: no PyTorch peer for type {kind}")
            self.steps.append(_Step(name, kind, bottoms, tops, fn))

        def forward(self, data):
            blobs = {self.input: data}
            for step in self.steps:
                blobs.update(zip(step.tops, step.fn(*[blobs[b] for b in step.bottoms])))
            return blobs

    return TorchNet()


def loss(score, label):
    """SoftmaxWithLoss of FCN's train nets (ignore_label 255, normalize false): the
    cross-entropy summed over the pixels not ignored, over the batch size."""
    torch = _torch()
    target = label[:, 0].long() if label.dim() == 4 else label.long()
    return torch.nn.functional.cross_entropy(score, target, ignore_index=IGNORE_LABEL,
                                             reduction='sum') / score.shape[0]


def numpy_loss(score, label):
    """The same loss in NumPy (float64), from npcaffe's scores: the check of :func:`loss`."""
    score = score.astype(np.float64)
    target = label[:, 0].astype(np.int64)
    shifted = score - score.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = target != IGNORE_LABEL
    picked = np.take_along_axis(logp, np.where(valid, target, 0)[:, None], axis=1)[:, 0]
    return float(-(picked * valid).sum() / score.shape[0])


def sgd(module, solver_param, train_param):
    """``torch.optim.SGD`` with Caffe's per-parameter rates: base_lr x lr_mult, weight_decay x
    decay_mult, from the layers of ``train_param`` (a NetParameter) named as the module's
    layers; parameters with lr_mult 0 get no gradient (``requires_grad`` off)."""
    torch = _torch()
    specs = {layer.name: list(layer.param) for layer in train_param.layer}
    groups = []
    for name, ps in module.param_layers.items():
        for j, p in enumerate(ps):
            spec = specs.get(name, [])
            lr_mult = spec[j].lr_mult if j < len(spec) else 1.0
            decay_mult = spec[j].decay_mult if j < len(spec) else 1.0
            if lr_mult == 0:
                p.requires_grad_(False)
                continue
            groups.append(dict(params=[p], lr=solver_param.base_lr * lr_mult,
                               weight_decay=solver_param.weight_decay * decay_mult))
    return torch.optim.SGD(groups, lr=solver_param.base_lr, momentum=solver_param.momentum)


def train_step(module, optimizer, data, label, score_blob='score'):
    """One SGD step (forward, loss, backward, update); returns the loss."""
    optimizer.zero_grad(set_to_none=False)
    value = loss(module(data)[score_blob], label)
    value.backward()
    optimizer.step()
    return value.item()


def compare_forward(net, module, image, score_blob='score'):
    """Run npcaffe's ``net`` and the peer ``module`` on ``image``; return (max |difference|,
    max |npcaffe score|, the npcaffe scores)."""
    torch = _torch()
    net.blobs[net.inputs[0]].reshape(*image.shape)
    net.blobs[net.inputs[0]].data[...] = image
    net.forward()
    ours = net.blobs[score_blob].data.copy()
    with torch.no_grad():
        theirs = module(torch.from_numpy(image))[score_blob].numpy()
    if theirs.shape != ours.shape:
        raise AssertionError(f"PyTorch peer's {score_blob} is {theirs.shape}, npcaffe's "
                             f"{ours.shape}")
    return float(np.abs(theirs - ours).max()), float(np.abs(ours).max()), ours


def compare_gradients(train_net, module, image, label, score_blob='score'):
    """One forward and backward of npcaffe's ``train_net`` (its loss SoftmaxWithLoss, no
    Dropout: the peer has none) and of the peer on the same ``image`` and ``label``; return
    (npcaffe's loss, the peer's loss, the largest relative difference of a parameter gradient
    (max |difference| / max |npcaffe's gradient|, over the learnable parameters))."""
    torch = _torch()
    train_net.blobs['data'].data[...] = image
    train_net.blobs['label'].data[...] = label
    train_net.forward()
    train_net.backward()
    for p in module.parameters():
        p.grad = None
    value = loss(module(torch.from_numpy(image))[score_blob], torch.from_numpy(label))
    value.backward()
    worst = 0.0
    layers = dict(zip(train_net._layer_names, train_net.layers))
    for name, ps in module.param_layers.items():
        propagate = list(layers[name].param_propagate_down)
        for j, p in enumerate(ps):
            if p.grad is None or (j < len(propagate) and not propagate[j]):
                continue                    # lr_mult 0 (the bilinear deconvolutions)
            ours = train_net.params[name][j].diff
            scale = max(float(np.abs(ours).max()), 1e-30)
            worst = max(worst, float(np.abs(p.grad.numpy() - ours).max()) / scale)
    return float(train_net.blobs['loss'].data), value.item(), worst


def main(argv=None):
    """The PyTorch training step in a child process (``python -m bench.torch_peer WORK``):
    FCN built from the bench's random caffemodel, Caffe's SGD settings of the variant, the
    bench's image and label; prints one JSON object last (median seconds of a step, the loss,
    peak RSS in MiB)."""
    import argparse
    import json
    import logging
    import statistics
    import time
    from pathlib import Path

    import npcaffe
    from bench import measure, models
    from npcaffe import parallel

    parser = argparse.ArgumentParser(prog='python -m bench.torch_peer', description=main.__doc__)
    parser.add_argument('work', type=Path)
    parser.add_argument('--variant', default='fcn8s')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--width', type=float, default=1.0)
    parser.add_argument('--shape', default='x'.join(map(str, models.IMAGE_SHAPE)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch = _torch()
    torch.set_num_threads(parallel.num_threads())
    shape = tuple(int(d) for d in args.shape.split('x'))
    weights = models.random_caffemodel(args.variant, args.work, width=args.width)
    deploy = models.deploy_prototxt(args.variant, args.work, shape=(1, 3, 64, 64),
                                    width=args.width)
    net = npcaffe.Net(str(deploy), str(weights), npcaffe.TEST)
    module = build_module(net)                    # shares the weights' memory
    del net
    train_param = models.train_net_param(args.variant, shape=shape, width=args.width)
    optimizer = sgd(module, models.sgd_solver_param(args.variant, train_param), train_param)
    data = torch.from_numpy(models.test_image(shape))
    label = torch.from_numpy(models.test_label(shape))
    train_step(module, optimizer, data, label)            # warm-up: buffers, momentum
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        value = train_step(module, optimizer, data, label)
        times.append(time.perf_counter() - start)
    print(json.dumps(dict(seconds=statistics.median(times), loss=value,
                          peak=measure.peak_rss_mb(), torch=torch.__version__,
                          threads=torch.get_num_threads())))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
