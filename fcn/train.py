"""Train an FCN: ``python solve.py --solver S.prototxt [--weights W.caffemodel] ...``.

Builds Caffe's solver from S (its train net and, when the solver names one, its val net),
initialises the weights, and steps it, scoring the val net's segmentations every
``--score-every`` iterations (pixel accuracy, mean accuracy, mean IU, frequency-weighted IU,
per class). Scores go to the log and, one JSON object per line, to ``OUT/scores.jsonl``; the
training curve (loss and mean IU) to ``OUT/curve.png``; snapshots (caffemodel + solverstate,
written atomically) to ``OUT/snapshot_iter_N.*``; the resolved solver and the run's settings
to ``OUT/solver.prototxt`` and ``OUT/run.json``.

Initial weights (``--weights``) may be an FCN caffemodel (copied layer by layer by name) or an
ImageNet classifier such as VGG16 (detected: its fully connected layers are transplanted into
the FCN's convolutions by flat copy, and the classifier's last layer is dropped). Deconvolution
layers that no weight reached get bilinear kernels (found by type, not by name).

``python solve.py --demo --out DIR`` needs no download: it makes a small synthetic
segmentation set, trains a slim FCN-8s on it from scratch and segments the val images.
"""
import contextlib
import json
import logging
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from fcn import backend, metrics, surgery
from fcn.files import atomic_write
from npcaffe.cli import runner

log = logging.getLogger('solve')


# ------------------------------------------------------------------------------------------
# the solver file
def read_solver(path):
    """The SolverParameter of the prototxt at ``path`` (ValueError naming it when bad)."""
    caffe_pb2 = backend.caffe.proto.caffe_pb2
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the solver ({exc.strerror or exc})") from None
    param = caffe_pb2.SolverParameter()
    try:
        text_format.Parse(text, param)
    except text_format.ParseError as exc:
        raise ValueError(f"{path}:{exc}") from None
    return param


def _resolve_net_path(value, solver_dir, what):
    """A net path as Caffe resolves it (working directory), else beside the solver file."""
    for candidate in (Path(value), solver_dir / value):
        if candidate.is_file():
            return str(candidate.resolve())
    raise ValueError(f"the solver's {what} {value!r} does not exist (looked in the working "
                     f"directory and in {solver_dir})")


def prepare_solver(path, out_dir, max_iter=None):
    """Write ``OUT/solver.prototxt``: the solver at ``path`` with absolute net paths, snapshots
    into ``out_dir`` and an optional new max_iter. Returns (path written, SolverParameter)."""
    param = read_solver(path)
    solver_dir = Path(path).resolve().parent
    for field in ('net', 'train_net'):
        if param.HasField(field):
            setattr(param, field, _resolve_net_path(getattr(param, field), solver_dir, field))
    for i, value in enumerate(param.test_net):
        param.test_net[i] = _resolve_net_path(value, solver_dir, 'test_net')
    if not (param.HasField('net') or param.HasField('train_net') or
            param.HasField('net_param') or param.HasField('train_net_param')):
        raise ValueError(f"{path}: the solver names no net (set net: or train_net:)")
    param.snapshot_prefix = str(Path(out_dir).resolve() / 'snapshot')
    if max_iter is not None:
        param.max_iter = max_iter
    out = Path(out_dir) / 'solver.prototxt'
    with atomic_write(out, 'w') as f:
        f.write(text_format.MessageToString(param))
    return out, param


# ------------------------------------------------------------------------------------------
# weights
def deconvolution_layers(net):
    """Names of the net's Deconvolution layers (by type)."""
    return [name for name, layer in zip(net._layer_names, net.layers)
            if layer.type == 'Deconvolution']


def init_weights(net, weights):
    """Load ``weights`` into ``net`` (copy or transplant, detected); bilinear kernels for
    Deconvolution layers the weights did not reach. Returns the transplant report."""
    source = surgery.read_caffemodel_params(weights)
    report = surgery.transplant(net, source)
    reached = {entry.new_layer for entry in report.copied + report.coerced}
    log.info("initial weights %s: %s; %d of the net's %d layers with parameters reached",
             weights, report.summary(), len(reached), len(net.params))
    if not report.copied and not report.coerced:
        log.warning("NONE of the layers in %s (%d with parameters) matched a layer of the net "
                    "by name (0 of the net's %d layers with parameters): training starts from "
                    "the net's fillers (all-zero outputs are the usual symptom). Are these the "
                    "weights of another net? Check that the layer names agree.", weights,
                    len(source.params), len(net.params))
    fresh = [name for name in deconvolution_layers(net) if name not in reached]
    if fresh:
        surgery.interp(net, fresh)
        log.info("bilinear kernels for %s", ', '.join(fresh))
    return report


# ------------------------------------------------------------------------------------------
# scoring
def score_net(net, num_images, score_blob='score', label_blob='label', loss_blob='loss'):
    """Forward ``net`` ``num_images`` times; return (SegMetrics, mean loss)."""
    num_classes = net.blobs[score_blob].data.shape[1]
    hist = np.zeros((num_classes, num_classes), np.int64)
    loss = 0.0
    for _ in range(num_images):
        net.forward()
        label = net.blobs[label_blob].data[0, 0].astype(np.int64)
        pred = net.blobs[score_blob].data[0].argmax(axis=0)
        hist += metrics.fast_hist(label.ravel(), pred.ravel(), num_classes)
        if loss_blob in net.blobs:
            loss += float(net.blobs[loss_blob].data)
    return metrics.seg_metrics(hist), loss / max(num_images, 1)


# ------------------------------------------------------------------------------------------
# the training curve
def plot_curve(records, path):
    """Draw the training loss (left axis, red) and val mean IU (right axis, blue, 0..1)
    against the iteration into a PNG (Pillow only)."""
    from PIL import Image, ImageDraw
    width, height = 640, 360
    left, right, top, bottom = 70, width - 50, 30, height - 50
    img = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(img)
    iters = [r['iter'] for r in records]
    x_max = max(iters + [1])
    loss_colour, iu_colour, ink, grid = (200, 60, 40), (40, 90, 200), (40, 40, 40), (225, 225, 225)
    losses = [r.get('train_loss') for r in records]
    finite = [v for v in losses if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5 * abs(lo or 1), hi + 0.5 * abs(hi or 1)
    for k in range(5):                                   # grid, both y axes, x ticks
        frac = k / 4
        y = bottom - (bottom - top) * frac
        draw.line([(left, y), (right, y)], fill=grid)
        draw.text((4, y - 6), f"{lo + (hi - lo) * frac:.3g}", fill=loss_colour)
        draw.text((right + 6, y - 6), f"{frac:.2f}", fill=iu_colour)
        tick = round(x_max * frac)
        x = left + (right - left) * tick / x_max
        draw.line([(x, bottom), (x, bottom + 4)], fill=ink)
        draw.text((x - 10, bottom + 8), str(tick), fill=ink)
    draw.rectangle([left, top, right, bottom], outline=(150, 150, 150))
    for values, (v_lo, v_hi), colour in ((losses, (lo, hi), loss_colour),
                                         ([r.get('mean_iu') for r in records], (0, 1),
                                          iu_colour)):
        xy = [(left + (right - left) * i / x_max,
               bottom - (bottom - top) * (v - v_lo) / (v_hi - v_lo))
              for i, v in zip(iters, values) if v is not None and math.isfinite(v)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in xy:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    draw.text((left, 8), "training loss", fill=loss_colour)
    draw.text((right - 70, 8), "val mean IU", fill=iu_colour)
    draw.text(((left + right) // 2 - 25, height - 22), "iteration", fill=ink)
    with atomic_write(path) as f:
        img.save(f, format='PNG')


# ------------------------------------------------------------------------------------------
class Training:
    """A solver with its val scoring, logs and curve; ``run()`` trains to max_iter."""

    def __init__(self, solver_path, out_dir, weights=None, resume=None, max_iter=None,
                 score_every=None, val_images=None, score_blob='score'):
        caffe = backend.caffe
        self.out = Path(out_dir)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"{self.out}: cannot create the folder for snapshots and scores "
                          f"({exc.strerror or exc}); choose another --out") from None
        path, self.param = prepare_solver(solver_path, self.out, max_iter)
        self.solver = caffe.get_solver(str(path))
        self.max_iter = self.param.max_iter
        self.score_every = score_every or self.param.snapshot or self.max_iter
        self.val_images = val_images or (self.param.test_iter[0] if self.param.test_iter
                                         else 0)
        self.score_blob = score_blob
        self.records = []
        if resume:
            self.solver.restore(str(resume))
            log.info("resumed from %s at iteration %d", resume, self.solver.iter)
            self._load_records()
        elif weights:
            init_weights(self.solver.net, weights)
        else:
            fresh = deconvolution_layers(self.solver.net)
            if fresh:
                surgery.interp(self.solver.net, fresh)

    def snapshot_path(self, kind):
        """The solver's snapshot file of the current iteration: kind 'caffemodel' or
        'solverstate' (with .h5 when the solver writes HDF5, as Caffe names them)."""
        caffe_pb2 = backend.caffe.proto.caffe_pb2
        h5 = '.h5' if self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5 else ''
        return self.out / f"snapshot_iter_{self.solver.iter}.{kind}{h5}"

    def _load_records(self):
        path = self.out / 'scores.jsonl'
        if path.exists():
            self.records = [json.loads(line) for line in path.read_text().splitlines()
                            if line.strip() and json.loads(line)['iter'] <= self.solver.iter]

    def evaluate(self):
        """Score the val net (if any) now; log, append to scores.jsonl, redraw the curve."""
        record = {'iter': int(self.solver.iter)}
        if 'loss' in self.solver.net.blobs:
            record['train_loss'] = float(self.solver.net.blobs['loss'].data)
        if self.solver.test_nets and self.val_images:
            metrics, val_loss = score_net(self.solver.test_nets[0], self.val_images,
                                          self.score_blob)
            record.update(metrics.as_dict(), val_loss=val_loss)
            log.info("iteration %d: val loss %.4g, %s", self.solver.iter, val_loss,
                     metrics.summary() if hasattr(metrics, 'summary') else metrics)
            print(f"iteration {self.solver.iter}: mean IU {metrics.mean_iu:.4f}, "
                  f"pixel accuracy {metrics.pixel_accuracy:.4f}", flush=True)
        self.records.append(record)
        with atomic_write(self.out / 'scores.jsonl', 'w') as f:     # never half a line
            f.writelines(json.dumps(r) + '\n' for r in self.records)
        plot_curve(self.records, self.out / 'curve.png')
        return record

    def run(self, time_limit=None, chunk=50):
        """Step to max_iter, scoring every score_every iterations; snapshot at the end.

        ``time_limit`` (seconds): stop early, scored and snapshotted, once it has passed
        (checked every ``chunk`` iterations). The first SIGINT (Ctrl-C) stops after the
        iteration under way, snapshots and returns False; a second one aborts at once."""
        start = time.monotonic()
        with self._stop_on_sigint() as interrupted:
            while self.solver.iter < self.max_iter and not interrupted:
                target = min(self.max_iter, (self.solver.iter // self.score_every + 1)
                             * self.score_every)
                if time_limit is not None:
                    target = min(target, self.solver.iter + chunk)
                try:
                    self.solver.step(target - self.solver.iter)
                except KeyboardInterrupt:       # npcaffe: stopped on request, snapshot taken
                    if len(interrupted) != 1:
                        raise
                if interrupted:
                    break
                over_time = time_limit is not None and time.monotonic() - start > time_limit
                if (self.solver.iter % self.score_every == 0 or
                        self.solver.iter == self.max_iter or over_time):
                    self.evaluate()
                if over_time and self.solver.iter < self.max_iter:
                    print(f"time limit: stopping at iteration {self.solver.iter} of "
                          f"{self.max_iter} after {time.monotonic() - start:.0f} s",
                          flush=True)
                    break
            if not self.snapshot_path('caffemodel').exists():
                self.solver.snapshot()
        if interrupted:
            log.warning("training stopped at iteration %d (interrupted); continue it with "
                        "--resume %s", self.solver.iter,
                        self.snapshot_path('solverstate'))
            return False
        log.info("trained to iteration %d in %.1f s", self.solver.iter,
                 time.monotonic() - start)
        return True

    @contextlib.contextmanager
    def _stop_on_sigint(self):
        """While training in the main thread, the first SIGINT asks the solver to stop after
        the iteration under way (npcaffe's ``request_stop``; BVLC pycaffe's ``step`` returns
        before Python sees the signal) and a second raises KeyboardInterrupt at once. Yields a
        list that holds one entry per SIGINT received."""
        received = []
        if threading.current_thread() is not threading.main_thread():
            yield received
            return

        def on_sigint(signum, frame):
            received.append(signum)
            if len(received) > 1:
                raise KeyboardInterrupt
            request_stop = getattr(self.solver, 'request_stop', None)
            if request_stop is not None:
                request_stop()
            log.warning("interrupted (SIGINT): stopping after iteration %d, then "
                        "snapshotting; press Ctrl-C again to abort at once", self.solver.iter)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield received
        finally:
            signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------
def build_parser():
    parser = runner.ArgumentParser(
        prog='fcn solve',
        description="Train an FCN with Caffe's solvers, scoring segmentations as it goes.",
        epilog=__doc__.split('\n\n', 1)[1].replace('``', '') + "\nexamples:\n"
        "  python solve.py --solver voc-fcn32s/solver.prototxt "
        "--weights vgg16fc.caffemodel --out runs/fcn32s\n"
        "  python solve.py --solver voc-fcn16s/solver.prototxt "
        "--weights runs/fcn32s/snapshot_iter_100000.caffemodel --out runs/fcn16s\n"
        "  python solve.py --demo --out runs/demo\n")
    parser.add_argument('--solver', help='solver prototxt (e.g. written by python -m nets)')
    parser.add_argument('--out', type=Path, help='folder for snapshots, scores and the curve '
                        '(default: runs/<solver folder name>)')
    parser.add_argument('--weights', help='initial caffemodel: an FCN, or a classifier to '
                        'transplant (V1 or V2 files)')
    parser.add_argument('--resume', help='a .solverstate to continue from')
    parser.add_argument('--max-iter', type=int, help="stop at this iteration (default: the "
                        "solver's max_iter)")
    parser.add_argument('--score-every', type=int, metavar='K',
                        help="score the val net every K iterations (default: the solver's "
                        "snapshot interval)")
    parser.add_argument('--val-images', type=int, metavar='N',
                        help="val images per scoring (default: the solver's test_iter)")
    parser.add_argument('--demo', action='store_true',
                        help='train on a generated toy dataset; no download needed')
    parser.add_argument('--seed', type=int, default=0, help='seed of the --demo dataset')
    backend.add_argument(parser)
    return parser


def run(args, demo=None):
    """Train as ``args`` say; ``demo(out, seed=, max_iter=)`` runs ``--demo`` (``fcn.demo.run``,
    passed in by the command line so that this module does not depend on the demo)."""
    if args.backend:
        backend.use(args.backend)
    if args.demo:
        if demo is None:
            raise runner.UsageError("--demo is not available here; run: fcn demo")
        return demo(args.out or Path('runs/demo'), seed=args.seed, max_iter=args.max_iter)
    if not args.solver:
        raise runner.UsageError("--solver is required (or --demo)")
    if args.weights and args.resume:
        raise runner.UsageError("give --weights or --resume, not both (a solverstate "
                                 "carries its weights)")
    out = args.out or Path('runs') / Path(args.solver).resolve().parent.name
    training = Training(args.solver, out, weights=args.weights, resume=args.resume,
                        max_iter=args.max_iter, score_every=args.score_every,
                        val_images=args.val_images)
    with atomic_write(Path(out) / 'run.json', 'w') as f:
        json.dump({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  f, indent=2)
    finished = training.run()
    print(f"snapshots, scores.jsonl and curve.png are in {out}")
    return 0 if finished else 130


def main(argv=None, demo=None):
    """``python solve.py ...`` / ``fcn solve ...``: the exit status (0 trained, 1 failed,
    2 bad command line, 130 interrupted). ``demo``: see :func:`run`."""
    return runner.run(lambda args: run(args, demo), build_parser(), argv)
