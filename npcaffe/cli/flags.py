"""gflags-style command lines, as Caffe's tools parse them.

Every flag may be written ``-flag value``, ``-flag=value``, ``--flag value`` or
``--flag=value``; a boolean flag is ``-shuffle`` (true), ``-shuffle=false`` / ``=0`` / ``=no``,
or ``-noshuffle``. ``--`` ends the flags. Flags and positional arguments may be mixed (gflags
moves the flags out). Unknown flags are usage errors naming close spellings.

Example::

    spec = Flags('convert_imageset', usage='ROOTFOLDER/ LISTFILE DB_NAME')
    spec.define('backend', 'lmdb', 'The backend {lmdb, leveldb} for storing the result')
    spec.define('gray', False, 'Treat images as grayscale ones')
    args = spec.parse_args(['-gray', '--backend=leveldb', 'root/', 'list.txt', 'out_db'])
    args.gray, args.backend, args.positional      # True, 'leveldb', ['root/', 'list.txt', ...]

``parse_args`` returns an ``argparse.Namespace`` with one attribute per flag, ``positional``,
and ``debug``/``verbose`` (``--debug`` is always defined) so that
:func:`npcaffe.cli.runner.run` can drive it; errors raise ``runner.UsageError`` (exit 2).
"""
import argparse
import difflib
import sys

from npcaffe.cli.runner import UsageError

_TRUE = ('true', 't', 'yes', 'y', '1')
_FALSE = ('false', 'f', 'no', 'n', '0')


class Flags:
    """A gflags flag table for one command (see the module docstring)."""

    def __init__(self, prog, usage='', description=''):
        self.prog, self.usage, self.description = prog, usage, description
        self._flags = {}
        self.define('debug', False, 'show the full traceback when something fails')

    def define(self, name, default, help_text, kind=None):
        """Add flag ``name`` of the type of ``default`` (bool, int, float or str; ``kind``
        overrides)."""
        if name in self._flags:
            raise ValueError(f"flag {name!r} is defined twice in {self.prog}")
        self._flags[name] = (kind or type(default), default, help_text)

    @property
    def names(self):
        return list(self._flags)

    def _convert(self, name, text):
        kind = self._flags[name][0]
        if kind is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise UsageError(f"flag -{name} takes true or false, got {text!r}", self)
        try:
            return kind(text)
        except ValueError:
            raise UsageError(f"flag -{name} takes {'an integer' if kind is int else 'a number'}"
                             f", got {text!r}", self) from None

    def _unknown(self, name):
        close = difflib.get_close_matches(name, self._flags, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join('-' + c for c in close)}?" if close else ''
        return UsageError(f"unknown command line flag -{name}{hint} (flags of {self.prog}: "
                          f"{', '.join('-' + n for n in self._flags)})", self)

    def parse_args(self, argv):
        values = {name: default for name, (_, default, _) in self._flags.items()}
        positional = []
        argv = list(argv)
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == '--':
                positional += argv[i:]
                break
            if not arg.startswith('-') or arg == '-' or _is_number(arg):
                positional.append(arg)
                continue
            body = arg.lstrip('-')
            name, eq, text = body.partition('=')
            if name in ('help', 'helpfull', 'h'):
                self.print_help()
                raise SystemExit(0)
            if name not in self._flags and name.startswith('no') and not eq and \
                    self._flags.get(name[2:], (None,))[0] is bool:
                values[name[2:]] = False
                continue
            if name not in self._flags:
                raise self._unknown(name)
            kind = self._flags[name][0]
            if eq:
                values[name] = self._convert(name, text)
            elif kind is bool:
                values[name] = True
            else:
                if i >= len(argv):
                    raise UsageError(f"flag -{name} is missing its value", self)
                values[name] = self._convert(name, argv[i])
                i += 1
        return argparse.Namespace(positional=positional, verbose=False, **values)

    def format_usage(self):
        return f"usage: {self.prog} [FLAGS] {self.usage}".rstrip() + '\n'

    def print_usage(self, stream=None):
        (stream or sys.stderr).write(self.format_usage())

    def format_help(self):
        lines = [self.format_usage().rstrip()]
        if self.description:
            lines += ['', self.description]
        lines += ['', 'flags:']
        for name, (kind, default, help_text) in self._flags.items():
            shown = str(default).lower() if kind is bool else repr(default) \
                if kind is str else default
            lines.append(f"  -{name} ({help_text}) type: {kind.__name__} default: {shown}")
        return '\n'.join(lines) + '\n'

    def print_help(self, stream=None):
        (stream or sys.stdout).write(self.format_help())


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def split_list(text):
    """A comma-separated flag value as a list, empty entries dropped."""
    return [part.strip() for part in text.split(',') if part.strip()]
