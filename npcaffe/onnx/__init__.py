"""ONNX export of TEST-phase nets: ``npcaffe.onnx.export(net, path, ...)``.

One converter per Caffe layer type (``npcaffe.onnx.ops``, registered by type name) turns a
layer of a built :class:`npcaffe.Net` into ONNX nodes with Caffe's exact forward semantics;
``npcaffe.onnx.export`` walks the net, checks the graph (``onnx.checker`` full check, strict
shape inference) and writes it. ``python -m npcaffe.onnx NET WEIGHTS OUT`` is the command
(:mod:`npcaffe.onnx.cli`).

``onnx`` (and ``onnxruntime`` to run the result) are an optional extra; they are imported only
when an export runs, so ``import npcaffe`` never needs them. Without them the error says
``pip install 'fcn-npcaffe[onnx]'``.
"""
from npcaffe.onnx.deps import MissingDependencyError, require  # noqa: F401

#: The ONNX opset the exporter writes (ONNX Runtime >= 1.16 runs it).
OPSET = 17


def export(net, path, **kwargs):
    """Export ``net`` to ``path``; see :func:`npcaffe.onnx.exporter.export`."""
    from npcaffe.onnx.exporter import export as _export
    return _export(net, path, **kwargs)


def build_model(net, **kwargs):
    """The ONNX ModelProto of ``net``; see :func:`npcaffe.onnx.exporter.build_model`."""
    from npcaffe.onnx.exporter import build_model as _build
    return _build(net, **kwargs)


def converter_type_list():
    """Sorted Caffe layer type names the exporter can convert."""
    from npcaffe.onnx.ops import converter_type_list as _list
    return _list()


__all__ = ['MissingDependencyError', 'OPSET', 'build_model', 'converter_type_list', 'export',
           'require']
