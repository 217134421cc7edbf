"""python -m npcaffe.tools.summary: shapes from the engine (equal to BVLC Caffe's on the golden
tiny FCNs), parameters and FLOPs worked out by hand, receptive field / stride / offset
composed from coord_map's per-layer maps, data layers replaced by Input layers, the CLI."""
import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import npcaffe
from npcaffe.tools import geometry, netgraph
from npcaffe.tools.summary import main, summarize
from tests.conftest import ROOT, require_shared

FCN_CASES = ['fcn32s_tiny', 'fcn16s_tiny', 'fcn8s_tiny']


# -- the Done-when: shapes equal Caffe's ----------------------------------------------------------
@pytest.mark.parametrize('case', FCN_CASES)
def test_blob_shapes_equal_the_shapes_caffe_recorded(case):
    folder = require_shared('golden', case)
    meta = json.loads((folder / 'meta.json').read_text())
    recorded = np.load(folder / 'blobs.npz')
    phase = npcaffe.TRAIN if meta['phase'] == 'TRAIN' else npcaffe.TEST
    shapes = summarize(str(folder / 'net.prototxt'), phase).blob_shapes()
    keys = [k for k in recorded.files if k.startswith('data/')]
    assert len(keys) == len(meta['blobs'])
    for key in keys:
        assert shapes[key[5:]] == recorded[key].shape, key


@pytest.mark.parametrize('case', FCN_CASES)
def test_cli_table_shows_caffes_shape_on_each_blobs_row(case, capsys):
    folder = require_shared('golden', case)
    recorded = np.load(folder / 'blobs.npz')
    assert main([str(folder / 'net.prototxt'), '--phase', 'train']) == 0
    text = capsys.readouterr().out
    rows = {}
    for line in text.splitlines():
        m = re.match(r'\s*\d+\s+(\S+)\s+(\S+)\s+(.*?)\s{2,}(\d+(?:x\d+)*|scalar)\b', line)
        if m:
            rows[m.group(1)] = m.group(4)
    for key in recorded.files:
        if key.startswith('data/') and key[5:] in rows:   # a blob named like its layer
            shape = recorded[key].shape
            assert rows[key[5:]] == ('x'.join(map(str, shape)) if shape else 'scalar'), key


# -- geometry: FCN's pad 100 and crop offsets -----------------------------------------------------
def test_fcn_crop_offsets_are_differences_of_offsets():
    folder = require_shared('golden', 'fcn8s_tiny')
    s = summarize(str(folder / 'net.prototxt'), npcaffe.TRAIN)
    g = s.blob_geometry()
    assert g['conv1_1'].offset == (-99, -99)               # pad 100, 3x3: centre at -99
    assert g['pool5'].rf == (212, 212) and g['pool5'].stride == (32, 32)   # VGG16's numbers
    assert g['fc6'].rf == (404, 404)
    for crop, source, target, offset in [('score_pool4c', 'score_pool4', 'upscore2', 5),
                                         ('score_pool3c', 'score_pool3', 'upscore_pool4', 9),
                                         ('score', 'upscore8', 'data', 31)]:
        stride = g[source].stride[0]
        assert (g[target].offset[0] - g[source].offset[0]) / stride == offset
        assert g[crop].offset == g[target].offset
    assert g['score'].stride == (1, 1) and g['score'].offset == (0, 0)
    assert g['loss'] is None


TINY = '''name: "tiny"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 20 dim: 20 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 4 kernel_size: 3 dilation: 2 group: 2 } }
layer { name: "up" type: "Deconvolution" bottom: "conv2" top: "up"
  convolution_param { num_output: 2 kernel_size: 4 stride: 2 pad: 1 bias_term: false } }
layer { name: "crop" type: "Crop" bottom: "data" bottom: "up" top: "crop"
  crop_param { axis: 2 offset: 4 } }
layer { name: "cat" type: "Concat" bottom: "crop" bottom: "up" top: "cat" }
layer { name: "gap" type: "Pooling" bottom: "conv2" top: "gap"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc"
  inner_product_param { num_output: 10 } }
layer { name: "tall" type: "Convolution" bottom: "data" top: "tall"
  convolution_param { num_output: 1 kernel_h: 3 kernel_w: 1 pad_h: 1 stride_h: 2 stride_w: 1 } }
'''


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / 'tiny.prototxt'
    path.write_text(TINY)
    return path


def test_receptive_fields_strides_and_offsets_by_hand(tiny):
    g = summarize(str(tiny)).blob_geometry()

    def check(blob, rf, stride, offset):
        assert g[blob].rf == (Fraction(rf),) * 2, blob
        assert g[blob].stride == (Fraction(stride),) * 2, blob
        assert g[blob].offset == (Fraction(offset),) * 2, blob
    check('data', 1, 1, 0)
    check('conv1', 3, 1, 0)           # rf 1 + (3-1)*1; centre (3-1)/2 - 1 = 0
    check('pool1', 4, 2, '1/2')       # rf 3 + (2-1)*1; centre 0 + (1/2)*1
    check('conv2', 12, 2, '9/2')      # k_eff 5: rf 4 + 4*2; centre 1/2 + 2*2
    # deconvolution k4 s2 p1: a top pixel sums ceil(4/2) = 2 bottom pixels (rf 12 + 1*2),
    # stride 2/2; coord_map's map top = 2*bottom + 1/2 puts top pixel 0 at bottom -1/4
    check('up', 14, 1, 4)
    check('crop', 1, 1, 4)            # data cropped at 4: its pixel 0 is data's pixel 4 ...
    check('cat', 14, 1, 4)            # ... aligned with 'up': the union keeps rf 14
    check('gap', 22, 12, '19/2')      # the whole 6x6 conv2: rf 12 + 5*2, centre 9/2 + 5/2*2
    assert g['fc'] is None
    assert g['tall'].rf == (3, 1) and g['tall'].stride == (2, 1)
    assert geometry.format_number(g['tall'].rf) == '3x1'
    assert geometry.format_number(g['pool1'].offset) == '0.5'


def test_parameters_and_flops_by_hand(tiny):
    s = summarize(str(tiny))
    rows = {r.name: r for r in s.rows}
    # conv1: 4 x 1 x 3 x 3 + 4 = 40 parameters; 20*20 outputs x 4 channels x 9 MACs, x2
    assert rows['conv1'].params == 40 and rows['conv1'].flops == 2 * 20 * 20 * 4 * 9
    # conv2, group 2: weights 4 x 2 x 3 x 3 = 72 (+4); output 10 - 4 = 6: 6*6*72 MACs
    assert rows['conv2'].params == 76 and rows['conv2'].flops == 2 * 6 * 6 * 72
    # deconvolution: weights 4 x 2 x 4 x 4 = 128, every input pixel scatters them: 6*6*128
    assert rows['up'].params == 128 and rows['up'].flops == 2 * 6 * 6 * 128
    assert rows['up'].shapes == [(1, 2, 12, 12)]
    # inner product: 4*6*6 = 144 inputs -> 10
    assert rows['fc'].params == 1450 and rows['fc'].flops == 2 * 144 * 10
    assert rows['pool1'].flops is None and rows['relu1'].params == 0
    assert rows['relu1'].in_place and rows['crop'].bottoms == ['data', 'up']
    assert s.total_params == 40 + 76 + 128 + 1450 + 1 * 3 + 1
    assert s.total_flops == sum(r.flops or 0 for r in s.rows)
    batch2 = summarize(str(tiny), shape=(2, 1, 20, 20))
    assert {r.name: r.flops for r in batch2.rows}['conv1'] == 2 * rows['conv1'].flops
    assert batch2.blob_shapes()['up'] == (2, 2, 12, 12)


def test_shared_parameters_count_once_in_the_total(tmp_path):
    path = tmp_path / 'shared.prototxt'
    path.write_text('''
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" param { name: "w" }
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
layer { name: "b" type: "Convolution" bottom: "a" top: "b" param { name: "w" }
  convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }''')
    s = summarize(str(path))
    assert [r.params for r in s.rows] == [0, 4, 4] and s.rows[2].shared == 4
    assert s.total_params == 4
    assert '4 shared' in str(s)


# -- data layers become Input layers --------------------------------------------------------------
TRAIN_VAL = '''name: "tv"
layer { name: "data" type: "Python" top: "data" top: "label" include { phase: TRAIN }
  python_param { module: "no_such_module" layer: "Anything" } }
layer { name: "data" type: "Python" top: "data" top: "label" include { phase: TEST }
  python_param { module: "no_such_module" layer: "Anything" } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 } }
layer { name: "acc" type: "Accuracy" bottom: "score" bottom: "label" top: "acc"
  include { phase: TEST } }
'''


def test_python_data_layers_are_replaced_by_inputs_of_the_given_shape(tmp_path):
    path = tmp_path / 'train_val.prototxt'
    path.write_text(TRAIN_VAL)
    train = summarize(str(path), npcaffe.TRAIN, shape=(1, 3, 7, 9))
    assert train.blob_shapes()['label'] == (1, 1, 7, 9)       # dense labels
    assert [r.name for r in train.rows] == ['data', 'conv', 'loss']
    assert train.rows[0].type == 'Python'                     # shown as written
    test = summarize(str(path), npcaffe.TEST, shape=(2, 3, 4, 4))
    assert [r.name for r in test.rows] == ['data', 'conv', 'loss', 'acc']
    assert test.blob_shapes()['score'] == (2, 3, 4, 4)
    with pytest.raises(netgraph.ShapeNeededError,
                       match=r"train_val.prototxt: layer 'data' \(Python\).*--shape"):
        summarize(str(path), npcaffe.TRAIN)


def test_caffe_data_layers_get_one_label_per_image():
    path = require_shared('models', 'lenet_mnist', 'lenet_train_test.prototxt')
    s = summarize(str(path), npcaffe.TEST, shape=(64, 1, 28, 28))
    shapes = s.blob_shapes()
    assert shapes['label'] == (64,) and shapes['ip2'] == (64, 10)
    assert shapes['accuracy'] == () and shapes['loss'] == ()
    assert s.total_params == 431_080           # LeNet: 500 + 25,050 + 400,500 + 5,010 + 20


def test_shape_replaces_the_input_and_inputs_of_its_size_follow():
    folder = require_shared('golden', 'fcn32s_tiny')
    s = summarize(str(folder / 'net.prototxt'), npcaffe.TRAIN, shape=(2, 3, 64, 50))
    shapes = s.blob_shapes()
    assert shapes['data'] == (2, 3, 64, 50) and shapes['label'] == (2, 1, 64, 50)
    assert shapes['score'] == (2, 21, 64, 50)


def test_weights_are_loaded_and_reported():
    folder = require_shared('golden', 'fcn32s_tiny')
    s = summarize(str(folder / 'net.prototxt'), npcaffe.TRAIN,
                  weights=str(folder / 'weights.caffemodel'))
    assert 'conv1_1' in s.copied and 'upscore' in s.copied
    assert f"{len(s.copied)} layer(s) copied" in str(s)


def test_parse_shape_and_phase():
    assert netgraph.parse_shape('1,3,500,500') == (1, 3, 500, 500)
    assert netgraph.parse_shape('1x3x5x5') == (1, 3, 5, 5)
    for bad in ('', '1,a', '1,0,3'):
        with pytest.raises(ValueError):
            netgraph.parse_shape(bad)
    assert netgraph.parse_phase('TRAIN') == npcaffe.TRAIN
    with pytest.raises(ValueError):
        netgraph.parse_phase('val')


# -- command line ---------------------------------------------------------------------------------
def test_cli_rows_totals_and_legend(tiny, capsys):
    assert main([str(tiny)]) == 0
    out = capsys.readouterr().out
    assert re.search(r'^\s*1\s+conv1\s+Convolution\s+data -> conv1\s+1x4x20x20\s+40\s+28\.8K'
                     r'\s+3\s+1\s+0$', out, re.M)
    assert re.search(r'^\s*2\s+relu1\s+ReLU\s+conv1 \(in place\)', out, re.M)
    assert re.search(r'^\s*4\s+conv2\s+.*\s+12\s+2\s+4\.5$', out, re.M)
    assert re.search(r'tall\s+Convolution\s+data -> tall\s+1x1x10x20\s+4\s+.*3x1\s+2x1\s+0$',
                     out, re.M)
    assert 'total: 11 layers, 1,698 parameters' in out
    assert 'FLOPs: 2 x multiply-adds' in out and 'receptive field' in out


@pytest.mark.parametrize('argv,status,message', [
    (['{tiny}', '--shape', '1,a'], 2, '--shape'),
    (['{tiny}', '--phase', 'val'], 2, 'invalid choice'),
    (['/no/such.prototxt'], 1, 'no such file'),
    (['{train_val}'], 2, '--shape N,C,H,W'),
    (['{bad}'], 1, "bad.prototxt: layer 'conv' reads bottom 'nothing'"),
])
def test_cli_errors_are_one_line(argv, status, message, tiny, tmp_path, capsys):
    train_val = tmp_path / 'tv.prototxt'
    train_val.write_text(TRAIN_VAL)
    bad = tmp_path / 'bad.prototxt'
    bad.write_text('layer { name: "conv" type: "Convolution" bottom: "nothing" top: "c" '
                   'convolution_param { num_output: 1 kernel_size: 1 } }')
    argv = [a.format(tiny=tiny, train_val=train_val, bad=bad) for a in argv]
    assert main(argv) == status
    err = capsys.readouterr().err
    assert 'error: ' in err and message in err and 'Traceback' not in err


def test_segnet_is_refused_with_the_field_and_line(capsys):
    path = require_shared('models', 'prototxt', 'segnet_basic_inference.prototxt')
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}:7:3:" in err and 'dense_image_data_param' in err


def test_python_dash_m(tiny):
    run = subprocess.run([sys.executable, '-m', 'npcaffe.tools.summary', str(tiny)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert 'conv1' in run.stdout and 'total:' in run.stdout
