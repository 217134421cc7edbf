"""Log records in glog's layout, the one Caffe's log parsers read
(``tools/extra/parse_log.py``, ``extract_seconds.py``, ``plot_training_log.py``)::

    I1201 14:03:21.123456 12345 solver.py:486] Iteration 20 (1.5 iter/s, 13.3s/20 iters), loss = 0.31

severity letter (I for DEBUG and INFO, W, E, F for CRITICAL), month and day, local time with
microseconds, the OS thread id (width 5, right-aligned, as glog), the source file's base name
and line, ``]``, the message. A message of several lines gets the prefix on every line (glog
prints only the first; the parsers choke on bare lines).

Example::

    with glog.logging_to(sys.stderr, level=logging.INFO):
        logging.getLogger('npcaffe.solver').info("Solving %s", name)
"""
import contextlib
import datetime
import logging
import os
import socket
import threading

_LETTERS = {logging.DEBUG: 'I', logging.INFO: 'I', logging.WARNING: 'W', logging.ERROR: 'E',
            logging.CRITICAL: 'F'}
#: glog's -minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
MIN_LOG_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}


def severity(levelno):
    """glog's letter for a logging level."""
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _LETTERS[level]
    return 'I'


class GlogFormatter(logging.Formatter):
    """Formats a record as glog does (see the module docstring)."""

    def format(self, record):
        when = datetime.datetime.fromtimestamp(record.created)
        tid = getattr(record, 'native_thread_id', None) or threading.get_native_id()
        prefix = (f"{severity(record.levelno)}{when:%m%d %H:%M:%S}.{when.microsecond:06d} "
                  f"{tid:5d} {record.filename}:{record.lineno}] ")
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return '\n'.join(prefix + line for line in text.split('\n'))


def log_file_name(program, log_dir):
    """glog's file name: ``<program>.<host>.<user>.log.INFO.<yyyymmdd-hhmmss>.<pid>``."""
    user = os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join(log_dir, f"{program}.{socket.gethostname()}.{user}.log.INFO."
                                 f"{stamp}.{os.getpid()}")


@contextlib.contextmanager
def logging_to(stream, level=logging.INFO, log_dir=None, program='npcaffe'):
    """Route the root logger to ``stream`` in glog's layout at ``level`` (and to a glog-named
    file in ``log_dir`` when given) for the duration; the previous root handlers and level
    come back afterwards. Yields the stream handler (its level may be changed)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GlogFormatter())
    handler.setLevel(level)
    handlers = [handler]
    if log_dir:
        file_handler = logging.FileHandler(log_file_name(program, log_dir))
        file_handler.setFormatter(GlogFormatter())
        file_handler.setLevel(logging.INFO)
        handlers.append(file_handler)
    root.handlers = handlers
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.INFO)
    try:
        yield handler
    finally:
        for h in handlers:
            h.flush()
            if h is not handler:
                h.close()
        root.handlers = saved_handlers
        root.setLevel(saved_level)
