"""pycaffe's batching helpers for a Net (``Net.forward_all``, ``forward_backward_all``,
``backward_all``): inputs of any length run in batches of the net's batch size, the last batch
padded with zeros, the results joined with the padding removed."""
import itertools

from npcaffe.arraymod import xp


def _batch_size(net, names):
    sizes = {name: net.blobs[name].shape[0] if net.blobs[name].num_axes else None
             for name in names}
    distinct = set(sizes.values())
    if None in distinct or len(distinct) != 1:
        raise ValueError(f"blobs {sorted(sizes)} do not share one batch size (first axes "
                         f"{sizes}); reshape them to the same batch first")
    return distinct.pop()

def _batch(net, arrays):
    """Yield ``{name: batch}`` dicts of the net's batch size from ``arrays`` (``{name:
    (num, ...) array}``, every one of the same length); the last batch is padded with
    zeros (pycaffe's ``_Net_batch``)."""
    arrays = {name: xp.asarray(value) for name, value in arrays.items()}
    lengths = {name: value.shape[0] if value.ndim else None
               for name, value in arrays.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values():
        raise ValueError(f"arrays to batch must all have the same length along their "
                         f"first axis; got {lengths}")
    num = next(iter(lengths.values()))
    batch_size = _batch_size(net, arrays)
    for start in range(0, num - num % batch_size, batch_size):
        yield {name: value[start:start + batch_size] for name, value in arrays.items()}
    remainder = num % batch_size
    if remainder:
        padded = {}
        for name, value in arrays.items():
            pad = xp.zeros((batch_size - remainder,) + value.shape[1:], value.dtype)
            padded[name] = xp.concatenate([value[num - remainder:], pad])
        yield padded

def _join(pieces, num, batch_size):
    """Concatenate per-batch copies along the first axis and drop the padding. A blob
    without a batch axis (a loss, say) comes back with one entry per batch."""
    out = {}
    for name, parts in pieces.items():
        if parts and all(p.ndim and p.shape[0] == batch_size for p in parts):
            out[name] = xp.concatenate(parts)[:num]
        else:
            out[name] = xp.stack(parts) if parts else xp.zeros((0,))
    return out

def forward_all(net, blobs=None, **kwargs):
    """Forward inputs of any length in batches of the net's batch size (pycaffe's
    ``forward_all``): ``kwargs`` are ``{input name: (num, ...) array}``; returns
    ``{blob name: (num, ...) array}`` for the outputs plus ``blobs``, the padding of the
    last batch removed."""
    names = set(net.outputs + list(blobs or []))
    if not kwargs:
        return {name: value.copy() for name, value in net.forward(blobs=blobs).items()}
    unknown = sorted(set(kwargs) - set(net._inputs))
    if unknown:
        raise KeyError(f"{unknown} are not inputs of the net; inputs: {net._inputs}")
    num = len(next(iter(kwargs.values())))
    batch_size = _batch_size(net, kwargs)
    pieces = {name: [] for name in names}
    for batch in _batch(net, kwargs):
        for name, value in net.forward(blobs=blobs, **batch).items():
            pieces[name].append(value.copy())
    return _join(pieces, num, batch_size)

def forward_backward_all(net, blobs=None, diffs=None, **kwargs):
    """Forward and backward in batches (pycaffe's ``forward_backward_all``): ``kwargs``
    hold input arrays (for forward) and output diffs (for backward), each ``(num, ...)``;
    without inputs the net's own data layers feed it, without output diffs the loss
    weights seed the backward. Returns ``({blob: data}, {blob: diff})`` for the outputs
    plus ``blobs`` and the inputs plus ``diffs``, the padding of the last batch removed."""
    unknown = sorted(set(kwargs) - set(net._inputs) - set(net.outputs))
    if unknown:
        raise KeyError(f"{unknown} are neither inputs ({net._inputs}) nor outputs "
                       f"({net.outputs}) of the net")
    lengths = {k: len(v) for k, v in kwargs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays to batch must all have the same length along their "
                         f"first axis; got {lengths}")
    inputs = {k: v for k, v in kwargs.items() if k in net._inputs}
    tops = {k: v for k, v in kwargs.items() if k in net.outputs}
    all_outs = {name: [] for name in set(net.outputs + list(blobs or []))}
    all_diffs = {name: [] for name in set(net._inputs + list(diffs or []))}
    forward_batches = _batch(net, inputs) if inputs else iter(())
    backward_batches = _batch(net, tops) if tops else iter(())
    for fb, bb in itertools.zip_longest(forward_batches, backward_batches, fillvalue={}):
        for name, value in net.forward(blobs=blobs, **fb).items():
            all_outs[name].append(value.copy())
        for name, value in net.backward(diffs=diffs, **bb).items():
            all_diffs[name].append(value.copy())
    if not kwargs:
        return ({k: v[0] for k, v in all_outs.items()},
                {k: v[0] for k, v in all_diffs.items()})
    num = len(next(iter(kwargs.values())))
    batch_size = _batch_size(net, kwargs)
    return (_join(all_outs, num, batch_size), _join(all_diffs, num, batch_size))

def backward_all(net, diffs=None, **kwargs):
    """Backward in batches: the diffs half of :func:`forward_backward_all`. Each batch is
    forwarded first (from the input arrays in ``kwargs``, if any) so that its backward
    sees its own activations; output diffs in ``kwargs`` seed the backward. Returns
    ``{blob: (num, ...) diff}`` for the inputs plus ``diffs``."""
    return forward_backward_all(net, diffs=diffs, **kwargs)[1]
