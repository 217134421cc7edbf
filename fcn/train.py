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

Several workers: ``mpirun -n N python solve.py --solver S ...`` trains data-parallel on the
npcaffe backend (npcaffe.distributed): each rank reads its share of the training samples,
the gradients are averaged every iteration and rank 0's initial weights are broadcast. Rank 0
checks and fills ``--out`` (snapshots, scores, curve, run.json, the summary and the display
lines); each rank writes its own data position beside a snapshot
(``snapshot_iter_N.datastate.json``, ``...datastate.rank1.json``, ...), so that a resumed run
continues every rank's sequence. ``--gpu N`` selects GPU N (``caffe.set_device(N);
caffe.set_mode_gpu()``; npcaffe warns and runs on the CPU).
"""
import contextlib
import difflib
import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from fcn import backend, metrics, surgery
from fcn.files import atomic_write
from npcaffe.cli import runner

log = logging.getLogger('solve')


def _rank():
    """This worker's rank (0 when alone, and on a pycaffe without solver_rank)."""
    return getattr(backend.caffe, 'solver_rank', lambda: 0)()


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


#: Caffe's solver types and learning-rate policies (SolverParameter.type, .lr_policy)
SOLVER_TYPES = ('SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam')
LR_POLICIES = ('fixed', 'step', 'exp', 'inv', 'multistep', 'poly', 'sigmoid')
#: a base_lr at or below this, with a loss summed over the pixels, is the reference schedule for
#: fine-tuning from VGG16 (1e-10 .. 1e-14): from the fillers alone it leaves the loss constant
REFERENCE_RATE = 1e-8


def _line_of(text, field):
    """The 1-based line of the first ``field:`` in a prototxt's text (None when absent)."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.split('#', 1)[0].strip().startswith(f'{field}:'):
            return number
    return None


def check_solver(param, path):
    """ValueError naming the user's solver file (and the line) for settings that cannot train:
    an unknown solver type or lr_policy, a missing or non-positive base_lr."""
    text = Path(path).read_text()
    where = lambda field: f"{path}:{_line_of(text, field)}" if _line_of(text, field) else str(path)
    caffe_pb2 = backend.caffe.proto.caffe_pb2
    if param.HasField('solver_type'):             # the deprecated enum: Caffe upgrades it
        kind = caffe_pb2.SolverParameter.SolverType.Name(param.solver_type)
        kind = {'NESTEROV': 'Nesterov', 'ADAGRAD': 'AdaGrad', 'RMSPROP': 'RMSProp',
                'ADADELTA': 'AdaDelta', 'ADAM': 'Adam'}.get(kind, kind)
    else:
        kind = param.type
    if kind not in SOLVER_TYPES:
        close = difflib.get_close_matches(kind, SOLVER_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ''
        raise ValueError(f"{where('type')}: unknown solver type {kind!r}{hint}; Caffe's types "
                         f"are {', '.join(SOLVER_TYPES)}")
    if param.lr_policy not in LR_POLICIES:
        close = difflib.get_close_matches(param.lr_policy, LR_POLICIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ''
        raise ValueError(f"{where('lr_policy')}: unknown lr_policy {param.lr_policy!r}{hint}; "
                         f"Caffe's policies are {', '.join(LR_POLICIES)}")
    if not param.HasField('base_lr'):
        raise ValueError(f"{path}: the solver sets no base_lr, so it would train at rate 0 "
                         f"(nothing would change); add e.g. base_lr: 1e-10 (the reference FCN "
                         f"schedule) or base_lr: 0.001")
    if not param.base_lr > 0:
        raise ValueError(f"{where('base_lr')}: base_lr {param.base_lr:g} trains nothing; it "
                         f"must be positive")


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
    check_solver(param, path)
    param.snapshot_prefix = str(Path(out_dir).resolve() / 'snapshot')
    if max_iter is not None:
        if max_iter < 0:
            raise ValueError(f"--max-iter {max_iter}: an iteration count cannot be negative")
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


def _all_zero(blobs):
    return all(not np.any(blob.data) for blob in blobs)


def dead_layers(net, fresh):
    """The layers of ``fresh`` (names of parameter layers that start from their fillers) caught
    in the all-zero trap: a layer whose weights are all zero and whose every input is all zero
    too (the output of another such layer, through layers without parameters) gets no gradient
    in its weights, and neither does the zero layer before it, so neither ever learns.

    Returns [(layer, the zero layer upstream of it)], in net order. Blobs are taken to be
    non-zero unless they come out of an all-zero layer, so the answer errs toward none."""
    zero_blobs = {}                  # blob -> the all-zero fresh layer its zeros come from
    dead = []
    for name, layer in zip(net._layer_names, net.layers):
        bottoms = list(net.bottom_names.get(name, ()))
        sources = [zero_blobs[b] for b in bottoms if b in zero_blobs]
        all_zero_in = bool(bottoms) and len(sources) == len(bottoms)
        params = net.params[name] if name in net.params else []
        zero_weights = False
        if params:
            zero_weights = name in fresh and _all_zero(params[:1])
            bias_zero = len(params) < 2 or _all_zero(params[1:2])
            if zero_weights and all_zero_in:
                dead.append((name, sources[0]))
            zero_out = (zero_weights and bias_zero) or (all_zero_in and bias_zero)
        else:
            zero_out = all_zero_in
        origin = name if params and zero_weights else (sources[0] if sources else name)
        for top in net.top_names.get(name, ()):
            if zero_out:
                zero_blobs[top] = origin
            else:
                zero_blobs.pop(top, None)
    return dead


class WeightsError(ValueError):
    """Initial weights that leave the net unable to learn (or a net that cannot learn from its
    fillers); the message names the layers."""


def _refuse(message, allow_fresh):
    """WeightsError with ``message`` and the way to override it, or (``allow_fresh``) a loud
    warning and go on."""
    message += " (pass --allow-fresh-layers to train anyway)"
    if not allow_fresh:
        raise WeightsError(message)
    log.warning(message)


def _check_trap(net, fresh, where, remedy, allow_fresh):
    """Refuse (see :func:`_refuse`) the layers of ``fresh`` caught in the all-zero trap."""
    dead = dead_layers(net, fresh)
    if dead:
        shown = ', '.join(f"{layer} (after {upstream})" for layer, upstream in dead[:5])
        _refuse(f"{where}: the layers {shown} start with all-zero weights fed by another "
                f"all-zero layer: in this all-zero trap no gradient reaches their weights, the "
                f"loss stays constant and every pixel gets one class; {remedy}", allow_fresh)


def init_weights(net, weights, allow_fresh=False):
    """Load ``weights`` into ``net`` (copy or transplant, detected); bilinear kernels for
    Deconvolution layers the weights did not reach. Returns the transplant report.

    Layers that are neither copied, transplanted nor bilinear-filled keep their fillers (the
    new score layers of an FCN: zeros, as the reference does). WeightsError, unless
    ``allow_fresh``, when the weights reach no layer of the net, or when the fresh layers
    fall into the all-zero trap (:func:`dead_layers`)."""
    source = surgery.read_caffemodel_params(weights)
    report = surgery.transplant(net, source)
    reached = {entry.new_layer for entry in report.copied + report.coerced}
    log.info("initial weights %s: %s; %d of the net's %d layers with parameters reached",
             weights, report.summary(), len(reached), len(net.params))
    bilinear = [name for name in deconvolution_layers(net) if name not in reached]
    if bilinear:
        surgery.interp(net, bilinear)
        log.info("bilinear kernels for %s", ', '.join(bilinear))
    fresh = [name for name in net.params if name not in reached and name not in bilinear]
    if not reached and net.params:
        _refuse(f"{weights}: none of its {len(source.params)} layers with parameters matches a "
                f"layer of the net by name (0 of the net's {len(net.params)}), so training "
                f"would start from the net's fillers; are these the weights of another net? "
                f"Check that the layer names agree", allow_fresh)
    _check_trap(net, fresh, weights, f"initialise them from weights that name them (neither "
                f"copied from {weights} nor bilinear now), or give them a weight_filler",
                allow_fresh)
    if fresh:
        log.info("layers that start from their fillers: %s", ', '.join(fresh))
    return report


def check_from_scratch(net, param, solver_path, allow_fresh=False):
    """WeightsError (unless ``allow_fresh``) when training without initial weights cannot
    learn: the reference schedule (a loss summed over the pixels, base_lr <= 1e-8) from the
    fillers, or layers caught in the all-zero trap."""
    if 0 < param.base_lr <= REFERENCE_RATE:
        _refuse(f"{solver_path}: base_lr {param.base_lr:g} is the reference schedule for "
                f"fine-tuning from VGG16 (a loss summed over the pixels); from the net's "
                f"fillers alone the loss stays constant at that rate: give --weights (the "
                f"transplanted VGG16, e.g. from fcn surgery), or raise base_lr and normalize "
                f"the loss", allow_fresh)
    _check_trap(net, list(net.params), solver_path,
                "give them a weight_filler or pass --weights (without --weights every layer "
                "starts from its filler)", allow_fresh)


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
def plot_curve(records, path, losses=()):
    """Draw the training loss (left axis, red: ``losses``, [(iteration, smoothed loss)], every
    displayed one; else the loss of each scoring record) and the val mean IU (right axis, blue,
    0..1, a dot per scoring) against the iteration into a PNG (Pillow only)."""
    from PIL import Image, ImageDraw
    width, height = 640, 360
    left, right, top, bottom = 70, width - 50, 30, height - 50
    img = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(img)
    loss_points = list(losses) or [(r['iter'], r.get('train_loss')) for r in records]
    iu_points = [(r['iter'], r.get('mean_iu')) for r in records]
    x_max = max([i for i, _ in loss_points + iu_points] + [1])
    loss_colour, iu_colour = (200, 60, 40), (40, 90, 200)
    ink, grid = (40, 40, 40), (225, 225, 225)
    finite = [v for _, v in loss_points if v is not None and math.isfinite(v)]
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
    for points, (v_lo, v_hi), colour, dots in ((loss_points, (lo, hi), loss_colour, not losses),
                                               (iu_points, (0, 1), iu_colour, True)):
        xy = [(left + (right - left) * i / x_max,
               bottom - (bottom - top) * (v - v_lo) / (v_hi - v_lo))
              for i, v in points if v is not None and math.isfinite(v)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in (xy if dots else ()):
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    draw.text((left, 8), "training loss (smoothed)", fill=loss_colour)
    draw.text((right - 70, 8), "val mean IU", fill=iu_colour)
    draw.text(((left + right) // 2 - 25, height - 22), "iteration", fill=ink)
    with atomic_write(path) as f:
        img.save(f, format='PNG')


# ------------------------------------------------------------------------------------------
# the run folder
def check_out_dir(out, resuming=False, overwrite=False, option='--out'):
    """Refuse an output folder that would mix two runs: a file in its place, or a folder that
    already holds files while this run neither resumes nor was told to ``overwrite`` (whose
    files are then written over by name, never deleted)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out}: is a file, not a folder; choose another {option}")
    if out.is_dir() and not resuming and not overwrite:
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ', '.join(held[:4]) + (' ...' if len(held) > 4 else '')
            raise ValueError(f"{option} {out} already holds an earlier run ({shown}); continue "
                             f"it with --resume, choose another {option}, or pass --overwrite "
                             f"to write over it (its other files are kept)")


def latest_solverstate(folder):
    """The solverstate of the highest iteration in ``folder`` (None when there is none)."""
    found = []
    for path in Path(folder).glob('*_iter_*.solverstate*'):
        digits = path.name.split('_iter_')[-1].split('.')[0]
        if digits.isdigit():
            found.append((int(digits), path))
    return max(found)[1] if found else None


def solver_of_run(state_file):
    """The solver a run folder was started with: run.json's ``solver`` (the user's file), else
    the folder's resolved ``solver.prototxt``; ValueError when neither is there."""
    folder = Path(state_file).parent
    info = folder / 'run.json'
    if info.is_file():
        try:
            solver = json.loads(info.read_text()).get('solver')
        except ValueError:
            solver = None
        if solver and Path(solver).is_file():
            return Path(solver)
    if (folder / 'solver.prototxt').is_file():
        return folder / 'solver.prototxt'
    raise ValueError(f"--resume {state_file}: no --solver given and the run folder {folder} "
                     f"holds neither run.json nor solver.prototxt; give --solver")


def _data_state_path(state_file):
    """``snapshot_iter_N.datastate.json`` beside ``snapshot_iter_N.solverstate[.h5]``
    (``.datastate.rankR.json`` for rank R > 0 of several workers)."""
    state_file = Path(state_file)
    stem = state_file.name.split('.solverstate')[0]
    rank = _rank()
    return state_file.with_name(f"{stem}.datastate{f'.rank{rank}' if rank else ''}.json")


def _python_data_layers(net):
    """[(layer name, layer)] of the net's layers that can save their position (``get_state``)."""
    return [(name, layer) for name, layer in zip(net._layer_names, net.layers)
            if callable(getattr(layer, 'get_state', None))]


# ------------------------------------------------------------------------------------------
class Training:
    """A solver with its val scoring, logs and curve; ``run()`` trains to max_iter.

    Snapshots are taken by the run, at the solver's ``snapshot`` interval and at the end, so
    that beside each ``snapshot_iter_N.solverstate`` it can write ``.datastate.json``: where
    the toolkit's data layers (and, on npcaffe, the engine's random generator) stand at
    iteration N. Resuming restores them, so a resumed run continues exactly as if it had not
    stopped. (On BVLC pycaffe the random state of Dropout is not restored.)
    """

    def __init__(self, solver_path, out_dir, weights=None, resume=None, max_iter=None,
                 score_every=None, val_images=None, score_blob='score', overwrite=False,
                 allow_fresh=False):
        caffe = backend.caffe
        self.out = Path(out_dir)
        check_out_dir(self.out, resuming=bool(resume), overwrite=overwrite)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"{self.out}: cannot create the folder for snapshots and scores "
                          f"({exc.strerror or exc}); choose another --out") from None
        self.solver_path = Path(solver_path)
        path, self.param = prepare_solver(solver_path, self.out, max_iter)
        self.solver = caffe.get_solver(str(path))
        self.max_iter = self.param.max_iter
        self.snapshot_every = self.param.snapshot
        self.score_every = score_every or self.param.snapshot or self.max_iter
        if self.score_every < 1:
            raise ValueError(f"--score-every {self.score_every}: score at least every iteration")
        self.val_images = val_images or (self.param.test_iter[0] if self.param.test_iter
                                         else 0)
        self.score_blob = score_blob
        self.records = []
        self.losses = []                    # [(iteration, smoothed loss)] of the displays
        self.stopped_by = None
        self.check_labels()
        if resume:
            self.solver.restore(str(resume))
            self._restore_data_state(resume)
            self._load_records()
            print(f"resumed from {resume} at iteration {self.solver.iter}", flush=True)
        elif weights:
            init_weights(self.solver.net, weights, allow_fresh)
        else:
            fresh = deconvolution_layers(self.solver.net)
            if fresh:
                surgery.interp(self.solver.net, fresh)
            check_from_scratch(self.solver.net, self.param, self.solver_path, allow_fresh)

    # -- the data -----------------------------------------------------------------------------
    def nets(self):
        """[(label, net)]: the train net and the test nets."""
        return [('train', self.solver.net)] + [(f'test{i}', net)
                                               for i, net in enumerate(self.solver.test_nets)]

    def check_labels(self):
        """Check every label file of the data layers that can (``check_labels``) before
        training, so that an RGB-coloured label stops the run now, not at iteration 7."""
        for _, net in self.nets():
            for name, layer in zip(net._layer_names, net.layers):
                check = getattr(layer, 'check_labels', None)
                if callable(check):
                    check()

    def _data_state(self):
        state = {label: {name: layer.get_state() for name, layer in _python_data_layers(net)}
                 for label, net in self.nets()}
        get_random_state = getattr(backend.caffe, 'get_random_state', None)
        if get_random_state is not None:
            state['engine_random'] = get_random_state()
        return state

    def _restore_data_state(self, state_file):
        path = _data_state_path(state_file)
        if not path.is_file():
            log.warning("%s: no %s beside it, so the data layers start their sequence again "
                        "(the run continues, but not exactly as it would have)", state_file,
                        path.name)
            return
        state = json.loads(path.read_text())
        for label, net in self.nets():
            saved = state.get(label, {})
            for name, layer in _python_data_layers(net):
                if name in saved:
                    layer.set_state(saved[name])
        set_random_state = getattr(backend.caffe, 'set_random_state', None)
        if set_random_state is not None and 'engine_random' in state:
            set_random_state(state['engine_random'])

    # -- snapshots and scores -------------------------------------------------------------------
    def snapshot_path(self, kind):
        """The solver's snapshot file of the current iteration: kind 'caffemodel' or
        'solverstate' (with .h5 when the solver writes HDF5, as Caffe names them)."""
        caffe_pb2 = backend.caffe.proto.caffe_pb2
        h5 = '.h5' if self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5 else ''
        return self.out / f"snapshot_iter_{self.solver.iter}.{kind}{h5}"

    def snapshot(self, solver_wrote=False):
        """Snapshot the solver now (caffemodel, solverstate, then the data state);
        ``solver_wrote``: the solver's own step has just written this iteration's files."""
        if not solver_wrote and _rank() == 0:     # the root solver writes the snapshot
            self.solver.snapshot()
        with atomic_write(_data_state_path(self.snapshot_path('solverstate')), 'w') as f:
            json.dump(self._data_state(), f)

    def _load_records(self):
        path = self.out / 'scores.jsonl'
        if path.exists():
            self.records = [json.loads(line) for line in path.read_text().splitlines()
                            if line.strip() and json.loads(line)['iter'] <= self.solver.iter]
        path = self.out / 'losses.jsonl'
        if path.exists():
            self.losses = [tuple(json.loads(line)) for line in path.read_text().splitlines()
                           if line.strip() and json.loads(line)[0] <= self.solver.iter]

    def evaluate(self):
        """Score the val net (if any) now; log, append to scores.jsonl, redraw the curve
        (rank 0 only, as Caffe tests on the root solver; None elsewhere)."""
        if _rank():
            return None
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
        self._write_curve()
        return record

    def _write_curve(self):
        if _rank():
            return
        with atomic_write(self.out / 'losses.jsonl', 'w') as f:
            f.writelines(json.dumps(list(point)) + '\n' for point in self.losses)
        plot_curve(self.records, self.out / 'curve.png', self.losses)

    @property
    def last_score(self):
        """The newest record with a mean IU (None before the first scoring)."""
        return next((r for r in reversed(self.records) if 'mean_iu' in r), None)

    # -- the loop -------------------------------------------------------------------------------
    def _next_stop(self, chunk, time_limit):
        """The iteration the next ``step`` runs to: the next scoring, snapshot or the end."""
        i = self.solver.iter
        targets = [self.max_iter, (i // self.score_every + 1) * self.score_every]
        if self.snapshot_every:
            targets.append((i // self.snapshot_every + 1) * self.snapshot_every)
        if time_limit is not None:
            targets.append(i + chunk)
        return min(targets)

    def _progress_callback(self, start):
        """(on_start, on_gradients) for the solver: every ``display`` iterations log the rate
        and the time left, and keep the smoothed loss for the curve."""
        display = self.param.display or 20
        window = max(self.param.average_loss, 1)
        recent = []
        clock = {'t0': time.monotonic(), 'i0': self.solver.iter}

        def on_gradients():
            net = self.solver.net
            if 'loss' in net.blobs:
                recent.append(float(net.blobs['loss'].data))
                del recent[:-window]
            i = self.solver.iter
            if i % display or i == clock['i0']:
                return
            rate = (i - clock['i0']) / max(time.monotonic() - clock['t0'], 1e-9)
            if recent:
                self.losses.append((i, sum(recent) / len(recent)))
            left = (self.max_iter - i) / rate if rate > 0 else float('inf')
            progress.info("iteration %d of %d: %.2f iter/s, %s left (ETA %s)", i,
                          self.max_iter, rate, _duration(left), _clock_time(left))

        return (lambda: None), on_gradients

    def run(self, time_limit=None, chunk=50):
        """Step to max_iter, scoring every score_every iterations and snapshotting at the
        solver's interval and at the end.

        ``time_limit`` (seconds): stop early, scored and snapshotted, once it has passed
        (checked every ``chunk`` iterations). The first SIGINT (Ctrl-C) or SIGTERM (``docker
        stop``, a cluster's preemption) stops after the iteration under way, snapshots and
        returns False (``stopped_by`` names the signal); a second SIGINT aborts at once."""
        start = time.monotonic()
        self.solver.add_callback(*self._progress_callback(start))
        snapshotted = None                  # the iteration the solver itself snapshotted
        with self._stop_on_signals() as interrupted:
            while self.solver.iter < self.max_iter and not interrupted:
                target = self._next_stop(chunk, time_limit)
                try:
                    self.solver.step(target - self.solver.iter)
                except KeyboardInterrupt:       # npcaffe: stopped on request, snapshot taken
                    if len(interrupted) != 1:
                        raise
                if interrupted:
                    break
                over_time = time_limit is not None and time.monotonic() - start > time_limit
                if self.snapshot_every and self.solver.iter % self.snapshot_every == 0:
                    self.snapshot(solver_wrote=True)       # Caffe's Step wrote it
                    snapshotted = self.solver.iter
                if (self.solver.iter % self.score_every == 0 or
                        self.solver.iter == self.max_iter or over_time):
                    self.evaluate()
                if over_time and self.solver.iter < self.max_iter:
                    print(f"time limit: stopping at iteration {self.solver.iter} of "
                          f"{self.max_iter} after {time.monotonic() - start:.0f} s",
                          flush=True)
                    break
            if snapshotted != self.solver.iter:
                self.snapshot()
            if self.losses and (not self.records or
                                self.records[-1]['iter'] != self.solver.iter):
                self._write_curve()
        if interrupted:
            self.stopped_by = signal.Signals(interrupted[0]).name
            return False
        log.info("trained to iteration %d in %.1f s", self.solver.iter,
                 time.monotonic() - start)
        return True

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """While training in the main thread, the first SIGINT or SIGTERM asks the solver to
        stop after the iteration under way (npcaffe's ``request_stop``; BVLC pycaffe's ``step``
        returns before Python sees the signal) and a second raises KeyboardInterrupt at once.
        Yields a list that holds one entry per signal received."""
        received = []
        if threading.current_thread() is not threading.main_thread():
            yield received
            return

        def on_signal(signum, frame):
            received.append(signum)
            if len(received) > 1:
                raise KeyboardInterrupt
            request_stop = getattr(self.solver, 'request_stop', None)
            if request_stop is not None:
                request_stop()
            log.warning("interrupted (%s): stopping after iteration %d, then snapshotting; "
                        "press Ctrl-C again to abort at once", signal.Signals(signum).name,
                        self.solver.iter)

        previous = {sig: signal.signal(sig, on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield received
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


progress = logging.getLogger('fcn.train.progress')


def _duration(seconds):
    if not math.isfinite(seconds):
        return 'unknown time'
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _clock_time(seconds):
    if not math.isfinite(seconds):
        return '--:--'
    return time.strftime('%H:%M', time.localtime(time.time() + seconds))


#: exit status after a stop by signal (128 + its number, as a shell reports it)
STOP_STATUS = {'SIGINT': 130, 'SIGTERM': 143}


# ------------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a line is logged."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


@contextlib.contextmanager
def show_progress(enabled=True):
    """While inside: show the solver's display lines (Caffe's ``Iteration N, loss = ...``,
    ``lr = ...``, test outputs) and the run's rate and ETA lines on stderr as plain lines, by
    default; the loggers are put back as they were afterwards."""
    if not enabled:
        yield
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter('%(message)s'))
    saved = []
    for name in ('npcaffe.solver.display', 'fcn.train.progress'):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def build_parser():
    parser = runner.ArgumentParser(
        prog='fcn solve',
        description="Train an FCN with Caffe's solvers, scoring segmentations as it goes.",
        epilog=__doc__.split('\n\n', 1)[1].replace('``', '') + "\nexamples:\n"
        "  python solve.py --solver voc-fcn32s/solver.prototxt "
        "--weights vgg16fc.caffemodel --out runs/fcn32s\n"
        "  python solve.py --solver voc-fcn16s/solver.prototxt "
        "--weights runs/fcn32s/snapshot_iter_100000.caffemodel --out runs/fcn16s\n"
        "  python solve.py --resume runs/fcn32s/snapshot_iter_8000.solverstate\n"
        "  python solve.py --demo --out runs/demo\n")
    parser.add_argument('--solver', help='solver prototxt (e.g. written by python -m nets); '
                        'with --resume, default: the one the run was started with')
    parser.add_argument('--out', type=Path, help='folder for snapshots, scores and the curve '
                        '(default: runs/<solver folder name>; with --resume, the folder of '
                        'the solverstate)')
    parser.add_argument('--weights', help='initial caffemodel: an FCN, or a classifier to '
                        'transplant (V1 or V2 files)')
    parser.add_argument('--resume', help='a .solverstate to continue from')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into an --out folder that holds an earlier run (its files '
                             'are written over by name, never deleted)')
    parser.add_argument('--allow-fresh-layers', action='store_true',
                        help='train even where layers start from fillers that cannot learn '
                             '(no weight reached them, or the all-zero trap)')
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
    parser.add_argument('--gpu', type=int, metavar='N',
                        help='train on GPU N (npcaffe has no GPU engine yet: it warns and runs '
                             'on the CPU)')
    parser.add_argument('--quiet', '-q', action='store_true',
                        help="hide the solver's display lines and the ETA")
    backend.add_argument(parser)
    return parser


def _command_name():
    """How the user started this tool, for the hints it prints."""
    return 'python solve.py' if Path(sys.argv[0]).name == 'solve.py' else 'fcn solve'


def run(args, demo=None):
    """Train as ``args`` say; ``demo(out, seed=, max_iter=, resume=, overwrite=)`` runs
    ``--demo`` (``fcn.demo.run``, passed in by the command line so that this module does not
    depend on the demo). Returns the exit status."""
    if args.backend:
        backend.use(args.backend)
    if args.max_iter is not None and args.max_iter < 0:
        raise runner.UsageError(f"--max-iter {args.max_iter}: an iteration count cannot be "
                                f"negative (0 sets up the net and snapshots it)")
    use_gpu(args.gpu)
    group = workers()
    guard = (backend.caffe.distributed.abort_on_failure(group) if group else
             contextlib.nullcontext())
    with show_progress(not args.quiet and _rank() == 0), guard:
        return _run(args, demo, group)


def use_gpu(gpu):
    """``--gpu N``: pycaffe's ``set_device(N); set_mode_gpu()`` (None: the CPU)."""
    if gpu is None:
        return
    if gpu < 0:
        raise runner.UsageError(f"--gpu {gpu}: GPU ids are >= 0")
    backend.caffe.set_device(gpu)
    backend.caffe.set_mode_gpu()


def workers():
    """The MPI job of several ranks this process is one of (npcaffe.distributed.init, reached
    through the backend), or None: one process (no MPI launcher, or a backend without
    npcaffe's ``distributed``: BVLC pycaffe trains on several GPUs with its python/train.py)."""
    dist = getattr(backend.caffe, 'distributed', None)
    if dist is None or not dist.launched_by_mpi():
        return None
    group = dist.init()
    return group if group.size > 1 else None


def _run(args, demo, group):
    if args.demo:
        if demo is None:
            raise runner.UsageError("--demo is not available here; run: fcn demo")
        return demo(args.out or Path('runs/demo'), seed=args.seed, max_iter=args.max_iter,
                    resume=args.resume, overwrite=args.overwrite)
    if args.weights and args.resume:
        raise runner.UsageError("give --weights or --resume, not both (a solverstate "
                                 "carries its weights)")
    if args.resume and not Path(args.resume).is_file():
        raise ValueError(f"--resume {args.resume}: no such solverstate")
    if not args.solver:
        if not args.resume:
            raise runner.UsageError("--solver is required (or --resume, or --demo)")
        args.solver = str(solver_of_run(args.resume))
    out = args.out or (Path(args.resume).parent if args.resume else
                       Path('runs') / Path(args.solver).resolve().parent.name)
    if group and group.rank:            # rank 0 checks and creates --out before the others
        group.barrier()
    training = Training(args.solver, out, weights=args.weights, resume=args.resume,
                        max_iter=args.max_iter, score_every=args.score_every,
                        val_images=args.val_images, overwrite=args.overwrite or _rank() > 0,
                        allow_fresh=args.allow_fresh_layers)
    if group:
        if not group.rank:
            group.barrier()
        caffe = backend.caffe
        nccl = caffe.NCCL(training.solver, caffe.NCCL.new_uid())
        nccl.bcast()                    # rank 0's initial weights on every rank
        training.solver.add_callback(nccl)
    if _rank():
        return 0 if training.run() else STOP_STATUS.get(training.stopped_by, 1)
    if not args.resume:
        with atomic_write(Path(out) / 'run.json', 'w') as f:
            json.dump({k: (str(Path(v).resolve()) if k == 'solver' else
                           str(v) if isinstance(v, Path) else v)
                       for k, v in vars(args).items()}, f, indent=2)
    finished = training.run()
    print(summary(training, out), flush=True)
    if not finished:
        print(f"stopped by {training.stopped_by} at iteration {training.solver.iter} "
              f"(snapshot taken); continue with:\n  {_command_name()} --solver {args.solver} "
              f"--resume {training.snapshot_path('solverstate')} --out {out}",
              file=sys.stderr, flush=True)
        return STOP_STATUS.get(training.stopped_by, 1)
    return 0


def summary(training, out):
    """The closing lines: where the files are and the last score with its iteration."""
    written = [name for name in ('scores.jsonl', 'curve.png') if (Path(out) / name).exists()]
    lines = [f"snapshots{''.join(', ' + n for n in written)} are in {out}"]
    best = training.last_score
    if best is not None:
        lines.append(f"val mean IU {best['mean_iu']:.4f} at iteration {best['iter']} "
                     f"(training stopped at iteration {training.solver.iter})")
    return '\n'.join(lines)


def main(argv=None, demo=None):
    """``python solve.py ...`` / ``fcn solve ...``: the exit status (0 trained, 1 failed,
    2 bad command line, 130 stopped by SIGINT, 143 by SIGTERM). ``demo``: see :func:`run`."""
    return runner.run(lambda args: run(args, demo), build_parser(), argv)
