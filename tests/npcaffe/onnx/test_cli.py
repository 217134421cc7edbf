"""``python -m npcaffe.onnx`` / npcaffe.onnx.cli.main: exit 0 with the file written (static or
--dynamic, --input-shape), 1 with one ``error:`` line naming the layer for a Python layer, 2
for a wrong command line; no tracebacks."""
import subprocess
import sys

import numpy as np
import pytest

from npcaffe.onnx.cli import main
from tests.conftest import ROOT, require_shared
from tests.npcaffe.onnx.test_exporter import python_layer_net
from tests.npcaffe.onnx.util import require_runtime, run


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


def test_export_with_input_shape_and_dynamic(tmp_path):
    folder = require_shared('golden', 'pool_ave_k3_s2_p1')
    out = tmp_path / 'pool.onnx'
    assert main([str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'), str(out),
                 '--input-shape', '1,2,9,7']) == 0
    x = np.ones((1, 2, 9, 7), np.float32)
    assert run(out, {'x0': x})['y'].shape == (1, 2, 5, 4)
    assert main([str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'), str(out),
                 '--dynamic']) == 0
    assert run(out, {'x0': np.ones((1, 2, 3, 11), np.float32)})['y'].shape == (1, 2, 2, 6)


def test_python_layer_fails_with_one_error_line(tmp_path, monkeypatch, capsys):
    net = python_layer_net(tmp_path, monkeypatch)
    weights = tmp_path / 'none.caffemodel'
    import npcaffe
    npcaffe.Net(str(net), npcaffe.TEST).save(str(weights))
    assert main([str(net), str(weights), str(tmp_path / 'out.onnx')]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: layer 'double' of type Python cannot be exported to ONNX")
    assert 'Traceback' not in err and not (tmp_path / 'out.onnx').exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    folder = require_shared('golden', 'absval')
    args = [str(folder / 'net.prototxt'), str(folder / 'weights.caffemodel'),
            str(tmp_path / 'o.onnx')]
    assert main(args + ['--input-shape', '1,x']) == 2
    assert "error: --input-shape '1,x'" in capsys.readouterr().err
    assert main(args[:2]) == 2


def test_module_entry_point(tmp_path):
    folder = require_shared('golden', 'absval')
    proc = subprocess.run([sys.executable, '-m', 'npcaffe.onnx', str(folder / 'net.prototxt'),
                           str(folder / 'weights.caffemodel'), str(tmp_path / 'a.onnx')],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'a.onnx').stat().st_size > 0
