"""fcn/surgery.py (``python surgery.py``): transplant against shared/golden/v1_vgg_classifier,
bilinear kernels worked out by hand, interp / expand_score on small nets, and the command line's
exit codes."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fcn import surgery
from fcn.backend import caffe
from tests.conftest import ROOT, require_shared


def net_from_text(tmp_path, text, name='net', phase=None):
    path = tmp_path / f'{name}.prototxt'
    path.write_text(text)
    return caffe.Net(str(path), caffe.TEST if phase is None else phase)


def param_net(tmp_path, name, shapes):
    """A net of Parameter layers: {layer: shape} (one parameter blob each)."""
    layers = ''.join(
        f'layer {{ name: "{layer}" type: "Parameter" top: "{layer}" '
        f'parameter_param {{ shape {{ {" ".join(f"dim: {d}" for d in shape)} }} }} }}\n'
        for layer, shape in shapes.items())
    return net_from_text(tmp_path, layers, name)


@pytest.fixture(scope='module')
def golden_dir():
    return require_shared('golden', 'v1_vgg_classifier')


@pytest.fixture(scope='module')
def expected(golden_dir):
    with np.load(golden_dir / 'expected.npz') as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------------------
# bilinear kernels

def test_upsample_filt_size_3_by_hand():
    # factor 2, centre 1: profile (0.5, 1, 0.5)
    np.testing.assert_array_equal(surgery.upsample_filt(3), [[0.25, 0.5, 0.25],
                                                             [0.5, 1.0, 0.5],
                                                             [0.25, 0.5, 0.25]])


def test_upsample_filt_size_4_by_hand():
    # factor 2, centre 1.5: profile (1 - 1.5/2, 1 - 0.5/2, ...) = (0.25, 0.75, 0.75, 0.25)
    p = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_array_equal(surgery.upsample_filt(4), np.outer(p, p))
    assert surgery.upsample_filt(4)[1, 2] == 0.5625


def test_upsample_filt_size_1_and_64():
    np.testing.assert_array_equal(surgery.upsample_filt(1), [[1.0]])
    k = surgery.upsample_filt(64)                # FCN-32s: factor 32, centre 31.5
    assert k.shape == (64, 64)
    assert k[0, 0] == (1 / 64) ** 2 and k[31, 32] == (1 - 0.5 / 32) ** 2
    np.testing.assert_array_equal(k, k.T)
    with pytest.raises(surgery.SurgeryError, match='size must be >= 1'):
        surgery.upsample_filt(0)


DECONV = """layer {{ name: "data" type: "Input" top: "data"
  input_param {{ shape {{ dim: 1 dim: {cin} dim: 5 dim: 5 }} }} }}
layer {{ name: "{name}" type: "Deconvolution" bottom: "data" top: "up"
  param {{ lr_mult: 0 }}
  convolution_param {{ num_output: {cout} bias_term: false {kernel} stride: 2 group: {group}
    weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "upscore" type: "Convolution" bottom: "up" top: "score"
  convolution_param {{ num_output: 2 kernel_size: 1 }} }}
"""


def deconv_net(tmp_path, cin=2, cout=2, kernel='kernel_size: 4', group=1, name='up2'):
    return net_from_text(tmp_path, DECONV.format(cin=cin, cout=cout, kernel=kernel,
                                                 group=group, name=name), 'deconv')


def test_deconv_layers_are_found_by_type_not_name(tmp_path):
    # the Deconvolution layer is called 'up2'; 'upscore' is a Convolution
    net = deconv_net(tmp_path)
    assert surgery.deconv_layers(net) == ['up2']


def test_interp_sets_bilinear_upsampling(tmp_path):
    net = deconv_net(tmp_path)
    surgery.interp(net, surgery.deconv_layers(net))
    w = net.params['up2'][0].data                   # (2, 2, 4, 4)
    np.testing.assert_array_equal(w[0, 0], surgery.upsample_filt(4))
    np.testing.assert_array_equal(w[1, 1], surgery.upsample_filt(4))
    assert not w[0, 1].any() and not w[1, 0].any()  # the gaussian filler is gone
    # x2 bilinear upsampling of a constant image is that constant away from the border
    x = np.stack([np.full((5, 5), 3.0), np.full((5, 5), -1.0)])[np.newaxis]
    out = net.forward(data=x, end='up2')['up']     # (1, 2, 12, 12)
    np.testing.assert_allclose(out[0, 0, 2:-2, 2:-2], 3.0, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1, 2:-2, 2:-2], -1.0, rtol=1e-6)
    # and of a ramp, a ramp of half the slope
    ramp = np.tile(np.arange(5.0), (5, 1))
    out = net.forward(data=np.stack([ramp, ramp])[np.newaxis], end='up2')['up']
    np.testing.assert_allclose(np.diff(out[0, 0, 4, 2:-2]), 0.5, rtol=1e-5)


def test_interp_one_channel_per_group(tmp_path):
    net = deconv_net(tmp_path, cin=3, cout=3, group=3)       # weights (3, 1, 4, 4)
    surgery.interp(net, ['up2'])
    w = net.params['up2'][0].data
    assert w.shape == (3, 1, 4, 4)
    for c in range(3):
        np.testing.assert_array_equal(w[c, 0], surgery.upsample_filt(4))


def test_interp_refuses_unequal_channels(tmp_path):
    net = deconv_net(tmp_path, cin=2, cout=3)                # weights (2, 3, 4, 4)
    with pytest.raises(surgery.SurgeryError,
                       match=r"layer 'up2' has weights 2x3x4x4: .* input and output channels "
                             r"must be equal \(2 != 3\)"):
        surgery.interp(net, ['up2'])


def test_interp_refuses_non_square_kernels(tmp_path):
    net = deconv_net(tmp_path, kernel='kernel_h: 4 kernel_w: 2')
    with pytest.raises(surgery.SurgeryError,
                       match=r"layer 'up2' has weights 2x2x4x2: the kernel must be square"):
        surgery.interp(net, ['up2'])


def test_interp_names_an_unknown_layer(tmp_path):
    net = deconv_net(tmp_path)
    with pytest.raises(surgery.SurgeryError,
                       match=r"layer 'upscore2' has no parameters .*Deconvolution layers: up2"):
        surgery.interp(net, ['upscore2'])


# ------------------------------------------------------------------------------------------
# transplant

def test_transplant_copies_coerces_and_drops(tmp_path):
    old = param_net(tmp_path, 'old', {'fc6': (4, 12), 'conv1': (2, 3), 'fc8': (5, 4),
                                      'gone': (2,)})
    new = param_net(tmp_path, 'new', {'fc6': (4, 3, 2, 2), 'conv1': (2, 3), 'fc8': (7, 4),
                                      'score': (3,)})
    rng = np.random.default_rng(1)
    for blobs in old.params.values():
        blobs[0].data[...] = rng.standard_normal(blobs[0].data.shape)
    before = {n: b[0].data.copy() for n, b in new.params.items()}
    report = surgery.transplant(new, old)
    np.testing.assert_array_equal(new.params['conv1'][0].data, old.params['conv1'][0].data)
    np.testing.assert_array_equal(new.params['fc6'][0].data.reshape(4, 12),
                                  old.params['fc6'][0].data)
    np.testing.assert_array_equal(new.params['fc8'][0].data, before['fc8'])
    np.testing.assert_array_equal(new.params['score'][0].data, before['score'])
    assert [(e.layer, e.index, e.shape, e.new_shape) for e in report.copied] == \
        [('conv1', 0, (2, 3), (2, 3))]
    assert [(e.layer, e.shape, e.new_shape) for e in report.coerced] == \
        [('fc6', (4, 12), (4, 3, 2, 2))]
    assert [(e.layer, e.shape, e.new_shape) for e in report.dropped] == \
        [('fc8', (5, 4), (7, 4)), ('gone', (2,), None)]
    assert [(e.layer, e.index) for e in report.untouched] == [('fc8', 0), ('score', 0)]
    text = str(report)
    assert 'coerced   fc6/0 4x12 -> 4x3x2x2' in text
    assert 'dropped   fc8/0 5x4 -> 7x4 (20 values do not fit 28)' in text
    assert 'dropped   gone/0 2 (no such layer in the new net)' in text


def test_transplant_suffix_and_missing_index(tmp_path):
    old = net_from_text(tmp_path, """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 1 bias_filler { type: "constant" value: 0.5 }
  weight_filler { type: "constant" value: 0.25 } } }
""", 'old')
    new = net_from_text(tmp_path, """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv_new" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
""", 'new')
    report = surgery.transplant(new, old, suffix='_new')
    assert (new.params['conv_new'][0].data == 0.25).all()
    assert [(e.layer, e.new_layer, e.index) for e in report.copied] == [('conv', 'conv_new', 0)]
    assert [(e.layer, e.index, e.reason) for e in report.dropped] == \
        [('conv', 1, 'the new layer has 1 parameter(s)')]
    assert 'copied    conv/0 -> conv_new/0 2x3x1x1' in str(report)


def test_transplant_equals_golden(golden_dir, expected):
    classifier = caffe.Net(str(golden_dir / 'deploy.prototxt'),
                           str(golden_dir / 'weights_v1.caffemodel'), caffe.TEST)
    for key, value in expected.items():                   # what Caffe read through V1
        if key.startswith('param/'):
            _, layer, i = key.split('/')
            np.testing.assert_array_equal(classifier.params[layer][int(i)].data, value)
    fcn = caffe.Net(str(golden_dir / 'fcn32s_deploy.prototxt'), caffe.TEST)
    report = surgery.transplant(fcn, classifier)
    keys = [k for k in expected if k.startswith('transplanted/')]
    assert len(keys) == 30
    for key in keys:
        _, layer, i = key.split('/')
        np.testing.assert_array_equal(fcn.params[layer][int(i)].data, expected[key], err_msg=key)
    assert [(e.layer, e.index, e.shape, e.new_shape) for e in report.coerced] == [
        ('fc6', 0, (256, 1568), (256, 32, 7, 7)), ('fc7', 0, (256, 256), (256, 256, 1, 1))]
    assert len(report.copied) == 28
    assert [(e.layer, e.index) for e in report.dropped] == [('fc8', 0), ('fc8', 1)]
    assert [(e.layer, e.index) for e in report.untouched] == \
        [('score_fr', 0), ('score_fr', 1), ('upscore', 0)]


def test_read_caffemodel_params_without_prototxt(golden_dir, expected):
    source = surgery.read_caffemodel_params(golden_dir / 'weights_v1.caffemodel')
    assert source.types['fc6'] == 'INNER_PRODUCT' and source.types['conv1_1'] == 'CONVOLUTION'
    params = {k: v for k, v in expected.items() if k.startswith('param/')}
    assert sum(len(blobs) for blobs in source.params.values()) == len(params)
    for key, value in params.items():                # legacy shapes are a net's shapes
        _, layer, i = key.split('/')
        data = source.params[layer][int(i)].data
        assert data.shape == value.shape, key
        np.testing.assert_array_equal(data, value)
    fcn = caffe.Net(str(golden_dir / 'fcn32s_deploy.prototxt'), caffe.TEST)
    report = surgery.transplant(fcn, source)
    assert report.summary() == '28 copied, 2 coerced, 2 dropped, 3 of the new net untouched'
    for key, value in expected.items():
        if key.startswith('transplanted/'):
            _, layer, i = key.split('/')
            np.testing.assert_array_equal(fcn.params[layer][int(i)].data, value, err_msg=key)


def test_read_caffemodel_params_errors(tmp_path):
    bad = tmp_path / 'bad.caffemodel'
    bad.write_bytes(b'\xff\xff\xff\xff')
    with pytest.raises(surgery.SurgeryError, match=r'bad\.caffemodel: not a binary caffemodel'):
        surgery.read_caffemodel_params(bad)
    with pytest.raises(surgery.SurgeryError, match=r'none\.caffemodel: cannot read'):
        surgery.read_caffemodel_params(tmp_path / 'none.caffemodel')


# ------------------------------------------------------------------------------------------
# expand_score

SCORE = """layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 4 dim: 2 dim: 2 }} }} }}
layer {{ name: "{name}" type: "Convolution" bottom: "data" top: "score"
  convolution_param {{ num_output: {classes} kernel_size: 1
    weight_filler {{ type: "constant" value: {value} }} bias_filler {{ type: "constant" value: {value} }} }} }}
"""


def test_expand_score_fills_the_first_classes(tmp_path):
    old = net_from_text(tmp_path, SCORE.format(name='score_fr', classes=3, value=0), 'old')
    new = net_from_text(tmp_path, SCORE.format(name='score_new', classes=5, value=-1), 'new')
    rng = np.random.default_rng(2)
    old.params['score_fr'][0].data[...] = rng.standard_normal((3, 4, 1, 1))
    old.params['score_fr'][1].data[...] = [1, 2, 3]
    assert surgery.expand_score(new, 'score_new', old, 'score_fr') == 3
    w, b = new.params['score_new'][0].data, new.params['score_new'][1].data
    np.testing.assert_array_equal(w[:3], old.params['score_fr'][0].data)
    assert (w[3:] == -1).all()
    np.testing.assert_array_equal(b, [1, 2, 3, -1, -1])


def test_expand_score_refuses_fewer_classes(tmp_path):
    old = net_from_text(tmp_path, SCORE.format(name='score_fr', classes=5, value=0), 'old')
    new = net_from_text(tmp_path, SCORE.format(name='score_new', classes=3, value=0), 'new')
    with pytest.raises(surgery.SurgeryError,
                       match=r"cannot put 'score_fr' 5x4x1x1 into the first channels of "
                             r"'score_new' 3x4x1x1"):
        surgery.expand_score(new, 'score_new', old, 'score_fr')
    with pytest.raises(surgery.SurgeryError, match=r"the old net has no layer 'nope'"):
        surgery.expand_score(new, 'score_new', old, 'nope')


# ------------------------------------------------------------------------------------------
# command line

def cli_args(golden_dir, out, fcn=None):
    return ['--classifier-deploy', str(golden_dir / 'deploy.prototxt'),
            '--classifier-weights', str(golden_dir / 'weights_v1.caffemodel'),
            '--fcn', str(fcn or golden_dir / 'fcn32s_deploy.prototxt'), '--out', str(out)]


def test_cli_writes_transplanted_and_interpolated_weights(tmp_path, golden_dir, expected, capsys):
    out = tmp_path / 'init.caffemodel'
    assert surgery.main(cli_args(golden_dir, out)) == 0
    printed = capsys.readouterr().out
    assert 'transplant: 28 copied, 2 coerced, 2 dropped' in printed
    assert 'coerced   fc6/0 256x1568 -> 256x32x7x7' in printed
    assert 'interp: 1 Deconvolution layer(s) set to bilinear upsampling: upscore' in printed
    assert sorted(os.listdir(tmp_path)) == ['init.caffemodel']      # no temporary file left
    net = caffe.Net(str(golden_dir / 'fcn32s_deploy.prototxt'), str(out), caffe.TEST)
    for key, value in expected.items():
        if key.startswith('transplanted/'):
            _, layer, i = key.split('/')
            np.testing.assert_array_equal(net.params[layer][int(i)].data, value, err_msg=key)
    w = net.params['upscore'][0].data
    np.testing.assert_allclose(w[5, 5], surgery.upsample_filt(64), rtol=1e-6)
    assert not w[5, 6].any()


def test_cli_replaces_python_data_layers_of_a_train_net(tmp_path, golden_dir, expected, capsys):
    text = (golden_dir / 'fcn32s_deploy.prototxt').read_text()
    start = text.index('layer {')
    end = text.index('layer {', start + 1)
    data = ('layer {\n  name: "data" type: "Python" top: "data" top: "label"\n'
            '  python_param { module: "layers.voc" layer: "VOCSegDataLayer"\n'
            '    param_str: "{\'voc_dir\': \'/no/such/dir\', \'split\': \'train\', '
            '\'mean\': (104.0, 116.7, 122.7)}" }\n}\n')
    loss = ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" '
            'top: "loss" loss_param { ignore_label: 255 normalize: false } }\n')
    train = tmp_path / 'train.prototxt'
    train.write_text(text[:start] + data + text[end:] + loss)
    out = tmp_path / 'init.caffemodel'
    assert surgery.main(cli_args(golden_dir, out, train) + ['--data-shape', '3,64,64']) == 0
    net = caffe.Net(str(golden_dir / 'fcn32s_deploy.prototxt'), str(out), caffe.TEST)
    np.testing.assert_array_equal(net.params['fc6'][0].data, expected['transplanted/fc6/0'])


@pytest.mark.parametrize('change, message', [
    (('--classifier-weights', 'missing.caffemodel'),
     'error: --classifier-weights missing.caffemodel: no such file'),
    (('--out', '/no/such/folder/x.caffemodel'),
     'error: --out /no/such/folder/x.caffemodel: folder /no/such/folder does not exist'),
])
def test_cli_errors_exit_1(tmp_path, golden_dir, capsys, change, message):
    args = cli_args(golden_dir, tmp_path / 'o.caffemodel')
    args[args.index(change[0]) + 1] = change[1]
    assert surgery.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and 'Traceback' not in err


def test_cli_refuses_a_net_with_no_matching_layer(tmp_path, golden_dir, capsys):
    out = tmp_path / 'o.caffemodel'
    assert surgery.main(cli_args(golden_dir, out) + ['--suffix', '_x']) == 1
    assert 'error: no parameter of' in capsys.readouterr().err
    assert not out.exists()


def test_cli_usage_error_exit_2(capsys):
    assert surgery.main(['--fcn', 'x.prototxt']) == 2
    assert 'error: the following arguments are required' in capsys.readouterr().err


def test_cli_as_a_script(tmp_path, golden_dir):
    bad_net = tmp_path / 'bad.prototxt'
    bad_net.write_text('layer { name: "x" type: "NoSuchType" top: "x" }\n')
    ok = subprocess.run([sys.executable, 'surgery.py', *cli_args(golden_dir, tmp_path / 'a.caffemodel')],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / 'a.caffemodel').stat().st_size > 0
    bad = subprocess.run([sys.executable, 'surgery.py',
                          *cli_args(golden_dir, tmp_path / 'b.caffemodel', bad_net)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.startswith('error: ') and 'NoSuchType' in bad.stderr
    assert 'Traceback' not in bad.stderr
