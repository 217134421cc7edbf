"""A missing onnx/onnxruntime is one sentence saying what to install; ``import npcaffe`` and
``import npcaffe.onnx`` never import onnx."""
import subprocess
import sys

import pytest

from npcaffe.onnx.deps import MissingDependencyError, require
from tests.conftest import ROOT


def test_missing_module_names_the_extra():
    with pytest.raises(MissingDependencyError) as err:
        require('onnx_not_installed_here')
    assert "pip install 'fcn-npcaffe[onnx]'" in str(err.value)
    assert '\n' not in str(err.value)


def test_import_npcaffe_does_not_import_onnx():
    code = ("import sys, npcaffe, npcaffe.onnx, npcaffe.onnx.cli; "
            "print('onnx' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ['False', 'False'], out.stderr


def test_export_without_onnx_says_what_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == 'onnx' or name.startswith('onnx.'):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', no_onnx)
    monkeypatch.delitem(sys.modules, 'onnx', raising=False)
    from npcaffe.onnx import build_model
    with pytest.raises(MissingDependencyError, match=r"pip install 'fcn-npcaffe\[onnx\]'"):
        build_model(None)
