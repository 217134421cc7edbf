"""``import caffe`` for pycaffe scripts, on request: ``npcaffe.install_as_caffe()``.

npcaffe ships no top-level ``caffe`` package (it would shadow a real pycaffe); a script or a
runner opts in, as PyMySQL's ``install_as_MySQLdb`` does (``npcaffe.install_as_caffe()`` calls
``install`` here with the npcaffe package)::

    import npcaffe
    npcaffe.install_as_caffe()
    import caffe                           # npcaffe
    from caffe import layers as L          # NetSpec's layer factory, as in pycaffe
    import caffe.proto.caffe_pb2           # npcaffe.proto.caffe_pb2

After the call ``sys.modules`` maps ``caffe`` to npcaffe and ``caffe.<m>`` to ``npcaffe.<m>`` for
pycaffe's modules (io, proto, proto.caffe_pb2, coord_map, draw, net_spec, classifier, detector),
each the same module object under both names, so nothing is loaded twice. As in pycaffe,
``caffe.layers`` and ``caffe.params`` are NetSpec's ``layers``/``params`` objects (not
npcaffe's layer package). Any other ``import caffe.<m>`` resolves to ``npcaffe.<m>`` when that
exists (ModuleNotFoundError otherwise). Calling it again is a no-op; calling it after a
different ``caffe`` was imported raises CaffeError naming that module, rather than mixing two
engines in one process.
"""
import importlib
import importlib.abc
import importlib.util
import sys

from npcaffe import net_spec
from npcaffe.errors import CaffeError

ALIAS = 'caffe'
#: pycaffe's modules, imported and aliased at once
MODULES = ('io', 'proto', 'proto.caffe_pb2', 'coord_map', 'draw', 'net_spec', 'classifier',
           'detector')


class _AliasLoader(importlib.abc.Loader):
    """Loads ``caffe.<m>`` as the already importable ``npcaffe.<m>`` module object itself."""

    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        """Nothing to run: the module is npcaffe's, already executed."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``caffe.<m>`` as ``npcaffe.<m>`` (before the path finder, which would otherwise
    load npcaffe's files a second time under the ``caffe`` name)."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(ALIAS + '.'):
            return None
        real = 'npcaffe' + fullname[len(ALIAS):]
        try:
            found = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ModuleNotFoundError(f"No module named {fullname!r} (npcaffe, installed as "
                                      f"caffe, has no {real!r})", name=fullname)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real),
                                               is_package=found.submodule_search_locations
                                               is not None)


def install(package):
    """Make ``import caffe`` (and pycaffe's submodules) give ``package`` (the npcaffe module) in
    this process; returns it. Idempotent; CaffeError if another ``caffe`` is already imported.
    Called as ``npcaffe.install_as_caffe()``."""
    current = sys.modules.get(ALIAS)
    if current is package:
        return package
    if current is not None:
        where = getattr(current, '__file__', None) or repr(current)
        raise CaffeError(f"cannot install npcaffe as caffe: a caffe module is already imported "
                         f"from {where}")
    for name in MODULES:
        importlib.import_module(f'{package.__name__}.{name}')
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
    sys.modules[ALIAS] = package
    for name in MODULES:
        sys.modules[f'{ALIAS}.{name}'] = sys.modules[f'{package.__name__}.{name}']
    # pycaffe's caffe.layers / caffe.params are NetSpec's objects, not modules
    sys.modules[f'{ALIAS}.layers'] = net_spec.layers
    sys.modules[f'{ALIAS}.params'] = net_spec.params
    return package
