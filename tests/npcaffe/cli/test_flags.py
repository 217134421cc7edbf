"""gflags-style parsing: the four spellings, booleans, -noflag, mixed positionals, errors."""
import pytest

from npcaffe.cli.flags import Flags, split_list
from npcaffe.cli.runner import UsageError


def spec():
    s = Flags('npcaffe demo', usage='A B')
    s.define('solver', '', 'solver file')
    s.define('iterations', 50, 'iterations')
    s.define('shuffle', False, 'shuffle')
    return s


@pytest.mark.parametrize('argv', [
    ['-solver', 's.prototxt'], ['-solver=s.prototxt'], ['--solver', 's.prototxt'],
    ['--solver=s.prototxt']])
def test_four_spellings_of_a_valued_flag(argv):
    assert spec().parse_args(argv).solver == 's.prototxt'


@pytest.mark.parametrize('argv, value', [
    ([], False), (['-shuffle'], True), (['--shuffle'], True), (['-shuffle=false'], False),
    (['-shuffle=0'], False), (['-shuffle=true'], True), (['--shuffle=1'], True),
    (['-noshuffle'], False), (['-shuffle', '-noshuffle'], False)])
def test_booleans(argv, value):
    assert spec().parse_args(argv).shuffle is value


def test_types_defaults_and_positionals_mixed_with_flags():
    args = spec().parse_args(['a', '-iterations', '7', 'b', '--', '-c'])
    assert args.iterations == 7 and args.positional == ['a', 'b', '-c']
    assert spec().parse_args([]).iterations == 50
    assert spec().parse_args(['-iterations=-1']).iterations == -1


@pytest.mark.parametrize('argv, message', [
    (['-solvr', 'x'], r"unknown command line flag -solvr; did you mean -solver\?"),
    (['-iterations', 'many'], r"-iterations takes an integer, got 'many'"),
    (['-shuffle=maybe'], r"-shuffle takes true or false"),
    (['-solver'], r"-solver is missing its value")])
def test_errors_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        spec().parse_args(argv)


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit):
        spec().parse_args(['--help'])
    out = capsys.readouterr().out
    assert 'usage: npcaffe demo [FLAGS] A B' in out and '-iterations (iterations)' in out


def test_split_list():
    assert split_list('a.caffemodel,b.caffemodel') == ['a.caffemodel', 'b.caffemodel']
    assert split_list('') == []
