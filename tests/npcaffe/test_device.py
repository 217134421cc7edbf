"""npcaffe.device: set_mode_gpu/set_device warn once and keep the CPU, NPCAFFE_STRICT_GPU=1 makes
them raise, the mode query, and the hook a GPU engine will use."""
import logging
import subprocess
import sys

import numpy as np
import pytest

import npcaffe
from npcaffe import device
from npcaffe.errors import NotSupportedError


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Each test starts as a new process would: CPU, device 0, not yet warned."""
    monkeypatch.setattr(device, '_state', {'mode': 'CPU', 'requested': 'CPU', 'device': 0,
                                           'warned': False})
    monkeypatch.delenv(device.STRICT_ENV, raising=False)


def gpu_warnings(caplog):
    return [r for r in caplog.records
            if r.name == 'npcaffe.device' and r.levelno == logging.WARNING]


def test_pycaffe_names_are_the_device_functions():
    assert npcaffe.set_mode_gpu is device.set_mode_gpu
    assert npcaffe.set_mode_cpu is device.set_mode_cpu
    assert npcaffe.set_device is device.set_device
    assert npcaffe.device is device


def test_gpu_calls_warn_once_and_run_on_the_cpu(caplog, tmp_path):
    caplog.set_level(logging.WARNING, logger='npcaffe')
    npcaffe.set_mode_gpu()
    assert device.mode() == 'CPU' and device.requested_mode() == 'GPU'
    [warning] = gpu_warnings(caplog)
    assert 'set_mode_gpu' in warning.getMessage() and 'CPU' in warning.getMessage()
    npcaffe.set_device(np.int64(1))
    npcaffe.set_mode_gpu()
    assert len(gpu_warnings(caplog)) == 1 and device.device() == 1
    net = npcaffe.Net(str(_write(tmp_path)), npcaffe.TEST)        # and the engine still runs
    assert net.forward()['y'].shape == (2, 3)
    npcaffe.set_mode_cpu()
    assert device.mode() == device.requested_mode() == 'CPU'


def test_set_device_alone_warns(caplog):
    caplog.set_level(logging.WARNING, logger='npcaffe')
    npcaffe.set_device(0)
    [warning] = gpu_warnings(caplog)
    assert 'set_device(0)' in warning.getMessage()


def test_strict_gpu_raises(monkeypatch, caplog):
    monkeypatch.setenv('NPCAFFE_STRICT_GPU', '1')
    with pytest.raises(NotSupportedError, match=r'set_mode_gpu\(\).*CPU only.*NPCAFFE_STRICT_GPU'):
        npcaffe.set_mode_gpu()
    with pytest.raises(NotSupportedError, match=r'set_device\(2\).*CPU only'):
        npcaffe.set_device(2)
    assert device.mode() == 'CPU' and device.device() == 0 and not gpu_warnings(caplog)
    monkeypatch.setenv('NPCAFFE_STRICT_GPU', '0')                 # only "1" is strict
    npcaffe.set_mode_gpu()
    assert device.mode() == 'CPU'


def test_set_device_checks_the_id():
    with pytest.raises(ValueError, match='>= 0, got -1'):
        npcaffe.set_device(-1)
    with pytest.raises(TypeError, match="int, got float 1.5"):
        npcaffe.set_device(1.5)
    assert device.device() == 0


def test_a_gpu_engine_would_switch_the_mode(monkeypatch, caplog):
    monkeypatch.setattr(device, 'gpu_available', lambda: True)
    npcaffe.set_mode_gpu()
    npcaffe.set_device(3)
    assert device.mode() == 'GPU' and device.device() == 3 and not gpu_warnings(caplog)


def test_once_per_process():
    code = ("import logging; logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')\n"
            "import npcaffe\n"
            "npcaffe.set_mode_gpu(); npcaffe.set_device(0); npcaffe.set_mode_gpu()\n"
            "print(npcaffe.device.mode())\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == 'CPU'
    lines = [line for line in proc.stderr.splitlines() if line.startswith('WARNING')]
    assert len(lines) == 1 and 'npcaffe.device' in lines[0], proc.stderr


def _write(tmp_path):
    path = tmp_path / 'net.prototxt'
    path.write_text("layer { name: 'x' type: 'DummyData' top: 'x' "
                    "dummy_data_param { shape { dim: 2 dim: 4 } } }\n"
                    "layer { name: 'y' type: 'InnerProduct' bottom: 'x' top: 'y' "
                    "inner_product_param { num_output: 3 } }\n")
    return path
