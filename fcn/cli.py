"""The ``fcn`` command: one verb per tool of the toolkit.

    fcn VERB [ARGS...]        (also: python -m fcn VERB ...)

Each verb is the ``main(argv)`` of its module and takes ``--help``; exit statuses are those of
``npcaffe.cli.runner`` (0 done, 1 failed, 2 bad command line, 130 interrupted). The scripts
``solve.py``, ``infer.py`` and ``surgery.py`` at the top of a checkout are the same entry
points as ``fcn solve``, ``fcn infer`` and ``fcn surgery``.
"""
import difflib
import importlib
import sys

#: verb -> (module, one-line description); each module has main(argv).
VERBS = {
    'solve': ('fcn.train', 'train an FCN (solver, initial weights, periodic scores)'),
    'infer': ('fcn.segment', 'segment images into palette label PNGs'),
    'nets': ('nets.cli', 'generate FCN train/val/deploy/solver prototxts'),
    'surgery': ('fcn.surgery', 'classifier -> FCN weights, bilinear deconvolutions'),
    'score': ('fcn.score', 'score predicted label PNGs against ground truth'),
    'labels': ('fcn.labels', 'convert RGB-coloured labels, check a labelled dataset'),
    'demo': ('fcn.demo', 'train on a generated toy set, no download'),
    'get-data': ('fcn.downloads', 'download VOC, SBD and VGG16 with checksums'),
    'models': ('fcn.models', 'list, fetch, verify and remove the published FCN models'),
}


def usage():
    width = max(map(len, VERBS))
    lines = ["usage: fcn VERB [ARGS...]", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items()]
    lines += ["", "Each verb takes --help."]
    return '\n'.join(lines)


def solve_main(argv=None):
    """``fcn solve`` / ``python solve.py``: training, with ``--demo`` running the demo."""
    from fcn import demo, train
    return train.main(argv, demo=demo.run)


def demo_main(argv=None):
    """``fcn demo ARGS`` = ``fcn solve --demo ARGS``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return solve_main(['--demo'] + args)


_SPECIAL = {'solve': solve_main, 'demo': demo_main}


def main(argv=None):
    """Run ``fcn VERB ARGS``; return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb in ('--version', 'version'):
        from fcn import __version__
        print(f"fcn {__version__}")
        return 0
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, VERBS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ''
        print(f"{usage()}\nerror: unknown verb {verb!r}{hint}", file=sys.stderr)
        return 2
    if verb in _SPECIAL:
        return _SPECIAL[verb](rest)
    return importlib.import_module(VERBS[verb][0]).main(rest)
