"""Smoke test of the benchmark's pieces on a tiny FCN (width 1/16, 64x64): the PyTorch peer's
forward, loss and gradients against npcaffe's where torch imports; always the memory child,
the tiling run and the tiled-against-whole check through the bench's own functions, and the
summary. No timing is asserted."""
import os

import numpy as np
import pytest

import npcaffe
from bench import __main__ as bench_main
from bench import measure, memory, models, torch_peer
from npcaffe import formats

WIDTH = 1 / 16
SHAPE = (1, 3, 64, 64)
HAS_TORCH = torch_peer.available()


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    return tmp_path_factory.mktemp('bench')


def _tiny(work, variant='fcn8s'):
    deploy = models.deploy_prototxt(variant, work, shape=SHAPE, width=WIDTH)
    weights = models.random_caffemodel(variant, work, width=WIDTH)
    return deploy, weights


# outside CI the peer needs the optional torch; CI installs it (.ci/run), and there its
# absence is a failure, not a skip
@pytest.mark.skipif(not HAS_TORCH and os.environ.get('CI') != 'true',
                    reason="torch not installed (pip install torch==2.13.0)")
@pytest.mark.parametrize('variant', ['fcn8s', 'fcn32s'])
def test_torch_peer_matches_npcaffe(work, variant):
    import torch
    deploy, weights = _tiny(work, variant)
    net = npcaffe.Net(str(deploy), str(weights), npcaffe.TEST)
    module = torch_peer.build_module(net)
    image, label = models.test_image(SHAPE), models.test_label(SHAPE)
    diff, scale, ours = torch_peer.compare_forward(net, module, image)
    assert diff <= 1e-4 * scale
    with torch.no_grad():
        theirs = torch_peer.loss(module(torch.from_numpy(image))['score'],
                                 torch.from_numpy(label)).item()
    assert theirs == pytest.approx(torch_peer.numpy_loss(ours, label), rel=1e-4)

    # gradients against npcaffe's train net without its Dropout layers (the peer has none)
    train = models.train_net_param(variant, shape=SHAPE, width=WIDTH)
    kept = [layer for layer in train.layer if layer.type != 'Dropout']
    del train.layer[:]
    train.layer.extend(kept)
    path = work / f'{variant}_train_nodropout.prototxt'
    formats.write_text(path, train)
    train_net = npcaffe.Net(str(path), str(weights), npcaffe.TRAIN)
    ours_loss, peer_loss, worst = torch_peer.compare_gradients(train_net, module, image, label)
    assert peer_loss == pytest.approx(ours_loss, rel=1e-4)
    assert worst <= 1e-4

    # one SGD step with Caffe's settings changes the learnable weights, not the frozen
    # bilinear deconvolutions (lr_mult 0)
    optimizer = torch_peer.sgd(module, models.sgd_solver_param(variant, train), train)
    deconv = next(n for n, layer in zip(net._layer_names, net.layers)
                  if layer.type == 'Deconvolution')
    frozen = module.param_layers[deconv][0].detach().clone()
    before = module.param_layers['score_fr'][0].detach().clone()
    for group in optimizer.param_groups:
        group['lr'] = 1e-6                                # a change visible at float32
    value = torch_peer.train_step(module, optimizer, torch.from_numpy(image),
                                  torch.from_numpy(label))
    assert np.isfinite(value)
    assert not torch.equal(module.param_layers['score_fr'][0], before)
    assert torch.equal(module.param_layers[deconv][0], frozen)


def test_torch_available_says_so():
    try:
        import torch  # noqa: F401
    except ImportError:
        assert not torch_peer.available()
    else:
        assert torch_peer.available()


def test_memory_child_and_tiles(work):
    deploy, weights = _tiny(work)
    result = bench_main._child('memory', ['forward', 'npcaffe', deploy, weights])
    assert result['peak'] >= result['base'] > 0 and result['seconds'] >= 0

    run = memory.tile_run(work, size=(700, 300), tile=64, tiles=1, width=WIDTH)
    assert run['tiles_run'] == 1 and run['tiles_total'] == 11 * 5
    assert run['label_shape'] == [300, 700] and run['peak'] > 0
    assert run['estimate'] >= run['seconds']

    diff, count, tile, margin = memory.tile_equality(work, size=(200, 150), tile=64,
                                                     width=WIDTH)
    assert count == 4 * 3 and tile == 64 and margin % 32 == 0
    assert diff <= 1e-5


def test_summary_lists_the_targets(capsys):
    ctx = dict(sizes=((500, 375),), start=0.0, load_start='1.00 1.00 1.00', results={
        'forward fcn8s 500x375': 0.9, 'efficiency fcn8s 500x375': 1.2,
        'peers fcn8s 500x375': {'OpenCV': 0.6, 'OpenVINO': 1.1},
        'memory': (1.5, 1500.0, 1000.0), 'tile rss': 2600.0, 'tile equality': 1e-6,
        'torch agreement': (1e-6, 1e-7), 'train': (0.6, 12.0, 20.0, 3400.0, 3500.0)})
    bench_main.summary(ctx)
    out = capsys.readouterr().out
    assert 'issue 18 summary' in out
    memory_row = next(line for line in out.splitlines() if '(reuse_memory)/ORT' in line)
    assert memory_row.endswith('NOT met')
    peers_row = next(line for line in out.splitlines() if 'the other engines' in line)
    assert 'OpenVINO 1.10' in peers_row and peers_row.endswith('NOT met')
    rss_row = next(line for line in out.splitlines() if 'peak RSS npcaffe/PyTorch' in line)
    assert '0.97 (3400/3500 MiB)' in rss_row and rss_row.endswith(' met')
    assert sum(line.endswith(' met') for line in out.splitlines()) == 8
    assert measure.peak_rss_mb() > 0


def test_size_argument():
    assert bench_main._size('1000x750') == (1000, 750)
    with pytest.raises(Exception):
        bench_main._size('big')


def test_long_measurements_announce_themselves_on_stderr(capsys):
    """The bench says what it is about to time (stderr), keeping stdout to the results."""
    bench_main._running('fcn8s forward 500x375: npcaffe, opencv')
    out, err = capsys.readouterr()
    assert out == '' and err.rstrip().endswith('fcn8s forward 500x375: npcaffe, opencv ...')
