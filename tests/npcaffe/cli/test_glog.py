"""glog's layout, checked with the regular expressions of Caffe's log tools: the line format
of tools/extra/extract_seconds.py (extract_datetime_from_line: ``I0210 13:39:22.381027 25210
solver.cpp:204] ...``) and the regexes of tools/extra/parse_log.py (BVLC/caffe 9b89154),
written again here."""
import io
import logging
import re

from npcaffe.cli import glog

# tools/extra/parse_log.py
REGEX_ITERATION = re.compile(r'Iteration (\d+)')
REGEX_TRAIN_OUTPUT = re.compile(r'Train net output #(\d+): (\S+) = ([\.\deE+-]+)')
REGEX_TEST_OUTPUT = re.compile(r'Test net output #(\d+): (\S+) = ([\.\deE+-]+)')
REGEX_LEARNING_RATE = re.compile(r'lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')
# the layout extract_seconds.py splits: severity+mmdd, hh:mm:ss.micro, thread, file:line]
GLOG_LINE = re.compile(r'^([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) '
                       r'([\w.]+):(\d+)\] (.*)$')


def log_lines(*messages, level=logging.INFO):
    stream = io.StringIO()
    with glog.logging_to(stream):
        logger = logging.getLogger('npcaffe.solver')
        for message in messages:
            logger.log(level, message)
    return stream.getvalue().splitlines()


def test_layout_is_glogs():
    [line] = log_lines("Iteration 20 (1.5 iter/s, 13.3s/20 iters), loss = 0.31")
    match = GLOG_LINE.match(line)
    assert match, line
    assert match.group(1) == 'I' and match.group(9) == 'test_glog.py'
    assert match.group(11) == "Iteration 20 (1.5 iter/s, 13.3s/20 iters), loss = 0.31"
    # extract_seconds.extract_datetime_from_line's own parsing
    fields = line.strip().split()
    assert 1 <= int(fields[0][1:3]) <= 12 and 1 <= int(fields[0][3:]) <= 31
    pos = fields[1].rfind('.')
    assert [int(x) for x in fields[1][:pos].split(':')] and int(fields[1][pos + 1:]) >= 0


def test_parse_log_regexes_read_the_solvers_lines():
    lines = log_lines("Iteration 100, lr = 0.00992565",
                      "    Train net output #0: loss = 0.0462841 (* 1 = 0.0462841 loss)",
                      "    Test net output #0: accuracy = 0.9871",
                      "    Test net output #1: loss = 4.5e-05 (* 1 = 4.5e-05 loss)")
    assert REGEX_ITERATION.search(lines[0]).group(1) == '100'
    assert float(REGEX_LEARNING_RATE.search(lines[0]).group(1)) == 0.00992565
    assert REGEX_TRAIN_OUTPUT.search(lines[1]).groups() == ('0', 'loss', '0.0462841')
    assert REGEX_TEST_OUTPUT.search(lines[2]).groups() == ('0', 'accuracy', '0.9871')
    assert float(REGEX_TEST_OUTPUT.search(lines[3]).group(3)) == 4.5e-05


def test_severities_and_multi_line_messages():
    assert log_lines("w", level=logging.WARNING)[0][0] == 'W'
    assert log_lines("e", level=logging.ERROR)[0][0] == 'E'
    lines = log_lines("Initializing solver from parameters:\nbase_lr: 0.01")
    assert len(lines) == 2 and all(GLOG_LINE.match(line) for line in lines)
    assert lines[1].endswith('] base_lr: 0.01')


def test_root_logging_is_restored():
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    log_lines("x")
    assert (root.handlers, root.level) == before
