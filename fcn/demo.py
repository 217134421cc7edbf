"""The embedded demo: a segmentation job that needs no download (``python solve.py --demo``).

``run(out)`` does the whole job on the CPU in a few minutes:

1. ``make_dataset(out/data)``: a small synthetic segmentation set, deterministic from a seed:
   circles, squares and triangles on textured backgrounds (4 classes with the background), as
   ``images/<id>.png`` + ``labels/<id>.png`` (P-mode index PNGs with the VOC palette) and the
   split lists ``train.txt`` / ``val.txt`` -- the layout of ``layers.folder``;
2. a slim FCN-8s for it with ``nets`` (``out/net``: train, val, deploy and solver prototxts),
   with weight fillers and a normalized loss so that it trains from scratch (the reference nets
   start from VGG16 and carry neither);
3. training with ``solve.Training`` (Adam), printing ``mean IU`` on val as it goes, snapshots,
   ``scores.jsonl`` and ``curve.png`` in ``out/train``;
4. the val images segmented with ``infer.py`` into ``out/predictions`` (label PNGs and
   overlays).

Each class differs from the others in shape, colour and texture (circles: red, flat; squares:
green, striped; triangles: blue, checkered), on greyish, textured backgrounds, so a slim net
learns it quickly. Example::

    from fcn import demo
    demo.make_dataset('toy', seed=0, n_train=8, n_val=4, size=48)   # just the data
    demo.run('runs/demo', max_iter=200)                             # the whole job, shorter

The defaults (``DEFAULTS``) were chosen by measurement on a 2-core machine: 2000 Adam
iterations at width 1/8 take about 4 minutes and reach a val mean IU near 0.78 (0.75 to 0.80
over seeds 0, 1, 2); width 1/16 reaches only 0.75 in 4000 iterations (the same time), and with
48 train images instead of 300 the net overfits (0.54). BLAS runs single-threaded during the
demo (``npcaffe.parallel.one_blas_thread``): its matrices are small.
"""
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from fcn import segment, train, vis
from fcn.files import atomic_write, save_png
from npcaffe import parallel

log = logging.getLogger('demo')

CLASSES = ('background', 'circle', 'square', 'triangle')
"""The demo's classes, by label index."""

# base RGB colour of each shape class (jittered per shape), far from the grey backgrounds
_COLOURS = np.array([[0, 0, 0], [205, 55, 45], [50, 180, 70], [60, 80, 210]], np.float64)


@dataclass(frozen=True)
class Settings:
    """What ``run`` builds and trains: dataset size, net width, solver schedule, and the most
    seconds training may take (``time_limit``; None: no limit)."""
    n_train: int = 300
    n_val: int = 24
    size: int = 64
    width: float = 1 / 8
    max_iter: int = 2000
    score_every: int = 250
    base_lr: float = 2e-3
    lr_policy: str = 'poly'
    power: float = 1.0
    solver_type: str = 'Adam'
    momentum: float = 0.9
    momentum2: float = 0.999
    weight_decay: float = 0.0
    dropout: bool = False
    time_limit: float | None = 420.0


DEFAULTS = Settings()


# ------------------------------------------------------------------------------------------
# the dataset
def _texture(rng, grid_y, grid_x, waves=3):
    """A smooth random field in [-1, 1] of the grids' shape: a sum of ``waves`` plane waves."""
    field = np.zeros(grid_y.shape)
    for _ in range(waves):
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(0.05, 0.35)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(freq * (np.cos(angle) * grid_x + np.sin(angle) * grid_y) + phase)
    return field / waves


def _background(rng, size, grid_y, grid_x):
    """An (H, W, 3) float image: two greyish tones blended by a smooth field, plus grain."""
    tones = rng.uniform(60, 190, size=(2, 1)) + rng.uniform(-15, 15, size=(2, 3))  # (2, 3)
    blend = 0.5 + 0.5 * _texture(rng, grid_y, grid_x)                               # (H, W)
    image = tones[0] * blend[..., None] + tones[1] * (1 - blend[..., None])         # (H, W, 3)
    return image + rng.normal(0, 8, size=(size, size, 1))


def _shape_mask(kind, grid_y, grid_x, cy, cx, r, angle):
    """Boolean (H, W) mask of a circle, square or triangle of centre (cy, cx), radius r."""
    dy, dx = grid_y - cy, grid_x - cx
    if kind == 1:                                                     # circle
        return dy ** 2 + dx ** 2 <= r ** 2
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy                           # rotated frame
    if kind == 2:                                                     # square
        return np.maximum(np.abs(u), np.abs(v)) <= r * 0.8
    # equilateral triangle: inside all three half-planes of its edges
    inside = np.ones(grid_y.shape, bool)
    for k in range(3):
        a = angle + np.pi / 2 + 2 * np.pi * k / 3
        inside &= np.cos(a) * dx + np.sin(a) * dy <= r * 0.6
    return inside


def _shape_fill(rng, kind, grid_y, grid_x):
    """(H, W, 3) colour of a shape of class ``kind`` over the whole image: its class colour
    (jittered) modulated by its texture: flat (circle), stripes (square), checks (triangle)."""
    colour = _COLOURS[kind] + rng.uniform(-20, 20, size=3)
    period = rng.uniform(3, 5)
    if kind == 1:
        pattern = np.zeros(grid_y.shape)
    elif kind == 2:
        pattern = np.where(np.sin(2 * np.pi * grid_y / period) > 0, 1.0, -1.0)
    else:
        pattern = np.where((np.floor(grid_y / period) + np.floor(grid_x / period)) % 2, 1.0,
                           -1.0)
    return colour * (1 + 0.25 * pattern[..., None])


def draw_sample(rng, size):
    """One (H, W, 3) uint8 image and its (H, W) uint8 label, drawn with ``rng``.

    Three to four shapes, every class among them; later shapes may cover parts of earlier ones
    (the label follows what is visible), and a layout in which a class is hidden altogether is
    drawn again, so that every class is visible in every image."""
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float64)       # (H, W) each
    while True:
        image = _background(rng, size, grid_y, grid_x)
        label = np.zeros((size, size), np.uint8)
        kinds = list(rng.permutation([1, 2, 3]))
        kinds += list(rng.integers(1, 4, size=rng.integers(0, 2)))
        for kind in kinds:
            r = rng.uniform(0.12, 0.22) * size
            cy, cx = rng.uniform(r, size - r, size=2)
            mask = _shape_mask(kind, grid_y, grid_x, cy, cx, r, rng.uniform(0, 2 * np.pi))
            image[mask] = _shape_fill(rng, kind, grid_y, grid_x)[mask]
            label[mask] = kind
        if np.isin(np.arange(len(CLASSES)), label).all():
            break
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def make_dataset(root, seed=0, n_train=DEFAULTS.n_train, n_val=DEFAULTS.n_val,
                 size=DEFAULTS.size):
    """Write a synthetic segmentation set under ``root`` (layout of ``layers.folder``)::

        root/images/<split>_<i>.png    RGB, size x size
        root/labels/<split>_<i>.png    P mode, VOC palette, values 0..3 (see CLASSES)
        root/train.txt, root/val.txt   one id per line
        root/classes.txt               the class names, one per line (index order)

    The same ``seed`` (and sizes) gives byte-identical files. Returns ``root`` as a Path.
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"need at least one train and one val image, not {n_train}, {n_val}")
    if size < 16:
        raise ValueError(f"images of {size}x{size} are too small for the shapes; use >= 16")
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'labels').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pal = vis.palette(len(CLASSES))
    for split, count in (('train', n_train), ('val', n_val)):
        ids = [f"{split}_{i:04d}" for i in range(count)]
        for sample_id in ids:
            image, label = draw_sample(rng, size)
            save_png(Image.fromarray(image, 'RGB'), root / 'images' / f"{sample_id}.png")
            save_png(vis.label_to_pil(label, pal), root / 'labels' / f"{sample_id}.png")
        (root / f"{split}.txt").write_text(''.join(i + '\n' for i in ids))
    (root / 'classes.txt').write_text(''.join(c + '\n' for c in CLASSES))
    return root


# ------------------------------------------------------------------------------------------
# the nets and the solver
def _trainable(net, dropout):
    """The generated train/val NetParameter ``net`` made trainable from scratch, in place:
    MSRA-filled convolutions (zero biases), a loss normalized by the number of labelled
    pixels, and (unless ``dropout``) no Dropout layers. Returns ``net``."""
    from npcaffe.proto import caffe_pb2
    for layer in net.layer:
        if layer.type == 'Convolution':
            cp = layer.convolution_param
            cp.weight_filler.type = 'msra'
            cp.bias_filler.type = 'constant'
        elif layer.type == 'SoftmaxWithLoss':
            layer.loss_param.ClearField('normalize')
            layer.loss_param.normalization = caffe_pb2.LossParameter.VALID
    if not dropout:
        keep = [layer for layer in net.layer if layer.type != 'Dropout']
        del net.layer[:]
        net.layer.extend(keep)
    return net


def make_nets(data_root, net_dir, settings=DEFAULTS, seed=0):
    """Write the demo's slim FCN-8s into ``net_dir``: train/val (folder data layer on
    ``data_root``) and deploy prototxts from ``nets``, made trainable from scratch, and a
    solver.prototxt for them. Returns the solver path."""
    import nets
    from npcaffe import formats
    from npcaffe.proto import caffe_pb2

    net_dir = Path(net_dir)
    data = nets.data_sources(folder_dir=data_root, num_classes=len(CLASSES))
    nets.generate('fcn8s', net_dir, num_classes=len(CLASSES), width=settings.width,
                  data=data, input_shape=(1, 3, settings.size, settings.size))
    for name in ('train.prototxt', 'val.prototxt'):
        net = formats.read_text(net_dir / name, caffe_pb2.NetParameter())
        with atomic_write(net_dir / name, 'w') as f:
            f.write(formats.to_text(_trainable(net, settings.dropout)))
    s = nets.solver('fcn8s', test_iter=settings.n_val)
    s.type = settings.solver_type
    s.base_lr = settings.base_lr
    s.lr_policy = settings.lr_policy
    if settings.lr_policy == 'poly':
        s.power = settings.power
    s.momentum = settings.momentum
    if settings.solver_type == 'Adam':
        s.momentum2 = settings.momentum2
    s.weight_decay = settings.weight_decay
    s.max_iter = settings.max_iter
    s.snapshot = settings.score_every     # resumable after a kill, not only after a Ctrl-C
    s.test_interval = settings.max_iter + 1   # solve.Training scores the val net itself
    s.test_initialization = False
    s.display = 0
    s.random_seed = seed
    solver_path = net_dir / 'solver.prototxt'
    with atomic_write(solver_path, 'w') as f:
        f.write(formats.to_text(s))
    return solver_path


# ------------------------------------------------------------------------------------------
# the whole job
def run(out, seed=0, max_iter=None, settings=DEFAULTS, resume=None, overwrite=False):
    """Make the dataset, the nets and the solver under ``out``, train, segment the val images.

    Layout: ``out/data`` (dataset), ``out/net`` (prototxts), ``out/train`` (snapshots every
    ``settings.score_every`` iterations, scores.jsonl, losses.jsonl, curve.png),
    ``out/predictions`` (val label PNGs and overlays), ``out/summary.json`` (final mean IU,
    iterations, seconds). Prints ``mean IU`` on val every ``settings.score_every`` iterations.
    ``max_iter`` replaces ``settings.max_iter``.

    An ``out`` that holds an earlier run is refused unless ``resume`` (a solverstate of it, to
    continue from; the same seed makes the same dataset) or ``overwrite`` (its files are
    written over by name; none is deleted). Returns the exit status: 0, or 130 / 143 when a
    SIGINT / SIGTERM stopped training (after a snapshot; the predictions are then not made).
    """
    out = Path(out)
    start = time.monotonic()
    print(f"demo: a generated segmentation set and a slim FCN-8s trained from scratch "
          f"-> {out}", flush=True)
    if max_iter is not None:
        settings = replace(settings, max_iter=max_iter,
                           score_every=min(settings.score_every, max_iter))
    if settings.max_iter < 1 or settings.score_every < 1:
        raise ValueError(f"the demo needs at least one iteration (max_iter "
                         f"{settings.max_iter}, score_every {settings.score_every})")
    if resume is not None and not Path(resume).is_file():
        raise ValueError(f"--resume {resume}: no such solverstate")
    train.check_out_dir(out, resuming=resume is not None, overwrite=overwrite)
    data_root = make_dataset(out / 'data', seed=seed, n_train=settings.n_train,
                             n_val=settings.n_val, size=settings.size)
    print(f"dataset: {settings.n_train} train + {settings.n_val} val images of "
          f"{settings.size}x{settings.size}, classes {', '.join(CLASSES)} -> {data_root}",
          flush=True)
    solver_path = make_nets(data_root, out / 'net', settings, seed)
    print(f"net: FCN-8s at width {settings.width:g} from scratch, {settings.solver_type} "
          f"lr {settings.base_lr:g} ({settings.lr_policy}), {settings.max_iter} iterations "
          f"-> {out / 'net'}", flush=True)
    training = train.Training(solver_path, out / 'train', score_every=settings.score_every,
                              val_images=settings.n_val, resume=resume, overwrite=overwrite)
    with parallel.one_blas_thread():   # small GEMMs: one BLAS thread is faster, and robust
        finished = training.run(time_limit=settings.time_limit)
        iters = training.solver.iter
        weights = training.snapshot_path('caffemodel')
        if not finished:
            print(f"stopped by {training.stopped_by} at iteration {iters} (snapshot taken); "
                  f"continue with:\n  fcn demo --out {out} --seed {seed} --resume "
                  f"{training.snapshot_path('solverstate')}", file=sys.stderr, flush=True)
            return train.STOP_STATUS.get(training.stopped_by, 1)
        pred_dir = out / 'predictions'
        pred_dir.mkdir(parents=True, exist_ok=True)
        seg = segment.Segmenter(out / 'net' / 'deploy.prototxt', weights)
        val_ids = (data_root / 'val.txt').read_text().split()
        for sample_id in val_ids:
            segment.segment_file(seg, data_root / 'images' / f"{sample_id}.png", pred_dir,
                                 overlay=True)
    final = training.last_score or {}
    summary = {'mean_iu': final.get('mean_iu'), 'pixel_accuracy': final.get('pixel_accuracy'),
               'scored_at': final.get('iter'), 'iter': iters,
               'seconds': round(time.monotonic() - start, 1), 'weights': str(weights)}
    with atomic_write(out / 'summary.json', 'w') as f:
        json.dump(summary, f, indent=2)
    score = (f"val mean IU {summary['mean_iu']:.3f} at iteration {summary['scored_at']}"
             if final else "no val score")
    print(f"done in {summary['seconds']:.0f} s: {score}, trained to iteration {iters}\n"
          f"  dataset      {data_root}\n"
          f"  nets         {out / 'net'} (deploy.prototxt for infer.py)\n"
          f"  weights      {weights}\n"
          f"  scores       {out / 'train' / 'scores.jsonl'}, {out / 'train' / 'curve.png'}\n"
          f"  predictions  {pred_dir} ({len(val_ids)} label PNGs + overlays)", flush=True)
    return 0
