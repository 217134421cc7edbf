"""What the tools' command lines share beyond ``npcaffe.cli.runner``: the parsing of shape
options."""
from npcaffe.cli import runner
from npcaffe.tools import netgraph

__all__ = ['shape_option']


def shape_option(text, option):
    """A shape option's text (``'1,3,500,500'``) -> tuple, None when not given;
    runner.UsageError (exit status 2) when malformed."""
    if text is None:
        return None
    try:
        return netgraph.parse_shape(text)
    except ValueError as exc:
        raise runner.UsageError(f"{option}: {exc}") from None
