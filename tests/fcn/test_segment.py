"""fcn/segment.py (``python infer.py``, ``fcn infer``): image modes, preprocessing, label PNGs
the size of the input, errors."""
import numpy as np
import pytest
from PIL import Image

import nets
import npcaffe
from fcn import segment
from npcaffe import formats


@pytest.fixture(scope='module')
def tiny_fcn(tmp_path_factory):
    """A width-1/64 FCN-8s deploy net with random weights (5 classes)."""
    folder = tmp_path_factory.mktemp('fcn')
    deploy = folder / 'deploy.prototxt'
    formats.write_text(deploy, nets.fcn('fcn8s', 5, None, 1 / 64, input_shape=(1, 3, 32, 32)))
    net = npcaffe.Net(str(deploy), npcaffe.TEST)
    rng = np.random.default_rng(0)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 0.1, blob.shape)
    weights = folder / 'w.caffemodel'
    net.save(str(weights))
    return deploy, weights


@pytest.mark.parametrize('mode', ['L', 'LA', 'RGBA', 'P', 'CMYK', 'I;16', 'I', 'F', '1'])
def test_every_common_mode_becomes_rgb(mode):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    if mode == 'I;16':
        image = Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257))
        assert image.mode.startswith('I;16')
    elif mode in ('I', 'F'):
        image = Image.fromarray(rgb[:, :, 0].astype(np.int32 if mode == 'I' else np.float32))
    else:
        image = base.convert(mode)
    out = segment.image_to_rgb(image)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    if mode in ('I;16', 'I', 'F'):      # greyscale values map back to 0..255
        np.testing.assert_array_equal(out[:, :, 1], rgb[:, :, 0])


def test_preprocess_is_bgr_minus_mean_channels_first():
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    data = segment.preprocess(rgb, mean=(1, 2, 3))
    assert data.shape == (1, 3, 1, 1) and data.dtype == np.float32
    np.testing.assert_array_equal(data.ravel(), [29, 18, 7])


@pytest.mark.parametrize('size', [(1, 1), (7, 13), (40, 33)])
def test_labels_have_the_input_size_and_the_palette(tiny_fcn, tmp_path, size):
    deploy, weights = tiny_fcn
    h, w = size
    image = tmp_path / 'photo.png'
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (h, w, 3), np.uint8)).save(image)
    out = tmp_path / 'out'
    assert segment.main(['--deploy', str(deploy), '--weights', str(weights), '--out', str(out),
                       '--overlay', '--save-scores', str(image)]) == 0
    label = Image.open(out / 'photo.png')
    assert label.mode == 'P' and label.size == (w, h)
    assert label.getpalette()[3:6] == [128, 0, 0]
    scores = np.load(out / 'photo_scores.npy')
    assert scores.shape == (5, h, w)
    np.testing.assert_array_equal(np.asarray(label), scores.argmax(0))
    assert Image.open(out / 'photo_overlay.jpg').size == (w, h)


def test_max_size_downscales_and_labels_come_back_full_size(tiny_fcn, tmp_path):
    deploy, weights = tiny_fcn
    Image.new('RGB', (90, 30), (200, 10, 10)).save(tmp_path / 'wide.jpg')
    seg = segment.Segmenter(deploy, weights)
    label = segment.segment_file(seg, tmp_path / 'wide.jpg', tmp_path, max_size=30)
    assert label.shape == (30, 90)


def test_folder_input_and_name_clashes(tiny_fcn, tmp_path):
    images = tmp_path / 'imgs'
    images.mkdir()
    for name in ('a.png', 'b.jpg', 'notes.txt'):
        (images / name).write_bytes(b'')
    assert [p.name for p in segment.collect_images([images])] == ['a.png', 'b.jpg']
    (images / 'a.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match=r'a\.(png|jpg) and .*a\.(png|jpg) would both'):
        segment.collect_images([images])


def test_too_large_for_memory_gives_an_estimate(tiny_fcn, monkeypatch):
    seg = segment.Segmenter(*tiny_fcn)
    monkeypatch.setattr(segment, 'available_memory', lambda: 10 * 2**20)
    with pytest.raises(MemoryError, match=r'big\.jpg: a 20000x10000 image needs about .* GiB'):
        seg.check_memory(10000, 20000, 'big.jpg')


def test_cli_errors_are_one_line(tiny_fcn, tmp_path, capsys):
    deploy, weights = tiny_fcn
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    assert segment.main(['--deploy', str(deploy), '--weights', str(weights), '--out',
                       str(tmp_path / 'o'), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'broken.jpg' in err and 'Traceback' not in err
    assert segment.main(['--deploy', str(deploy), '--weights', str(tmp_path / 'none.caffemodel'),
                       '--out', str(tmp_path / 'o'), str(bad)]) == 1
    assert 'none.caffemodel' in capsys.readouterr().err
    assert segment.main(['--out', 'x', 'y']) == 2
    assert 'required' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# memory, pixel limits, failures, progress
def test_the_memory_estimate_is_the_blobs_of_the_net_at_that_size(tiny_fcn):
    """The estimate is what a forward at that size holds: the net's blobs reshaped to it (not
    a scale-up of the deploy size, which FCN's pad 100 makes far too high)."""
    seg = segment.Segmenter(*tiny_fcn)
    need = seg.memory_needed(200, 300)
    seg.scores(np.zeros((200, 300, 3), np.uint8))
    held = sum(b.data.nbytes for b in seg.net.blobs.values())
    assert need == held
    # the old rule: twice the deploy net's blobs (32x32) scaled by the pixel count
    shape = (1, 3, 32, 32)
    seg.net.blobs['data'].reshape(*shape)
    seg.net.reshape()
    old = 2 * sum(b.data.nbytes for b in seg.net.blobs.values()) * (200 * 300) / (32 * 32)
    assert need < old / 5


def test_pillows_pixel_limit_gives_way_to_max_size(tiny_fcn, tmp_path, capsys, monkeypatch):
    """An image above Pillow's decompression-bomb limit is refused with the way out, and with
    --max-size it is read downscaled and its label comes back at the file's size."""
    path = tmp_path / 'big.png'
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (60, 80, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)        # 4800 px > 2 x the limit
    argv = ['--deploy', str(tiny_fcn[0]), '--weights', str(tiny_fcn[1]), '--out',
            str(tmp_path / 'seg'), str(path)]
    assert segment.main(argv) == 1
    err = capsys.readouterr().err
    assert f'{path}: Image size (4800 pixels) exceeds limit' in err and '--max-size' in err
    assert 'internal error' not in err
    assert segment.main(argv + ['--max-size', '20']) == 0
    assert Image.MAX_IMAGE_PIXELS == 1000                    # the limit is put back
    monkeypatch.undo()
    with Image.open(tmp_path / 'seg' / 'big.png') as label:
        assert label.size == (80, 60)


def test_one_unreadable_image_does_not_stop_the_others(tiny_fcn, tmp_path, capsys):
    good = tmp_path / 'in' / 'a.png'
    good.parent.mkdir()
    Image.new('RGB', (20, 16), (10, 200, 30)).save(good)
    bad = tmp_path / 'in' / 'b.png'
    bad.write_bytes(b'not an image')
    later = tmp_path / 'in' / 'c.png'
    Image.new('RGB', (12, 10), (200, 10, 30)).save(later)
    status = segment.main(['--deploy', str(tiny_fcn[0]), '--weights', str(tiny_fcn[1]),
                           '--out', str(tmp_path / 'seg'), str(tmp_path / 'in')])
    assert status == 1
    assert sorted(p.name for p in (tmp_path / 'seg').iterdir()) == ['a.png', 'c.png']
    out, err = capsys.readouterr()
    assert 'segmented 2 image(s)' in out
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: 1 of 3 images could not be segmented') and str(bad) in last


def test_an_out_path_that_is_a_file_is_an_error(tiny_fcn, tmp_path, capsys):
    image = tmp_path / 'a.png'
    Image.new('RGB', (8, 8)).save(image)
    out = tmp_path / 'seg'
    out.write_text('a file')
    assert segment.main(['--deploy', str(tiny_fcn[0]), '--weights', str(tiny_fcn[1]),
                         '--out', str(out), str(image)]) == 1
    assert f'--out {out}: is a file, not a folder' in capsys.readouterr().err
    assert out.read_text() == 'a file'


def test_progress_shows_itself_off_a_terminal(capsys):
    """Off a terminal (a log, a pipe) the progress is a plain line with the rate and the time
    left, at most every ``every`` seconds, and a last one at the end."""
    import io
    from npcaffe.cli import runner
    stream = io.StringIO()
    assert list(runner.progress(range(3), label='segmenting', stream=stream, unit='images',
                                every=0.0)) == [0, 1, 2]
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith('segmenting: 1/3 images, ') and lines[0].endswith(' left')
    assert lines[-1].startswith('segmenting: 3/3 images, ')
    quiet = io.StringIO()
    list(runner.progress(range(3), stream=quiet, every=3600))
    assert quiet.getvalue() == ''                  # short work: nothing to show


def test_the_onnxruntime_engine_writes_the_same_label_pngs(tiny_fcn, tmp_path, monkeypatch):
    """--engine onnxruntime on voc-mini: the net exported once into the cache (and reused),
    the label PNGs identical to the default engine's."""
    from tests.conftest import require_shared
    images = sorted(require_shared('data', 'voc-mini', 'VOC2012', 'JPEGImages').glob('*.jpg'))
    monkeypatch.setenv('FCN_CACHE', str(tmp_path / 'cache'))
    argv = ['--deploy', str(tiny_fcn[0]), '--weights', str(tiny_fcn[1])]
    inputs = [str(p) for p in images[:4]]
    assert segment.main(argv + ['--out', str(tmp_path / 'npcaffe')] + inputs) == 0
    assert segment.main(argv + ['--out', str(tmp_path / 'ort'), '--engine', 'onnxruntime']
                        + inputs) == 0
    (model,) = (tmp_path / 'cache' / 'onnx').glob('*.onnx')
    stamp = model.stat().st_mtime_ns
    for path in images[:4]:
        with Image.open(tmp_path / 'npcaffe' / f'{path.stem}.png') as a, \
                Image.open(tmp_path / 'ort' / f'{path.stem}.png') as b:
            assert a.size == b.size
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path.stem)
    assert segment.main(argv + ['--out', str(tmp_path / 'ort2'), '--engine', 'onnxruntime']
                        + inputs[:1]) == 0
    assert model.stat().st_mtime_ns == stamp                      # the cache is reused


def test_gpu_flag_and_mpirun_split_the_images_once(tiny_fcn, tmp_path, capsys, monkeypatch):
    import subprocess
    import sys
    from npcaffe import device
    from tests.npcaffe.test_distributed import ROOT, mpi_env, mpirun_command
    command = mpirun_command(2)
    deploy, weights = tiny_fcn
    images = tmp_path / 'in'
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(
            images / f'im{i}.png')
    monkeypatch.setattr(device, '_state', {'mode': 'CPU', 'requested': 'CPU', 'device': 0,
                                           'warned': False})
    one = tmp_path / 'one'
    assert segment.main(['--deploy', str(deploy), '--weights', str(weights), '--out', str(one),
                         '--gpu', '0', str(images)]) == 0
    assert device.requested_mode() == 'GPU' and device.mode() == 'CPU'
    infer = [sys.executable, f'{ROOT}/infer.py', '--deploy', str(deploy), '--weights',
             str(weights), '-v']
    two = tmp_path / 'two'
    proc = subprocess.run(command + infer + ['--out', str(two), str(images)],
                          capture_output=True, text=True, cwd=tmp_path, env=mpi_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count('segmented 5 image(s)') == 1
    for i in range(5):                                                # each image once
        assert proc.stderr.count(f'im{i}.png -> ') == 1, proc.stderr
        np.testing.assert_array_equal(np.asarray(Image.open(two / f'im{i}.png')),
                                      np.asarray(Image.open(one / f'im{i}.png')))
    (images / 'im5.png').write_bytes(b'not an image')                # failures gathered
    (images / 'im6.png').write_bytes(b'not an image either')
    proc = subprocess.run(command + infer + ['--out', str(tmp_path / 'three'), str(images)],
                          capture_output=True, text=True, cwd=tmp_path, env=mpi_env(),
                          timeout=120)
    assert proc.returncode != 0 and proc.stdout.count('segmented 5 image(s)') == 1
    assert '2 of 7 images could not be segmented' in proc.stderr, proc.stderr
