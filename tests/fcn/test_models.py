"""fcn/models.py: the registry's real entries (checked without fetching), and fetch / resume /
checksum / cache / remove / infer --model on test models served from a temporary folder
(file:// and a Range-capable http.server on 127.0.0.1). Nothing real is downloaded."""
import hashlib
import http.server
import json
import threading
import urllib.parse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npcaffe
from fcn import cli, models, segment, vis

WIDTH = 1 / 64


def _tiny_model(tmp_path, name, variant='fcn8s', classes=models.VOC_CLASSES, seed=0):
    """A test model: the variant's deploy net at WIDTH with seeded random weights saved as
    its caffemodel in tmp_path/mirror; registered with its exact size and SHA-256."""
    mirror = tmp_path / 'mirror'
    mirror.mkdir(exist_ok=True)
    model = models.PublishedModel(name, f'http://example.invalid/{name}.caffemodel', variant,
                                  'test', tuple(classes), width=WIDTH)
    deploy = tmp_path / f'{name}.prototxt'
    deploy.write_text(str(model.deploy_net(64, 64)))
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 0.1, blob.data.shape)
    weights = mirror / model.filename
    net.save(str(weights))
    data = weights.read_bytes()
    return replace(model, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def registered():
    """register(model) for the test; the models are taken out of the registry afterwards."""
    added = []

    def add(model):
        added.append(model.name)
        return models.register(model)
    yield add
    for name in added:
        models.REGISTRY.pop(name, None)


@pytest.fixture
def tiny(tmp_path, registered):
    model = registered(_tiny_model(tmp_path, 'test-tiny-fcn8s'))
    return model, (tmp_path / 'mirror').as_uri(), tmp_path / 'cache'


# ------------------------------------------------------------------------------------------
# the registry's real entries
REQUIRED = ['voc-fcn32s', 'voc-fcn16s', 'voc-fcn8s', 'voc-fcn8s-atonce', 'voc-fcn-alexnet',
            'pascalcontext-fcn32s', 'pascalcontext-fcn16s', 'pascalcontext-fcn8s',
            'siftflow-fcn32s', 'siftflow-fcn16s', 'siftflow-fcn8s', 'nyud-fcn32s-color',
            'nyud-fcn32s-hha', 'nyud-fcn32s-color-d', 'nyud-fcn32s-color-hha']


def test_the_registry_holds_the_published_models():
    assert [n for n in REQUIRED if n not in models.REGISTRY] == []
    assert not [n for n in models.REGISTRY if n.startswith('test')]


@pytest.mark.parametrize('name', REQUIRED)
def test_each_deploy_net_builds_with_its_classes_and_input_channels(name):
    model = models.get(name)
    small = replace(model, width=WIDTH)
    net = npcaffe.Net(small.deploy_net(37, 45), npcaffe.TEST)
    for blob, channels, _ in model.inputs:
        assert net.blobs[blob].data.shape == (1, channels, 37, 45)
    assert net.blobs[model.score_blob].data.shape == (1, model.num_classes, 37, 45)
    for head, names in model.heads.items():
        assert net.blobs[head].data.shape == (1, len(names), 37, 45)
    if model.url is None:
        assert 'no published weights' in model.note
        with pytest.raises(models.ModelError, match='no published weights'):
            models.fetch(name, cache='/nonexistent')
        return
    parts = urllib.parse.urlparse(model.url)
    assert parts.scheme == 'http' and parts.netloc == 'dl.caffe.berkeleyvision.org'
    assert model.filename.endswith('.caffemodel')
    assert model.weight_bytes() > 100e6            # VGG16 / AlexNet weights, full width


def test_published_facts():
    assert models.get('voc-fcn8s').scores['seg11valid mean IU'] == 65.5
    assert models.get('voc-fcn8s').url == \
        'http://dl.caffe.berkeleyvision.org/fcn8s-heavy-pascal.caffemodel'
    assert models.get('pascalcontext-fcn8s').num_classes == 60
    assert models.get('siftflow-fcn8s').heads == {'score_geo': ('sky', 'horizontal', 'vertical')}
    assert models.get('nyud-fcn32s-color').mean == (116.190, 97.203, 92.318)
    # 4 bytes per parameter: fcn32s = VGG16 conv (14,714,688) + fc6/fc7 + score_fr + upscore
    vgg_conv = 14_714_688
    fc = 512 * 49 * 4096 + 4096 + 4096 * 4096 + 4096
    head = 4096 * 21 + 21 + 21 * 21 * 64 * 64
    assert models.get('voc-fcn32s').weight_bytes() == 4 * (vgg_conv + fc + head)


def test_unknown_model_names_the_close_ones():
    with pytest.raises(models.ModelError, match="did you mean voc-fcn8s"):
        models.get('voc-fcn8')
    with pytest.raises(models.ModelError, match='already registered'):
        models.register(models.get('voc-fcn8s'))


def test_cache_folder_comes_from_fcn_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('FCN_CACHE', str(tmp_path / 'c'))
    assert models.model_dir('voc-fcn8s') == tmp_path / 'c' / 'models' / 'voc-fcn8s'
    monkeypatch.delenv('FCN_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'x'))
    assert models.cache_root() == tmp_path / 'x' / 'fcn'


# ------------------------------------------------------------------------------------------
# fetch, checks, cache
def test_fetch_verify_reuse_remove(tiny, capsys):
    model, mirror, cache = tiny
    path = models.fetch(model.name, mirror, cache)
    assert path.read_bytes() == (Path(mirror[len('file://'):]) / model.filename).read_bytes()
    assert 'matches the published checksum' in capsys.readouterr().out
    models.fetch(model.name, mirror, cache)                  # reused, not downloaded again
    assert 'already downloaded' in capsys.readouterr().out
    assert 'matches' in models.verify(model.name, cache)
    deploy = models.deploy_prototxt(model.name, cache)
    mine = path.parent / 'my-notes.txt'
    mine.write_text('not the cache\'s')
    removed = models.remove(model.name, cache)
    assert sorted(p.name for p in removed) == sorted([model.filename, 'deploy.prototxt'])
    assert not path.exists() and not deploy.exists() and mine.exists()


def test_checksum_mismatch_is_refused_and_kept_apart(tmp_path, registered):
    model = _tiny_model(tmp_path, 'test-bad-sum')
    registered(replace(model, sha256='0' * 64))
    with pytest.raises(models.ModelError, match='differs from the published'):
        models.fetch(model.name, (tmp_path / 'mirror').as_uri(), tmp_path / 'cache')
    folder = tmp_path / 'cache' / 'models' / model.name
    assert not (folder / model.filename).exists()
    assert (folder / (model.filename + '.bad')).stat().st_size == model.size


def test_wrong_size_is_refused(tmp_path, registered):
    model = registered(replace(_tiny_model(tmp_path, 'test-bad-size'), size=123))
    with pytest.raises(models.ModelError, match='not the 123 bytes'):
        models.fetch(model.name, (tmp_path / 'mirror').as_uri(), tmp_path / 'cache')


def test_trust_on_first_use_then_checked(tmp_path, registered):
    """Without a published checksum: the size must hold the weights; the SHA-256 of the first
    download is recorded, and a changed file is refused by verify."""
    model = registered(replace(_tiny_model(tmp_path, 'test-tofu'), size=None, sha256=None))
    cache = tmp_path / 'cache'
    path = models.fetch(model.name, (tmp_path / 'mirror').as_uri(), cache)
    record = json.loads((cache / 'checksums.json').read_text())
    assert record[model.filename]['sha256'] == hashlib.sha256(path.read_bytes()).hexdigest()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(models.ModelError, match='recorded'):
        models.verify(model.name, cache)
    assert (path.parent / (model.filename + '.bad')).exists()
    path.write_bytes(bytes(data[:100]))            # too small to hold the weights
    with pytest.raises(models.ModelError, match='cannot hold'):
        models.verify(model.name, cache)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.files {path: bytes} with Range support; server.cut_once cuts the first
    full response after that many bytes; server.ranges records the Range headers seen."""

    def do_GET(self):
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        wanted = self.headers.get('Range')
        self.server.ranges.append(wanted)
        start = int(wanted[len('bytes='):].split('-')[0]) if wanted else 0
        self.send_response(206 if wanted else 200)
        if wanted:
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.cut_once and not wanted:
            body, self.server.cut_once = body[:self.server.cut_once], 0
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _RangeHandler)
    server.files, server.ranges, server.cut_once = {}, [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_resume_after_a_cut(tmp_path, registered, http_mirror):
    model = registered(_tiny_model(tmp_path, 'test-resume'))
    data = (tmp_path / 'mirror' / model.filename).read_bytes()
    http_mirror.files['/models/' + model.filename] = data
    http_mirror.cut_once = len(data) // 3
    url = f'http://127.0.0.1:{http_mirror.server_address[1]}/models'
    cache = tmp_path / 'cache'
    with pytest.raises(models.ModelError, match='resume'):
        models.fetch(model.name, url, cache)
    part = cache / 'models' / model.name / (model.filename + '.part')
    assert part.stat().st_size == len(data) // 3
    path = models.fetch(model.name, url, cache)
    assert path.read_bytes() == data and not part.exists()
    assert http_mirror.ranges == [None, f'bytes={len(data) // 3}-']


# ------------------------------------------------------------------------------------------
# segmenting
def test_from_pretrained_and_infer_model_end_to_end(tiny, tmp_path, capsys):
    model, mirror, cache = tiny
    rng = np.random.default_rng(3)
    images = []
    for i, (h, w) in enumerate([(40, 52), (33, 31)]):
        images.append(tmp_path / f'img{i}.png')
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(images[-1])
    out = tmp_path / 'seg'
    rc = cli.main(['infer', '--model', model.name, '--mirror', mirror, '--cache', str(cache),
                   '--out', str(out)] + [str(p) for p in images])
    assert rc == 0, capsys.readouterr().err
    seg = segment.Segmenter.from_pretrained(model.name, mirror, cache)
    assert seg.class_names == models.VOC_CLASSES and seg.num_classes == 21
    for p in images:
        rgb = np.asarray(Image.open(p).convert('RGB'))
        expected = seg.scores(rgb).argmax(axis=0)
        label = np.asarray(Image.open(out / f'{p.stem}.png'))
        np.testing.assert_array_equal(label, expected)
        overlay = np.asarray(Image.open(out / f'{p.stem}_overlay.jpg'))
        legend = vis.legend(label, models.VOC_CLASSES, height=rgb.shape[0])
        assert overlay.shape == (max(rgb.shape[0], legend.shape[0]),
                                 rgb.shape[1] + legend.shape[1], 3)


def test_infer_model_refuses_other_inputs_and_deploy(tiny, tmp_path):
    model, mirror, cache = tiny
    image = tmp_path / 'a.png'
    Image.new('RGB', (8, 8)).save(image)
    assert cli.main(['infer', '--model', 'nyud-fcn32s-hha', '--cache', str(cache),
                     str(image)]) == 1
    assert cli.main(['infer', '--model', model.name, '--deploy', 'x.prototxt',
                     str(image)]) == 2
    with pytest.raises(models.ModelError, match='takes rgb .3. \\+ hha'):
        segment.Segmenter.from_pretrained('nyud-fcn32s-color-hha', cache=cache)


def test_legend_lists_the_classes_present():
    label = np.array([[0, 0, 15], [15, 255, 2]], np.uint8)
    panel = vis.legend(label, models.VOC_CLASSES, height=5)
    assert panel.shape[0] == 4 + 3 * vis.LEGEND_ROW           # background, bird, person
    swatch = vis.voc_palette()[15]
    assert (panel[4 + 2 * vis.LEGEND_ROW + 5, 8] == swatch).all()   # third row: person
    assert vis.overlay_with_legend(np.zeros((2, 3, 3), np.uint8), label).shape == (2, 3, 3)


def test_models_command_lists_fetches_verifies_removes(tiny, capsys):
    model, mirror, cache = tiny
    assert cli.main(['models', 'list', '--cache', str(cache)]) == 0
    out = capsys.readouterr().out
    assert 'voc-fcn8s ' in out and 'test-tiny-fcn8s' in out and 'seg11valid mean IU 65.5' in out
    assert cli.main(['models', 'fetch', model.name, '--mirror', mirror,
                     '--cache', str(cache)]) == 0
    assert cli.main(['models', 'verify', model.name, '--cache', str(cache)]) == 0
    assert 'matches' in capsys.readouterr().out
    assert cli.main(['models', 'list', '--cache', str(cache)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith(model.name))
    assert line.split()[-1] == 'yes'
    assert cli.main(['models', 'remove', model.name, '--cache', str(cache)]) == 0
    assert 'removed 2 file(s)' in capsys.readouterr().out
    assert cli.main(['models', 'fetch', 'no-such-model', '--cache', str(cache)]) == 1
    assert cli.main(['models', 'fetch', '--cache', str(cache)]) == 2
