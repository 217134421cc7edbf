"""Running one Caffe-style command (``npcaffe train``, ``npcaffe convert_imageset``, ...):
gflags parsing (:mod:`~npcaffe.cli.flags`), logging in glog's layout on stderr
(:mod:`~npcaffe.cli.glog`), and :func:`npcaffe.cli.runner.run`'s ``error: ...`` line and
exit status (0 done, 1 failed, 2 bad command line, 130 interrupted).

Every command also takes glog's flags: ``-minloglevel N`` (0 INFO, the default, 1 WARNING,
2 ERROR), ``-log_dir DIR`` (also write a glog-named log file there), and accepts
``-logtostderr`` / ``-alsologtostderr`` (logs always go to stderr), plus ``--debug``
(tracebacks).

Example::

    def main(argv=None):
        spec = flags.Flags('npcaffe compute_image_mean', usage='INPUT_DB [OUTPUT_FILE]')
        spec.define('backend', 'lmdb', 'The backend {leveldb, lmdb} containing the images')
        return brew.run(spec, body, argv)         # body(args) -> exit status or None
"""
import logging
import sys

from npcaffe.cli import glog, runner


def add_logging_flags(spec):
    """glog's flags (see the module docstring)."""
    spec.define('minloglevel', 0, 'Messages logged at a lower level than this are not shown: '
                                  '0 INFO, 1 WARNING, 2 ERROR, 3 FATAL')
    spec.define('log_dir', '', 'If given, also write the log to a glog-named file in this '
                               'folder')
    spec.define('logtostderr', False, 'Accepted for glog compatibility (logs go to stderr)')
    spec.define('alsologtostderr', False, 'Accepted for glog compatibility')


def run(spec, body, argv=None, program='npcaffe'):
    """Parse ``argv`` with ``spec``, log in glog's layout, run ``body(args)``; the exit
    status."""
    if 'minloglevel' not in spec.names:
        add_logging_flags(spec)
    argv = sys.argv[2:] if argv is None else list(argv)
    log_dir = _peek_log_dir(argv)

    def logged_body(args):
        level = glog.MIN_LOG_LEVELS.get(args.minloglevel)
        if level is None:
            raise runner.UsageError(f"-minloglevel takes 0, 1, 2 or 3, got {args.minloglevel}",
                                    spec)
        handler.setLevel(level)
        return body(args)

    try:
        with glog.logging_to(sys.stderr, logging.INFO, log_dir, program) as handler:
            return runner.run(logged_body, spec, argv)
    except OSError as exc:             # the log folder itself
        print(f"error: cannot write the log file in -log_dir {log_dir} "
              f"({exc.strerror or exc})", file=sys.stderr)
        return 1


def _peek_log_dir(argv):
    """-log_dir's value, read before the full parse so that the log file exists while the
    parse runs; '' when absent."""
    for i, arg in enumerate(argv):
        if arg == '--':
            break
        name, eq, value = arg.lstrip('-').partition('=')
        if arg.startswith('-') and name == 'log_dir':
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else '')
    return ''
