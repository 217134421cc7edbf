"""Finite-difference gradient checks for single layers, in float64.

``check_layer_gradient(layer, bottoms, ...)`` sets the layer up on float64 blobs, runs forward,
uses a random top diff (or the loss weight for loss layers), runs backward, and compares every
bottom diff (where ``check_bottoms``) and parameter diff with central differences of
``sum(top.data * top.diff)``.
"""
import numpy as np

from npcaffe.blob import Blob


def make_blobs(arrays):
    blobs = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        b = Blob(a.shape, np.float64)
        b.data[...] = a
        blobs.append(b)
    return blobs


def _objective(layer, bottom, top, top_weights):
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return sum(float(np.sum(t.data * w)) for t, w in zip(top, top_weights))


def check_layer_gradient(layer, bottom_arrays, num_tops=1, check_bottoms=None, eps=1e-6,
                         rtol=1e-5, atol=1e-7, seed=0, check_params=True, top_weights=None):
    """Assert analytic gradients of ``layer`` match central differences.

    Args:
        layer: an un-setup Layer instance (its params are created in float64).
        bottom_arrays: list of arrays for the bottoms.
        check_bottoms: indices of bottoms to check (default all).
        top_weights: list of arrays multiplied with the tops in the objective (default random).
    Returns the (bottom blobs, top blobs) for further assertions.
    """
    rng = np.random.default_rng(seed)
    bottom = make_blobs(bottom_arrays)
    top = [Blob((), np.float64) for _ in range(num_tops)]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    if top_weights is None:
        top_weights = [rng.standard_normal(t.shape) for t in top]
    top_weights = [np.asarray(w, dtype=np.float64) for w in top_weights]
    if check_bottoms is None:
        check_bottoms = range(len(bottom))
    check_bottoms = list(check_bottoms)

    def analytic():
        layer.reshape(bottom, top)
        layer.forward(bottom, top)
        for p in layer.blobs:
            p.diff[...] = 0
        for b in bottom:
            b.diff[...] = 0
        for t, w in zip(top, top_weights):     # after zeroing: a top may share the bottom diff
            t.diff[...] = w
        propagate = [i in check_bottoms for i in range(len(bottom))]
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.backward(top, propagate, bottom)
        return ([bottom[i].diff.copy() for i in check_bottoms],
                [p.diff.copy() for p in layer.blobs])

    bottom_grads, param_grads = analytic()
    targets = [(bottom[i], g, f'bottom {i}') for i, g in zip(check_bottoms, bottom_grads)]
    if check_params:
        targets += [(p, g, f'param {j}') for j, (p, g) in enumerate(zip(layer.blobs, param_grads))]
    for blob, grad, what in targets:
        numeric = np.zeros_like(grad)
        flat = blob.data.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            plus = _objective(layer, bottom, top, top_weights)
            flat[k] = old - eps
            minus = _objective(layer, bottom, top, top_weights)
            flat[k] = old
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"{layer.type} gradient of {what}")
    return bottom, top
