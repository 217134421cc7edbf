"""The graph under construction: nodes, initializers and unique tensor names.

A converter (``npcaffe.onnx.ops``) receives a :class:`Context` and adds nodes through it::

    y = ctx.node('Conv', [x, ctx.const(weights, 'weight')], pads=[1, 1, 1, 1])

Contract: every tensor name is unique in the graph; names given to graph inputs and outputs
(the net's blob names) are reserved up front, so intermediate tensors (named
``<layer>/<op>``) never take them. Initializers keep float32 for float data and int64 for
integer data (ONNX's shape and index type). ``ctx.dynamic`` is true when the spatial dims of the
inputs are symbolic: a converter must then take every dim that Caffe copies from a bottom from
the graph (``ctx.shape``), never from the static shapes of the npcaffe blobs it is also given.
"""
import numpy as np

INT64_MIN = np.iinfo(np.int64).min


class Context:
    """The graph builder handed to every converter (``onnx`` is the imported module)."""

    def __init__(self, onnx, dynamic, reserved=()):
        self.onnx = onnx
        self.dynamic = dynamic
        self.nodes, self.initializers, self.inputs = [], [], []
        self._used = set(reserved)
        self._counts = {}
        self.scope = 'graph'
        #: names of the inputs whose height and width are symbolic
        self.dynamic_inputs = set()

    # -- names ---------------------------------------------------------------------------------
    def fresh(self, hint):
        """A tensor or node name not used yet, ``hint`` or ``hint_<k>``."""
        base = hint
        k = self._counts.get(base, 0)
        name = base if k == 0 else f"{base}_{k}"
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._counts[base] = k + 1
        self._used.add(name)
        return name

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, op_type, inputs, outputs=1, **attrs):
        """Add an ``op_type`` node reading ``inputs`` (tensor names; '' for an omitted optional
        input); return its output name, or the list of names when ``outputs`` > 1."""
        base = f"{self.scope}/{op_type}"
        names = [self.fresh(base) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=self.fresh(base + ':node'), **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, hint='const', dtype=None):
        """An initializer holding ``value`` (float32 unless ``dtype`` or integer data)."""
        array = np.asarray(value)
        if dtype is None:
            dtype = np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32
        array = np.array(array, dtype=dtype, order='C')      # (ascontiguousarray makes 0-d 1-d)
        name = self.fresh(f"{self.scope}/{hint}")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values, hint='ints'):
        """A 1-D int64 initializer."""
        return self.const(np.asarray(list(values), np.int64).reshape(-1), hint)

    def scalar(self, value, hint='scalar'):
        """A float32 scalar initializer (broadcasts against anything)."""
        return self.const(np.float32(value), hint)

    def add_input(self, name, shape, elem_type=None):
        """Declare graph input ``name``; ``shape`` items are ints or symbolic dim names."""
        elem_type = self.onnx.TensorProto.FLOAT if elem_type is None else elem_type
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type,
                                                                   list(shape)))
        self._used.add(name)
        return name

    # -- shapes inside the graph -----------------------------------------------------------------
    def shape(self, x, start=None, end=None):
        """Shape(x)[start:end] as a 1-D int64 tensor (Shape's start/end, opset 15)."""
        attrs = {}
        if start is not None:
            attrs['start'] = int(start)
        if end is not None:
            attrs['end'] = int(end)
        return self.node('Shape', [x], **attrs)

    def shape_vector(self, parts):
        """A 1-D int64 tensor concatenating ``parts``: lists of ints (constants) and names of
        1-D int64 tensors, in order; a constant when every part is."""
        if all(isinstance(p, (list, tuple)) for p in parts):
            return self.ints([int(v) for p in parts for v in p], 'shape')
        names = [self.ints(p, 'shape') if isinstance(p, (list, tuple)) else p
                 for p in parts if not (isinstance(p, (list, tuple)) and not p)]
        return names[0] if len(names) == 1 else self.node('Concat', names, axis=0)

    def reshape(self, x, target):
        """Reshape ``x`` to ``target`` (ints, or a shape tensor name); 0 copies the input dim
        at that index, -1 is inferred (allowzero 0)."""
        shape = target if isinstance(target, str) else self.ints(target, 'shape')
        return self.node('Reshape', [x, shape])

    def dim(self, x, axis, static):
        """Dim ``axis`` of ``x`` as a 1-element int64 tensor: from the graph when dynamic, else
        the constant ``static``."""
        if self.dynamic:
            return self.shape(x, axis, axis + 1)
        return self.ints([static], 'dim')

    def reverse(self, x, axis):
        """``x`` reversed along ``axis`` (Slice with step -1)."""
        return self.node('Slice', [x, self.ints([-1]), self.ints([INT64_MIN]), self.ints([axis]),
                                   self.ints([-1])])
