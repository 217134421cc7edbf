"""What the tools' command lines share: the project's ``cliutil`` (argparse that reports
``error: ...``, exit statuses 0/1/2) and the parsing of shape options.

``cliutil`` lives at the repository root beside the other command-line programs; it is
imported when a command line runs, so that ``npcaffe.tools`` (and ``npcaffe.draw``) import
without it.
"""
import importlib
import sys
from pathlib import Path

from npcaffe.tools import netgraph

_REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ['cliutil', 'shape_option']


def cliutil():
    """The repository's cliutil module (found beside the npcaffe package when the working
    directory is elsewhere)."""
    try:
        return importlib.import_module('cliutil')
    except ModuleNotFoundError as exc:
        if exc.name != 'cliutil' or not (_REPO_ROOT / 'cliutil.py').is_file():
            raise
    sys.path.append(str(_REPO_ROOT))
    return importlib.import_module('cliutil')


def shape_option(text, option):
    """A shape option's text (``'1,3,500,500'``) -> tuple, None when not given;
    cliutil.UsageError (exit status 2) when malformed."""
    if text is None:
        return None
    try:
        return netgraph.parse_shape(text)
    except ValueError as exc:
        raise cliutil().UsageError(f"{option}: {exc}") from None
