"""Flatten, Reshape (0, -1, axis, num_axes), Tile, Softmax, Reduction and ArgMax (Caffe's tie
rule: the larger index first) equal npcaffe, static and dynamic."""
import numpy as np
import pytest

from tests.npcaffe.onnx.util import check_one_layer, compare, net_from_text, require_runtime

CASES = {
    'flatten': ('Flatten', ''), 'flatten_2_3': ('Flatten', 'flatten_param { axis: 2 }'),
    'flatten_1_2': ('Flatten', 'flatten_param { axis: 1 end_axis: 2 }'),
    'reshape': ('Reshape', 'reshape_param { shape { dim: 0 dim: -1 dim: 2 } }'),
    'reshape_axis': ('Reshape', 'reshape_param { axis: 1 num_axes: 1 shape { dim: 3 dim: 1 } }'),
    'reshape_neg_axis': ('Reshape', 'reshape_param { axis: -1 shape { dim: 1 } }'),
    'tile': ('Tile', 'tile_param { axis: 2 tiles: 3 }'),
    'softmax': ('Softmax', ''), 'softmax_axis2': ('Softmax', 'softmax_param { axis: 2 }'),
    'sum': ('Reduction', ''), 'asum': ('Reduction', 'reduction_param { operation: ASUM axis: 1 }'),
    'sumsq': ('Reduction', 'reduction_param { operation: SUMSQ axis: 2 coeff: 2 }'),
    'mean': ('Reduction', 'reduction_param { operation: MEAN axis: 1 coeff: -1 }'),
    'argmax': ('ArgMax', ''), 'argmax_top3_val': ('ArgMax', 'argmax_param { top_k: 3 '
                                                            'out_max_val: true }'),
    'argmax_axis': ('ArgMax', 'argmax_param { axis: 1 top_k: 2 }'),
    'argmax_axis_val': ('ArgMax', 'argmax_param { axis: 3 out_max_val: true }'),
}


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


@pytest.mark.parametrize('dynamic', [False, True])
@pytest.mark.parametrize('case', sorted(CASES))
def test_shape_layer_matches_npcaffe(case, dynamic):
    check_one_layer(*CASES[case], dynamic=dynamic)


def test_argmax_ties_go_to_the_larger_index():
    net = net_from_text("""
layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 4 } } }
layer { name: 'am' type: 'ArgMax' bottom: 'x' top: 'y' argmax_param { top_k: 2 } }""")
    _, got = compare(net, {'x': np.array([[5, 1, 5, 5]], np.float32)})
    np.testing.assert_array_equal(got['y'].reshape(-1), [3, 2])
