"""``npcaffe train / test / time / device_query`` on a tiny net fed by a Data layer: exit
statuses, Caffe's log lines (in glog's layout, read with parse_log.py's regexes), the flags
that scripts pass, and the signal effects."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from npcaffe.cli import caffe as caffe_cli
from npcaffe.cli.main import main
from tests.npcaffe.cli.test_glog import (GLOG_LINE, REGEX_LEARNING_RATE, REGEX_TEST_OUTPUT,
                                         REGEX_TRAIN_OUTPUT)
from tests.npcaffe.layers.data.util import raw_datums, write_db

NET = '''name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{db}" batch_size: 8 backend: LMDB }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
  include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
'''
SOLVER = '''net: "{net}"
test_iter: 2
test_interval: 10
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
display: 10
max_iter: 20
snapshot_prefix: "{prefix}"
random_seed: 1
solver_mode: CPU
'''


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tiny')
    rng = np.random.default_rng(0)
    labels = np.arange(32) % 2
    arrays = [np.full((1, 4, 4), 200 if y else 30, np.uint8) + rng.integers(0, 20, (1, 4, 4),
                                                                           dtype=np.uint8)
              for y in labels]
    write_db(folder / 'db', raw_datums(arrays, labels))
    (folder / 'net.prototxt').write_text(NET.format(db=folder / 'db'))
    (folder / 'solver.prototxt').write_text(SOLVER.format(net=folder / 'net.prototxt',
                                                          prefix=folder / 'tiny'))
    return folder


def run(capsys, *argv):
    status = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_prints_caffes_lines_and_snapshots(tiny, capsys):
    status, _, err = run(capsys, 'train', f"--solver={tiny / 'solver.prototxt'}")
    assert status == 0, err
    lines = err.splitlines()
    assert all(GLOG_LINE.match(line) for line in lines), [l for l in lines
                                                          if not GLOG_LINE.match(l)][:3]
    text = '\n'.join(lines)
    assert re.search(r"\] Iteration 10 \([\d.e+-]+ iter/s, [\d.e+-]+s/10 iters\), loss = ", text)
    assert any(REGEX_LEARNING_RATE.search(l) and 'Iteration 10, lr = 0.1' in l for l in lines)
    assert sum(bool(REGEX_TRAIN_OUTPUT.search(l)) for l in lines) == 2    # iterations 0, 10
    assert re.search(r"\] Iteration 20, loss = [\d.e+-]+$", text, re.M)     # the final one
    tests = [REGEX_TEST_OUTPUT.search(l).group(2) for l in lines if REGEX_TEST_OUTPUT.search(l)]
    assert tests.count('accuracy') == 3 and tests.count('loss') == 3
    assert '] Solving tiny' in text and text.rstrip().endswith('Optimization Done.')
    assert (tiny / 'tiny_iter_20.caffemodel').is_file()
    assert (tiny / 'tiny_iter_20.solverstate').is_file()


def test_resume_from_snapshot_and_finetune_from_weights(tiny, capsys):
    if not (tiny / 'tiny_iter_20.solverstate').is_file():
        run(capsys, 'train', '-solver', tiny / 'solver.prototxt')
    status, _, err = run(capsys, 'train', '-solver', tiny / 'solver.prototxt', '-snapshot',
                         tiny / 'tiny_iter_20.solverstate')
    assert status == 0 and 'Resuming from' in err and 'Iteration 20' in err
    weights = tiny / 'tiny_iter_20.caffemodel'
    status, _, err = run(capsys, 'train', '--solver', tiny / 'solver.prototxt', '-weights',
                         f"{weights},{weights}", '-gpu', '0')
    assert status == 0, err
    assert err.count('copied parameters of 1 of the net') >= 2
    assert 'W' == [l for l in err.splitlines() if '-gpu 0 is ignored' in l][0][0]
    status, _, err = run(capsys, 'train', '-solver', tiny / 'solver.prototxt', '-weights',
                         weights, '-snapshot', tiny / 'tiny_iter_20.solverstate')
    assert status == 2 and 'not both' in err


def test_test_prints_batches_and_averages(tiny, capsys):
    if not (tiny / 'tiny_iter_20.caffemodel').is_file():
        run(capsys, 'train', '-solver', tiny / 'solver.prototxt')
    status, _, err = run(capsys, 'test', '-model', tiny / 'net.prototxt', '-weights',
                         tiny / 'tiny_iter_20.caffemodel', '-iterations=4')
    assert status == 0, err
    batches = re.findall(r"\] Batch (\d), accuracy = ([\d.]+)", err)
    assert [b for b, _ in batches] == ['0', '1', '2', '3']
    mean = float(re.search(r"\] accuracy = ([\d.e+-]+)$", err, re.M).group(1))
    assert mean == pytest.approx(np.mean([float(v) for _, v in batches]), abs=1e-6)
    assert re.search(r"\] loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", err, re.M)
    assert re.search(r"\] Loss: [\d.e+-]+$", err, re.M)
    status, _, err = run(capsys, 'test', '-model', tiny / 'net.prototxt')
    assert status == 2 and 'Need model weights to score' in err


def test_time_prints_per_layer_averages(tiny, capsys):
    status, _, err = run(capsys, 'time', '-model', tiny / 'net.prototxt', '-iterations', 2)
    assert status == 0, err
    for name in ('data', 'ip', 'loss'):
        assert re.search(rf"\] +{name}\tforward: [\d.e+-]+ ms\.$", err, re.M), name
        assert re.search(rf"\] +{name}\tbackward: [\d.e+-]+ ms\.$", err, re.M), name
    for what in ('Average Forward pass', 'Average Backward pass', 'Average Forward-Backward',
                 'Total Time'):
        assert re.search(rf"\] {what}: [\d.e+-]+ ms\.$", err, re.M), what
    assert err.count('forward-backward time:') == 2 and 'Initial loss:' in err


def test_device_query_help_and_unknown_verbs(capsys):
    status, _, err = run(capsys, 'device_query')
    assert status == 0 and 'Device: CPU' in err
    status, out, _ = run(capsys)
    assert status == 0 and 'train' in out and 'convert_imageset' in out
    status, _, err = run(capsys, 'tarin')
    assert status == 2 and "unknown command 'tarin'. Did you mean train" in err
    status, _, err = run(capsys, 'train', '-solvr', 'x')
    assert status == 2 and 'did you mean -solver?' in err
    status, _, err = run(capsys, 'train', '-solver', 'missing.prototxt')
    assert status == 1 and err.strip().splitlines()[-1].startswith('error: missing.prototxt')


def test_python_dash_m_npcaffe():
    done = subprocess.run([sys.executable, '-m', 'npcaffe', 'help'], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and 'device_query' in done.stdout


class _FakeSolver:
    iter = 3

    def __init__(self):
        self.calls = []

    def request_stop(self):
        self.calls.append('stop')

    def request_snapshot(self):
        self.calls.append('snapshot')


@pytest.mark.parametrize('sigint, sighup, expected', [
    ('stop', 'snapshot', ['stop', 'snapshot']), ('snapshot', 'stop', ['snapshot', 'stop']),
    ('none', 'none', [])])
def test_signal_effects(sigint, sighup, expected):
    solver = _FakeSolver()
    before = signal.getsignal(signal.SIGINT)
    with caffe_cli._SignalActions(solver, sigint, sighup):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
    assert solver.calls == expected
    assert signal.getsignal(signal.SIGINT) is before


def test_invalid_signal_effect_is_a_usage_error(tiny, capsys):
    status, _, err = run(capsys, 'train', '-solver', tiny / 'solver.prototxt',
                         '-sigint_effect', 'explode')
    assert status == 2 and 'invalid signal effect "explode"' in err


def test_gpu_flag_values_and_device_query_details(tiny, capsys):
    status, _, err = run(capsys, 'train', '-solver', tiny / 'solver.prototxt', '-gpu', 'x')
    assert status == 2 and "-gpu x: give device ids separated by ','" in err
    status, _, err = run(capsys, 'device_query')
    assert status == 0 and 'Memory: ' in err and 'BLAS: ' in err and 'MPI world' not in err
