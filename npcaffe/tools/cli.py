"""What the tools' command lines share: the project's ``cliutil`` (argparse that reports
``error: ...``, exit statuses 0/1/2) and the parsing of shape options.

``cliutil`` is a top-level module of the project (installed with it); it is imported when a
command line runs, so that ``npcaffe.tools`` (and ``npcaffe.draw``) import without it.
"""
import importlib

from npcaffe.tools import netgraph

__all__ = ['cliutil', 'shape_option']


def cliutil():
    """The project's cliutil module."""
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
