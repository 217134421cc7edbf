"""Tests of fcn/labels.py (``fcn labels``): RGB -> index conversion, the convert and check
commands."""
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fcn import files, vis
from fcn import labels as labeltools
from fcn.labels import UnknownColourError, rgb_to_index
from tests.conftest import require_shared


def shared_dir():
    """shared/ (skips when absent, fails under CI=true)."""
    return require_shared('data', 'voc-mini').parents[1]


def random_label(seed, shape=(6, 8), classes=21):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, classes, size=shape).astype(np.uint8)
    label[rng.random(shape) < 0.1] = 255
    return label


# --------------------------------------------------------------------------- rgb_to_index

def test_rgb_to_index_round_trip():
    label = random_label(0)
    index = rgb_to_index(vis.colorize(label))
    assert index.dtype == np.uint8 and index.shape == label.shape
    np.testing.assert_array_equal(index, label)
    # an RGBA picture: the alpha channel is ignored
    rgba = np.concatenate([vis.colorize(label), np.full(label.shape + (1,), 7, np.uint8)], 2)
    np.testing.assert_array_equal(rgb_to_index(rgba), label)


def test_rgb_to_index_known_colours():
    rgb = np.array([[[0, 0, 0], [128, 0, 0]], [[192, 128, 128], [224, 224, 192]]], np.uint8)
    assert rgb_to_index(rgb).tolist() == [[0, 1], [15, 255]]


def test_rgb_to_index_custom_palette_and_duplicates():
    pal = np.array([[255, 0, 0], [0, 255, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    rgb = np.array([[[0, 0, 255], [255, 0, 0], [0, 255, 0]]], np.uint8)
    assert rgb_to_index(rgb, pal).tolist() == [[3, 0, 1]]   # a repeated colour -> first index


def test_rgb_to_index_unknown_colours_error_lists_five_with_counts():
    rgb = vis.colorize(np.zeros((4, 10), np.uint8))           # black = class 0
    strays = [(1, 2, 3), (9, 9, 9), (200, 0, 1), (5, 5, 5), (6, 6, 6), (7, 7, 7)]
    counts = [6, 5, 4, 3, 2, 1]
    flat = rgb.reshape(-1, 3)
    pos = 0
    for colour, count in zip(strays, counts):
        flat[pos:pos + count] = colour
        pos += count
    with pytest.raises(UnknownColourError) as info:
        rgb_to_index(rgb)
    e = info.value
    assert e.colours == list(zip(strays, counts))              # most frequent first, all six
    assert str(e) == ('6 colours (21 pixels) are not in the palette: (1, 2, 3) 6 px, '
                      '(9, 9, 9) 5 px, (200, 0, 1) 4 px, (5, 5, 5) 3 px, (6, 6, 6) 2 px '
                      'and 1 more')
    assert isinstance(e, ValueError)
    mapped = rgb_to_index(rgb, unknown=255)
    assert (mapped == 255).sum() == 21 and (mapped == 0).sum() == 19


@pytest.mark.parametrize('args, message', [
    ((np.zeros((2, 2), np.uint8),), r'\(H, W, 3\)'),
    ((np.zeros((2, 2, 3), np.float32),), 'integers'),
    ((np.zeros((1, 1, 3), np.uint8), np.zeros((3, 2), np.uint8)), r'\(k, 3\)'),
    ((np.zeros((1, 1, 3), np.uint8), None, 256), 'unknown index'),
])
def test_rgb_to_index_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        rgb_to_index(*args)


def test_load_palette(tmp_path):
    assert labeltools.load_palette('voc').shape == (256, 3)
    f = tmp_path / 'pal.txt'
    f.write_text('# my classes\n0 0 0 background\n\n255, 0, 0  road # red\n0 0 255\n')
    assert labeltools.load_palette(f).tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    f.write_text('0 0 0\n1 2\n')
    with pytest.raises(ValueError, match=r'pal.txt:2: expected three numbers'):
        labeltools.load_palette(f)
    f.write_text('0 0 300\n')
    with pytest.raises(ValueError, match=r'pal.txt:1'):
        labeltools.load_palette(f)


def test_read_index_label(tmp_path):
    label = random_label(1)
    vis.label_to_pil(label).save(tmp_path / 'p.png')
    Image.fromarray(label).save(tmp_path / 'l.png')                       # mode L
    Image.fromarray(label.astype(np.uint16) * 100).save(tmp_path / 'i.png')  # mode I;16
    Image.fromarray(vis.colorize(label)).save(tmp_path / 'rgb.png')
    np.testing.assert_array_equal(labeltools.read_index_label(tmp_path / 'p.png'), label)
    np.testing.assert_array_equal(labeltools.read_index_label(tmp_path / 'l.png'), label)
    np.testing.assert_array_equal(labeltools.read_index_label(tmp_path / 'i.png'),
                                  label.astype(np.int64) * 100)
    with pytest.raises(labeltools.LabelError, match='rgb.png: RGB-coloured label, convert it '
                                                    'with fcn labels convert'):
        labeltools.read_index_label(tmp_path / 'rgb.png')


# --------------------------------------------------------------------------- convert

def test_convert_cli(tmp_path, capsys):
    src = tmp_path / 'src'
    src.mkdir()
    labels = {'a': random_label(2), 'b': random_label(3, shape=(3, 5))}
    for stem, label in labels.items():
        Image.fromarray(vis.colorize(label)).save(src / f'{stem}.png')
    bad = vis.colorize(random_label(4))
    bad[0, 0] = (1, 2, 3)
    bad[1, :2] = (9, 9, 9)
    Image.fromarray(bad).save(tmp_path / 'bad.png')
    out = tmp_path / 'out'

    rc = labeltools.main(['convert', str(src), str(tmp_path / 'bad.png'), '--out', str(out)])
    stdout, stderr = capsys.readouterr()
    assert rc == 1
    assert stderr.strip() == (f'error: {tmp_path / "bad.png"}: 2 colours (3 pixels) are not in '
                              f'the palette: (9, 9, 9) 2 px, (1, 2, 3) 1 px; pass --unknown '
                              f'INDEX to map them or fix the palette')
    assert stdout.strip() == f'converted 2 of 3 label images into {out}'
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png']   # no temporary left
    for stem, label in labels.items():
        with Image.open(out / f'{stem}.png') as image:
            assert image.mode == 'P'
            np.testing.assert_array_equal(np.array(image), label)
            assert np.array(image.getpalette()).reshape(-1, 3)[15].tolist() == [192, 128, 128]

    rc = labeltools.main(['convert', str(tmp_path / 'bad.png'), '--out', str(out),
                          '--unknown', '255'])
    assert rc == 0
    with Image.open(out / 'bad.png') as image:
        index = np.array(image)
    assert index[0, 0] == 255 and index[1, :2].tolist() == [255, 255]


def test_convert_cli_palette_file_and_p_mode_source(tmp_path):
    pal = tmp_path / 'pal.txt'
    pal.write_text('0 0 0\n255 0 0\n0 0 255\n')
    rgb = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 0, 255], [255, 0, 0]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'x.png')
    # a P-mode source with some other palette: its colours are what count
    p = Image.fromarray(np.array([[0, 1]], np.uint8))
    p.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    p.save(tmp_path / 'y.png')
    out = tmp_path / 'out'
    assert labeltools.main(['convert', str(tmp_path / 'x.png'), str(tmp_path / 'y.png'),
                            '--out', str(out), '--palette', str(pal)]) == 0
    with Image.open(out / 'x.png') as image:
        assert image.mode == 'P' and np.array(image).tolist() == [[0, 1], [2, 1]]
        assert image.getpalette()[:9] == [0, 0, 0, 255, 0, 0, 0, 0, 255]
    with Image.open(out / 'y.png') as image:
        assert np.array(image).tolist() == [[2, 1]]


def test_convert_refuses_index_labels_and_usage_errors(tmp_path, capsys):
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / 'grey.png')
    assert labeltools.main(['convert', str(tmp_path / 'grey.png'), '--out',
                            str(tmp_path / 'o')]) == 1
    assert 'already an index label (mode L)' in capsys.readouterr().err

    cases = [
        (['convert', str(tmp_path / 'nope.png'), '--out', str(tmp_path / 'o')],
         'nope.png: no such file or folder'),
        (['convert', str(tmp_path / 'grey.png'), '--out', str(tmp_path)], 'would be overwritten'),
        (['convert', str(tmp_path / 'grey.png'), '--out', str(tmp_path / 'o'),
          '--unknown', '300'], r'--unknown must lie in \[0, 255\]'),
        (['convert', '--out', str(tmp_path / 'o')], 'required: SRC'),
        (['frobnicate'], 'invalid choice'),
    ]
    for argv, message in cases:
        assert labeltools.main(argv) == 2, argv
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert last.startswith('error: ')
        assert re.search(message, last), (argv, err)
    assert labeltools.main(['convert', str(tmp_path / 'grey.png'), '--out', str(tmp_path / 'o'),
                            '--palette', str(tmp_path / 'missing.txt')]) == 1   # bad input
    assert 'missing.txt' in capsys.readouterr().err
    (tmp_path / 'd1').mkdir()
    (tmp_path / 'd2').mkdir()
    Image.fromarray(vis.colorize(np.zeros((1, 1), np.uint8))).save(tmp_path / 'd1' / 'x.png')
    Image.fromarray(vis.colorize(np.zeros((1, 1), np.uint8))).save(tmp_path / 'd2' / 'x.png')
    assert labeltools.main(['convert', str(tmp_path / 'd1'), str(tmp_path / 'd2'),
                            '--out', str(tmp_path / 'o')]) == 2
    assert 'would both be written to' in capsys.readouterr().err


def test_save_png_atomic_leaves_nothing_on_failure(tmp_path):
    class Broken:
        def save(self, f, format):
            f.write(b'half')
            raise OSError('disk full')

    (tmp_path / 'x.png').write_bytes(b'old')
    with pytest.raises(OSError, match='disk full'):
        files.save_png(Broken(), tmp_path / 'x.png')
    assert [p.name for p in tmp_path.iterdir()] == ['x.png']
    assert (tmp_path / 'x.png').read_bytes() == b'old'


# --------------------------------------------------------------------------- check

def make_dataset(root):
    """images/ + labels/ with one of each kind of problem; returns (images, labels)."""
    images, labels = root / 'images', root / 'labels'
    images.mkdir()
    labels.mkdir()

    def image(stem, h, w, ext='.jpg'):
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(images / f'{stem}{ext}')

    ok = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    image('good', 2, 3)
    vis.label_to_pil(ok).save(labels / 'good.png')
    image('gray', 2, 3, '.png')
    Image.fromarray(np.array([[0, 0, 0], [1, 1, 1]], np.uint8)).save(labels / 'gray.png')
    image('nolabel', 2, 3)
    image('size', 4, 3)
    vis.label_to_pil(ok).save(labels / 'size.png')
    image('rgb', 2, 3)
    Image.fromarray(vis.colorize(ok)).save(labels / 'rgb.png')
    image('range', 2, 3)
    vis.label_to_pil(np.array([[0, 3, 3], [7, 255, 1]], np.uint8)).save(labels / 'range.png')
    vis.label_to_pil(ok).save(labels / 'orphan.png')
    return images, labels


def test_check_reports_each_problem(tmp_path, capsys):
    images, labels = make_dataset(tmp_path)
    rc = labeltools.main(['check', '--images', str(images), '--labels', str(labels),
                          '--classes', '3'])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    problems = out[:5]
    assert problems == [
        f'{labels / "orphan.png"}: label without an image in {images}',
        f'{images / "nolabel.jpg"}: label missing (expected {labels / "nolabel.png"})',
        f'{labels / "range.png"}: values outside [0, 3) or 255: 3 (2 px), 7 (1 px)',
        f'{labels / "rgb.png"}: RGB-coloured label, convert it with fcn labels convert '
        f'(mode RGB)',
        f'{labels / "size.png"}: size 3x2 differs from the image size.jpg (3x4)',
    ]
    # summary: labels read = good, gray, range, size (rgb refused, nolabel missing)
    assert out[5] == '4 labels read, 5 problems; 18 labelled pixels, 3 ignored'
    rows = {line.split()[0]: line.split() for line in out[7:10]}
    # class 0: good 2 + gray 3 + range 1 + size 2 = 8; class 1: 2 + 3 + 1 + 2 = 8; class 2: 1 + 1
    assert rows['0'][2:] == ['8', '44.44%', '4']
    assert rows['1'][2:] == ['8', '44.44%', '4']
    assert rows['2'][2:] == ['2', '11.11%', '2']
    assert len(out) == 10      # every class present: no 'never present' line

    report = labeltools.check_dataset(images, labels, 3)
    assert report.pixels.tolist() == [8, 8, 2] and report.images.tolist() == [4, 4, 2]
    assert report.ignored == 3 and report.labels == 4


def test_check_with_split_and_clean_dataset(tmp_path, capsys):
    images, labels = make_dataset(tmp_path)
    split = tmp_path / 'train.txt'
    split.write_text('good\n\ngray\ngood\nghost\n')
    rc = labeltools.main(['check', '--images', str(images), '--labels', str(labels),
                          '--split', str(split), '--classes', '3'])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[:3] == [f'{split}: good is listed 2 times',
                       f'{images / "ghost"}: image missing (listed in {split})',
                       '2 labels read, 2 problems; 11 labelled pixels, 1 ignored']
    split.write_text('good\ngray\n')
    rc = labeltools.main(['check', '--images', str(images), '--labels', str(labels),
                          '--split', str(split), '--classes', '4'])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0] == '2 labels read, 0 problems; 11 labelled pixels, 1 ignored'
    assert out[-1] == 'classes never present: 3 (class3)'
    # no ignore value: 255 is out of range
    rc = labeltools.main(['check', '--images', str(images), '--labels', str(labels),
                          '--split', str(split), '--classes', '3', '--ignore', '-1'])
    assert rc == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        f'{labels / "good.png"}: values outside [0, 3): 255 (1 px)')


def test_check_usage_errors(tmp_path, capsys):
    images, labels = make_dataset(tmp_path)
    (tmp_path / 'empty').mkdir()
    cases = [
        (['check', '--images', str(tmp_path / 'nope'), '--labels', str(labels), '--classes',
          '3'], 'error: --images {} is not a folder'.format(tmp_path / 'nope')),
        (['check', '--images', str(images), '--labels', str(labels), '--classes', '0'],
         'error: --classes must be >= 1, not 0'),
        (['check', '--images', str(images), '--labels', str(labels), '--classes', '3',
          '--split', str(tmp_path / 'x.txt')],
         f'error: --split {tmp_path / "x.txt"} is not a file'),
        (['check', '--images', str(tmp_path / 'empty'), '--labels', str(tmp_path / 'empty'),
          '--classes', '3'], f'error: no images in {tmp_path / "empty"}'),
        (['check', '--images', str(images), '--labels', str(labels)],
         'error: the following arguments are required: --classes'),
        (['check', '--images', str(images), '--labels', str(labels), '--classes', 'x'],
         "error: argument --classes: invalid int value: 'x'"),
    ]
    for argv, message in cases:
        assert labeltools.main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == ''
        assert err.strip().splitlines()[-1] == message
        assert err.startswith('usage: fcn labels check')


def test_cli_runs_as_a_script_without_traceback(tmp_path):
    images, labels = make_dataset(tmp_path)
    r = subprocess.run([sys.executable, '-m', 'fcn', 'labels', 'check', '--images',
                        str(images), '--labels', str(labels), '--classes', '3'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and 'RGB-coloured label' in r.stdout
    r = subprocess.run([sys.executable, '-m', 'fcn', 'labels'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert r.stderr.splitlines()[-1] == 'error: the following arguments are required: COMMAND'


# --------------------------------------------------------------------------- real VOC labels

def voc_mini():
    return shared_dir() / 'data' / 'voc-mini' / 'VOC2012'


def test_real_voc_labels_colorize_and_convert_back(tmp_path):
    paths = sorted((voc_mini() / 'SegmentationClass').glob('*.png'))
    assert len(paths) == 17
    src = tmp_path / 'rgb'
    src.mkdir()
    originals = {}
    for path in paths:
        label = labeltools.read_index_label(path)
        originals[path.stem] = label
        rgb = vis.colorize(label)
        np.testing.assert_array_equal(rgb_to_index(rgb), label)
        Image.fromarray(rgb).save(src / path.name)
    assert labeltools.main(['convert', str(src), '--out', str(tmp_path / 'idx')]) == 0
    for stem, label in originals.items():
        with Image.open(tmp_path / 'idx' / f'{stem}.png') as image:
            assert image.mode == 'P'
            np.testing.assert_array_equal(np.array(image), label)


def test_check_real_voc_mini_is_clean(capsys):
    root = voc_mini()
    rc = labeltools.main(['check', '--images', str(root / 'JPEGImages'), '--labels',
                          str(root / 'SegmentationClass'), '--split',
                          str(root / 'ImageSets' / 'Segmentation' / 'trainval.txt'),
                          '--classes', '21'])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0, out
    assert out[0].startswith('17 labels read, 0 problems;')
    person = next(line.split() for line in out if line.split()[:2] == ['15', 'person'])
    assert int(person[2]) > 0 and int(person[4]) >= 1
