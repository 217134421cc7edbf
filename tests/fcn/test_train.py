"""fcn/train.py (``fcn solve``, ``python solve.py``): what a user meets besides the training
itself — output folders that hold a run, solver settings that cannot train, weights and fillers
that cannot learn (the all-zero trap, worked out by hand), the display lines and the ETA, the
curve, the closing summary, labels checked before training."""
import json
import logging
import types

import numpy as np
import pytest
from PIL import Image

import npcaffe
from fcn import train
from layers.images import DataError
from npcaffe import formats
from npcaffe.proto import caffe_pb2
from tests.test_bad_input import error_line, make_project, solve_args


def run_solve(argv):
    return train.main([str(a) for a in argv])


def edit_solver(path, **fields):
    """Rewrite the solver at ``path`` with ``fields`` set (None: cleared)."""
    s = formats.read_text(path, caffe_pb2.SolverParameter())
    for name, value in fields.items():
        if value is None:
            s.ClearField(name)
        else:
            setattr(s, name, value)
    formats.write_text(path, s)


# ------------------------------------------------------------------------------------------
# the output folder
def test_an_out_folder_holding_a_run_is_refused_and_nothing_is_deleted(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    out = tmp_path / 'run'
    assert run_solve(solve_args(solver, out, max_iter=1)) == 0
    before = {p: p.read_bytes() for p in out.iterdir()}
    assert run_solve(solve_args(solver, out, max_iter=1)) == 1
    message = error_line(capsys)
    assert f'--out {out} already holds an earlier run' in message and '--overwrite' in message
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    (out / 'mine.txt').write_text('kept')
    assert run_solve(solve_args(solver, out, '--overwrite', max_iter=1)) == 0
    assert (out / 'mine.txt').read_text() == 'kept'
    assert set(before) <= set(out.iterdir())


def test_an_out_path_that_is_a_file_is_an_error(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    out = tmp_path / 'run.txt'
    out.write_text('not a folder')
    assert run_solve(solve_args(solver, out, max_iter=1)) == 1
    assert f'--out {out}: is a file, not a folder' in error_line(capsys)
    assert out.read_text() == 'not a folder'


# ------------------------------------------------------------------------------------------
# solver settings
@pytest.mark.parametrize('fields, words', [
    (dict(base_lr=None), ['sets no base_lr', 'rate 0']),
    (dict(base_lr=0.0), ['base_lr 0 trains nothing']),
    (dict(lr_policy='stepp'), ["unknown lr_policy 'stepp'", "did you mean 'step'"]),
    (dict(type='SDG'), ["unknown solver type 'SDG'", "did you mean 'SGD'"]),
])
def test_solver_settings_that_cannot_train_name_the_users_file(tmp_path, capsys, fields,
                                                                words):
    solver, _ = make_project(tmp_path)
    edit_solver(solver, **fields)
    assert run_solve(solve_args(solver, tmp_path / 'run', max_iter=1)) == 1
    message = error_line(capsys)
    assert message.startswith(f'error: {solver}'), message       # the user's file, not a copy
    assert 'internal error' not in message
    for word in words:
        assert word in message, (word, message)
    field = next(iter(fields))
    if fields[field] is not None and field != 'base_lr':          # the line of the setting
        line = next(i for i, text in enumerate(solver.read_text().splitlines(), 1)
                    if text.startswith(f'{field}:'))
        assert message.startswith(f'error: {solver}:{line}:'), message


def test_a_negative_max_iter_is_a_usage_error(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    assert run_solve(solve_args(solver, tmp_path / 'run', max_iter=-3)) == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: fcn solve') and 'error: --max-iter -3: ' in err
    assert 'cannot be negative' in err
    assert not (tmp_path / 'run').exists()


def test_the_reference_rate_without_weights_is_refused(tmp_path, capsys):
    """The reference solvers (loss summed over the pixels, base_lr 1e-10) only fine-tune: from
    the fillers the loss stays constant."""
    solver, _ = make_project(tmp_path)
    edit_solver(solver, base_lr=1e-10)
    argv = ['--solver', solver, '--out', tmp_path / 'run', '--max-iter', 1]
    assert run_solve(argv) == 1
    message = error_line(capsys)
    assert 'base_lr 1e-10 is the reference schedule' in message and '--weights' in message


# ------------------------------------------------------------------------------------------
# the all-zero trap, by hand
def _chain_net(tmp_path, conv1_filler='constant', with_skip=False):
    """data -> conv1 -> relu -> conv2 (-> + data when ``with_skip``) -> conv3; no fillers on
    conv2 and conv3 (zeros, as Caffe's default)."""
    skip = ('layer { name: "sum" type: "Eltwise" bottom: "c2" bottom: "data" top: "s" }\n'
            if with_skip else '')
    last = 's' if with_skip else 'c2'
    text = (
        'layer { name: "data" type: "Input" top: "data" '
        'input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }\n'
        'layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1" convolution_param '
        f'{{ num_output: 2 kernel_size: 1 weight_filler {{ type: "{conv1_filler}" std: 1 }} }} }}\n'
        'layer { name: "relu" type: "ReLU" bottom: "c1" top: "c1" }\n'
        'layer { name: "conv2" type: "Convolution" bottom: "c1" top: "c2" '
        'convolution_param { num_output: 2 kernel_size: 1 } }\n' + skip +
        f'layer {{ name: "conv3" type: "Convolution" bottom: "{last}" top: "c3" '
        'convolution_param { num_output: 2 kernel_size: 1 } }\n')
    path = tmp_path / 'chain.prototxt'
    path.write_text(text)
    return npcaffe.Net(str(path), npcaffe.TRAIN)


def test_dead_layers_worked_out_by_hand(tmp_path):
    fresh = ['conv1', 'conv2', 'conv3']
    # conv1 zero -> relu -> conv2 zero -> conv3 zero: conv2 is fed by conv1's zeros, conv3 by
    # conv2's (zero weights and zero bias give a zero output)
    net = _chain_net(tmp_path)
    assert train.dead_layers(net, fresh) == [('conv2', 'conv1'), ('conv3', 'conv2')]
    # conv1 gaussian: conv2 sees non-zero input and learns; conv3 is still fed by conv2's zeros
    net = _chain_net(tmp_path, conv1_filler='gaussian')
    assert train.dead_layers(net, fresh) == [('conv3', 'conv2')]
    # a skip connection adds the (non-zero) data to conv2's zeros: conv3 learns too
    net = _chain_net(tmp_path, conv1_filler='gaussian', with_skip=True)
    assert train.dead_layers(net, fresh) == []
    # weights reached by a caffemodel are not fresh, whatever their values
    net = _chain_net(tmp_path)
    assert train.dead_layers(net, ['conv3']) == []


def test_fcn_from_vgg_like_weights_is_not_a_trap(tmp_path):
    """FCN's new score layers start at zero (as the reference), fed by copied layers: they
    learn, so training from transplanted weights is allowed."""
    solver, _ = make_project(tmp_path)
    net = npcaffe.Net(str(solver.parent / 'train.prototxt'), npcaffe.TRAIN)
    for name in net.params:
        if not name.startswith(('score', 'upscore')):
            for blob in net.params[name]:
                blob.data[...] = 0.01                      # "copied" from a classifier
    fresh = [n for n in net.params if n.startswith('score')]
    assert fresh and train.dead_layers(net, fresh) == []
    assert train.dead_layers(net, list(net.params)) != []  # zeros everywhere: the trap


def test_the_all_zero_trap_stops_training_without_weights(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    argv = ['--solver', solver, '--out', tmp_path / 'run', '--max-iter', 1]
    assert run_solve(argv) == 1
    message = error_line(capsys)
    assert 'all-zero trap' in message and 'conv1_2 (after conv1_1)' in message
    assert not list((tmp_path / 'run').glob('snapshot_*'))


# ------------------------------------------------------------------------------------------
# what a run shows and writes
def test_display_lines_and_an_eta_are_shown_by_default(tmp_path, capsys):
    solver, _ = make_project(tmp_path)
    edit_solver(solver, display=1)
    assert run_solve(solve_args(solver, tmp_path / 'run', max_iter=3)) == 0
    err = capsys.readouterr().err
    assert 'Iteration 1 (' in err and 'iter/s' in err and 'loss = ' in err     # Caffe's
    assert 'Iteration 1, lr = 0.0001' in err
    assert 'iteration 2 of 3: ' in err and 'left (ETA ' in err                # the run's
    assert run_solve(solve_args(solver, tmp_path / 'quiet', '--quiet', max_iter=3)) == 0
    err = capsys.readouterr().err
    assert 'Iteration 1 (' not in err and 'ETA' not in err
    # the loggers are as they were: a later run's lines reach the root handlers again
    assert logging.getLogger('npcaffe.solver.display').propagate


def test_the_curve_plots_every_displayed_loss(tmp_path):
    solver, _ = make_project(tmp_path)
    edit_solver(solver, display=1)
    assert run_solve(solve_args(solver, tmp_path / 'run', '--score-every', '4',
                                max_iter=4)) == 0
    losses = [json.loads(line) for line in
              (tmp_path / 'run' / 'losses.jsonl').read_text().splitlines()]
    assert [i for i, _ in losses] == [1, 2, 3]          # every display after the first step
    assert all(np.isfinite(v) for _, v in losses)
    with Image.open(tmp_path / 'run' / 'curve.png') as curve:
        assert curve.size == (640, 360)


def test_the_summary_says_which_iteration_a_score_belongs_to(tmp_path):
    training = types.SimpleNamespace(
        last_score={'iter': 500, 'mean_iu': 0.725}, solver=types.SimpleNamespace(iter=744))
    (tmp_path / 'scores.jsonl').write_text('{}\n')
    text = train.summary(training, tmp_path)
    assert 'val mean IU 0.7250 at iteration 500 (training stopped at iteration 744)' in text
    assert 'curve.png' not in text                       # only what was written is named


def test_rgb_labels_are_found_before_training(tmp_path):
    """An RGB-coloured label anywhere in the split stops the run before its first iteration
    (from the files' headers), not when the data layer reaches it."""
    solver, root = make_project(tmp_path, train=('a0', 'a1', 'a2'))
    Image.new('RGB', (32, 24), (128, 0, 0)).save(root / 'labels' / 'a2.png')
    with pytest.raises(DataError, match=r"a2\.png: the label is an RGB-coloured image") as err:
        train.Training(solver, tmp_path / 'run', allow_fresh=True)
    assert 'fcn labels convert' in str(err.value)
    assert not list((tmp_path / 'run').glob('snapshot_*'))


# ------------------------------------------------------------------------------------------
# the device and several workers
def test_gpu_flag_selects_the_device_and_runs_on_the_cpu(tmp_path, capsys, caplog,
                                                         monkeypatch):
    from npcaffe import device
    monkeypatch.setattr(device, '_state', {'mode': 'CPU', 'requested': 'CPU', 'device': 0,
                                           'warned': False})
    solver, _ = make_project(tmp_path)
    with caplog.at_level(logging.WARNING, logger='npcaffe.device'):
        assert run_solve(solve_args(solver, tmp_path / 'run', '--gpu', '1', max_iter=1)) == 0
    assert device.device() == 1 and device.requested_mode() == 'GPU'
    assert device.mode() == 'CPU' and 'running on the CPU' in caplog.text
    assert run_solve(solve_args(solver, tmp_path / 'run2', '--gpu', '-1', max_iter=1)) == 2
    assert 'error: --gpu -1: GPU ids are >= 0' in capsys.readouterr().err


def test_solve_on_two_mpi_ranks_makes_the_update_of_iter_size_two(tmp_path):
    # batch 1 per rank: ranks 0 and 1 take samples 0, 2, 4 and 1, 3, 5 of the layer's seeded
    # sequence, which one process with iter_size 2 reads in that order
    import subprocess
    import sys
    from tests.npcaffe.test_distributed import (ROOT, TOLERANCE, differences, mpi_env,
                                                mpirun_command)
    from tests.test_bad_input import read_params
    command = mpirun_command(2)
    solver, _ = make_project(tmp_path, train=('a0', 'a1', 'a2'))
    edit_solver(solver, display=1)
    args = ['--solver', solver, '--max-iter', 3, '--score-every', 3, '--val-images', 1,
            '--allow-fresh-layers']
    two = tmp_path / 'two'
    proc = subprocess.run(command + [sys.executable, f'{ROOT}/solve.py', '--out', two]
                          + [str(a) for a in args], capture_output=True, text=True,
                          cwd=tmp_path, env=mpi_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(f'are in {two}') == 1                    # rank 0's summary
    assert proc.stderr.count('Iteration 2, lr = ') == 1               # rank 0's display
    assert sorted(p.name for p in two.glob('snapshot_iter_*')) == [
        'snapshot_iter_3.caffemodel', 'snapshot_iter_3.datastate.json',
        'snapshot_iter_3.datastate.rank1.json', 'snapshot_iter_3.solverstate']
    ranks = [json.loads((two / f'snapshot_iter_3.datastate{s}.json').read_text())
             for s in ('', '.rank1')]
    assert ranks[0]['train'] != ranks[1]['train']                     # each its own share
    edit_solver(solver, iter_size=2)
    assert run_solve(args + ['--out', tmp_path / 'one']) == 0
    expected = read_params(tmp_path / 'one' / 'snapshot_iter_3.caffemodel')
    assert run_solve(args[:2] + ['--max-iter', 0, '--score-every', 1, '--out', tmp_path / 'zero',
                                 '--allow-fresh-layers']) == 0
    start = read_params(tmp_path / 'zero' / 'snapshot_iter_0.caffemodel')
    assert differences(start, expected)[0] > 0                        # (it did train)
    assert differences(expected, read_params(two / 'snapshot_iter_3.caffemodel'))[1] \
        <= TOLERANCE
