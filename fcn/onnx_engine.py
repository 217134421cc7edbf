"""ONNX Runtime as the engine of ``fcn infer --engine onnxruntime``: the deploy net and its
weights are exported once (``npcaffe.onnx``, height and width symbolic) into the cache, then
every image runs in an ONNX Runtime session. npcaffe-only: the export reads npcaffe's net.

The cache (``$FCN_CACHE/onnx``, default ``~/.cache/fcn/onnx``; ``$XDG_CACHE_HOME`` is honoured)
holds one model per (deploy prototxt text, weights file path, size and modification time), so
an edited prototxt or new weights export afresh and an unchanged pair is reused.
"""
import hashlib
import logging
from pathlib import Path

from fcn.files import cache_dir

log = logging.getLogger(__name__)


def model_key(deploy, weights):
    """A name for the exported model of ``deploy`` with ``weights``."""
    digest = hashlib.sha256(Path(deploy).read_bytes())
    stat = Path(weights).stat()
    digest.update(f"{Path(weights).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


class OnnxRuntimeEngine:
    """``scores(data)``: the (1, classes, H, W) scores of a (1, 3, H, W) input, computed by ONNX
    Runtime from ``net`` (an npcaffe Net holding the weights) exported once into the cache."""

    def __init__(self, net, deploy, weights, score_blob):
        try:
            import onnxruntime
            from npcaffe import onnx as npcaffe_onnx
        except ImportError as exc:
            raise ValueError(f"--engine onnxruntime needs onnx and onnxruntime ({exc}); install "
                             f"them with: pip install 'fcn-npcaffe[onnx]'") from None
        folder = cache_dir() / 'onnx'
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{model_key(deploy, weights)}.onnx"
        if path.is_file():
            log.info("ONNX model from the cache: %s", path)
        else:
            # the export writes beside and renames into place (data file included)
            npcaffe_onnx.export(net, path, dynamic=True, outputs=[score_blob])
            log.info("exported %s with %s to %s", deploy, weights, path)
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path),
                                                    providers=['CPUExecutionProvider'])
        self.input = self.session.get_inputs()[0].name
        self.score_blob = score_blob

    def scores(self, data):
        (out,) = self.session.run([self.score_blob], {self.input: data})
        return out
