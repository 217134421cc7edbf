"""Drawing nets: python -m npcaffe.tools.draw, the layered layout, the SVG/PNG writers, and
pycaffe's caffe.draw API (npcaffe.draw) built on them."""
import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image

import npcaffe
import npcaffe.draw as caffe_draw
from npcaffe.errors import NotSupportedError
from npcaffe.proto import caffe_pb2
from npcaffe.tools import draw, render
from npcaffe.tools.draw import main, net_graph
from npcaffe.tools.layout import GraphCycleError, layered_layout
from tests.conftest import ROOT, require_shared

SVG = '{http://www.w3.org/2000/svg}'


def _svg(path):
    root = ET.parse(path).getroot()          # well-formed XML, or this raises
    assert root.tag == SVG + 'svg'
    return root


def _texts(root):
    return [t.text for t in root.iter(SVG + 'text')]


def _groups(root, cls):
    return [g for g in root.iter(SVG + 'g') if g.get('class') == cls]


def _expected_edges(layers):
    """One edge per distinct bottom and top of every layer that is not a tag (in place)."""
    count = 0
    for layer in layers:
        if list(layer.top) == list(layer.bottom):
            continue
        count += len(set(layer.bottom)) + len(set(layer.top))
    return count


def _net_param(path):
    return text_format.Parse(open(path).read(), caffe_pb2.NetParameter())


@pytest.mark.parametrize('case', ['fcn32s_tiny', 'fcn8s_tiny'])
def test_svg_of_a_golden_fcn_names_every_layer_and_blob_with_caffes_shapes(case, tmp_path):
    folder = require_shared('golden', case)
    out = tmp_path / 'net.svg'
    assert main([str(folder / 'net.prototxt'), str(out), '--phase', 'train']) == 0
    root = _svg(out)
    texts = _texts(root)
    joined = '\n'.join(texts)
    param = _net_param(folder / 'net.prototxt')
    for layer in param.layer:
        assert layer.name in joined, layer.name
        for blob in list(layer.top) + list(layer.bottom):
            assert blob in texts, blob
    # in-place layers are tags on their blob
    tags = {g.get('id').split('@')[0][len('layer:'):] for g in _groups(root, 'layer inplace')}
    assert tags == {layer.name for layer in param.layer if list(layer.top) == list(layer.bottom)}
    assert 'relu1_1 \u00b7 ReLU' in texts
    boxes = {g.get('id')[len('layer:'):] for g in _groups(root, 'layer')}
    assert boxes == {layer.name for layer in param.layer} - tags
    assert len(_groups(root, 'edge')) == _expected_edges(param.layer)
    # the shapes Caffe recorded
    recorded = np.load(folder / 'blobs.npz')
    for key in recorded.files:
        if key.startswith('data/') and recorded[key].shape:
            assert 'x'.join(map(str, recorded[key].shape)) in texts, key
    assert '3x3 p100 \u2192 4' in joined                     # conv1_1's key parameters


def test_every_edge_points_down_and_nodes_do_not_overlap(tmp_path):
    folder = require_shared('golden', 'fcn16s_tiny')
    drawing, _ = draw.drawing_of(str(folder / 'net.prototxt'), 'train')
    scene = draw.net_scene(drawing)
    boxes = {}
    for group in scene.groups:
        if group.cls in ('layer', 'blob'):
            shape = group.items[0]
            if isinstance(shape, render.Rect):
                boxes[group.id] = (shape.x, shape.y, shape.x + shape.w, shape.y + shape.h)
            else:
                boxes[group.id] = (shape.cx - shape.rx, shape.cy - shape.ry,
                                   shape.cx + shape.rx, shape.cy + shape.ry)
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (x0, y0, x1, y1), (u0, v0, u1, v1) = boxes[a], boxes[b]
            assert x1 <= u0 or u1 <= x0 or y1 <= v0 or v1 <= y0, (a, b)
    for group in scene.groups:
        if group.cls == 'edge':
            points = group.items[0].points
            assert all(p[1] < q[1] for p, q in zip(points, points[1:])), group.title


def test_png_and_dot_outputs(tmp_path):
    folder = require_shared('golden', 'fcn32s_tiny')
    png = tmp_path / 'net.png'
    assert main([str(folder / 'net.prototxt'), str(png), '--rankdir', 'LR']) == 0
    image = Image.open(png)
    assert image.format == 'PNG' and image.size[0] > image.size[1]    # left to right
    pixels = np.asarray(image.convert('L'))
    assert (pixels < 128).mean() > 0.005                               # text and lines drawn
    dot = tmp_path / 'net.dot'
    assert main([str(folder / 'net.prototxt'), str(dot)]) == 0
    text = dot.read_text()
    assert text.startswith('digraph') and 'rankdir=TB' in text and '"layer:upscore"' in text
    assert 'label="conv1_1\\nConvolution 3x3 p100' in text      # DOT's line break
    relus = [lp for lp in _net_param(folder / 'net.prototxt').layer if lp.type == 'ReLU']
    assert text.count('style=dashed') == len(relus) == 15     # in-place: joined to the blob


def test_rewritten_blobs_get_a_new_node_and_alternative_writers_share_one():
    net = text_format.Parse('''
      layer { name: "in" type: "Input" top: "x" top: "s" }
      layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
      layer { name: "scale" type: "Scale" bottom: "x" bottom: "s" top: "x"
              scale_param { axis: 0 } }
      layer { name: "d1" type: "DummyData" top: "y" include { phase: TRAIN } }
      layer { name: "d2" type: "DummyData" top: "y" include { phase: TEST } }
      layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "y" bottom: "y" top: "z" }
    ''', caffe_pb2.NetParameter())
    drawing = net_graph(net.layer)
    blobs = [n for n in drawing.nodes.values() if n.kind == 'blob']
    assert [n.id for n in blobs] == ['blob:x', 'blob:s', 'blob:x#2', 'blob:y', 'blob:z']
    assert [lp.name for lp in drawing.nodes['blob:x'].inplace] == ['relu']
    assert ('blob:x', 'layer:scale') in drawing.edges and \
        ('layer:scale', 'blob:x#2') in drawing.edges
    assert ('layer:d1', 'blob:y') in drawing.edges and ('layer:d2', 'blob:y') in drawing.edges
    assert drawing.edges.count(('blob:y', 'layer:sum')) == 1           # a repeated bottom
    assert sorted(drawing.layer_names()) == ['d1', 'd2', 'in', 'relu', 'scale', 'sum']
    svg = render.to_svg(draw.net_scene(drawing, 'LR', display_lrm=True, title='t'))
    ET.fromstring(svg)


def test_layer_details():
    def layer(text):
        return text_format.Parse(text, caffe_pb2.LayerParameter())
    assert draw.layer_details(layer('type: "Convolution" convolution_param { num_output: 64 '
                                    'kernel_size: 3 stride: 2 pad: 100 dilation: 2 group: 2 '
                                    'bias_term: false }')) == \
        '3x3 s2 p100 d2 g2 \u2192 64 no bias'
    assert draw.layer_details(layer('type: "Convolution" convolution_param { num_output: 8 '
                                    'kernel_h: 3 kernel_w: 1 }')) == '3x1 \u2192 8'
    assert draw.layer_details(layer('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 '
                                    'stride: 2 pad: 1 }')) == 'AVE 3x3 s2 p1'
    assert draw.layer_details(layer('type: "Pooling" pooling_param { global_pooling: true }')) \
        == 'MAX global'
    assert draw.layer_details(layer('type: "Crop" crop_param { axis: 2 offset: 19 }')) == \
        'axis 2 offset 19'
    assert draw.layer_details(layer('type: "Python" python_param { module: "layers.voc" '
                                    'layer: "VOCSegDataLayer" }')) == 'layers.voc.VOCSegDataLayer'
    assert draw.lr_mult_text(layer('param { lr_mult: 1 } param { lr_mult: 2 }')) == 'lr 1, 2'
    assert draw.colours_for('SoftmaxWithLoss') == draw.colours_for('EuclideanLoss')
    assert draw.colours_for('Convolution') != draw.colours_for('Pooling')


# -- the layout -----------------------------------------------------------------------------------
def test_layout_chain_is_straight_and_ranks_go_down():
    sizes = {v: (40, 20) for v in 'abcd'}
    lay = layered_layout(sizes, [('a', 'b'), ('b', 'c'), ('c', 'd')])
    assert len({round(lay.centers[v][0], 6) for v in 'abcd'}) == 1
    ys = [lay.centers[v][1] for v in 'abcd']
    assert ys == sorted(ys) and lay.ranks == {'a': 0, 'b': 1, 'c': 2, 'd': 3}
    lr = layered_layout(sizes, [('a', 'b'), ('b', 'c'), ('c', 'd')], rankdir='LR')
    assert [lr.centers[v][0] for v in 'abcd'] == sorted(lr.centers[v][0] for v in 'abcd')


def test_layout_orders_to_remove_crossings_and_routes_long_edges():
    # given in a crossing order: a->y, b->x with x listed first
    sizes = {v: (30, 20) for v in ['a', 'b', 'x', 'y', 'z']}
    lay = layered_layout(sizes, [('a', 'y'), ('b', 'x'), ('x', 'z'), ('y', 'z'), ('a', 'z')])
    assert lay.crossings == 0
    assert lay.ranks['z'] == 2
    route = lay.routes[4]          # a -> z spans two ranks: straight down through rank 1
    assert len(route) == 4 and all(p[1] < q[1] for p, q in zip(route, route[1:]))
    assert route[1][0] == route[2][0]


def test_layout_pulls_a_lone_source_down_to_its_use():
    sizes = {v: (30, 20) for v in ['a', 'b', 'c', 'd', 'label', 'loss']}
    edges = [('a', 'b'), ('b', 'c'), ('c', 'd'), ('d', 'loss'), ('label', 'loss')]
    lay = layered_layout(sizes, edges)
    assert lay.ranks['label'] == lay.ranks['loss'] - 1 == 3


def test_layout_refuses_cycles_and_unknown_nodes():
    with pytest.raises(GraphCycleError, match='cycle'):
        layered_layout({'a': (1, 1), 'b': (1, 1)}, [('a', 'b'), ('b', 'a')])
    with pytest.raises(ValueError, match="'c'"):
        layered_layout({'a': (1, 1)}, [('a', 'c')])
    with pytest.raises(ValueError, match='rankdir'):
        layered_layout({'a': (1, 1)}, [], rankdir='BT')


def test_text_width_uses_dejavu_metrics():
    assert render.text_width('', 12) == 0
    assert render.text_width('W', 10) > render.text_width('i', 10)
    assert render.text_width('conv', 10, bold=True) > render.text_width('conv', 10)


# -- command line ---------------------------------------------------------------------------------
TRAIN_VAL = '''name: "tv"
layer { name: "data" type: "Python" top: "data" top: "label" include { phase: TRAIN }
  python_param { module: "no_such_module" layer: "Anything" } }
layer { name: "data" type: "Python" top: "data" top: "label" include { phase: TEST }
  python_param { module: "no_such_module" layer: "Anything" } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
'''


def test_data_layers_drawn_with_shapes_given_shape_and_without_otherwise(tmp_path, caplog):
    net = tmp_path / 'tv.prototxt'
    net.write_text(TRAIN_VAL)
    assert main([str(net), str(tmp_path / 'a.svg')]) == 0
    assert '--shape' in caplog.text
    texts = _texts(_svg(tmp_path / 'a.svg'))
    assert 'data' in texts and not any(t and t[0].isdigit() for t in texts)
    assert main([str(net), str(tmp_path / 'b.svg'), '--shape', '2,3,8,8']) == 0
    texts = _texts(_svg(tmp_path / 'b.svg'))
    assert '2x3x8x8' in texts and '2x1x8x8' in texts and '2x3x8x8' in texts
    assert main([str(net), str(tmp_path / 'c.svg'), '--phase', 'all']) == 0
    root = _svg(tmp_path / 'c.svg')
    assert len(_groups(root, 'layer')) == 4          # both data layers


@pytest.mark.parametrize('argv,status,message', [
    (['{net}', '{tmp}/x.pdf'], 2, '.svg, .png or .dot'),
    (['{net}', '{tmp}/x.svg', '--rankdir', 'XY'], 2, 'invalid choice'),
    (['/no/such.prototxt', '{tmp}/x.svg'], 1, 'no such file'),
])
def test_cli_errors(argv, status, message, tmp_path, capsys):
    net = tmp_path / 'tv.prototxt'
    net.write_text(TRAIN_VAL)
    argv = [a.format(net=net, tmp=tmp_path) for a in argv]
    assert main(argv) == status
    err = capsys.readouterr().err
    assert 'error: ' in err and message in err and 'Traceback' not in err
    assert not (tmp_path / 'x.svg').exists()


def test_python_dash_m(tmp_path):
    folder = require_shared('golden', 'fcn32s_tiny')
    run = subprocess.run([sys.executable, '-m', 'npcaffe.tools.draw',
                          str(folder / 'net.prototxt'), str(tmp_path / 'n.svg')],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert 'wrote' in run.stdout and (tmp_path / 'n.svg').exists()


# -- pycaffe's caffe.draw -------------------------------------------------------------------------
def test_pycaffe_draw_to_file_without_graphviz(tmp_path):
    path = require_shared('models', 'lenet_mnist', 'lenet_train_test.prototxt')
    net = _net_param(path)
    assert npcaffe.draw is caffe_draw                       # caffe.draw, as in pycaffe
    caffe_draw.draw_net_to_file(net, str(tmp_path / 'all.svg'))
    caffe_draw.draw_net_to_file(net, str(tmp_path / 'train.svg'), 'TB', npcaffe.TRAIN)
    everything = _svg(tmp_path / 'all.svg')
    train = _svg(tmp_path / 'train.svg')
    assert len(_groups(everything, 'layer')) == len(net.layer) - 1     # relu1 is a tag
    assert 'accuracy' in '\n'.join(_texts(everything))
    assert 'accuracy' not in '\n'.join(_texts(train))                  # a TEST-only layer
    png = caffe_draw.draw_net(net, 'LR', ext='png', display_lrm=True)
    assert Image.open(io.BytesIO(png)).format == 'PNG'
    dot = caffe_draw.draw_net(net, 'LR', ext='dot').decode()
    assert 'label="500"' in dot                                        # pycaffe's edge labels


def test_pycaffe_draw_helpers():
    layer = text_format.Parse('name: "conv1" type: "Convolution" param { lr_mult: 1 } '
                              'convolution_param { num_output: 20 kernel_size: 5 }',
                              caffe_pb2.LayerParameter())
    assert caffe_draw.get_pooling_types_dict()[0] == 'MAX'
    assert caffe_draw.get_edge_label(layer) == '20'
    assert caffe_draw.get_layer_label(layer, 'TB') == 'conv1 (Convolution) 5x5 \u2192 20'
    assert caffe_draw.get_layer_label(layer, 'LR', display_lrm=True).split('\n') == \
        ['conv1', '(Convolution)', '5x5 \u2192 20', 'lr 1']
    assert caffe_draw.choose_color_by_layertype('Convolution').startswith('#')
    assert caffe_draw.get_layer_lr_mult(layer) == 'lr 1'


def test_pycaffe_pydot_paths_need_pydot(monkeypatch):
    net = text_format.Parse('layer { name: "in" type: "Input" top: "x" } '
                            'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }',
                            caffe_pb2.NetParameter())
    try:
        import pydot
    except ImportError:
        pydot = None
    if pydot is not None:                   # where pydot is installed, it parses our DOT
        graph = caffe_draw.get_pydot_graph(net, 'TB')
        assert {n.get_name().strip('"') for n in graph.get_nodes()} >= {'layer:in', 'blob:x'}
    monkeypatch.setitem(sys.modules, 'pydot', None)        # now as if it were not installed
    with pytest.raises(NotSupportedError, match='pip install pydot'):
        caffe_draw.get_pydot_graph(net, 'TB')
    with pytest.raises(NotSupportedError, match=r'\.svg, \.png and \.dot'):
        caffe_draw.draw_net(net, 'TB', ext='pdf')
