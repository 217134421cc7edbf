"""Safe parsing of a Python layer's ``param_str`` into checked parameters.

The reference FCN layers read their parameters with ``eval(self.param_str)``, which runs any code
a prototxt carries. Here ``param_str`` is *data*: a Python literal dict (what ``str(dict(...))``
writes, as the reference net generators do), a ``dict(key=value, ...)`` call of literals, or a
JSON object. Every key is checked against the layer's declared parameters: unknown keys are
rejected with the list of known ones, missing required keys are named, and each value is checked
(and normalised) by its parameter's converter::

    SPEC = {
        'voc_dir': Param(path, required=True, doc='VOC year folder'),
        'seed': Param(optional(integer), default=None),
    }
    params = parse_params(self.param_str, SPEC, 'VOCSegDataLayer')
"""
import ast
import difflib
import json
import numbers
import os
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ['ParamError', 'Param', 'parse_params', 'parse_literal', 'path', 'string', 'boolean',
           'integer', 'non_negative_integer', 'positive_integer', 'optional', 'mean_values',
           'extension']


class ParamError(ValueError):
    """A ``param_str`` that cannot be parsed, or a parameter that is unknown, missing or bad."""


_REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a layer: ``convert(value) -> value`` (raises ValueError/TypeError with
    a message), required or with a default, and a one-line description."""
    convert: Callable[[Any], Any]
    required: bool = False
    default: Any = None
    doc: str = ''


# ------------------------------------------------------------------------------------------
# converters: each takes the literal value and returns the normalised one


def path(value):
    """A file system path (str or os.PathLike), returned as str."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty path string, got {value!r}")
    return value


def string(value):
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def boolean(value):
    """True or False (Python or JSON); 0 and 1 are not accepted, to catch swapped keys."""
    if not isinstance(value, bool):
        raise TypeError(f"expected True or False, got {value!r}")
    return value


def integer(value):
    """An int (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def non_negative_integer(value):
    value = integer(value)
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {value}")
    return value


def positive_integer(value):
    value = integer(value)
    if value < 1:
        raise ValueError(f"expected an integer >= 1, got {value}")
    return value


def optional(convert):
    """``convert`` that also accepts None (JSON null)."""
    def convert_optional(value):
        return None if value is None else convert(value)
    convert_optional.__name__ = f"optional_{getattr(convert, '__name__', 'value')}"
    return convert_optional


def mean_values(value):
    """Per-channel means in B, G, R order: a list or tuple of 3 numbers -> tuple of floats."""
    if isinstance(value, (str, bytes)) or not hasattr(value, '__len__'):
        raise TypeError(f"expected a (B, G, R) tuple of 3 numbers, got {value!r}")
    if len(value) != 3 or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                              for v in value):
        raise ValueError(f"expected a (B, G, R) tuple of 3 numbers, got {value!r}")
    return tuple(float(v) for v in value)


def extension(value):
    """A file name extension such as 'jpg' or '.jpg' -> '.jpg'."""
    value = string(value)
    value = value if value.startswith('.') else '.' + value
    if len(value) < 2 or os.sep in value or '/' in value:
        raise ValueError(f"expected a file extension such as '.jpg', got {value!r}")
    return value


# ------------------------------------------------------------------------------------------
# parsing


def _literal_call(node):
    """The dict of a ``dict(key=literal, ...)`` expression, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(kw.arg is not None for kw in node.keywords)):
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    return None


def parse_literal(text, where='param_str'):
    """The dict that ``text`` spells: a Python literal, ``dict(k=v, ...)`` or JSON.

    Raises ParamError naming ``where`` when ``text`` is neither, or is not a dict with string
    keys. An empty ``text`` is the empty dict.
    """
    text = (text or '').strip()
    if not text:
        return {}
    value, errors = None, []
    try:
        tree = ast.parse(text, mode='eval')
        value = _literal_call(tree.body)
        if value is None:
            value = ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        errors.append(f"as a Python literal: {exc}")
        try:
            value = json.loads(text)
        except ValueError as json_exc:
            errors.append(f"as JSON: {json_exc}")
            raise ParamError(f"{where}: cannot read {text!r} as a dict of parameters "
                             f"({'; '.join(errors)}); write e.g. "
                             f"\"{{'split': 'val', 'mean': (104.0, 116.7, 122.7)}}\"") from None
    if not isinstance(value, dict):
        raise ParamError(f"{where}: param_str must be a dict of parameters, "
                         f"got {type(value).__name__} {value!r}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ParamError(f"{where}: parameter names must be strings, got {bad!r}")
    return value


def parse_params(param_str, spec, where='param_str'):
    """Parse ``param_str`` and check it against ``spec`` ({name: Param}).

    Returns a dict with every name of ``spec``: the converted value, or the default. Raises
    ParamError naming ``where`` for unknown keys (listing the known ones), missing required keys
    and values their converter refuses.
    """
    given = parse_literal(param_str, where)
    unknown = [k for k in given if k not in spec]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, spec, n=1, cutoff=0.6)
            hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        raise ParamError(f"{where}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(hints)}; known parameters: {', '.join(spec)}")
    missing = [k for k, p in spec.items() if p.required and k not in given]
    if missing:
        described = ', '.join(f"{k!r} ({spec[k].doc})" if spec[k].doc else repr(k)
                              for k in missing)
        raise ParamError(f"{where}: missing required parameter{'s' if len(missing) > 1 else ''} "
                         f"{described} in param_str {param_str!r}")
    params = {}
    for key, p in spec.items():
        if key not in given:
            params[key] = p.default
            continue
        try:
            params[key] = p.convert(given[key])
        except (TypeError, ValueError) as exc:
            raise ParamError(f"{where}: parameter {key!r}: {exc}") from None
    return params
