"""``fcn score``: score a folder of predicted label PNGs against ground-truth label PNGs of the
same file stem (pixel accuracy, mean accuracy, mean IU, fwIU, per class; see ``fcn.metrics``).

    fcn score --gt DIR --pred DIR [--classes 21] [--split FILE] [--classes-file FILE] [--json]

What is scored is what was predicted (a ground-truth folder may hold other splits too; with
``--split`` only the listed ids, each of which must have a prediction). Class names come from
``--classes-file`` (one name per line), else from a ``classes.txt`` in the ground-truth folder
or the folder above it (as a dataset made by ``fcn demo`` has), else the VOC names for 21
classes and numbers otherwise.
"""
import json
import logging
from pathlib import Path

from fcn import labels
from fcn.metrics import ConfusionMatrix
from npcaffe.cli import runner

log = logging.getLogger(__name__)



def _pairs(gt_dir, pred_dir, split=None):
    """(stem, gt path, pred path) for every prediction PNG (or every id of ``split``);
    ValueError when one lacks its ground truth or, with ``split``, its prediction."""
    gts = {p.stem: p for p in sorted(gt_dir.glob('*.png'))}
    preds = {p.stem: p for p in sorted(pred_dir.glob('*.png'))}
    if split is not None:
        ids = read_split(split)
        absent = [i for i in ids if i not in preds]
        if absent:
            raise ValueError(f"--split {split}: {len(absent)} of its {len(ids)} ids have no "
                             f"prediction in {pred_dir}: " + ', '.join(absent[:5])
                             + (' ...' if len(absent) > 5 else ''))
        preds = {i: preds[i] for i in ids}
    if not preds:
        raise ValueError(f"no prediction PNGs in {pred_dir}")
    missing = sorted(set(preds) - set(gts))
    if missing:
        raise ValueError(f"{len(missing)} predictions have no ground truth in {gt_dir}: "
                         + ', '.join(missing[:5]) + (' ...' if len(missing) > 5 else ''))
    unscored = len(set(gts) - set(preds))
    if unscored:
        log.info('%d ground-truth labels in %s have no prediction (another split?) and are '
                 'not scored', unscored, gt_dir)
    return [(stem, gts[stem], preds[stem]) for stem in sorted(preds)]


def read_split(path):
    """The ids of a split list (first word of each non-blank line)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"--split {path}: cannot read it ({exc.strerror or exc})") from None
    return [line.split()[0] for line in lines if line.strip()]


def read_class_names(path, classes):
    """The ``classes`` names in the file at ``path``, one per line; ValueError naming the file
    when it holds another number of names."""
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the class names ({exc.strerror or exc})") from None
    if len(names) != classes:
        raise ValueError(f"{path}: {len(names)} class names for --classes {classes}; give one "
                         f"name per line, in class order")
    return names


def find_class_names(gt_dir, classes, classes_file=None):
    """Names from ``classes_file``, else a ``classes.txt`` beside or above the labels, else
    None (the defaults of fcn.metrics)."""
    if classes_file is not None:
        return read_class_names(classes_file, classes)
    for folder in (gt_dir, gt_dir.parent):
        candidate = folder / 'classes.txt'
        if candidate.is_file():
            return read_class_names(candidate, classes)
    return None


def _run(args):
    for name in ('gt', 'pred'):
        if not getattr(args, name).is_dir():
            raise ValueError(f"--{name} {getattr(args, name)} is not a folder")
    if args.classes < 1:
        raise ValueError(f"--classes must be >= 1, not {args.classes}")
    names = find_class_names(args.gt, args.classes, args.classes_file)
    cm = ConfusionMatrix(args.classes, class_names=names,
                         ignore_label=None if args.ignore < 0 else args.ignore)
    for stem, gt_path, pred_path in _pairs(args.gt, args.pred, args.split):
        gt = labels.read_index_label(gt_path)
        pred = labels.read_index_label(pred_path)
        if gt.shape != pred.shape:
            raise ValueError(f"{pred_path}: size {pred.shape[1]}x{pred.shape[0]} differs "
                             f"from its ground truth {gt_path} ({gt.shape[1]}x{gt.shape[0]})")
        try:
            cm.update(gt, pred)
        except ValueError as e:
            raise ValueError(f"{gt_path} / {pred_path}: {e}") from None
    if args.json:
        print(json.dumps(cm.compute().as_dict(), indent=1))
    else:
        print(cm)


def main(argv=None):
    """``fcn score --gt DIR --pred DIR [--classes 21] [--ignore 255] [--json]``.

    Returns 0 after printing the table (or JSON), 2 on any error (``error: ...`` on stderr;
    ``--debug`` shows the traceback).
    """
    parser = runner.ArgumentParser(
        prog='fcn score',
        description='Score predicted label PNGs against ground-truth label PNGs '
                    '(matched by file stem): pixel accuracy, mean accuracy, mean IU, '
                    'frequency-weighted IU and per-class IU.')
    parser.add_argument('--gt', required=True, type=Path, help='folder of ground-truth label PNGs')
    parser.add_argument('--pred', required=True, type=Path, help='folder of predicted label PNGs')
    parser.add_argument('--classes', type=int, default=21, help='number of classes (default 21)')
    parser.add_argument('--ignore', type=int, default=255,
                        help='ground-truth value that is not scored (default 255; -1: none)')
    parser.add_argument('--split', type=Path, metavar='FILE',
                        help='score only the ids this list names (one per line)')
    parser.add_argument('--classes-file', type=Path, metavar='FILE',
                        help='class names, one per line (default: classes.txt beside or above '
                             '--gt, if there is one)')
    parser.add_argument('--json', action='store_true', help='print the metrics as JSON')
    return runner.run(_run, parser, argv)
