"""The optional dependencies of the exporter, imported on first use, and the ONNX opset the
exporter writes.

``require('onnx')`` returns the module or raises MissingDependencyError, one sentence naming
what to install (the ``onnx`` extra of this package: onnx and onnxruntime).
"""
import importlib

INSTALL_HINT = "pip install 'fcn-npcaffe[onnx]'"
#: the ONNX operator set the exported graphs use
OPSET = 17


class MissingDependencyError(RuntimeError):
    """An optional package the exporter needs is not installed."""


def require(module):
    """Import and return ``module`` (``onnx``, ``onnxruntime``, ...); MissingDependencyError
    saying what to install when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split('.')[0]
        raise MissingDependencyError(
            f"ONNX export needs the {top!r} package, which is not installed ({exc}); install "
            f"it with: {INSTALL_HINT}") from None
