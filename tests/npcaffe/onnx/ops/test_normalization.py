"""BatchNorm (its stored scale factor, 0 meaning 0, and batch statistics), Scale/Bias
broadcasting, LRN in both regions and MVN equal npcaffe."""
import numpy as np
import pytest

from tests.npcaffe.onnx.util import check_one_layer, compare, net_from_text, require_runtime

CASES = {
    'scale_axis1': ('Scale', 'scale_param { bias_term: true }'),
    'scale_axes12': ('Scale', 'scale_param { axis: 1 num_axes: 2 }'),
    'scale_scalar': ('Scale', 'scale_param { num_axes: 0 }'),
    'bias_axis2': ('Bias', 'bias_param { axis: 2 num_axes: 2 }'),
    'lrn_across': ('LRN', 'lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }'),
    'lrn_within': ('LRN', 'lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 '
                          'norm_region: WITHIN_CHANNEL }'),
    'mvn': ('MVN', ''), 'mvn_across': ('MVN', 'mvn_param { across_channels: true }'),
    'mvn_mean_only': ('MVN', 'mvn_param { normalize_variance: false }'),
    'batchnorm_batch_stats': ('BatchNorm', 'batch_norm_param { use_global_stats: false }'),
}


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


@pytest.mark.parametrize('case', sorted(CASES))
def test_normalization_layer_matches_npcaffe(case):
    check_one_layer(*CASES[case])


BN = """
layer { name: 'data' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 dim: 1 dim: 2 } } }
layer { name: 'bn' type: 'BatchNorm' bottom: 'x' top: 'y' batch_norm_param { eps: 0 } }
"""


def test_batchnorm_divides_the_statistics_by_the_stored_factor():
    net = net_from_text(BN)
    mean, var, scale = net.params['bn']
    mean.data[...] = [8, -4]
    var.data[...] = [16, 36]
    scale.data[...] = 4
    x = np.array([[[[3, 5]], [[0, 2]]]], np.float32)
    _, got = compare(net, {'x': x})
    expected = [[[[0.5, 1.5]], [[1 / 3, 1.0]]]]          # mean (2, -1), var (4, 9)
    np.testing.assert_allclose(got['y'], expected, rtol=1e-6)


def test_batchnorm_zero_factor_means_zero_statistics():
    net = net_from_text(BN.replace('eps: 0', 'eps: 1'))
    net.params['bn'][0].data[...] = 5
    net.params['bn'][1].data[...] = 5
    x = np.array([[[[3, 8]], [[0, 15]]]], np.float32)
    _, got = compare(net, {'x': x})
    np.testing.assert_allclose(got['y'], x, rtol=1e-6)      # (x - 0) / sqrt(0 + 1)
