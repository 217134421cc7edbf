"""Convolution and Deconvolution with pad/stride/dilation/group (Caffe's weight layouts) and
InnerProduct with axis and transpose equal npcaffe, static and dynamic."""
import pytest

from tests.npcaffe.onnx.util import check_one_layer, require_runtime

CASES = {
    'conv': ('Convolution', 'convolution_param { num_output: 4 kernel_size: 3 pad: 1 }'),
    'conv_group': ('Convolution', 'convolution_param { num_output: 6 kernel_size: 3 stride: 2 '
                                  'group: 3 dilation: 2 pad: 2 }'),
    'conv_hw': ('Convolution', 'convolution_param { num_output: 2 kernel_h: 3 kernel_w: 1 '
                               'stride_h: 2 stride_w: 1 pad_h: 0 pad_w: 1 bias_term: false }'),
    'deconv': ('Deconvolution', 'convolution_param { num_output: 4 kernel_size: 4 stride: 2 '
                                'pad: 1 }'),
    'deconv_group': ('Deconvolution', 'convolution_param { num_output: 6 kernel_size: 3 '
                                      'stride: 3 group: 3 dilation: 2 bias_term: false }'),
    'ip': ('InnerProduct', 'inner_product_param { num_output: 7 }'),
    'ip_axis2': ('InnerProduct', 'inner_product_param { num_output: 3 axis: 2 }'),
    'ip_transpose': ('InnerProduct', 'inner_product_param { num_output: 5 transpose: true }'),
}


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


@pytest.mark.parametrize('dynamic', [False, True])
@pytest.mark.parametrize('case', sorted(CASES))
def test_conv_layer_matches_npcaffe(case, dynamic):
    check_one_layer(*CASES[case], shape=(2, 3, 7, 6), dynamic=dynamic)
