"""The layer base class, shared by the built-in layers and by Python layers (``caffe.Layer``).

Contract (Caffe's Layer, in Python):

* ``setup(bottom, top)`` reads ``self.layer_param``, checks the bottoms, creates parameter blobs
  in ``self.blobs`` (unless they were given, e.g. by a Python layer's ``add_blob``);
* ``reshape(bottom, top)`` gives every top its shape (called before every forward);
* ``forward(bottom, top)`` writes ``top[i].data``;
* ``backward(top, propagate_down, bottom)`` writes ``bottom[i].diff`` where
  ``propagate_down[i]`` (overwriting it) and *adds* parameter gradients into
  ``self.blobs[j].diff`` where ``self.param_propagate_down[j]`` (so that shared parameters and
  iter_size accumulate, as in Caffe).

``bottom`` and ``top`` are lists of :class:`~npcaffe.blob.Blob`. A layer whose top is also its
bottom (in-place) sees the same Blob object in both lists.
"""
from npcaffe.blob import BlobVec
from npcaffe.errors import NetError
from npcaffe.proto import caffe_pb2

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


class Layer:
    """Base class of every layer; pycaffe scripts subclass it as ``caffe.Layer``.

    Class attributes a layer may set to have the net check its blob counts, as Caffe's
    ExactNumBottomBlobs & co. do (None = no constraint):
    ``exact_bottoms, min_bottoms, max_bottoms, exact_tops, min_tops, max_tops``.
    ``is_loss = True`` gives top 0 a default loss weight of 1 (Caffe's LossLayer).
    """

    type = 'Layer'
    exact_bottoms = min_bottoms = max_bottoms = None
    exact_tops = min_tops = max_tops = None
    is_loss = False
    #: indices of bottoms that never take a gradient (e.g. labels); force_backward skips them
    no_force_backward = ()
    #: TEST-phase layers may keep arrays derived from their parameters between forwards
    #: (Convolution: Winograd's transformed weights) while this is true; a Net with
    #: ``reuse_memory`` sets it false on its layers, trading that time for memory.
    keep_derived = True

    def __init__(self, layer_param=None, phase=TEST):
        if layer_param is None:
            layer_param = caffe_pb2.LayerParameter()
        self.layer_param = layer_param
        self.phase = phase
        self.blobs = BlobVec()
        self.param_propagate_down = []
        self.param_str = layer_param.python_param.param_str

    # -- to be overridden ------------------------------------------------------------------
    def setup(self, bottom, top):
        """Read parameters, check bottoms, create ``self.blobs`` (once)."""

    def reshape(self, bottom, top):
        """Shape every top from the bottoms."""

    def forward(self, bottom, top):
        raise NotImplementedError(f"layer type {self.type} has no forward")

    def backward(self, top, propagate_down, bottom):
        """Default: no gradient (Caffe's layers without Backward_cpu)."""

    # -- shared helpers ----------------------------------------------------------------------
    @property
    def name(self):
        return self.layer_param.name

    def loss_weight(self, top_index):
        """The loss weight of top ``top_index`` (Caffe's SetLossWeights rule)."""
        weights = self.layer_param.loss_weight
        if len(weights):
            return float(weights[top_index]) if top_index < len(weights) else 0.0
        return 1.0 if (self.is_loss and top_index == 0) else 0.0

    def allow_force_backward(self, bottom_index):
        return bottom_index not in self.no_force_backward

    def check_blob_counts(self, num_bottoms, num_tops):
        """Raise NetError naming the layer when the numbers of bottoms/tops are wrong."""
        for what, n, exact, lo, hi in (
                ('bottom', num_bottoms, self.exact_bottoms, self.min_bottoms, self.max_bottoms),
                ('top', num_tops, self.exact_tops, self.min_tops, self.max_tops)):
            if exact is not None and n != exact:
                want = f"exactly {exact}"
            elif lo is not None and n < lo:
                want = f"at least {lo}"
            elif hi is not None and n > hi:
                want = f"at most {hi}"
            else:
                continue
            raise NetError(f"layer {self.name!r} of type {self.type} takes {want} {what} "
                           f"blob{'s' if want != 'exactly 1' else ''}, but {n} "
                           f"{'is' if n == 1 else 'are'} given")

    def param_dtype(self, bottom):
        """The float dtype for new parameter blobs: that of the first bottom (float32 if none)."""
        return bottom[0].dtype if bottom else BlobVec().dtype

    def __repr__(self):
        return f"<{self.type} layer {self.name!r}>"
