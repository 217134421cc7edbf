"""A registry of classes keyed by Caffe's type names (layers, solvers), loud on mistakes:
registering a name twice is an error, and an unknown name gets close spellings suggested."""
import difflib


class Registry:
    """Classes of ``kind`` (e.g. 'layer type') that subclass ``base``, by name."""

    def __init__(self, kind, base=None):
        self.kind, self.base, self._classes = kind, base, {}

    def register(self, name):
        """Class decorator: register the class under ``name`` and set its ``type``."""
        def wrap(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._classes[name].__module__} and {cls.__module__})")
            if self.base is not None and not (isinstance(cls, type) and
                                              issubclass(cls, self.base)):
                raise TypeError(f"{cls!r} registered as {self.kind} {name!r} is not a "
                                f"{self.base.__name__} subclass")
            cls.type = name
            self._classes[name] = cls
            return cls
        return wrap

    def names(self):
        """Sorted registered names."""
        return sorted(self._classes)

    def get(self, name):
        """The class registered as ``name``, or None."""
        return self._classes.get(name)

    def suggestions(self, name):
        """Up to three registered names close to ``name`` (same letters in another case
        first, then by spelling)."""
        close = [n for n in self._classes if n.lower() == name.lower()]
        close += [n for n in difflib.get_close_matches(name, self._classes, n=3, cutoff=0.6)
                  if n not in close]
        return close[:3]

    def unknown(self, name):
        """The sentence for an unknown ``name``: close names and every known one."""
        close = self.suggestions(name)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ''
        return f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}"
