"""The LeNet example (examples/mnist/train_lenet.sh): Caffe's examples/mnist prototxts, digits
rendered by make_digits.py, convert_imageset, ``npcaffe train`` and ``npcaffe test``; the
accuracy ``npcaffe test`` reports must exceed 95%. Training is shortened to 200 iterations
(MAX_ITER) so that the test runs in about a minute on 2 cores; the net reaches ~99% there."""
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_shared
from tests.npcaffe.cli.test_glog import REGEX_ITERATION, REGEX_TEST_OUTPUT
from tests.npcaffe.layers.data.util import need

SCRIPT = Path(__file__).resolve().parents[3] / 'examples' / 'mnist' / 'train_lenet.sh'


def test_lenet_example_reaches_95_percent(tmp_path):
    need('lmdb')
    models = require_shared('models', 'lenet_mnist')
    env = dict(os.environ, LENET_MODELS=str(models), MAX_ITER='200',
               NPCAFFE=f"{sys.executable} -m npcaffe",
               PYTHONPATH=os.pathsep.join(filter(None, [str(SCRIPT.parents[2]),
                                                        os.environ.get('PYTHONPATH')])))
    done = subprocess.run(['bash', str(SCRIPT), str(tmp_path / 'work')], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    test_log = (tmp_path / 'work' / 'test.log').read_text()
    accuracy = float(re.search(r"\] accuracy = ([\d.e+-]+)$", test_log, re.M).group(1))
    assert accuracy > 0.95, test_log[-2000:]
    train_log = (tmp_path / 'work' / 'train.log').read_text().splitlines()
    iterations = [int(m.group(1)) for m in map(REGEX_ITERATION.search, train_log) if m]
    assert max(iterations) == 200
    assert sum(bool(REGEX_TEST_OUTPUT.search(line)) for line in train_log) >= 2
    solver = (tmp_path / 'work' / 'lenet_solver.prototxt').read_text()
    original = (models / 'lenet_solver.prototxt').read_text()
    changed = {a for a, b in zip(original.splitlines(), solver.splitlines()) if a != b}
    assert {line.split(':')[0] for line in changed} == {'net', 'test_iter', 'max_iter',
                                                         'snapshot_prefix'}
