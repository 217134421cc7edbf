"""``fcn score``: score a folder of predicted label PNGs against ground-truth label PNGs of the
same file stem (pixel accuracy, mean accuracy, mean IU, fwIU, per class; see ``fcn.metrics``).

    fcn score --gt DIR --pred DIR [--classes 21] [--ignore 255] [--json]
"""
import json
import logging
import sys
from pathlib import Path

from fcn import labels
from fcn.metrics import ConfusionMatrix
from npcaffe.cli import runner

log = logging.getLogger(__name__)



def _pairs(gt_dir, pred_dir):
    """(stem, gt path, pred path) for every prediction PNG; ValueError when any lacks a gt."""
    gts = {p.stem: p for p in sorted(gt_dir.glob('*.png'))}
    preds = {p.stem: p for p in sorted(pred_dir.glob('*.png'))}
    if not preds:
        raise ValueError(f"no prediction PNGs in {pred_dir}")
    missing = sorted(set(preds) - set(gts))
    if missing:
        raise ValueError(f"{len(missing)} predictions have no ground truth in {gt_dir}: "
                         + ', '.join(missing[:5]) + (' ...' if len(missing) > 5 else ''))
    unscored = len(set(gts) - set(preds))
    if unscored:
        log.warning('%d ground-truth labels in %s have no prediction and are not scored',
                    unscored, gt_dir)
    return [(stem, gts[stem], preds[stem]) for stem in sorted(preds)]


def _run(args):
    for name in ('gt', 'pred'):
        if not getattr(args, name).is_dir():
            raise ValueError(f"--{name} {getattr(args, name)} is not a folder")
    if args.classes < 1:
        raise ValueError(f"--classes must be >= 1, not {args.classes}")
    cm = ConfusionMatrix(args.classes, ignore_label=None if args.ignore < 0 else args.ignore)
    for stem, gt_path, pred_path in _pairs(args.gt, args.pred):
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
    parser.add_argument('--json', action='store_true', help='print the metrics as JSON')
    return runner.run(_run, parser, argv)
