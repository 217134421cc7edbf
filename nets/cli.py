"""The command line of the FCN net generator: ``python -m nets VARIANT [options]``."""
import argparse
import logging

from npcaffe.cli import runner

from .fcn import DEPLOY_SHAPE, IGNORE_LABEL, all_variants, data_sources, generate

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Write the prototxts of an FCN (fully convolutional network, Long/Shelhamer/Darrell) for
semantic segmentation into --out DIR: train.prototxt, val.prototxt, deploy.prototxt and
solver.prototxt (the reference training schedule of the variant). Without a data option
only deploy.prototxt is written. Crop offsets and upsampling factors are computed from the
layer geometry, so any --width and any input size line up.

variants:
{variants}
"""

_EPILOG = """\
data options (the train and val nets read data through Python data layers):
  --voc-dir DIR              PASCAL VOC tree (VOC2012/ or VOC2011/): train on the split
                             list ImageSets/Segmentation/train.txt, validate on val.txt
  --sbd-dir DIR              SBD "dataset" folder (img/, cls/, train.txt): train on SBD
                             train; validate on SBD val, or, with --voc-dir as well, on
                             VOC seg11valid (the reference setup; seg11valid.txt must be in
                             VOC's ImageSets/Segmentation)
  --folder-dir DIR           one's own data: a folder of image/label pairs with train and
                             val split lists (layers.folder.FolderSegDataLayer)
  --train-split/--val-split  other split list names
  --siftflow-dir DIR         SIFT Flow (siftflow-* variants): trainval.txt / test.txt,
                             Images/, SemanticLabels/, GeoLabels/
  --nyud-dir DIR             NYUDv2 prepared (nyud-* variants): trainval.txt / test.txt,
                             data/images, data/depth, data/hha, segmentation/
  --context-dir DIR          PASCAL-Context labels (pascalcontext-* variants), with
                             --voc-dir the folder holding VOC2010/

examples:
  python -m nets fcn8s --classes 21 --out voc-fcn8s --sbd-dir data/sbdd/dataset \\
      --voc-dir data/pascal/VOC2011
  python -m nets fcn32s --classes 12 --width 0.25 --folder-dir my_data --out small-fcn32s
  python -m nets fcn-alexnet --out alexnet-deploy          # deploy.prototxt only
  python -m nets siftflow-fcn8s --siftflow-dir data/sift-flow --out siftflow-fcn8s
"""


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def build_parser():
    """The argument parser of ``python -m nets``."""
    known = all_variants()
    width = max(len(name) for name in known)
    variants = '\n'.join(f"  {name:<{width}}  {v.summary}" for name, v in known.items())
    parser = runner.ArgumentParser(prog='fcn nets',
                                    description=_DESCRIPTION.format(variants=variants),
                                    epilog=_EPILOG)
    parser.add_argument('variant', metavar='VARIANT', help=', '.join(known))
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='folder to write the prototxts into (created if missing)')
    parser.add_argument('--classes', type=_positive(int), metavar='N',
                        help='number of classes, background included (default 21, PASCAL '
                             'VOC; a dataset variant has its own, e.g. 60 for pascalcontext)')
    parser.add_argument('--width', type=_positive(float), default=1.0, metavar='W',
                        help='multiply the backbone channel counts, fc6/fc7 included, by W '
                             '(default 1: the reference nets; e.g. 0.125 for fast tests)')
    data = parser.add_argument_group('data (details below)')
    data.add_argument('--voc-dir', metavar='DIR', help='PASCAL VOC tree')
    data.add_argument('--sbd-dir', metavar='DIR', help='SBD dataset folder')
    data.add_argument('--folder-dir', metavar='DIR', help='folder of image/label pairs')
    data.add_argument('--train-split', metavar='NAME', help='train split list name')
    data.add_argument('--val-split', metavar='NAME', help='val split list name')
    data.add_argument('--ignore-label', type=int, default=IGNORE_LABEL, metavar='L',
                      help=f'label value to ignore, for --folder-dir (default {IGNORE_LABEL})')
    data.add_argument('--siftflow-dir', metavar='DIR', help='SIFT Flow folder')
    data.add_argument('--nyud-dir', metavar='DIR', help='NYUDv2 folder')
    data.add_argument('--context-dir', metavar='DIR', help='PASCAL-Context labels folder')
    parser.add_argument('--input-size', type=_positive(int), nargs=2, metavar=('H', 'W'),
                        default=DEPLOY_SHAPE[2:],
                        help='input size written into deploy.prototxt (default 500 500; '
                             'any size works at run time)')
    return parser


def _run(args):
    known = all_variants()
    if args.variant not in known:
        raise runner.UsageError(f"unknown variant {args.variant!r}; choose one of "
                                 f"{', '.join(known)}")
    variant = known[args.variant]
    if hasattr(variant, 'data_sources'):          # a dataset variant (nets.datasets)
        variant.check_classes(args.classes)
        data = variant.data_sources(args.train_split, args.val_split, voc_dir=args.voc_dir,
                                    siftflow_dir=args.siftflow_dir, nyud_dir=args.nyud_dir,
                                    context_dir=args.context_dir)
    else:
        args.classes = args.classes or 21
        data = data_sources(voc_dir=args.voc_dir, sbd_dir=args.sbd_dir,
                            folder_dir=args.folder_dir, num_classes=args.classes,
                            ignore_label=args.ignore_label, train_split=args.train_split,
                            val_split=args.val_split)
    if data is None:
        log.warning("no data option (--voc-dir, --sbd-dir, --folder-dir, --siftflow-dir, "
                    "--nyud-dir, --context-dir): writing deploy.prototxt only")
    written = generate(args.variant, args.out, num_classes=args.classes, width=args.width,
                       data=data, input_shape=(1, 3) + tuple(args.input_size))
    print(f"{args.variant}: wrote {', '.join(str(p) for p in written)}")


def main(argv=None):
    """Run the generator with ``argv`` (default sys.argv[1:]); returns the exit status:
    0 on success, 2 on bad arguments or a failure (a one-line ``error: ...`` on stderr, no
    traceback; ``--debug`` shows it)."""
    return runner.run(_run, build_parser(), argv)
