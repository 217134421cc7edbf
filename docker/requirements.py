"""Print the project's requirements (its dependencies and those of the extras named on the
command line) from pyproject.toml, one per line, for ``pip install -r /dev/stdin``: the
Dockerfile installs them in a layer of their own, before the source is copied."""
import sys
import tomllib
from pathlib import Path


def requirements(pyproject, extras):
    project = tomllib.loads(Path(pyproject).read_text())['project']
    found = list(project['dependencies'])
    for extra in extras:
        found += project['optional-dependencies'][extra]
    return list(dict.fromkeys(found))


if __name__ == '__main__':
    print('\n'.join(requirements(Path(__file__).resolve().parents[1] / 'pyproject.toml',
                                 sys.argv[1:])))
