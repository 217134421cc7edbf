"""The embedded demo (``python solve.py --demo``): its dataset, and a short run end to end.

The full demo (val mean IU >= 0.6 within 10 minutes on a 2-core machine) is too long for the
suite; these runs take a few iterations on tiny images and check the plumbing: dataset ->
nets -> training -> scoring -> predictions.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn import cli, demo, vis
from npcaffe import formats

TINY = demo.Settings(n_train=4, n_val=2, size=32, width=1 / 16, max_iter=6, score_every=3,
                     time_limit=None)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


def test_dataset_is_deterministic(tmp_path):
    a = demo.make_dataset(tmp_path / 'a', seed=3, n_train=3, n_val=2, size=32)
    b = demo.make_dataset(tmp_path / 'b', seed=3, n_train=3, n_val=2, size=32)
    c = demo.make_dataset(tmp_path / 'c', seed=4, n_train=3, n_val=2, size=32)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b
    assert set(files_a) == set(files_c)
    assert files_a['images/train_0000.png'] != files_c['images/train_0000.png']


def test_dataset_layout_labels_and_splits(tmp_path):
    root = demo.make_dataset(tmp_path / 'toy', seed=0, n_train=6, n_val=4, size=40)
    classes = (root / 'classes.txt').read_text().split()
    assert classes == list(demo.CLASSES)
    pal = vis.palette(256)
    for split, count in (('train', 6), ('val', 4)):
        ids = (root / f'{split}.txt').read_text().split()
        assert ids == [f'{split}_{i:04d}' for i in range(count)]
        present = set()
        for sample_id in ids:
            with Image.open(root / 'images' / f'{sample_id}.png') as image:
                assert image.mode == 'RGB' and image.size == (40, 40)
            with Image.open(root / 'labels' / f'{sample_id}.png') as label:
                assert label.mode == 'P' and label.size == (40, 40)
                assert np.array_equal(np.array(label.getpalette()[:3 * 256]).reshape(256, 3),
                                      pal)
                values = np.array(label)
            assert values.max() < len(demo.CLASSES)
            present |= set(np.unique(values).tolist())
        assert present == set(range(len(demo.CLASSES))), (split, present)


def test_dataset_checks_clean_with_labeltools(tmp_path):
    from fcn import labels
    root = demo.make_dataset(tmp_path / 'toy', seed=1, n_train=3, n_val=2, size=32)
    report = labels.check_dataset(root / 'images', root / 'labels', len(demo.CLASSES),
                                      split=root / 'train.txt')
    assert report.problems == []
    assert report.labels == 3


def test_dataset_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match='at least one'):
        demo.make_dataset(tmp_path, n_train=0)
    with pytest.raises(ValueError, match='too small'):
        demo.make_dataset(tmp_path, size=8)


def test_nets_are_trainable_from_scratch(tmp_path):
    from npcaffe import formats
    from npcaffe.proto import caffe_pb2
    root = demo.make_dataset(tmp_path / 'data', n_train=2, n_val=1, size=32)
    solver_path = demo.make_nets(root, tmp_path / 'net', TINY)
    train = formats.read_text(tmp_path / 'net' / 'train.prototxt', caffe_pb2.NetParameter())
    convs = [layer for layer in train.layer if layer.type == 'Convolution']
    assert convs and all(c.convolution_param.weight_filler.type == 'msra' for c in convs)
    assert not [layer for layer in train.layer if layer.type == 'Dropout']
    (loss,) = [layer for layer in train.layer if layer.type == 'SoftmaxWithLoss']
    assert loss.loss_param.normalization == caffe_pb2.LossParameter.VALID
    assert not loss.loss_param.HasField('normalize')
    solver = formats.read_text(solver_path, caffe_pb2.SolverParameter())
    assert solver.type == 'Adam' and solver.test_iter == [TINY.n_val]
    assert (tmp_path / 'net' / 'deploy.prototxt').exists()


def test_short_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / 'demo'
    assert demo.run(out, seed=0, settings=TINY) == 0
    printed = capsys.readouterr().out
    assert 'mean IU' in printed and 'predictions' in printed
    assert printed.startswith('demo: ')          # a first line before the dataset is made
    records = [json.loads(line)
               for line in (out / 'train' / 'scores.jsonl').read_text().splitlines()]
    assert [r['iter'] for r in records] == [3, 6]
    assert all(0.0 <= r['mean_iu'] <= 1.0 for r in records)
    assert (out / 'train' / 'snapshot_iter_6.caffemodel').exists()
    assert (out / 'train' / 'curve.png').exists()
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['iter'] == 6 and summary['mean_iu'] == records[-1]['mean_iu']
    for sample_id in ('val_0000', 'val_0001'):
        with Image.open(out / 'predictions' / f'{sample_id}.png') as pred:
            assert pred.mode == 'P' and pred.size == (32, 32)
            assert np.array(pred).max() < len(demo.CLASSES)
        assert (out / 'predictions' / f'{sample_id}_overlay.jpg').exists()


def _params(path):
    return {(name, i): blob.data.copy()
            for name, _, blobs in formats.read_caffemodel(path).layers()
            for i, blob in enumerate(blobs)}


def test_an_earlier_run_is_kept_and_a_resumed_run_continues_exactly(tmp_path, capsys):
    """A second run into the same folder is refused and deletes nothing; --overwrite writes
    over by name only; resuming from iteration 3 ends with the uninterrupted run's weights,
    bit for bit (the data layer's position and random state come back with the snapshot)."""
    out = tmp_path / 'demo'
    assert demo.run(out, seed=0, settings=TINY) == 0
    first = _params(out / 'train' / 'snapshot_iter_6.caffemodel')
    files = {p: p.read_bytes() for p in out.rglob('*') if p.is_file()}
    assert (out / 'train' / 'snapshot_iter_3.solverstate').exists()      # every scoring
    with pytest.raises(ValueError, match='already holds an earlier run'):
        demo.run(out, seed=0, settings=TINY)
    assert {p: p.read_bytes() for p in out.rglob('*') if p.is_file()} == files
    stray = out / 'train' / 'notes.txt'
    stray.write_text('mine')
    assert demo.run(out, seed=0, settings=TINY, overwrite=True) == 0
    assert stray.read_text() == 'mine'
    uninterrupted = _params(out / 'train' / 'snapshot_iter_6.caffemodel')
    for key in first:                                     # the same seed, the same run
        np.testing.assert_array_equal(first[key], uninterrupted[key], err_msg=str(key))
    capsys.readouterr()
    assert demo.run(out, seed=0, settings=TINY,
                    resume=out / 'train' / 'snapshot_iter_3.solverstate') == 0
    assert 'resumed from' in capsys.readouterr().out
    resumed = _params(out / 'train' / 'snapshot_iter_6.caffemodel')
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=str(key))
    lines = (out / 'train' / 'scores.jsonl').read_text().splitlines()
    assert [json.loads(line)['iter'] for line in lines] == [3, 6]


def test_time_limit_stops_training_scored_and_snapshotted(tmp_path, capsys):
    settings = dataclasses.replace(TINY, max_iter=40, score_every=20, time_limit=0.0)
    out = tmp_path / 'demo'
    demo.run(out, settings=settings, max_iter=None)
    printed = capsys.readouterr().out
    assert 'time limit' in printed
    summary = json.loads((out / 'summary.json').read_text())
    assert 0 < summary['iter'] < 40
    assert Path(summary['weights']).exists()


def test_zero_iterations_is_refused(tmp_path):
    with pytest.raises(ValueError, match='at least one iteration'):
        demo.run(tmp_path, settings=TINY, max_iter=0)


def test_solve_demo_command_line(tmp_path, capsys):
    """``python solve.py --demo --out DIR --max-iter N`` with the demo's own dataset size."""
    out = tmp_path / 'cli'
    assert cli.solve_main(['--demo', '--out', str(out), '--max-iter', '2', '--seed', '5']) == 0
    assert 'mean IU' in capsys.readouterr().out
    record = json.loads((out / 'train' / 'scores.jsonl').read_text().splitlines()[-1])
    assert record['iter'] == 2 and 'mean_iu' in record
    assert len(list((out / 'predictions').glob('val_*[0-9].png'))) == demo.DEFAULTS.n_val



def test_a_stopped_demo_exits_130_and_says_how_to_continue(tmp_path, capsys):
    """Ctrl-C during the demo's training: a snapshot, status 130 (not 0) and the command that
    continues it; the predictions are not made from a half-trained net."""
    import os
    import signal
    import threading
    import time
    out = tmp_path / 'demo'
    settings = dataclasses.replace(TINY, max_iter=10 ** 6)
    scores = out / 'train' / 'scores.jsonl'

    def interrupt_once_scored():
        deadline = time.monotonic() + 120
        while not scores.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_scored, daemon=True).start()
    assert demo.run(out, seed=0, settings=settings) == 130
    err = capsys.readouterr().err
    state = max((out / 'train').glob('snapshot_iter_*.solverstate'),
                key=lambda p: int(p.name.split('_')[2].split('.')[0]))
    assert f'fcn demo --out {out} --seed 0 --resume {state}' in err
    assert not (out / 'predictions').exists()
