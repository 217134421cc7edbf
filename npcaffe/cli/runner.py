"""What every command line of the engine and the toolkit shares: argparse that reports usage
errors as ``error: ...``, one place that turns exceptions into one line on stderr and an exit status, the
``--debug``/``--verbose`` flags, and a progress bar that shows only on a terminal.

Exit statuses, the same for every tool: 0 success, 1 the work failed (bad input, a fault),
2 the command line is wrong, 130 interrupted.
"""
import argparse
import logging
import sys
import time

# Exceptions whose message is the whole story (the engine's errors derive from these).
EXPECTED = (ValueError, OSError, KeyError, LookupError, NotImplementedError, RuntimeError,
            ArithmeticError, MemoryError)


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2). ``parser``: the
    (sub-command's) parser whose usage line applies, when known."""

    def __init__(self, message, parser=None):
        super().__init__(message)
        self.parser = parser


class ArgumentParser(argparse.ArgumentParser):
    """argparse with ``--debug`` and ``--verbose``, raising UsageError instead of exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument('--verbose', '-v', action='store_true', help='log more detail')
        self.add_argument('--debug', action='store_true',
                          help='show the full traceback when something fails')

    def error(self, message):
        raise UsageError(message, self)


class SubcommandParser(argparse.ArgumentParser):
    """The parser of a sub-command (``add_subparsers(parser_class=SubcommandParser)``): its
    usage errors name it, so that its own usage line is printed."""

    def error(self, message):
        raise UsageError(message, self)


def _message(exc):
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text or type(exc).__name__


def _usage_error(parser, exc):
    """Print the usage line (of the sub-command's parser when the error names one) and
    ``error: ...``; return 2."""
    (getattr(exc, 'parser', None) or parser).print_usage(sys.stderr)
    print(f"error: {exc}", file=sys.stderr)
    return 2


def run(body, parser, argv=None):
    """Parse ``argv`` with ``parser``, set up logging, call ``body(args)``; return the exit
    status (body's return value, or 0). Failures print ``error: ...`` on stderr and return 1
    (2 for a usage error); with ``--debug`` they raise, showing the traceback."""
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage_error(parser, exc)
    except SystemExit as exc:          # --help, --version: already printed
        return exc.code or 0
    logging.basicConfig(level=logging.DEBUG if args.debug else
                        logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        status = body(args)
    except UsageError as exc:
        return _usage_error(parser, exc)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that reports every failure
        if args.debug:
            raise
        if isinstance(exc, EXPECTED):
            print(f"error: {_message(exc)}", file=sys.stderr)
        else:
            print(f"error: internal error, {type(exc).__name__}: {exc} "
                  f"(run with --debug for the traceback)", file=sys.stderr)
        return 1
    return 0 if status is None else status


def _eta(seconds):
    if seconds is None or seconds != seconds or seconds == float('inf'):
        return '--:--'
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress(iterable, total=None, label='', stream=None, unit='items', every=10.0):
    """Yield from ``iterable``, showing how far it is on ``stream`` (stderr): a bar with the
    rate and the time left on a terminal; elsewhere (a log file, a pipe) a plain line at most
    every ``every`` seconds, and one at the end when any was shown."""
    stream = stream or sys.stderr
    tty = hasattr(stream, 'isatty') and stream.isatty()
    total = total if total is not None else (len(iterable) if hasattr(iterable, '__len__')
                                             else None)
    start = last = time.monotonic()
    done = 0
    shown = False
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        rate = done / max(now - start, 1e-9)
        left = (total - done) / rate if total else None
        if tty:
            if total:
                filled = int(30 * done / total)
                bar = '#' * filled + '.' * (30 - filled)
                stream.write(f"\r{label} [{bar}] {done}/{total} {rate:.2f}/s "
                             f"eta {_eta(left)}")
            else:
                stream.write(f"\r{label} {done} {rate:.2f}/s")
            stream.flush()
            shown = True
        elif now - last >= every or (shown and done == total):
            last = now
            of = f"/{total}" if total else ''
            stream.write(f"{label}: {done}{of} {unit}, {rate:.2f}/s"
                         + (f", {_eta(left)} left\n" if total else '\n'))
            stream.flush()
            shown = True
    if tty and shown:
        stream.write('\n')
