"""Run a golden case recorded with BVLC Caffe (shared/golden/<case>) through npcaffe.

Tolerances (golden/FORMAT.md): forward max|a-b| <= 1e-4 * max|b|, backward 1e-3 * max|b|.
"""
import json

import numpy as np
from google.protobuf import text_format

import npcaffe
from npcaffe.blob import Blob
from npcaffe.layers import create_layer
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.proto import caffe_pb2
from tests.conftest import require_shared

FORWARD_TOL = 1e-4
BACKWARD_TOL = 1e-3
# a blob that is all zeros must come out (almost) exactly zero
_FLOOR = 1e-30


def golden_cases(prefix=''):
    """Names of the layer/net cases (folders with net.prototxt and blobs.npz)."""
    from tests.conftest import shared_dir
    base = shared_dir()
    if base is None:
        return []
    return sorted(p.parent.name for p in (base / 'golden').glob('*/blobs.npz')
                  if p.parent.name.startswith(prefix))


def assert_close(actual, expected, tol, what):
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, _FLOOR)
    err = float(np.abs(actual.astype(np.float64) - expected).max()) if expected.size else 0.0
    assert err <= tol * scale, f"{what}: max|a-b| = {err:.3g} > {tol} * {scale:.3g}"
    return err / scale


def load_case(case):
    folder = require_shared('golden', case)
    meta = json.loads((folder / 'meta.json').read_text())
    arrays = np.load(folder / 'blobs.npz')
    return folder, meta, {k: arrays[k] for k in arrays.files}


def _split_source(net, name):
    """The blob a Split top copies (Caffe's golden files leave *_split_* blobs out)."""
    for layer_name, layer in zip(net._layer_names, net.layers):
        if layer.type == 'Split' and name in net.top_names[layer_name]:
            return net.bottom_names[layer_name][0]
    return name


def max_pool_layers(net):
    return [i for i, layer in enumerate(net.layers) if layer.type == 'Pooling'
            and layer.layer_param.pooling_param.pool == layer.layer_param.pooling_param.MAX]


def tie_dependent_blobs(net):
    """Blobs and parameter layers whose gradient passes through a MAX Pooling backward.

    A max-pooling window whose values differ only by rounding (FCN's pad 100 makes large
    constant regions, so such near-ties are common) routes its gradient to whichever element
    the last bit favours; that bit depends on the BLAS's summation order, so those gradients
    can only be compared with Caffe's routing replayed (see ``run_golden_case``)."""
    tainted, layers = set(), set()
    pools = set(max_pool_layers(net))
    for li in range(len(net.layers) - 1, -1, -1):
        name = net._layer_names[li]
        if li in pools or any(t in tainted for t in net.top_names[name]):
            tainted.update(net.bottom_names[name])
            layers.add(name)
    return tainted, layers


def run_golden_case(case, replay_max_pool_routing=False, skip_tie_dependent=False):
    """Build the case's net with its weights, feed its inputs, compare every recorded blob,
    parameter, diff and parameter diff. Returns the worst relative errors.

    ``replay_max_pool_routing``: before backward, rerun every MAX Pooling layer on Caffe's
    recorded input so that ties are broken as Caffe broke them; every other computation is
    npcaffe's own. ``skip_tie_dependent``: compare only the gradients that no MAX Pooling
    backward reaches (the ones that must match without any replay)."""
    folder, meta, arrays = load_case(case)
    train = any(k.startswith('diff/') or k.startswith('pdiff/') for k in arrays)
    phase = npcaffe.TRAIN if train else npcaffe.TEST
    net = npcaffe.Net(str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'), phase)
    for key, value in arrays.items():
        if key.startswith('in/'):
            blob = net.blobs[key[3:]]
            blob.reshape(*value.shape)
            blob.data[...] = value
    for key, value in arrays.items():
        if key.startswith('param/'):
            _, layer, i = key.split('/')
            assert_close(net.params[layer][int(i)].data, value, 0, f"{case}: param {layer}/{i}")
    net.forward()
    worst = {'forward': 0.0, 'backward': 0.0}
    for key, value in arrays.items():
        if key.startswith('data/'):
            err = assert_close(net.blobs[key[5:]].data, value, FORWARD_TOL, f"{case}: {key}")
            worst['forward'] = max(worst['forward'], err)
    if not train:
        return worst
    for key, value in arrays.items():
        if key.startswith('topdiff/'):
            net.blobs[key[8:]].diff[...] = value
    if replay_max_pool_routing:
        for li in max_pool_layers(net):
            name = net._layer_names[li]
            bottom = [net.blobs[b] for b in net.bottom_names[name]]
            top = [net.blobs[t] for t in net.top_names[name]]
            source = _split_source(net, net.bottom_names[name][0])
            bottom[0].data[...] = arrays[f'data/{source}']
            net.layers[li].forward(bottom, top)
    tainted, tainted_layers = tie_dependent_blobs(net) if skip_tie_dependent else (set(), set())
    net.backward()
    for key, value in arrays.items():
        if key.startswith('diff/'):
            if key[5:] in tainted:
                continue
            actual = net.blobs[key[5:]].diff
        elif key.startswith('pdiff/'):
            _, layer, i = key.split('/')
            if layer in tainted_layers:
                continue
            actual = net.params[layer][int(i)].diff
        else:
            continue
        err = assert_close(actual, value, BACKWARD_TOL, f"{case}: {key}")
        worst['backward'] = max(worst['backward'], err)
    return worst

def run_case_directly(case):
    """Run a golden case's layers (all but Input) directly, without a Net, and compare every
    recorded blob, diff and parameter diff with FORMAT.md's tolerances. Returns the worst
    relative errors {'forward': .., 'backward': ..}."""
    folder = require_shared('golden', case)
    arrays = dict(np.load(folder / 'blobs.npz'))
    net_param = caffe_pb2.NetParameter()
    text_format.Parse((folder / 'net.prototxt').read_text(), net_param)
    train = any(k.startswith(('diff/', 'pdiff/')) for k in arrays)
    phase = TRAIN if train else TEST
    blobs, layers = {}, []
    for lp in net_param.layer:
        if lp.type == 'Input':
            for name in lp.top:
                value = arrays[f'in/{name}']
                blobs[name] = Blob(value.shape, np.float32)
                blobs[name].data[...] = value
            continue
        layer = create_layer(lp, phase)
        i = 0
        while f'param/{lp.name}/{i}' in arrays:
            value = arrays[f'param/{lp.name}/{i}']
            layer.blobs.add_blob(*value.shape).data[...] = value
            i += 1
        bottom = [blobs[n] for n in lp.bottom]
        top = [blobs.setdefault(n, Blob((), np.float32)) for n in lp.top]
        layer.check_blob_counts(len(bottom), len(top))
        layer.setup(bottom, top)
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        layers.append((layer, bottom, top))
    worst = {'forward': 0.0, 'backward': 0.0}
    for key, value in arrays.items():
        if key.startswith('data/'):
            err = assert_close(blobs[key[5:]].data, value, FORWARD_TOL, f"{case}: {key}")
            worst['forward'] = max(worst['forward'], err)
    if not train:
        return worst
    for b in blobs.values():
        b.diff[...] = 0
    for key, value in arrays.items():
        if key.startswith('topdiff/'):
            blobs[key[8:]].diff[...] = value
    for layer, bottom, top in reversed(layers):
        for p in layer.blobs:
            p.diff[...] = 0
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.backward(top, [layer.allow_force_backward(i) for i in range(len(bottom))], bottom)
    params = {lp_layer.name: lp_layer.blobs for lp_layer, _, _ in layers}
    for key, value in arrays.items():
        if key.startswith('diff/'):
            actual = blobs[key[5:]].diff
        elif key.startswith('pdiff/'):
            _, name, j = key.split('/')
            actual = params[name][int(j)].diff
        else:
            continue
        err = assert_close(actual, value, BACKWARD_TOL, f"{case}: {key}")
        worst['backward'] = max(worst['backward'], err)
    return worst
