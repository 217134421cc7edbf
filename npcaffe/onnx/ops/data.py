"""Sources: Input and MemoryData become graph inputs; DummyData (constant fillers) and
Parameter become initializers.

Graph inputs are float32 and named like their blobs. When the context is dynamic, a 4-D input's
height and width are the symbolic dims ``<blob>_height`` and ``<blob>_width``; other dims keep
the blob's current size. DummyData with a random filler draws new values at every forward in
Caffe, which a constant cannot reproduce, so it is refused.
"""
from npcaffe.onnx.ops import refuse, register


def _graph_input(ctx, name, shape, dynamic):
    dims = list(shape)
    if dynamic and len(dims) == 4:
        dims[2:] = [f"{name}_height", f"{name}_width"]
    return ctx.add_input(name, dims)


@register("Input")
def input_layer(ctx, layer, inputs, bottoms, tops):
    names = layer.layer_param.top
    return [_graph_input(ctx, n, t.shape, n in ctx.dynamic_inputs) for n, t in zip(names, tops)]


@register("MemoryData")
def memory_data(ctx, layer, inputs, bottoms, tops):
    return [_graph_input(ctx, n, t.shape, False) for n, t in zip(layer.layer_param.top, tops)]


@register("DummyData")
def dummy_data(ctx, layer, inputs, bottoms, tops):
    for i, fp in enumerate(layer._fillers):
        if fp is not None and fp.type != 'constant':
            raise refuse(layer, f"data_filler {i} is {fp.type!r}, which Caffe refills with new "
                                f"random values at every forward; only constant fillers export")
    return [ctx.const(t.data, 'dummy') for t in tops]


@register("Parameter")
def parameter(ctx, layer, inputs, bottoms, tops):
    return [ctx.const(layer.blobs[0].data, 'parameter')]
