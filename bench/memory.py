"""Peak memory of inference, each measurement in a child process of its own (VmHWM: weights,
the engine's buffers and the interpreter included):

    python -m bench.memory forward ENGINE DEPLOY WEIGHTS [--onnx MODEL]
    python -m bench.memory tile WORK [--size 8000x6000] [--tile 768] [--tiles K]

``forward``: one forward of the deploy net (its Input shape) by ENGINE: ``npcaffe`` (with the
memory rule, ``Net(..., reuse_memory=True)``), ``npcaffe-keep`` (every blob kept, Caffe's
behaviour), ``onnxruntime`` (the ONNX file exported by npcaffe.onnx from the same weights),
``opencv`` (cv2.dnn from the prototxt and caffemodel).

``tile``: ``fcn.tiles.Tiler(...).label`` (what ``fcn infer --tile`` runs) of a synthetic RGB
image on full-width FCN-8s with the bench's random weights. ``--tiles K`` runs only the K
largest windows of the image's tiling (the whole image's label array is allocated and written
as in the full run; the memory of a tile's forward is freed before the next one, so the
largest window sets the peak); the time of the whole tiling is extrapolated from theirs by
pixels. ``--tiles 0`` runs them all.

Each prints one JSON object last: ``peak`` (MiB), ``base`` (MiB after the imports, before the
net), ``seconds``, and for ``tile`` the tiling's numbers.
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench import measure

ENGINES = ('npcaffe', 'npcaffe-keep', 'onnxruntime', 'opencv')


def synthetic_rgb(height, width, seed=0, block=50):
    """A deterministic RGB uint8 image of smooth blocks (no big temporary arrays)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // block + 1, width // block + 1, 3), dtype=np.uint8)
    rows = np.repeat(small, block, axis=0)[:height]
    return np.ascontiguousarray(np.repeat(rows, block, axis=1)[:, :width])


def forward_engine(engine, deploy, weights, onnx=None):
    """Build ``engine``'s net, run one forward at the deploy's input shape; returns
    (seconds of the forward, base RSS MiB before the net was built)."""
    from bench import models
    base = measure.current_rss_mb()
    if engine in ('npcaffe', 'npcaffe-keep'):
        import npcaffe
        net = npcaffe.Net(str(deploy), str(weights), npcaffe.TEST,
                          reuse_memory=engine == 'npcaffe')
        shape = net.blobs['data'].data.shape
        net.blobs['data'].data[...] = models.test_image(shape)
        start = time.perf_counter()
        net.forward()
    elif engine == 'onnxruntime':
        import onnxruntime as ort
        from npcaffe import parallel
        options = ort.SessionOptions()
        options.intra_op_num_threads = parallel.num_threads()
        sess = ort.InferenceSession(str(onnx), options, providers=['CPUExecutionProvider'])
        shape = tuple(sess.get_inputs()[0].shape)
        image = models.test_image(shape)
        start = time.perf_counter()
        sess.run(['score'], {'data': image})
    elif engine == 'opencv':
        import cv2
        from npcaffe import parallel
        cv2.setNumThreads(parallel.num_threads())
        net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
        shape = _deploy_shape(deploy)
        net.setInput(models.test_image(shape))
        start = time.perf_counter()
        net.forward('score')
    else:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return time.perf_counter() - start, base


def _deploy_shape(deploy):
    from npcaffe.net_param import load_net_param
    param, _ = load_net_param(str(deploy))
    for layer in param.layer:
        if layer.type == 'Input':
            return tuple(int(d) for d in layer.input_param.shape[0].dim)
    raise ValueError(f"{deploy}: no Input layer")


def tile_run(work, size=(8000, 6000), tile=None, tiles=2, width=1.0):
    """The tiled label of a synthetic ``size`` (W, H) image (see the module docstring);
    returns a dict of the run's numbers (``peak`` the child's VmHWM when run alone)."""
    from bench import models
    from fcn import tiles as fcn_tiles
    from fcn.segment import Segmenter
    base = measure.current_rss_mb()
    weights = models.random_caffemodel('fcn8s', work, width=width)
    deploy = models.deploy_prototxt('fcn8s', work, shape=(1, 3, 64, 64), width=width)
    start = time.perf_counter()
    seg = Segmenter(deploy, weights)
    tiler = fcn_tiles.Tiler(seg, deploy, tile or fcn_tiles.DEFAULT_TILE)
    loaded = time.perf_counter()
    w, h = size
    rgb = synthetic_rgb(h, w)
    boxes = fcn_tiles.tile_windows(h, w, tiler.tile, tiler.field, tiler.stride)
    area = [(b[1][1] - b[1][0]) * (b[1][3] - b[1][2]) for b in boxes]
    chosen = boxes if not tiles else [boxes[i] for i in
                                      sorted(range(len(boxes)), key=lambda i: -area[i])[:tiles]]
    real = fcn_tiles.tile_windows
    fcn_tiles.tile_windows = lambda *a, **k: chosen          # the subset, through Tiler.label
    try:
        begin = time.perf_counter()
        label = tiler.label(rgb)
        seconds = time.perf_counter() - begin
    finally:
        fcn_tiles.tile_windows = real
    run_area = sum((b[1][1] - b[1][0]) * (b[1][3] - b[1][2]) for b in chosen)
    largest = max(chosen, key=lambda b: (b[1][1] - b[1][0]) * (b[1][3] - b[1][2]))[1]
    return dict(seconds=seconds, estimate=seconds * sum(area) / run_area, load=loaded - start,
                tiles_run=len(chosen), tiles_total=len(boxes), tile=tiler.tile,
                margin=fcn_tiles._round_up(tiler.field, tiler.stride), stride=tiler.stride,
                window=[largest[3] - largest[2], largest[1] - largest[0]], base=base,
                label_shape=list(label.shape), peak=measure.peak_rss_mb())


def tile_equality(work, size=(1000, 750), tile=256, width=0.25):
    """max |tiled - whole| / max |whole| of the FCN-8s scores of a synthetic ``size`` image,
    ``fcn.tiles.Tiler.scores`` against the whole-image forward (``Segmenter.scores``); returns
    (the relative difference, the number of tiles, the tile, the margin)."""
    from bench import models
    from fcn import tiles as fcn_tiles
    from fcn.segment import Segmenter
    weights = models.random_caffemodel('fcn8s', work, width=width)
    deploy = models.deploy_prototxt('fcn8s', work, shape=(1, 3, 64, 64), width=width)
    seg = Segmenter(deploy, weights)
    tiler = fcn_tiles.Tiler(seg, deploy, tile)
    rgb = synthetic_rgb(size[1], size[0], seed=1, block=20)
    tiled = tiler.scores(rgb)
    whole = seg.scores(rgb)
    boxes = fcn_tiles.tile_windows(size[1], size[0], tiler.tile, tiler.field, tiler.stride)
    diff = float(np.abs(tiled - whole).max()) / max(float(np.abs(whole).max()), 1e-30)
    return diff, len(boxes), tiler.tile, fcn_tiles._round_up(tiler.field, tiler.stride)


def _size(text):
    w, h = (int(v) for v in text.lower().split('x'))
    return w, h


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.memory', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='what', required=True)
    fwd = sub.add_parser('forward')
    fwd.add_argument('engine', choices=ENGINES)
    fwd.add_argument('deploy', type=Path)
    fwd.add_argument('weights', type=Path)
    fwd.add_argument('--onnx', type=Path)
    tl = sub.add_parser('tile')
    tl.add_argument('work', type=Path)
    tl.add_argument('--size', type=_size, default=(8000, 6000))
    tl.add_argument('--tile', type=int)
    tl.add_argument('--tiles', type=int, default=2)
    tl.add_argument('--width', type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.what == 'forward':
        seconds, base = forward_engine(args.engine, args.deploy, args.weights, args.onnx)
        result = dict(seconds=seconds, base=base, peak=measure.peak_rss_mb())
    else:
        result = tile_run(args.work, args.size, args.tile, args.tiles, args.width)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
