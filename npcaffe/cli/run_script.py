"""``npcaffe run SCRIPT [ARGS...]``: run an unmodified pycaffe script on npcaffe.

The script runs as ``python SCRIPT ARGS...`` would run it, with ``import caffe`` giving npcaffe
(``npcaffe.install_as_caffe()``):

* ``sys.argv`` is ``[SCRIPT, ARGS...]`` (SCRIPT as given), ``__name__ == '__main__'``,
  ``__file__`` is the script's absolute path, and the script's folder is first on ``sys.path``;
* the exit status is the script's: 0 when it ends, ``sys.exit(n)``'s ``n`` (a non-integer
  ``sys.exit`` argument is printed and gives 1), 1 after an uncaught exception, which is shown
  as Python shows it (through ``sys.excepthook``: the script's frames only, not this
  runner's), 130 after Ctrl-C;
* logging is left for the script to configure; npcaffe's own warnings (e.g. ``set_mode_gpu``
  running on the CPU) are shown on stderr, and ``--verbose``/``--debug`` before SCRIPT show its
  info/debug messages too.

Options for this command come before SCRIPT; everything after SCRIPT is the script's, options
included (``npcaffe run classify.py --gpu in.jpg out.npy``). A SCRIPT that is not a file is a
usage error (exit status 2).

Examples::

    python -m npcaffe.cli.run_script python/classify.py --center_only cat.jpg out.npy
    npcaffe run examples/pycaffe/caffenet.py
"""
import logging
import os
import sys
import types

from npcaffe.cli import runner

log = logging.getLogger(__name__)
_HERE = os.path.abspath(__file__)


def build_parser(prog='npcaffe run'):
    """The parser of this command's own arguments (up to SCRIPT; main() splits off the
    script's)."""
    parser = runner.ArgumentParser(
        prog=prog, usage='%(prog)s [-h] [--verbose] [--debug] SCRIPT [ARGS ...]',
        description="Run a pycaffe script unmodified, with import caffe giving npcaffe.",
        epilog="ARGS, everything after SCRIPT, go to the script as they are (sys.argv[1:]).")
    parser.add_argument('script', metavar='SCRIPT', help="the Python script to run")
    return parser


def _split(argv):
    """(this command's arguments up to and including SCRIPT, the script's arguments)."""
    for i, arg in enumerate(argv):
        if arg == '--':
            return argv[:i + 2], argv[i + 2:]
        if not arg.startswith('-') or arg == '-':
            return argv[:i + 1], argv[i + 1:]
    return argv, []


def _show_npcaffe_logs(level):
    """A stderr handler on the npcaffe logger only, so the script's own logging setup
    (``logging.basicConfig``) works as it would without npcaffe."""
    logger = logging.getLogger('npcaffe')
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def _script_traceback(tb):
    """The traceback from the script's first frame on (this module's frames dropped)."""
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) == _HERE:
        tb = tb.tb_next
    return tb


def _exit_status(exc):
    """The status Python gives ``sys.exit(exc.code)``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_file(script, args=()):
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]``, npcaffe installed as
    caffe; return its exit status. ``sys.argv``, ``sys.path`` and ``sys.modules['__main__']``
    are restored afterwards (the modules it imported stay imported)."""
    import npcaffe
    npcaffe.install_as_caffe()
    path = os.path.abspath(script)
    with open(path, 'rb') as f:
        source = f.read()
    main = types.ModuleType('__main__')
    main.__file__ = path
    main.__builtins__ = __builtins__
    main.__spec__ = None
    saved = sys.argv, list(sys.path), sys.modules.get('__main__')
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
    sys.modules['__main__'] = main
    try:
        code = compile(source, path, 'exec', dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit as exc:
        return _exit_status(exc)
    except BaseException as exc:   # noqa: BLE001 - shown as Python shows an uncaught one
        tb = _script_traceback(exc.__traceback__)
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        if saved[2] is not None:
            sys.modules['__main__'] = saved[2]
        sys.stdout.flush()
    return 0


def main(argv=None, prog='npcaffe run'):
    """The ``run`` verb: parse ``argv`` (default ``sys.argv[1:]``) with npcaffe.cli.runner
    (usage errors: exit status 2), run the script, return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    own, script_args = _split(argv)
    root = logging.getLogger()
    before = list(root.handlers), root.level

    def body(args):
        # runner.run configured logging for a command; the script configures its own
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
        if not os.path.isfile(args.script):
            raise runner.UsageError(f"script {args.script!r} is not a file")
        level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
        handler = _show_npcaffe_logs(level)
        try:
            return run_file(args.script, script_args)
        finally:
            logger = logging.getLogger('npcaffe')
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)

    return runner.run(body, build_parser(prog), own)


if __name__ == '__main__':
    sys.exit(main(prog='python -m npcaffe.cli.run_script'))
