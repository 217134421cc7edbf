"""The Docker image, checked without Docker: the Dockerfile's install lines are the README's,
its entry point dispatches the verbs the README uses to commands that exist (each one's
--help runs through docker/entrypoint.sh itself), and the volumes are documented."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILE = ROOT / 'Dockerfile'
ENTRYPOINT = ROOT / 'docker' / 'entrypoint.sh'
README = ROOT / 'README.md'
REQUIRED_VERBS = {'solve', 'infer', 'nets', 'demo'}
# the console command pip installed beside this interpreter
FCN_COMMAND = Path(sys.executable).parent / 'fcn'


def dockerfile_instructions():
    """[(INSTRUCTION, argument text)] of the Dockerfile, continuation lines joined."""
    instructions, pending = [], ''
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith('#')):
            continue
        if stripped.endswith('\\'):
            pending += stripped[:-1] + ' '
            continue
        text = pending + stripped
        pending = ''
        word, _, rest = text.partition(' ')
        instructions.append((word.upper(), rest.strip()))
    return instructions


def dispatch_table():
    """{verb: command words} from the ``case`` arms of docker/entrypoint.sh."""
    table = {}
    for match in re.finditer(r'^\s*([\w|-]+)\)\s*(.*?)\s*;;', ENTRYPOINT.read_text(), re.M):
        for verb in match.group(1).split('|'):
            table[verb] = match.group(2)
    return table


def readme_blocks(language='sh'):
    return re.findall(rf'```{language}\n(.*?)```', README.read_text(), re.S)


def readme_docker_runs():
    """The argument lists of every ``docker run`` in the README's shell blocks."""
    runs = []
    for block in readme_blocks():
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split('#', 1)[0].strip()
            if line.startswith('docker run'):
                runs.append(shlex.split(line)[2:])
    return runs


def image_and_verb(args):
    """(image, verb) of ``docker run`` arguments: the first word that is not an option or
    an option's value, and the word after it."""
    takes_value = {'-v', '--volume', '-e', '--env', '-w', '--workdir', '--name', '-p',
                   '--user', '-u', '--entrypoint', '--shm-size', '--cpus', '--memory'}
    i = 0
    while i < len(args):
        if args[i] in takes_value:
            i += 2
        elif args[i].startswith('-'):
            i += 1
        else:
            return args[i], (args[i + 1] if i + 1 < len(args) else None)
    return None, None


def run_entrypoint(*args, cwd=None):
    env = dict(os.environ, FCN_HOME=str(ROOT), PYTHON=sys.executable, FCN=str(FCN_COMMAND))
    return subprocess.run(['sh', str(ENTRYPOINT), *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=120)


# ------------------------------------------------------------------------------------------
def test_base_image_is_slim_python():
    (base,) = [arg for word, arg in dockerfile_instructions() if word == 'FROM']
    assert re.fullmatch(r'python:3\.\d+-slim(-\w+)?', base), base


def test_install_lines_are_the_readmes():
    """The image installs the dependencies in a layer before the source is copied (an edit
    rebuilds in seconds), then the project with the README's own install command, both at the
    versions of docker/constraints.txt."""
    instructions = dockerfile_instructions()
    source = instructions.index(('COPY', '. /opt/fcn'))
    installs = [(i, arg) for i, (word, arg) in enumerate(instructions)
                if word == 'RUN' and 'pip install' in arg]
    setup = readme_blocks()[0]                        # "Set up": install, then the tests
    (readme_install,) = [line.strip() for line in setup.splitlines() if 'pip install' in line]
    constrained = readme_install.replace('pip install', 'pip install -c docker/constraints.txt')
    assert [i for i, arg in installs if constrained in arg] and \
        all(i > source for i, arg in installs if constrained in arg), installs
    deps = [(i, arg) for i, arg in installs if '-r ' in arg]
    assert deps and deps[0][0] < source and 'python docker/requirements.py test' in deps[0][1]
    copied = [arg for word, arg in instructions[:source] if word == 'COPY']
    assert any('pyproject.toml' in arg for arg in copied)
    assert any('docker/requirements.py' in arg and 'docker/constraints.txt' in arg
               for arg in copied)


def test_requirements_script_lists_pyprojects_dependencies():
    import tomllib
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    result = subprocess.run([sys.executable, str(ROOT / 'docker' / 'requirements.py'), 'test'],
                            capture_output=True, text=True, check=True)
    listed = result.stdout.split()
    assert listed == list(dict.fromkeys(project['dependencies'] +
                                        project['optional-dependencies']['test']))


def test_constraints_pin_every_dependency():
    import tomllib
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    pins = {}
    for line in (ROOT / 'docker' / 'constraints.txt').read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            name, _, version = line.partition('==')
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[name.lower().replace('_', '-')] = version
    for requirement in project['dependencies'] + project['optional-dependencies']['test']:
        name = re.split(r'[<>=!~ ;\[]', requirement, maxsplit=1)[0].lower()
        assert name in pins, f"docker/constraints.txt pins no version of {name}"


def test_any_uid_can_run_the_image():
    """--user $(id -u):$(id -g): HOME, the caches and /out are writable for every uid."""
    instructions = dockerfile_instructions()
    env = ' '.join(arg for word, arg in instructions if word == 'ENV')
    assert 'HOME=/home/fcn' in env and 'XDG_CACHE_HOME=/home/fcn/.cache' in env
    runs = ' '.join(arg for word, arg in instructions if word == 'RUN')
    assert re.search(r'chmod 1777 /home/fcn /home/fcn/\.cache /out', runs)
    assert '--user "$(id -u):$(id -g)"' in README.read_text()


def test_every_verb_execs_so_that_signals_reach_the_tool():
    """docker stop sends SIGTERM to PID 1: the entry script must replace itself with the tool
    (exec), so that training snapshots before it stops."""
    for verb, command in dispatch_table().items():
        if verb not in ('help', '-h', '--help'):
            assert command.startswith('exec ') or ' exec ' in command, (verb, command)


def test_ignore_files_keep_run_outputs_out_and_scripts_lf():
    ignored = (ROOT / '.dockerignore').read_text().split()
    for entry in ('*.caffemodel', '*.solverstate', 'voc-fcn*/', 'my-*/', 'seg/', 'photos/',
                  'data', 'runs'):
        assert entry in ignored, entry
    assert '*.sh text eol=lf' in (ROOT / '.gitattributes').read_text().splitlines()
    assert b'\r' not in ENTRYPOINT.read_bytes()


def test_readme_says_where_the_test_verb_finds_the_shared_data():
    text = README.read_text()
    assert re.search(r'docker run .*-v "?[^ ]*shared:/shared:ro"? -e FCN_SHARED=/shared '
                     r'fcn-npcaffe test', text), 'the README does not show the test verb'


def test_entrypoint_is_the_dispatch_script():
    instructions = dockerfile_instructions()
    (entry,) = [arg for word, arg in instructions if word == 'ENTRYPOINT']
    words = json.loads(entry)                         # exec form
    assert words[-1] == '/opt/fcn/docker/entrypoint.sh'
    assert ('COPY', '. /opt/fcn') in instructions
    env = ' '.join(arg for word, arg in instructions if word == 'ENV')
    assert 'FCN_HOME=/opt/fcn' in env


def test_volumes_are_declared_and_documented():
    (volumes,) = [arg for word, arg in dockerfile_instructions() if word == 'VOLUME']
    assert set(json.loads(volumes)) == {'/data', '/out'}
    readme = README.read_text()
    for volume in ('/data', '/out'):
        assert f':{volume}' in readme


def test_dockerignore_keeps_environments_and_data_out():
    ignored = (ROOT / '.dockerignore').read_text().split()
    for entry in ('.git', '.venv', 'data', 'runs'):
        assert entry in ignored


def test_entrypoint_script_parses():
    assert subprocess.run(['sh', '-n', str(ENTRYPOINT)]).returncode == 0


def test_required_verbs_are_dispatched_to_the_tools():
    """Each verb runs the fcn console command's verb of the same name."""
    from fcn.cli import VERBS
    table = dispatch_table()
    assert REQUIRED_VERBS <= set(table)
    for verb in VERBS:
        assert table[verb] == 'exec "$FCN" "$verb" "$@"', verb
    assert table['labeltools'] == 'exec "$FCN" labels "$@"'    # the old verb still works


@pytest.mark.parametrize('verb', sorted(set(dispatch_table()) - {'help', '-h', '--help', '*',
                                                                 'test'}))
def test_each_verb_runs_its_tools_help(verb, tmp_path):
    """Through the entry script, from an unrelated working folder as in the image (/out)."""
    result = run_entrypoint(verb, '--help', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'usage:' in result.stdout.lower()


def test_the_fcn_command_is_installed_as_a_console_script():
    assert FCN_COMMAND.is_file(), f"{FCN_COMMAND}: pip did not install the fcn command"
    result = subprocess.run([str(FCN_COMMAND), 'help'], capture_output=True, text=True)
    assert result.returncode == 0 and 'usage: fcn VERB' in result.stdout


def test_help_verb_lists_the_verbs():
    result = run_entrypoint('help')
    assert result.returncode == 0
    for verb in REQUIRED_VERBS:
        assert f'  {verb} ' in result.stdout


def test_other_commands_run_as_given():
    result = run_entrypoint('echo', 'hello')
    assert result.returncode == 0 and result.stdout == 'hello\n'


def test_readme_docker_commands_use_dispatched_verbs():
    runs = readme_docker_runs()
    assert runs, 'the README shows no docker run'
    verbs = set(dispatch_table()) - {'*'}
    used = set()
    for args in runs:
        image, verb = image_and_verb(args)
        assert image == 'fcn-npcaffe', args
        assert verb in verbs, f"README: docker run ... {verb}: not a verb of the image"
        used.add(verb)
    assert REQUIRED_VERBS <= used
    builds = [line for block in readme_blocks() for line in block.splitlines()
              if line.startswith('docker build')]
    assert builds and all('-t fcn-npcaffe' in line for line in builds)


def test_ci_runs_exactly_the_readmes_two_set_up_commands():
    """.ci/run installs and tests with the README's own two commands, in that order."""
    setup = [line.strip() for line in readme_blocks()[0].splitlines() if line.strip()]
    assert len(setup) == 2 and 'pip install' in setup[0] and 'pytest' in setup[1]
    ci = [line.strip() for line in (ROOT / '.ci' / 'run').read_text().splitlines()]
    assert setup[0] in ci and setup[1] in ci
    assert ci.index(setup[0]) < ci.index(setup[1]) == len(ci) - 1   # the tests come last
