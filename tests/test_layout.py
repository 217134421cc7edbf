"""The project's layout: what a (non-editable) install puts into site-packages, and an import
graph without cycles."""
import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: the top-level names an install may add to site-packages: the engine, the toolkit, the data
#: layers and net generators that prototxts name (python_param module "layers.voc"), and the
#: distribution's metadata.
INSTALLED = {'npcaffe', 'fcn', 'layers', 'nets'}
#: the project's own code, walked for imports
PACKAGES = ('npcaffe', 'fcn', 'layers', 'nets', 'bench')
SCRIPTS = ('solve.py', 'infer.py', 'surgery.py')
#: the README's script forms and the console command
CONSOLE_SCRIPTS = {'fcn'}


def _copy_source(dest):
    ignore = shutil.ignore_patterns('.git', '.venv', 'venv', '__pycache__', '*.egg-info', 'build',
                                    'dist', 'runs', '.pytest_cache')
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A fresh virtualenv with the project installed into it, not in editable mode: (venv,
    its site-packages). The wheel is built with this environment's setuptools, offline, from a
    copy of the source (a build writes into its source folder)."""
    tmp = tmp_path_factory.mktemp('install')
    src = _copy_source(tmp / 'src')
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    env = dict(os.environ, PIP_NO_INPUT='1')
    result = subprocess.run(pip + ['wheel', '--quiet', '--no-deps', '--no-build-isolation',
                                   '--no-index', '--wheel-dir', str(tmp / 'wheel'), str(src)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp / 'wheel').glob('*.whl')
    result = subprocess.run(pip + ['--python', str(python), 'install', '--quiet', '--no-deps',
                                   '--no-index', str(wheel)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    purelib = subprocess.run([str(python), '-c', 'import sysconfig; '
                              'print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    return venv, Path(purelib)


def test_site_packages_holds_only_the_project_packages(installed):
    _, site = installed
    names = {p.name for p in site.iterdir()}
    metadata = {n for n in names if n.endswith('.dist-info')}
    assert len(metadata) == 1 and next(iter(metadata)).startswith('fcn_npcaffe-'), names
    assert names - metadata == INSTALLED, f"in site-packages: {sorted(names - metadata)}"
    for package in INSTALLED:
        assert (site / package / '__init__.py').is_file(), package


def test_console_scripts_are_installed_and_run(installed):
    venv, _ = installed
    bin_dir = venv / 'bin'
    for name in CONSOLE_SCRIPTS:
        assert (bin_dir / name).is_file(), name
    # the installed command runs with this environment's dependencies (numpy, ...) on the path
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()['purelib'])
    result = subprocess.run([str(bin_dir / 'fcn'), 'help'], capture_output=True, text=True,
                            env=env, cwd=venv)
    assert result.returncode == 0 and 'usage: fcn VERB' in result.stdout, result.stderr
    result = subprocess.run([str(bin_dir / 'python'), '-c',
                             'import fcn.segment, layers.voc, nets; print(fcn.segment.__file__)'],
                            capture_output=True, text=True, env=env, cwd=venv)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(venv), result.stdout


# ------------------------------------------------------------------------------------------
# the import graph
def project_modules():
    """{dotted module name: file} for the project's packages and top-level scripts."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob('*.py'):
            parts = list(path.relative_to(ROOT).with_suffix('').parts)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            modules['.'.join(parts)] = path
    for script in SCRIPTS:
        modules[Path(script).stem] = ROOT / script
    return modules


def import_graph(modules):
    """{module: set of project modules it imports}, from every import statement in its file
    (at the top or inside a function: a deferred import is still a dependency)."""
    def resolve(name):
        while name and name not in modules:
            name = name.rpartition('.')[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        package = module if path.name == '__init__.py' else module.rpartition('.')[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(resolve(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = package.split('.')[:len(package.split('.')) - node.level + 1]
                    base = '.'.join(parts + ([node.module] if node.module else []))
                for alias in node.names:        # `from pkg import module` or `import name`
                    deps.add(resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules
                             else resolve(base))
        deps.discard(None)
        deps.discard(module)
        graph[module] = deps
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_the_project_has_no_import_cycle():
    modules = project_modules()
    graph = import_graph(modules)
    assert len(graph) > 50 and {'fcn.train', 'npcaffe.net', 'layers.voc'} <= set(graph)
    assert 'fcn.metrics' in graph['fcn.train']          # the walker sees imports
    assert cycles(graph) == []


def test_the_top_level_scripts_are_thin_entry_points():
    for script in SCRIPTS:
        tree = ast.parse((ROOT / script).read_text())
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not functions, f"{script} defines {[f.name for f in functions]}: put it in fcn/"
