"""The graph builder: unique names that never take a reserved one, 0-d scalar constants, int64
shape constants."""
from tests.npcaffe.onnx.util import require_runtime


def test_names_constants_and_shape_vectors():
    onnx, _ = require_runtime()
    from npcaffe.onnx.graph import Context
    ctx = Context(onnx, dynamic=False, reserved={'conv1'})
    assert ctx.fresh('conv1') == 'conv1_1' and ctx.fresh('a') == 'a' and ctx.fresh('a') == 'a_1'
    ctx.scope = 'layer'
    scalar = ctx.scalar(2.5)
    assert list(ctx.initializers[-1].dims) == [] and scalar.startswith('layer/')
    assert ctx.initializers[-1].data_type == onnx.TensorProto.FLOAT
    shape = ctx.shape_vector([[1, 2], [3]])
    assert list(ctx.initializers[-1].dims) == [3] and shape in {t.name for t in ctx.initializers}
    assert ctx.initializers[-1].data_type == onnx.TensorProto.INT64
