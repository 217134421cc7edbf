"""layers.voc (VOCSegDataLayer, SBDDSegDataLayer) and layers.params, through real Nets.

The oracle is shared/golden/python_data_layers: the blobs the reference layers gave under BVLC
Caffe for the first 3 forwards on voc-mini / sbd-mini, split val. The random order is checked
against the reference's rule written out here (random.seed(seed), then randint draws).
"""
import pickle
import random
import threading

import numpy as np
import pytest
from PIL import Image

from fcn.backend import caffe
from layers.images import DataError, Prefetcher
from layers.params import ParamError, parse_literal, parse_params
from layers.voc import SBDDSegDataLayer, VOCSegDataLayer
from tests.conftest import require_shared

MEAN = (104.00699, 116.66877, 122.67892)
TOL = 1e-5

NET = """layer {{
  name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "layers.voc" layer: "{layer}" param_str: "{param_str}" }}
}}
"""


def _escape(text):
    return text.replace('\\', '\\\\').replace('"', '\\"')


def make_net(tmp_path, layer, params, phase=caffe.TEST, raw=None):
    """A Net holding only the data layer ``layer`` with ``str(params)`` (or ``raw``)."""
    param_str = raw if raw is not None else str(params)
    proto = tmp_path / f'{layer}.prototxt'
    proto.write_text(NET.format(layer=layer, param_str=_escape(param_str)))
    return caffe.Net(str(proto), phase)


@pytest.fixture
def voc_dir():
    return require_shared('data', 'voc-mini', 'VOC2012')


@pytest.fixture
def sbdd_dir():
    return require_shared('data', 'sbd-mini', 'dataset')


@pytest.fixture(scope='module')
def golden():
    path = require_shared('golden', 'python_data_layers', 'python_data_layers.npz')
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class ArrayBlob:
    """The part of a Blob a data layer uses: reshape(*shape) and a writable data."""

    def __init__(self):
        self.data = np.zeros(0, np.float32)

    def reshape(self, *shape):
        self.data = np.zeros(shape, np.float32)


def _run(net, n):
    """[(id, data, label)] of n forwards."""
    out = []
    for _ in range(n):
        sample_id = net.layers[0].current_id
        net.forward()
        out.append((sample_id, net.blobs['data'].data.copy(), net.blobs['label'].data.copy()))
    return out


def _assert_golden(results, golden, prefix):
    for k, (sample_id, data, label) in enumerate(results):
        assert sample_id == str(golden[f'{prefix}/{k}/id'])
        expected = golden[f'{prefix}/{k}/data']
        assert data.shape == expected.shape and data.dtype == np.float32
        assert np.abs(data - expected).max() <= TOL, f"{prefix}/{k}/data"
        np.testing.assert_array_equal(label, golden[f'{prefix}/{k}/label'])


# ------------------------------------------------------------------------------------------
# golden blobs

@pytest.mark.parametrize('phase', [caffe.TEST, caffe.TRAIN])
def test_voc_layer_equals_golden(tmp_path, voc_dir, golden, phase):
    # split 'val' has no 'train' in its name: list order in both phases, as the reference
    net = make_net(tmp_path, 'VOCSegDataLayer',
                   dict(voc_dir=str(voc_dir), split='val', mean=MEAN, seed=1337), phase)
    assert net.blobs['data'].shape == (1, 3, 281, 500)      # reshaped to the first image
    assert net.blobs['label'].shape == (1, 1, 281, 500)
    _assert_golden(_run(net, 3), golden, 'voc')


def test_sbdd_layer_equals_golden(tmp_path, sbdd_dir, golden):
    net = make_net(tmp_path, 'SBDDSegDataLayer',
                   dict(sbdd_dir=str(sbdd_dir), split='val', mean=MEAN), caffe.TEST)
    _assert_golden(_run(net, 3), golden, 'sbdd')


def test_json_param_str_gives_the_same_blobs(tmp_path, sbdd_dir, golden):
    raw = ('{"sbdd_dir": "%s", "split": "val", "mean": [104.00699, 116.66877, 122.67892], '
           '"randomize": true, "seed": null, "prefetch": 0}' % sbdd_dir)
    net = make_net(tmp_path, 'SBDDSegDataLayer', None, caffe.TRAIN, raw=raw)
    _assert_golden(_run(net, 3), golden, 'sbdd')


def test_list_order_wraps_around(tmp_path, voc_dir):
    ids = (voc_dir / 'ImageSets' / 'Segmentation' / 'val.txt').read_text().split()
    net = make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir), split='val',
                                                     mean=MEAN, prefetch=1))
    seen = [sample_id for sample_id, _, _ in _run(net, len(ids) + 2)]
    assert seen == ids + ids[:2]


# ------------------------------------------------------------------------------------------
# random order

def reference_order(seed, n, count):
    """The reference layer's indices: random.seed(seed); randint at setup and every forward."""
    state = random.getstate()
    try:
        random.seed(seed)
        return [random.randint(0, n - 1) for _ in range(count)]
    finally:
        random.setstate(state)


def test_train_split_random_order_follows_reference(tmp_path, voc_dir):
    ids = (voc_dir / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()
    net = make_net(tmp_path, 'VOCSegDataLayer',
                   dict(voc_dir=str(voc_dir), split='train', mean=MEAN, seed=1337), caffe.TRAIN)
    random.seed(0)   # the layer keeps its own generator: the global state does not matter
    results = _run(net, 8)
    expected = [ids[i] for i in reference_order(1337, len(ids), 8)]
    assert [r[0] for r in results] == expected
    assert len(set(expected)) > 1
    # each sample's blobs are that image's, preprocessed as the reference does
    sample_id, data, label = results[3]
    rgb = np.array(Image.open(voc_dir / 'JPEGImages' / f'{sample_id}.jpg'), dtype=np.float32)
    want = (rgb[:, :, ::-1] - np.array(MEAN)).astype(np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(data[0], want)
    png = np.array(Image.open(voc_dir / 'SegmentationClass' / f'{sample_id}.png'))
    np.testing.assert_array_equal(label[0, 0], png.astype(np.float32))


def test_test_phase_and_randomize_false_read_in_order(tmp_path, voc_dir):
    ids = (voc_dir / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()
    for phase, randomize in ((caffe.TEST, True), (caffe.TRAIN, False)):
        net = make_net(tmp_path, 'VOCSegDataLayer', dict(
            voc_dir=str(voc_dir), split='train', mean=MEAN, seed=1337, randomize=randomize),
            phase)
        assert [r[0] for r in _run(net, 4)] == ids[:4]


def test_prefetch_does_not_change_the_sequence(tmp_path, voc_dir):
    runs = []
    for prefetch in (0, 1, 5):
        net = make_net(tmp_path, 'VOCSegDataLayer', dict(
            voc_dir=str(voc_dir), split='trainval', mean=MEAN, seed=7, prefetch=prefetch),
            caffe.TRAIN)
        runs.append(_run(net, 6))
    for other in runs[1:]:
        assert [r[0] for r in other] == [r[0] for r in runs[0]]
        for (_, d0, l0), (_, d1, l1) in zip(runs[0], other):
            np.testing.assert_array_equal(d0, d1)
            np.testing.assert_array_equal(l0, l1)


def test_prefetch_thread_is_a_daemon(tmp_path, voc_dir):
    net = make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir), split='val',
                                                     mean=MEAN))
    thread = net.layers[0]._prefetcher._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    assert thread.name == 'seg-data-prefetch'


def test_reset_and_pickle_continue_the_same_sequence(tmp_path, voc_dir):
    params = dict(voc_dir=str(voc_dir), split='trainval', mean=MEAN, seed=3)
    net = make_net(tmp_path, 'VOCSegDataLayer', params, caffe.TRAIN)
    layer = net.layers[0]
    first = [r[0] for r in _run(net, 5)]
    layer.reset()
    assert [r[0] for r in _run(net, 5)] == first

    layer.reset()
    _run(net, 2)
    copy = pickle.loads(pickle.dumps(layer))
    thread = copy._prefetcher._thread                # a thread of its own
    assert thread is not layer._prefetcher._thread and thread.daemon
    rest = [r[0] for r in _run(net, 3)]
    assert rest == first[2:]
    blobs = [ArrayBlob(), ArrayBlob()]
    seen = []
    for _ in range(3):
        seen.append(copy.current_id)
        copy.reshape([], blobs)
        copy.forward([], blobs)
    assert seen == first[2:]
    np.testing.assert_array_equal(blobs[0].data, net.blobs['data'].data)
    np.testing.assert_array_equal(blobs[1].data, net.blobs['label'].data)


def test_reshape_twice_keeps_the_sample_and_backward_does_nothing(tmp_path, voc_dir):
    net = make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir), split='val',
                                                     mean=MEAN))
    net.reshape()
    net.reshape()
    assert net.layers[0].current_id == '2007_000032'
    assert net.blobs['data'].shape == (1, 3, 281, 500)
    net.forward()
    net.layers[0].backward([net.blobs['data'], net.blobs['label']], [], [])
    assert net.layers[0].current_id == 'val513_000'


# ------------------------------------------------------------------------------------------
# parameters and errors

def test_unknown_key_lists_the_known_ones(tmp_path, voc_dir):
    with pytest.raises(ValueError) as err:
        make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir), split='val',
                                                   mean=MEAN, shuffle=True))
    message = str(err.value)
    assert "unknown parameter 'shuffle'" in message
    for known in ('voc_dir', 'split', 'mean', 'randomize', 'seed'):
        assert known in message


def test_missing_required_keys_are_named(tmp_path, voc_dir):
    with pytest.raises(ValueError, match=r"missing required parameters 'split'.*'mean'"):
        make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir)))


def test_param_str_is_never_evaluated(tmp_path, voc_dir):
    raw = "__import__('os').system('exit 3') or dict(voc_dir='x', split='val', mean=(1, 2, 3))"
    with pytest.raises(ValueError, match='cannot read .* as a dict of parameters'):
        make_net(tmp_path, 'VOCSegDataLayer', None, raw=raw)


def test_missing_split_file_is_named(tmp_path, voc_dir):
    with pytest.raises(ValueError, match=r'ImageSets/Segmentation/nosuch\.txt: split list'):
        make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(voc_dir), split='nosuch',
                                                   mean=MEAN))


def test_rgb_voc_label_is_refused(tmp_path, voc_dir):
    root = tmp_path / 'VOC'
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (root / 'JPEGImages').mkdir()
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('a\n')
    Image.new('RGB', (8, 6), (10, 20, 30)).save(root / 'JPEGImages' / 'a.jpg')
    Image.new('RGB', (8, 6), (128, 0, 0)).save(root / 'SegmentationClass' / 'a.png')
    with pytest.raises(ValueError) as err:
        make_net(tmp_path, 'VOCSegDataLayer', dict(voc_dir=str(root), split='val', mean=MEAN))
    assert str(root / 'SegmentationClass' / 'a.png') in str(err.value)
    assert 'fcn labels convert' in str(err.value)


def test_missing_image_is_named_at_setup(tmp_path):
    root = tmp_path / 'sbd'
    (root / 'img').mkdir(parents=True)
    (root / 'cls').mkdir()
    (root / 'val.txt').write_text('x1\n')
    with pytest.raises(ValueError, match=r'img/x1\.jpg does not exist \(and 1 more'):
        make_net(tmp_path, 'SBDDSegDataLayer', dict(sbdd_dir=str(root), split='val', mean=MEAN))


@pytest.mark.parametrize('text, expected', [
    ("{'split': 'val', 'mean': (1, 2, 3)}", {'split': 'val', 'mean': (1, 2, 3)}),
    ("dict(split='val', seed=None)", {'split': 'val', 'seed': None}),
    ('{"split": "val", "randomize": false, "seed": null}',
     {'split': 'val', 'randomize': False, 'seed': None}),
    ('', {}),
])
def test_parse_literal_accepts_python_dict_call_and_json(text, expected):
    assert parse_literal(text) == expected


@pytest.mark.parametrize('text, pattern', [
    ("[1, 2]", 'must be a dict of parameters, got list'),
    ("{1: 2}", 'parameter names must be strings'),
    ("{'split': open('x')}", 'cannot read'),
    ("voc_dir=/data", 'cannot read'),
])
def test_parse_literal_errors(text, pattern):
    with pytest.raises(ParamError, match=pattern):
        parse_literal(text, 'where')


@pytest.mark.parametrize('params, pattern', [
    ({'mean': (1, 2)}, r"parameter 'mean': expected a \(B, G, R\) tuple of 3 numbers"),
    ({'mean': 'bgr'}, r"parameter 'mean': expected a \(B, G, R\) tuple"),
    ({'randomize': 1}, r"parameter 'randomize': expected True or False"),
    ({'seed': 1.5}, r"parameter 'seed': expected an integer"),
    ({'prefetch': -1}, r"parameter 'prefetch': expected an integer >= 0"),
    ({'split': ''}, r"parameter 'split': expected a non-empty string"),
    ({'splt': 'val'}, r"unknown parameter 'splt' \(did you mean 'split'\?\)"),
])
def test_parameter_values_are_checked(params, pattern):
    given = {'voc_dir': '/x', 'split': 'val', 'mean': MEAN, **params}
    with pytest.raises(ParamError, match=pattern):
        parse_params(str(given), VOCSegDataLayer.PARAMS, 'VOCSegDataLayer')


def test_defaults_are_the_reference_ones():
    params = parse_params(str({'sbdd_dir': '/x', 'split': 'train', 'mean': [1, 2, 3]}),
                          SBDDSegDataLayer.PARAMS)
    assert params['randomize'] is True and params['seed'] is None
    assert params['mean'] == (1.0, 2.0, 3.0)


# ------------------------------------------------------------------------------------------
# the prefetcher on its own

def test_prefetcher_keeps_order_and_reraises_in_the_caller():
    calls = []

    def load(key):
        calls.append((key, threading.current_thread().name))
        if key == 'bad':
            raise DataError('bad: broken')
        return key * 2

    p = Prefetcher(load)
    for key in ('a', 'b', 'bad', 'c'):
        p.schedule(key)
    assert p.next() == ('a', 'aa')
    assert p.next() == ('b', 'bb')
    with pytest.raises(DataError, match='bad: broken'):
        p.next()
    assert p.next() == ('c', 'cc')
    assert {name for _, name in calls} == {'seg-data-prefetch'}
    p.close()
