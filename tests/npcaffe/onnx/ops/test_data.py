"""Sources: Input and MemoryData become graph inputs, DummyData (constant filler) and Parameter
initializers; a random DummyData filler is refused, naming the layer."""
import numpy as np
import pytest

from npcaffe.errors import NotSupportedError
from npcaffe.onnx import build_model
from tests.npcaffe.onnx.util import net_from_text, require_runtime

NET = """
layer { name: 'mem' type: 'MemoryData' top: 'data' top: 'label'
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }
layer { name: 'dummy' type: 'DummyData' top: 'd'
        dummy_data_param { shape { dim: 2 dim: 1 dim: 2 dim: 3 } data_filler { type: 'constant' value: 1.5 } } }
layer { name: 'param' type: 'Parameter' top: 'p' parameter_param { shape { dim: 2 dim: 1 dim: 2 dim: 3 } } }
layer { name: 'sum' type: 'Eltwise' bottom: 'data' bottom: 'd' bottom: 'p' top: 'y' }
layer { name: 'silence' type: 'Silence' bottom: 'label' }
"""


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


def test_memory_data_dummy_data_and_parameter():
    net = net_from_text(NET)
    net.params['param'][0].data[...] = np.arange(12).reshape(2, 1, 2, 3)
    x = np.random.default_rng(0).normal(size=(2, 1, 2, 3)).astype(np.float32)
    net.set_input_arrays(x, np.zeros(2, np.float32))
    model = build_model(net)
    assert [i.name for i in model.graph.input] == ['data', 'label']
    from tests.npcaffe.onnx.util import run
    got = run(model, {'data': x, 'label': np.zeros(2, np.float32)})
    np.testing.assert_allclose(got['y'], x + 1.5 + np.arange(12).reshape(2, 1, 2, 3),
                               rtol=1e-6)


def test_random_dummy_data_is_refused():
    net = net_from_text(NET.replace("type: 'constant' value: 1.5", "type: 'gaussian'"))
    with pytest.raises(NotSupportedError, match=r"layer 'dummy' of type DummyData.*gaussian"):
        build_model(net)
