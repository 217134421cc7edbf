"""Net: builds layers from a NetParameter and runs them, as Caffe's Net with pycaffe's API.

Construction follows Caffe's Net::Init: upgrade old formats, keep the layers whose
include/exclude rules meet the net state (phase, level, stages), insert Split layers where a
blob feeds several layers (so their diffs are summed), connect bottoms and tops (a top named
like its bottom is computed in place), set every layer up, share parameters by name, decide
which layers need backward (pruning what does not reach a loss; ``force_backward``), and
collect the net's outputs (blobs no layer consumes, in name order as Caffe's std::set).

Inference memory (npcaffe only, off by default): with ``Net(..., reuse_memory=True)`` or
``net.reuse_memory = True`` on a TEST-phase net, a whole-net ``forward()`` (no ``start`` or
``end``) releases each intermediate blob's buffers as soon as the last layer that reads it has
run, so that its memory goes to the blobs after it (FCN-8s at 1000x750: the blobs take 2.3 GB
at once, the largest two neighbours 0.6 GB). The rule: every blob is released after its last
reader unless it is

* an output of the net, or named in ``forward(blobs=[...])``;
* a top of a layer without bottoms (Input, data layers: what the caller fills or reads).

A released blob has shape (0,) and an empty ``data`` until the next forward fills it again:
a pycaffe script that reads ``net.blobs[name].data`` of an inner blob after ``forward()``
leaves ``reuse_memory`` off (the default, Caffe's behaviour: every blob keeps its data) or
names the blob in ``blobs=``. Passes with ``start`` or ``end`` release nothing (what a later
``forward(start=...)`` reads must be there); TRAIN-phase nets refuse the flag (backward needs
every blob). Such a pass also releases the earlier pass's outputs before it starts (they are
made again; an array the caller kept from the earlier pass stays the caller's) and, after it,
the engine's per-thread scratch buffers (``npcaffe.parallel.release_scratch``, with glibc's
``malloc_trim``), so that what one image needed is not held while the next one runs:
``fcn infer --tile`` on an 8000x6000 image peaks at 2.9 GB instead of 3.7. The layers of such
a net keep nothing derived from their weights between forwards either (``Layer.keep_derived``: Convolution's Winograd weights, 4 times the 3x3
weights, are transformed again at each forward instead).

Training memory (npcaffe only, the Solver's steps): in ``Solver.step``/``solve`` the diffs of
the inner blobs share a few buffers: two blobs share one when no layer's backward needs both
(FCN-8s at 500x375: the diffs take 522 MiB apart, 227 MiB shared). A blob takes part when a
layer with bottoms makes it and the last layer to read it (not in place) is of a type known to
write that bottom's whole diff in backward (``_WRITES_BOTTOM_DIFFS``, FCN's layer types). Left
out are the net's outputs (the loss weights live in their diffs), the tops of layers without
bottoms (inputs), the tops and bottoms of Python layers, and blobs whose data is a view of
another's (Reshape, Flatten, ...; a Split's tops and bottom aside) or of a parameter.
Parameter diffs are never shared. The step drops the shared diffs after its backward passes:
after ``solver.step()`` an inner blob's diff reads as zeros, not as Caffe's last gradient.
``net.forward()``/``net.backward()`` called directly keep every diff, as Caffe (what a pycaffe
script reading inner diffs needs); so does a solver with ``share_diffs = False``.
"""
import itertools
import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path

from npcaffe import batching, formats, hdf5, parallel
from npcaffe.arraymod import xp
from npcaffe.blob import Blob
from npcaffe.errors import prefix_message, CaffeError, NetError, WeightShapeError
from npcaffe.layers import create_layer
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.net_param import filter_net, insert_splits, load_net_param
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)
#: What a released blob's data and diff become (see reuse_memory in the module docstring).
_EMPTY = Blob((0,))
#: Layer types whose backward writes the whole diff of every bottom it propagates to (those
#: ``allow_force_backward`` allows), whatever it held: the writers of shared diffs (see
#: Training memory in the module docstring). Crop leaves its reference's diff unwritten, as
#: Caffe's, which only works as long as that diff is zero: hence the allow_force_backward rule.
_WRITES_BOTTOM_DIFFS = frozenset((
    'Convolution', 'Deconvolution', 'InnerProduct', 'ReLU', 'Dropout', 'Pooling', 'Eltwise',
    'Split', 'Crop', 'Scale', 'SoftmaxWithLoss'))
_REPO_ROOT = str(Path(__file__).resolve().parents[1])


def _ensure_python_layer_path():
    """Python layers import from the working directory and the repository root."""
    for path in (os.getcwd(), _REPO_ROOT):
        if path not in sys.path:
            sys.path.append(path)


# ------------------------------------------------------------------------------------------
class Net:
    """A Caffe net with pycaffe's interface.

    ``Net(prototxt, phase)``, ``Net(prototxt, weights, phase)``,
    ``Net(prototxt, phase, level=0, stages=None, weights=None)``; ``prototxt`` may also be a
    NetParameter. ``dtype`` (npcaffe only) picks the float type of every blob.
    """

    def __init__(self, network_file, *args, phase=None, level=0, stages=None, weights=None,
                 dtype=xp.float32, reuse_memory=False):
        if len(args) == 2:
            weights, phase = args
        elif len(args) == 1:
            phase = args[0]
        elif len(args) > 2:
            raise TypeError("Net(network_file, [weights,] phase, level=0, stages=None, "
                            "weights=None)")
        if phase is None:
            raise TypeError("Net() needs a phase: caffe.TRAIN or caffe.TEST")
        if phase not in (TRAIN, TEST):
            raise ValueError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")
        self.dtype = xp.dtype(dtype)
        param, self._where = load_net_param(network_file)
        state = caffe_pb2.NetState()
        state.CopyFrom(param.state)
        state.phase = phase
        state.level = level
        state.stage.extend(stages or [])
        self.phase = phase
        self._init(param, state)
        self.reuse_memory = reuse_memory
        self._diff_plan_key = self._diff_plan = None
        self._diff_buffers = []            # the shared diff buffers (see Training memory)
        self._shared_diffs = []
        if weights is not None:
            self.copy_from(weights)

    @property
    def reuse_memory(self):
        """True: TEST forwards release the inner blobs (the rule in this module's docstring)."""
        return self._reuse_memory

    @reuse_memory.setter
    def reuse_memory(self, value):
        if value and self.phase != TEST:
            raise ValueError("reuse_memory is for TEST-phase nets: backward needs every blob")
        self._reuse_memory = bool(value)
        for layer in self.layers:          # nor do the layers keep what they can recompute
            layer.keep_derived = not self._reuse_memory

    # -- construction -------------------------------------------------------------------------
    def _init(self, in_param, state):
        param = insert_splits(filter_net(in_param, state, self._where))
        self.name = param.name
        self._param = param
        self.layers = []
        self._layer_names = []
        self._blob_names = []
        self._blobs = []
        self._bottom_ids, self._top_ids = [], []
        self._bottom_need_backward, self._layer_need_backward = [], []
        self._blob_need_backward = []
        self._loss_tops = []              # per layer: [(top index, loss weight)]
        self._inputs = []
        self._param_owners = []           # per learnable blob: owner index or -1
        self._params_flat = []            # every parameter blob, in order
        self._param_layer_indices = []    # (layer index, blob index) per parameter blob
        self._param_names = {}            # param name -> index into _params_flat
        self._param_specs = []
        name_to_blob = {}
        available = set()
        if any(layer.type == 'Python' for layer in param.layer):
            _ensure_python_layer_path()
        for li, lp in enumerate(param.layer):
            if not lp.HasField('phase'):
                lp.phase = state.phase
            try:
                layer = create_layer(lp, lp.phase)
            except Exception as exc:
                raise prefix_message(exc, self._where)
            self.layers.append(layer)
            self._layer_names.append(lp.name)
            if len(lp.propagate_down) not in (0, len(lp.bottom)):
                raise NetError(f"{self._where}: layer {lp.name!r} has {len(lp.bottom)} bottoms "
                               f"but {len(lp.propagate_down)} propagate_down values")
            bottom_ids, need_bwd = [], []
            need_backward = False
            for bi, bname in enumerate(lp.bottom):
                if bname not in available:
                    known = 'no blob exists yet' if not name_to_blob else \
                        'known blobs: ' + ', '.join(self._blob_names)
                    raise NetError(f"{self._where}: layer {lp.name!r} reads bottom {bname!r} "
                                   f"that no earlier layer produces ({known})")
                bid = name_to_blob[bname]
                bottom_ids.append(bid)
                nb = self._blob_need_backward[bid]
                need_bwd.append(bool(lp.propagate_down[bi]) if lp.propagate_down else nb)
                need_backward |= nb
                available.discard(bname)
            top_ids = []
            for ti, tname in enumerate(lp.top):
                if ti < len(lp.bottom) and lp.bottom[ti] == tname:
                    bid = name_to_blob[tname]            # in place
                elif tname in name_to_blob:
                    first = next((self._layer_names[i] for i, ids in enumerate(self._top_ids)
                                  if name_to_blob[tname] in ids), lp.name)
                    raise NetError(f"{self._where}: top {tname!r} of layer {lp.name!r} is "
                                   f"already produced by layer {first!r}; tops may repeat only "
                                   f"in place (top == bottom at the same position)")
                else:
                    bid = len(self._blobs)
                    name_to_blob[tname] = bid
                    self._blob_names.append(tname)
                    self._blobs.append(Blob((), self.dtype))
                    self._blob_need_backward.append(False)
                    if lp.type == 'Input':
                        self._inputs.append(tname)
                top_ids.append(bid)
                available.add(tname)
            self._bottom_ids.append(bottom_ids)
            self._top_ids.append(top_ids)
            self._bottom_need_backward.append(need_bwd)
            bottom = [self._blobs[i] for i in bottom_ids]
            top = [self._blobs[i] for i in top_ids]
            try:
                layer.check_blob_counts(len(bottom), len(top))
                layer.setup(bottom, top)
                layer.reshape(bottom, top)
            except CaffeError as exc:
                raise prefix_message(exc, self._where)
            except Exception as exc:
                where = f"{self._where}: layer {lp.name!r} ({layer.type})"
                if layer.type == 'Python':  # pycaffe: the layer's own exception reaches the caller
                    pp = lp.python_param
                    raise prefix_message(exc, f"{where} {pp.module}.{pp.layer} failed in setup")
                raise NetError(f"{where} failed to set up: {type(exc).__name__}: {exc}") from exc
            if layer.is_loss and not lp.loss_weight:
                lp.loss_weight.append(1.0)   # Caffe's LossLayer::LayerSetUp; saved models carry it
            loss_tops = [(ti, layer.loss_weight(ti)) for ti in range(len(top))]
            self._loss_tops.append([(ti, w) for ti, w in loss_tops if w])
            for ti, weight in self._loss_tops[-1]:
                top[ti].diff[...] = weight
            while len(layer.param_propagate_down) < len(layer.blobs):
                layer.param_propagate_down.append(True)
            for pi in range(len(layer.blobs)):
                spec = lp.param[pi] if pi < len(lp.param) else caffe_pb2.ParamSpec()
                learn = spec.lr_mult != 0
                layer.param_propagate_down[pi] = learn
                need_backward |= learn
                self._append_param(li, pi, spec)
            self._layer_need_backward.append(need_backward)
            if need_backward:
                for bid in top_ids:
                    self._blob_need_backward[bid] = True
        self._prune_backward(param)
        self.outputs = sorted(available)
        self._layer_index = {n: i for i, n in enumerate(self._layer_names)}
        self._blob_index = name_to_blob
        self.blobs = OrderedDict((n, self._blobs[i]) for i, n in enumerate(self._blob_names))
        self.params = OrderedDict((self._layer_names[i], layer.blobs)
                                  for i, layer in enumerate(self.layers) if len(layer.blobs))
        self.top_names = OrderedDict(
            (self._layer_names[i], [self._blob_names[b] for b in ids])
            for i, ids in enumerate(self._top_ids))
        self.bottom_names = OrderedDict(
            (self._layer_names[i], [self._blob_names[b] for b in ids])
            for i, ids in enumerate(self._bottom_ids))
        self.layer_dict = OrderedDict(zip(self._layer_names, self.layers))
        log.debug("built net %r: %d layers, %d blobs", self.name, len(self.layers),
                  len(self._blobs))

    def _append_param(self, li, pi, spec):
        layer = self.layers[li]
        index = len(self._params_flat)
        blob = layer.blobs[pi]
        self._params_flat.append(blob)
        self._param_layer_indices.append((li, pi))
        self._param_specs.append(spec)
        owner = -1
        if spec.name:
            if spec.name in self._param_names:
                owner = self._param_names[spec.name]
                owner_blob = self._params_flat[owner]
                oli, opi = self._param_layer_indices[owner]
                where = (f"{self._where}: parameter {spec.name!r} of layer "
                         f"{self._layer_names[li]!r} (shared with layer "
                         f"{self._layer_names[oli]!r})")
                if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:
                    if owner_blob.count != blob.count:
                        raise NetError(f"{where} has count {blob.count}, the owner "
                                       f"{owner_blob.count}")
                elif owner_blob.shape != blob.shape:
                    raise NetError(f"{where} has shape {blob.shape}, the owner "
                                   f"{owner_blob.shape}; use share_mode: PERMISSIVE to share "
                                   f"by count")
                blob.share_data(owner_blob)
                blob.share_diff(owner_blob)
            else:
                self._param_names[spec.name] = index
        self._param_owners.append(owner)

    def _prune_backward(self, param):
        """Caffe's loss-reachability pass, then force_backward."""
        under_loss, skip = set(), set()
        for li in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[li]
            contributes, skip_down = False, True
            for ti, bid in enumerate(self._top_ids[li]):
                name = self._blob_names[bid]
                if layer.loss_weight(ti) or name in under_loss:
                    contributes = True
                if name not in skip:
                    skip_down = False
                if contributes and not skip_down:
                    break
            if self._layer_need_backward[li] and skip_down:
                self._layer_need_backward[li] = False
                self._bottom_need_backward[li] = [False] * len(self._bottom_ids[li])
            if not contributes:
                self._layer_need_backward[li] = False
            for bi, bid in enumerate(self._bottom_ids[li]):
                name = self._blob_names[bid]
                if contributes:
                    under_loss.add(name)
                else:
                    self._bottom_need_backward[li][bi] = False
                if not self._bottom_need_backward[li][bi]:
                    skip.add(name)
        if param.force_backward:
            for li, layer in enumerate(self.layers):
                self._layer_need_backward[li] = True
                for bi, bid in enumerate(self._bottom_ids[li]):
                    need = self._bottom_need_backward[li][bi] or layer.allow_force_backward(bi)
                    self._bottom_need_backward[li][bi] = need
                    self._blob_need_backward[bid] = self._blob_need_backward[bid] or need
                layer.param_propagate_down = [True] * len(layer.blobs)

    # -- running ------------------------------------------------------------------------------
    def _vecs(self, li):
        return ([self._blobs[i] for i in self._bottom_ids[li]],
                [self._blobs[i] for i in self._top_ids[li]])

    def _forward(self, start, end, keep=None):
        """Run layers start..end (inclusive indices); return the weighted loss. With ``keep``
        (blob names), release the other blobs of the pass after their last reader (see
        :meth:`_releases`)."""
        releases = self._releases(start, end, keep) if keep is not None else {}
        for bid in releases.get(None, ()):       # last pass's outputs: made again below
            self._release(bid)
        loss = 0.0
        for li in range(start, end + 1):
            layer = self.layers[li]
            bottom, top = self._vecs(li)
            layer.reshape(bottom, top)
            layer.forward(bottom, top)
            for bid in releases.get(li, ()):
                self._release(bid)
            for ti, weight in self._loss_tops[li]:
                top[ti].diff[...] = weight       # Caffe keeps the loss weight in the diff
                loss += weight * float(top[ti].data.sum(dtype=xp.float64))
        if keep is not None:
            parallel.release_scratch()
        return loss

    def _release(self, bid):
        blob = self._blobs[bid]
        blob.reshape(0)                          # drop the buffers, not the Blob object
        blob.share_data(_EMPTY)
        blob.share_diff(_EMPTY)

    def _releases(self, start, end, keep):
        """{layer index: [blob ids to release after it]} for a pass start..end: the blobs made
        in the pass, after their last use in it, except those in ``keep``, the tops of layers
        without bottoms and the blobs read after ``end`` (the rule of the module docstring);
        under None, the kept blobs the pass makes again (an earlier pass's outputs), released
        before it starts."""
        made, last_use, inputs, later = set(), {}, set(), set()
        for li in range(len(self.layers)):
            if li > end:
                later.update(self._bottom_ids[li])
            elif li >= start:
                if not self._bottom_ids[li]:
                    inputs.update(self._top_ids[li])
                made.update(self._top_ids[li])
                for bid in self._bottom_ids[li] + self._top_ids[li]:
                    last_use[bid] = li
        ids = {name: bid for bid, name in enumerate(self._blob_names)}
        for name in keep:
            if name not in ids:
                raise KeyError(f"no blob {name!r} in the net; blobs: {', '.join(ids)}")
        named = {ids[name] for name in keep}
        releases = {}
        for bid in sorted(made - named - inputs - later):
            releases.setdefault(last_use[bid], []).append(bid)
        remade = sorted(made & named - inputs - later)
        if remade:
            releases[None] = remade
        return releases

    def _backward(self, start, end):
        """Run backward from layer ``start`` down to ``end`` (inclusive indices)."""
        for li in range(start, end - 1, -1):
            if self._layer_need_backward[li]:
                bottom, top = self._vecs(li)
                self.layers[li].backward(top, self._bottom_need_backward[li], bottom)

    # -- training memory (the module docstring's rule) ---------------------------------------
    def _share_diffs(self):
        """Point the diffs of the inner blobs into the shared buffers (grown to the blobs'
        current shapes, never shrunk), before a backward pass of a Solver step. The diffs'
        content is undefined until the backward writes them."""
        plan = self._plan_diffs()
        buffers = self._diff_buffers
        del buffers[len(plan):]
        for k, group in enumerate(plan):
            need = max(self._blobs[bid].count for bid, _, _ in group)
            if k == len(buffers):
                buffers.append(None)
            if buffers[k] is None or buffers[k].size < need:
                buffers[k] = None                        # free the old one first
                buffers[k] = xp.empty(need, self.dtype)
            for bid, _, _ in group:
                self._blobs[bid].use_diff_buffer(buffers[k])
        self._shared_diffs = [bid for group in plan for bid, _, _ in group]

    def _unshare_diffs(self, free=False):
        """Drop the shared diffs of :meth:`_share_diffs` (they read as zeros afterwards); the
        buffers stay for the next step unless ``free``."""
        for bid in self._shared_diffs:
            self._blobs[bid].drop_diff()
        self._shared_diffs = []
        if free:
            self._diff_buffers = []

    def _plan_diffs(self):
        """[[(blob id, first layer, last layer)]]: the blobs whose diffs share each buffer, no
        two of a buffer live in the backward of one layer (cached for the blobs' shapes)."""
        key = tuple(b.shape for b in self._blobs)
        if key == self._diff_plan_key:
            return self._diff_plan
        producer, last = {}, {}
        for li in range(len(self.layers)):
            for bid in self._top_ids[li]:
                producer.setdefault(bid, li)
            for bid in self._bottom_ids[li]:
                last[bid] = li
        excluded = self._aliased_blobs()
        for li, layer in enumerate(self.layers):
            if layer.type == 'Python':
                excluded.update(self._bottom_ids[li] + self._top_ids[li])
        spans = []
        for bid, li in last.items():
            first = producer.get(bid)
            layer = self.layers[li]
            writes = layer.type in _WRITES_BOTTOM_DIFFS and all(
                self._bottom_need_backward[li][bi] and layer.allow_force_backward(bi)
                for bi, b in enumerate(self._bottom_ids[li]) if b == bid)
            if (first is None or not self._bottom_ids[first] or bid in excluded
                    or bid in self._top_ids[li] or not self._layer_need_backward[li]
                    or not writes or not self._blobs[bid].count):
                continue
            spans.append((bid, first, li))
        groups = []
        for span in sorted(spans, key=lambda s: (-self._blobs[s[0]].count, s[0])):
            _, first, li = span
            for group in groups:                 # the first buffer free over [first, li]
                if all(li < f or l < first for _, f, l in group):
                    group.append(span)
                    break
            else:
                groups.append([span])
        self._diff_plan_key, self._diff_plan = key, groups
        return groups

    def _aliased_blobs(self):
        """Ids of the blobs whose data shares memory with another blob's or a parameter's
        (views), the tops and bottom of one Split aside."""
        splits = [set(self._bottom_ids[li] + self._top_ids[li])
                  for li, layer in enumerate(self.layers) if layer.type == 'Split']
        arrays = [(bid, b.data) for bid, b in enumerate(self._blobs) if b.count]
        arrays += [(None, p.data) for p in self._params_flat if p.count]
        aliased = set()
        for (a, x), (b, y) in itertools.combinations(arrays, 2):
            if a is not None and b is not None and any(a in s and b in s for s in splits):
                continue
            if xp.may_share_memory(x, y):
                aliased.update(k for k in (a, b) if k is not None)
        return aliased

    def forward_prefilled(self):
        """Forward the whole net; return the loss (Caffe's Net::Forward)."""
        return self._forward(0, len(self.layers) - 1)

    def _index(self, layer_name, what):
        try:
            return self._layer_index[layer_name]
        except KeyError:
            raise KeyError(f"{what} layer {layer_name!r} is not in the net; layers: "
                           f"{', '.join(self._layer_names)}") from None

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """pycaffe's forward: set input blobs from kwargs, run start..end, return
        ``{name: data}`` for the outputs (or the end layer's tops) plus ``blobs``."""
        blobs = list(blobs or [])
        start_ind = self._index(start, 'start') if start is not None else 0
        if end is not None:
            end_ind = self._index(end, 'end')
            outputs = set(self.top_names[end] + blobs)
        else:
            end_ind = len(self.layers) - 1
            outputs = set(self.outputs + blobs)
        for name, value in kwargs.items():
            if name not in self._inputs:
                raise KeyError(f"{name!r} is not an input of the net; inputs: {self._inputs}")
            blob = self.blobs[name]
            value = xp.asarray(value)
            if value.ndim == 0 or value.shape[0] != blob.shape[0]:
                raise ValueError(f"input {name!r} has batch size {value.shape[:1]}, the blob "
                                 f"{blob.shape[0]}; reshape the blob first")
            blob.data[...] = value
        whole = start is None and end is None
        keep = outputs if self.reuse_memory and whole else None
        self._forward(start_ind, end_ind, keep)
        return {name: self.blobs[name].data for name in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """pycaffe's backward: set output diffs from kwargs, run start..end backwards,
        return ``{name: diff}`` for the inputs (or the end layer's bottoms) plus ``diffs``."""
        diffs = list(diffs or [])
        start_ind = self._index(start, 'start') if start is not None else len(self.layers) - 1
        if end is not None:
            end_ind = self._index(end, 'end')
            outputs = set(self.bottom_names[end] + diffs)
        else:
            end_ind = 0
            outputs = set(self._inputs + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise KeyError(f"top diff arguments {sorted(kwargs)} do not match the net "
                               f"outputs {self.outputs}")
            for name, value in kwargs.items():
                blob = self.blobs[name]
                value = xp.asarray(value)
                if value.ndim == 0 or value.shape[0] != blob.shape[0]:
                    raise ValueError(f"diff for {name!r} is not batch sized ({blob.shape[0]})")
                blob.diff[...] = value
        self._backward(start_ind, end_ind)
        return {name: self.blobs[name].diff for name in outputs}

    def reshape(self):
        """Reshape every layer's tops from its bottoms (after input blobs were reshaped)."""
        for li, layer in enumerate(self.layers):
            layer.reshape(*self._vecs(li))

    def clear_param_diffs(self):
        for blob in self._params_flat:
            blob.diff[...] = 0

    # -- pycaffe attributes -------------------------------------------------------------------
    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def learnable_params(self):
        """Parameter blobs that own their data (shared copies left out), in order."""
        return [b for b, o in zip(self._params_flat, self._param_owners) if o < 0]

    @property
    def learnable_param_multipliers(self):
        """(lr_mult, decay_mult) of each of ``learnable_params`` (the owner's ParamSpec)."""
        return [(s.lr_mult, s.decay_mult)
                for s, o in zip(self._param_specs, self._param_owners) if o < 0]

    @property
    def learnable_param_names(self):
        """'layer/index' of each of ``learnable_params``, for messages and logs."""
        return [f"{self._layer_names[li]}/{pi}"
                for (li, pi), o in zip(self._param_layer_indices, self._param_owners) if o < 0]

    def layer_need_backward(self, name):
        return self._layer_need_backward[self._index(name, 'the')]

    # -- weights ------------------------------------------------------------------------------
    def copy_from(self, weights):
        """Copy parameters from a caffemodel (path or formats.Weights), matching layers by
        name; source layers absent here are ignored. Returns the names of the layers copied.

        A path ending in ``.h5`` (or a file with the HDF5 signature) is read as Caffe's HDF5
        weights (``load_hdf5``), as Caffe's CopyTrainedLayersFrom decides.

        Raises WeightShapeError when a matched layer has another number or shape of blobs.
        """
        if not isinstance(weights, formats.Weights) and hdf5.is_hdf5(weights):
            return self.load_hdf5(weights)
        source = weights if isinstance(weights, formats.Weights) else \
            formats.read_caffemodel(weights)
        where = getattr(weights, 'name', None) or str(weights)
        copied = []
        for name, src_type, src_blobs in source.layers():
            li = self._layer_index.get(name)
            if li is None:
                continue
            target = self.layers[li].blobs
            if len(target) != len(src_blobs):
                raise WeightShapeError(
                    f"{where}: layer {name!r} has {len(src_blobs)} parameter blobs in the "
                    f"weights but {len(target)} in the net; to learn this layer from scratch "
                    f"instead, rename it in the prototxt so that copy_from skips it")
            for j, (dst, src) in enumerate(zip(target, src_blobs)):
                if not _shape_equals(dst, src):
                    raise WeightShapeError(
                        f"{where}: cannot copy parameter {j} of layer {name!r}: its shape is "
                        f"{_shape_str(src)} in the weights but {dst.shape} in the net; to learn "
                        f"this layer from scratch instead, rename it in the prototxt so that "
                        f"copy_from skips it")
                dst.data[...] = src.data.reshape(dst.shape)
            if target:
                copied.append(name)
        with_params = [n for n, layer in zip(self._layer_names, self.layers) if len(layer.blobs)]
        source_count = sum(1 for _, _, blobs in source.layers() if blobs)
        if with_params and not copied:
            log.warning("%s: no layer of the weights matched a layer of this net by name (0 of "
                        "the net's %d layers with parameters; the weights hold %d); the net "
                        "keeps its initial (filler) parameters. Are these the weights of "
                        "another net?", where, len(with_params), source_count)
        else:
            missing = [n for n in with_params if n not in copied]
            log.info("%s: copied parameters of %d of the net's %d layer(s) with parameters%s",
                     where, len(copied), len(with_params),
                     f"; not in the weights: {', '.join(missing)}" if missing else '')
        return copied

    def to_proto(self, write_diff=False):
        """(NetParameter with layers and no blobs, [[(data, diff)] per layer]), Caffe's
        Net::ToProto."""
        param = caffe_pb2.NetParameter(name=self.name)
        blobs = []
        for li, layer in enumerate(self.layers):
            lp = param.layer.add()
            lp.CopyFrom(self._param.layer[li])
            lp.ClearField('blobs')
            blobs.append([(b.data, b.diff if write_diff else None) for b in layer.blobs])
        return param, blobs

    def save(self, path, write_diff=False):
        """Write the net's parameters as a binary caffemodel (atomically)."""
        param, blobs = self.to_proto(write_diff)
        formats.write_caffemodel(path, param, blobs, write_diff)

    def share_with(self, other):
        """Share parameter data with ``other`` for every layer of the same name (Caffe's
        ShareTrainedLayersWith)."""
        for name, layer in zip(other._layer_names, other.layers):
            li = self._layer_index.get(name)
            if li is None:
                continue
            target = self.layers[li].blobs
            if len(target) != len(layer.blobs):
                raise WeightShapeError(f"share_with: layer {name!r} has {len(layer.blobs)} "
                                       f"parameter blobs there but {len(target)} here")
            for j, (dst, src) in enumerate(zip(target, layer.blobs)):
                if dst.shape != src.shape:
                    raise WeightShapeError(f"share_with: parameter {j} of layer {name!r} has "
                                           f"shape {src.shape} there but {dst.shape} here")
                dst.share_data(src)

    # -- HDF5 weights (npcaffe.hdf5) ----------------------------------------------------------
    def save_hdf5(self, filename, write_diff=False):
        """Write the parameters as Caffe's HDF5 weights (``data/<layer>/<i>``; ``diff/...``
        too with ``write_diff``), whatever the file's extension (pycaffe's ``save_hdf5``)."""
        hdf5.save_net_weights(self, filename, write_diff)

    def load_hdf5(self, filename):
        """Copy parameters from Caffe's HDF5 weights, matching layers by name (pycaffe's
        ``load_hdf5``); returns the names of the layers copied."""
        return hdf5.load_net_weights(self, filename)

    # -- pycaffe's batching helpers (npcaffe.batching) ----------------------------------------
    def forward_all(self, blobs=None, **kwargs):
        """Forward inputs of any length in batches (pycaffe's ``forward_all``); see
        :func:`npcaffe.batching.forward_all`."""
        return batching.forward_all(self, blobs, **kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """Forward and backward in batches (pycaffe's ``forward_backward_all``); see
        :func:`npcaffe.batching.forward_backward_all`."""
        return batching.forward_backward_all(self, blobs, diffs, **kwargs)

    def backward_all(self, diffs=None, **kwargs):
        """Backward in batches (each batch forwarded first); see
        :func:`npcaffe.batching.backward_all`."""
        return batching.backward_all(self, diffs, **kwargs)

    # -- MemoryData -------------------------------------------------------------------------
    def set_input_arrays(self, data, labels):
        """Hand ``data`` (N, C, H, W) and ``labels`` (N,) or (N, 1, 1, 1) to the net's
        MemoryData layer (pycaffe's ``set_input_arrays``); N must be a multiple of the layer's
        batch_size. Each forward then takes the next batch, wrapping around. The arrays are
        kept (converted to float32 C-contiguous only where they are not already)."""
        layer = next((l for l in self.layers if l.type == 'MemoryData'), None)
        if layer is None:
            first = (f"its first layer is {self._layer_names[0]!r} of type "
                     f"{self.layers[0].type}" if self.layers else 'it has no layers')
            raise NetError(f"{self._where}: set_input_arrays needs a MemoryData layer, and this "
                           f"net has none ({first}); set input blobs with "
                           f"net.blobs[name].data[...] = array or net.forward(name=array)")
        labels = xp.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None, None, None]
        layer.reset(data, labels)

    @property
    def blob_loss_weights(self):
        """``{blob name: loss weight}`` for every blob (0 for blobs that are not losses)."""
        weights = [0.0] * len(self._blob_names)
        for li, tops in enumerate(self._loss_tops):
            for ti, weight in tops:
                weights[self._top_ids[li][ti]] = weight
        return OrderedDict(zip(self._blob_names, weights))

    def __repr__(self):
        return f"<npcaffe.Net {self.name!r}: {len(self.layers)} layers>"



def _shape_equals(blob, src):
    """Caffe's Blob::ShapeEquals: legacy 4-D dims compare with the last four axes."""
    if src.legacy:
        if blob.num_axes > 4:
            return False
        padded = (1,) * (4 - blob.num_axes) + tuple(blob.shape)
        return padded == tuple(src.shape)
    return tuple(blob.shape) == tuple(src.shape)


def _shape_str(src):
    s = ' x '.join(str(d) for d in src.shape)
    return f"{s} (legacy num/channels/height/width)" if src.legacy else s
