"""Tests of fcn/score.py (``fcn score``): folders of label PNGs scored, its errors, the command."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from fcn import score
from tests.conftest import require_shared

# the 3-class example of tests/fcn/test_metrics.py (worked out there): mean IU 43/90
LABEL = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 255])
PRED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 1])


def shared_dir():
    """shared/ (skips when absent, fails under CI=true)."""
    return require_shared('data', 'voc-mini').parents[1]


def _write_labels(folder, labels, mode='P'):
    from PIL import Image
    from fcn import vis

    folder.mkdir(parents=True, exist_ok=True)
    for stem, label in labels.items():
        if mode == 'P':
            vis.label_to_pil(label).save(folder / f'{stem}.png')
        else:
            Image.fromarray(vis.colorize(label)).save(folder / f'{stem}.png')


def test_cli_scores_folders(tmp_path, capsys, caplog):
    caplog.set_level('INFO')
    _write_labels(tmp_path / 'gt', {'a': LABEL[:6].reshape(2, 3).astype(np.uint8),
                                    'b': LABEL[6:].reshape(2, 2).astype(np.uint8),
                                    'c': np.zeros((1, 1), np.uint8)})   # no prediction: warned
    _write_labels(tmp_path / 'pred', {'a': PRED[:6].reshape(2, 3).astype(np.uint8),
                                      'b': PRED[6:].reshape(2, 2).astype(np.uint8)})
    rc = score.main(['--gt', str(tmp_path / 'gt'), '--pred', str(tmp_path / 'pred'),
                     '--classes', '3'])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert out.splitlines()[0] == '2 images, 9 pixels scored, 1 ignored'
    assert 'mean IU            47.78' in out
    # a note (info), not a warning: a ground-truth folder often holds the other splits too
    assert not [r for r in caplog.records if r.levelname == 'WARNING']
    rc = score.main(['--gt', str(tmp_path / 'gt'), '--pred', str(tmp_path / 'pred'),
                     '--classes', '3', '--json'])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert json.loads(out)['mean_iu'] == pytest.approx(43 / 90)


@pytest.mark.parametrize('case, message', [
    ('no_gt', 'predictions have no ground truth'),
    ('rgb', 'RGB-coloured label, convert it with fcn labels convert'),
    ('size', 'differs from its ground truth'),
    ('range', r'label values outside \[0, 3\)'),
    ('nodir', 'is not a folder'),
])
def test_cli_errors(tmp_path, capsys, case, message):
    gt = {'a': np.array([[0, 1], [2, 255]], np.uint8)}
    pred = {'a': np.array([[0, 1], [2, 2]], np.uint8)}
    mode = 'P'
    if case == 'no_gt':
        pred['z'] = pred['a']
    elif case == 'rgb':
        mode = 'RGB'
    elif case == 'size':
        pred['a'] = np.zeros((3, 2), np.uint8)
    elif case == 'range':
        gt['a'] = np.array([[0, 1], [7, 255]], np.uint8)
    _write_labels(tmp_path / 'gt', gt)
    _write_labels(tmp_path / 'pred', pred, mode)
    pred_dir = tmp_path / ('missing' if case == 'nodir' else 'pred')
    rc = score.main(['--gt', str(tmp_path / 'gt'), '--pred', str(pred_dir), '--classes', '3'])
    out, err = capsys.readouterr()
    assert rc == 1                               # bad input (2 is kept for a bad command line)
    assert out == ''
    assert err.splitlines()[-1].startswith('error: ')
    assert re.search(message, err), err


def test_cli_usage_error_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'fcn', 'score', '--gt', str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert 'Traceback' not in r.stderr
    assert r.stderr.splitlines()[-1] == 'error: the following arguments are required: --pred'
    r = subprocess.run([sys.executable, '-m', 'fcn', 'score', '--gt', str(tmp_path),
                        '--pred', str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == f'error: no prediction PNGs in {tmp_path}'


def test_cli_on_real_voc_labels_scores_perfectly():
    gt = shared_dir() / 'data' / 'voc-mini' / 'VOC2012' / 'SegmentationClass'
    r = subprocess.run([sys.executable, '-m', 'fcn', 'score', '--gt', str(gt),
                        '--pred', str(gt), '--json'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d['pixel_accuracy'] == 1.0 and d['mean_iu'] == 1.0
    assert d['per_class']['person']['iu'] == 1.0
    assert d['per_class']['boat']['iu'] is None        # boat is in none of the 17 labels
    assert d['per_class']['background']['gt_pixels'] > 0


def test_class_names_come_from_classes_txt_and_split_limits_the_ids(tmp_path, capsys):
    """A dataset's classes.txt (beside or above the labels, as fcn demo writes it) names the
    classes; --split scores only its ids and each must have a prediction."""
    root = tmp_path / 'data'
    _write_labels(root / 'labels', {'a': LABEL[:6].reshape(2, 3).astype(np.uint8),
                                    'b': LABEL[6:].reshape(2, 2).astype(np.uint8)})
    (root / 'classes.txt').write_text('sky\nroad\ncar\n')
    _write_labels(tmp_path / 'pred', {'a': PRED[:6].reshape(2, 3).astype(np.uint8),
                                      'b': PRED[6:].reshape(2, 2).astype(np.uint8)})
    (tmp_path / 'val.txt').write_text('a\n')
    argv = ['--gt', str(root / 'labels'), '--pred', str(tmp_path / 'pred'), '--classes', '3']
    assert score.main(argv + ['--json']) == 0
    per_class = json.loads(capsys.readouterr().out)['per_class']
    assert list(per_class) == ['sky', 'road', 'car']
    assert score.main(argv + ['--split', str(tmp_path / 'val.txt')]) == 0
    assert capsys.readouterr().out.startswith('1 images, 6 pixels scored')
    names = tmp_path / 'names.txt'
    names.write_text('one\ntwo\n')
    assert score.main(argv + ['--classes-file', str(names)]) == 1
    assert f'{names}: 2 class names for --classes 3' in capsys.readouterr().err
    (tmp_path / 'val.txt').write_text('a\nz\n')
    assert score.main(argv + ['--split', str(tmp_path / 'val.txt')]) == 1
    assert '1 of its 2 ids have no prediction' in capsys.readouterr().err
