"""Solvers: Caffe's golden trajectories, hand-computed updates for every solver type and lr
policy, snapshots (atomic, restorable, BVLC's format), SIGINT, divergence, bad settings."""
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import npcaffe
from npcaffe import formats
from npcaffe.errors import CaffeError, ModelFileError, PrototxtError
from npcaffe.lr_policy import learning_rate
from npcaffe.proto import caffe_pb2
from npcaffe.solver import (SnapshotError, TrainingDivergedError, get_solver,
                            read_solver_param)
from tests.conftest import ROOT, require_shared, wait_for
from tests.npcaffe.test_lr_policy import CASES as POLICY_CASES

TOL = 2e-4          # golden/FORMAT.md, solver cases
GOLDEN = ['solver_small_sgd', 'solver_small_nesterov_inv', 'solver_small_step_itersize',
          'solver_fcn8s_sgd']
SMALL = GOLDEN[:3]


# ------------------------------------------------------------------------------------------
# helpers
def rel_err(actual, expected):
    expected = np.asarray(expected, np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    err = float(np.abs(np.asarray(actual, np.float64) - expected).max()) if expected.size else 0.0
    return err / scale if scale else err


def start_golden(case, tmp_path, monkeypatch):
    """The golden case's solver, from its read-only folder, working (and snapshotting) in
    tmp_path: train_net is found beside the solver file, snapshot_prefix 'snap' lands here."""
    folder = require_shared('golden', case)
    monkeypatch.chdir(tmp_path)
    solver = get_solver(str(folder / 'solver.prototxt'))
    solver.net.copy_from(str(folder / 'init.caffemodel'))
    traj = np.load(folder / 'trajectory.npz')
    for name in ('data', 'label'):
        value = traj[f'in/{name}']
        solver.net.blobs[name].reshape(*value.shape)
        solver.net.blobs[name].data[...] = value
    steps = sum(1 for k in traj.files if k.startswith('loss/'))
    return folder, solver, traj, steps


def params_of(net):
    return {f"{layer}/{j}": blob.data.copy() for layer, blobs in net.params.items()
            for j, blob in enumerate(blobs)}


ONE_PARAM_NET = """
name: "one"
layer {{ name: "w" type: "Parameter" top: "w" parameter_param {{ shape {{ dim: 1 dim: {n} }} }}
        param {{ lr_mult: {lr_mult} decay_mult: {decay_mult} }} }}
layer {{ name: "target" type: "Input" top: "target" input_param {{ shape {{ dim: 1 dim: {n} }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "loss" }}
"""


def solver_param(tmp_path, net_text=None, lr_mult=1, decay_mult=1, n=1, **fields):
    """A SolverParameter training ONE_PARAM_NET: loss = |w - target|^2 / 2 with target 0, so
    the gradient is w itself."""
    param = caffe_pb2.SolverParameter()
    text_format.Parse(net_text or ONE_PARAM_NET.format(lr_mult=lr_mult, decay_mult=decay_mult,
                                                       n=n), param.net_param)
    settings = dict(base_lr=0.1, lr_policy='fixed', max_iter=100, snapshot_after_train=False,
                    snapshot_prefix=str(tmp_path / 'snap'))
    settings.update(fields)
    for key, value in settings.items():
        if isinstance(value, list):
            getattr(param, key).extend(value)
        elif isinstance(value, dict):
            text_format.Parse(value['text'], getattr(param, key))
        else:
            setattr(param, key, value)
    return param


def one_param_solver(tmp_path, w0=1.0, **fields):
    solver = get_solver(solver_param(tmp_path, **fields))
    solver.net.params['w'][0].data[...] = w0
    return solver


def w_of(solver):
    return solver.net.params['w'][0].data.reshape(-1).copy()


# ------------------------------------------------------------------------------------------
# golden trajectories and snapshots (BVLC Caffe)
def float64_sgd_history(folder, solver, steps):
    """The exact (float64) SGD history after ``steps`` steps of a golden case, to judge
    history blobs whose float32 value is dominated by rounding (tiny early-layer gradients of
    a deep net, where Caffe's own float32 history is off by percents as well)."""
    param = solver.param
    assert param.type == 'SGD' and param.iter_size == 1
    net = npcaffe.Net(str(folder / param.train_net), npcaffe.TRAIN, dtype=np.float64)
    net.copy_from(str(folder / 'init.caffemodel'))
    for name in ('data', 'label'):
        net.blobs[name].data[...] = solver.net.blobs[name].data if name == 'label' else \
            np.load(folder / 'trajectory.npz')['in/data']
    blobs = net.learnable_params
    history = [np.zeros(b.shape) for b in blobs]
    step = 0
    for it in range(steps):
        net.clear_param_diffs()
        net.forward_prefilled()
        net.backward()
        rate, step = learning_rate(param, it, step)
        for blob, (lr_mult, decay_mult), h in zip(blobs, net.learnable_param_multipliers,
                                                  history):
            h *= param.momentum
            h += rate * lr_mult * (blob.diff + param.weight_decay * decay_mult * blob.data)
            blob.data[...] -= h
    return history


@pytest.mark.parametrize('case', GOLDEN)
def test_golden_trajectory_and_snapshot(case, tmp_path, monkeypatch):
    folder, solver, traj, steps = start_golden(case, tmp_path, monkeypatch)
    worst = {'param': 0.0, 'loss': 0.0, 'snapshot': 0.0, 'history': 0.0}
    for i in range(steps):
        solver.step(1)
        assert solver.iter == i + 1
        err = rel_err(solver.net.blobs['loss'].data, traj[f'loss/{i}'])
        assert err <= TOL, f"{case}: loss of step {i}: relative error {err:.3g}"
        worst['loss'] = max(worst['loss'], err)
        keys = [k for k in traj.files if k.startswith(f'step{i}/')]
        assert keys
        for key in keys:
            _, layer, j = key.split('/')
            err = rel_err(solver.net.params[layer][int(j)].data, traj[key])
            assert err <= TOL, f"{case}: {key}: relative error {err:.3g}"
            worst['param'] = max(worst['param'], err)

    # the snapshot, beside Caffe's of the same iteration
    state_file = solver.snapshot()
    assert state_file == f'snap_iter_{steps}.solverstate'
    assert sorted(os.listdir(tmp_path)) == [f'snap_iter_{steps}.caffemodel', state_file]
    ours = {name: blobs for name, _, blobs in
            formats.read_caffemodel(f'snap_iter_{steps}.caffemodel').layers()}
    theirs = formats.read_caffemodel(folder / f'snap_iter_{steps}.caffemodel')
    for name, _, blobs in theirs.layers():
        assert len(ours.get(name, [])) == len(blobs), name
        for a, b in zip(ours[name], blobs):
            assert a.shape == b.shape
            err = rel_err(a.data, b.data)
            assert err <= TOL, f"{case}: snapshot {name}: relative error {err:.3g}"
            worst['snapshot'] = max(worst['snapshot'], err)

    state, history = formats.read_solverstate(state_file)
    golden_state, golden_history = formats.read_solverstate(
        folder / f'snap_iter_{steps}.solverstate')
    assert (state.iter, state.current_step, state.learned_net) == \
        (golden_state.iter, golden_state.current_step, golden_state.learned_net)
    assert [h.shape for h in history] == [h.shape for h in golden_history]
    exact = None
    for k, (a, b) in enumerate(zip(history, golden_history)):
        err = rel_err(a.data, b.data)
        if err > TOL:
            # judge against float64 truth: no farther from it than Caffe's own float32 value
            if exact is None:
                exact = float64_sgd_history(folder, solver, steps)
            ours_off = rel_err(a.data, exact[k])
            caffe_off = rel_err(b.data, exact[k])
            worst['history_ill_conditioned'] = max(worst.get('history_ill_conditioned', 0),
                                                   err)
            worst['float64_ours_vs_caffe'] = max(worst.get('float64_ours_vs_caffe', 0),
                                                 ours_off / caffe_off)
            assert ours_off <= max(1.5 * caffe_off, TOL), \
                f"{case}: history {k}: {err:.3g} from Caffe's, {ours_off:.3g} from float64 " \
                f"(Caffe's {caffe_off:.3g})"
        else:
            worst['history'] = max(worst['history'], err)
    # our solverstate has Caffe's wire layout: the same fields, hence the same size
    assert os.path.getsize(state_file) == \
        os.path.getsize(folder / f'snap_iter_{steps}.solverstate')
    parsed = caffe_pb2.SolverState.FromString(Path(state_file).read_bytes())
    assert [f.name for f, _ in parsed.ListFields()] == \
        [f.name for f, _ in caffe_pb2.SolverState.FromString(
            (folder / f'snap_iter_{steps}.solverstate').read_bytes()).ListFields()]
    print(f"{case}: worst relative errors {worst}")


@pytest.mark.parametrize('case', GOLDEN)
def test_restoring_caffe_solverstate_continues_as_an_uninterrupted_run(case, tmp_path,
                                                                       monkeypatch):
    folder, straight, _, steps = start_golden(case, tmp_path, monkeypatch)
    extra = 2
    straight.step(steps + extra)
    _, resumed, _, _ = start_golden(case, tmp_path, monkeypatch)
    # Caffe's learned_net is 'snap_iter_N.caffemodel', relative to Caffe's working directory:
    # not in ours (tmp_path), found beside the solverstate
    assert not Path(f'snap_iter_{steps}.caffemodel').exists()
    resumed.restore(str(folder / f'snap_iter_{steps}.solverstate'))
    assert resumed.iter == steps
    resumed.step(extra)
    assert resumed.iter == straight.iter == steps + extra
    expected = params_of(straight.net)
    for key, value in params_of(resumed.net).items():
        err = rel_err(value, expected[key])
        assert err <= TOL, f"{case}: {key} after restore + {extra} steps: {err:.3g}"
    if case in SMALL:   # (FCN-8s's early-layer histories are float32 noise; see above)
        for k, (a, b) in enumerate(zip(resumed.history, straight.history)):
            assert rel_err(a, b) <= TOL, f"{case}: history {k}"


SOLVER_TYPES = ['SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam']


@pytest.mark.parametrize('solver_type', SOLVER_TYPES)
def test_own_snapshot_restores_bit_exactly(solver_type, tmp_path, monkeypatch):
    folder = require_shared('golden', 'solver_small_step_itersize')
    monkeypatch.chdir(tmp_path)
    param = read_solver_param(folder / 'solver.prototxt')
    param.train_net = str(folder / 'train.prototxt')
    param.type = solver_type
    param.snapshot_prefix = str(tmp_path / 'run')
    if solver_type in ('AdaGrad', 'RMSProp'):
        param.momentum = 0
    traj = np.load(folder / 'trajectory.npz')

    def fresh():
        solver = get_solver(param)
        assert type(solver).__name__ == f'{solver_type}Solver'
        solver.net.copy_from(str(folder / 'init.caffemodel'))
        for name in ('data', 'label'):
            solver.net.blobs[name].data[...] = traj[f'in/{name}']
        return solver

    straight = fresh()
    straight.step(5)
    first = fresh()
    first.step(3)
    state_file = first.snapshot()
    assert state_file == str(tmp_path / 'run_iter_3.solverstate')
    resumed = fresh()
    resumed.restore(state_file)
    assert (resumed.iter, resumed.current_step) == (3, first.current_step)
    resumed.step(2)
    for key, value in params_of(straight.net).items():
        assert np.array_equal(params_of(resumed.net)[key], value), key
    assert len(resumed.history) == len(straight.history) == \
        len(straight.net.learnable_params) * (2 if solver_type in ('AdaDelta', 'Adam') else 1)
    for a, b in zip(resumed.history, straight.history):
        assert np.array_equal(a, b)


# ------------------------------------------------------------------------------------------
# hand-computed updates on one parameter (loss w^2 / 2, so the gradient is w), w0 = 1
def run_steps(solver, n):
    ws = []
    for _ in range(n):
        solver.step(1)
        ws.append(float(w_of(solver)[0]))
    return ws


def test_sgd_momentum_and_l2_decay_by_hand(tmp_path):
    s = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1)
    # step 1: diff = w + 0.1 w = 1.1;        h = 0.1 * 1.1 = 0.11;             w = 0.89
    # step 2: diff = 0.89 * 1.1 = 0.979;     h = 0.9 * 0.11 + 0.0979 = 0.1969; w = 0.6931
    assert run_steps(s, 2) == pytest.approx([0.89, 0.6931], rel=1e-6)
    assert s.history[0].reshape(-1) == pytest.approx([0.1969], rel=1e-6)
    assert s.history[0].dtype == np.float32


def test_sgd_l1_decay_by_hand(tmp_path):
    s = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1, regularization_type='L1')
    # step 1: diff = 1 + 0.1 sign(1) = 1.1;  h = 0.11;                          w = 0.89
    # step 2: diff = 0.89 + 0.1 = 0.99;      h = 0.099 + 0.099 = 0.198;         w = 0.692
    assert run_steps(s, 2) == pytest.approx([0.89, 0.692], rel=1e-6)


def test_lr_mult_and_decay_mult_by_hand(tmp_path):
    s = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1, lr_mult=2, decay_mult=0)
    # local rate 0.2, no decay
    # step 1: h = 0.2 * 1 = 0.2;                       w = 0.8
    # step 2: h = 0.9 * 0.2 + 0.2 * 0.8 = 0.34;        w = 0.46
    assert run_steps(s, 2) == pytest.approx([0.8, 0.46], rel=1e-6)


def test_lr_mult_zero_keeps_the_parameter(tmp_path):
    s = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1, lr_mult=0)
    assert run_steps(s, 2) == [1.0, 1.0]


def test_nesterov_by_hand(tmp_path):
    s = one_param_solver(tmp_path, type='Nesterov', momentum=0.9)
    # step 1: h = 0.1 * 1 = 0.1;   update = 1.9 * 0.1 - 0.9 * 0 = 0.19;           w = 0.81
    # step 2: h = 0.09 + 0.081 = 0.171; update = 1.9 * 0.171 - 0.9 * 0.1 = 0.2349; w = 0.5751
    assert run_steps(s, 2) == pytest.approx([0.81, 0.5751], rel=1e-6)


def test_adagrad_by_hand(tmp_path):
    s = one_param_solver(tmp_path, type='AdaGrad', delta=1e-8)
    # step 1: h = 1;          update = 0.1 * 1 / (1 + 1e-8) = 0.1;               w = 0.9
    # step 2: h = 1 + 0.81;   update = 0.1 * 0.9 / sqrt(1.81) = 0.0668965;       w = 0.8331035
    assert run_steps(s, 2) == pytest.approx([0.9, 0.9 - 0.09 / np.sqrt(1.81)], rel=1e-6)


def test_rmsprop_by_hand(tmp_path):
    s = one_param_solver(tmp_path, type='RMSProp', rms_decay=0.9, delta=1e-8)
    # step 1: h = 0.1 * 1 = 0.1;             update = 0.1 / sqrt(0.1) = 0.3162278; w = 0.6837722
    w1 = 1 - 0.1 / np.sqrt(0.1)
    # step 2: h = 0.9 * 0.1 + 0.1 * w1^2;     update = 0.1 * w1 / sqrt(h)
    h2 = 0.09 + 0.1 * w1 ** 2
    assert run_steps(s, 2) == pytest.approx([w1, w1 - 0.1 * w1 / np.sqrt(h2)], rel=1e-5)


def test_adadelta_by_hand(tmp_path):
    s = one_param_solver(tmp_path, type='AdaDelta', base_lr=1.0, momentum=0.9, delta=1e-2)
    # step 1: g = 0.1 * 1^2 = 0.1; dx = 1 * sqrt((0 + 0.01) / (0.1 + 0.01)) = 0.3015113
    #         u = 0.1 * dx^2 = 0.0090909;   w = 1 - dx = 0.6984887
    dx1 = np.sqrt(0.01 / 0.11)
    w1, u1, g1 = 1 - dx1, 0.1 * dx1 ** 2, 0.1
    # step 2: g = 0.9 g + 0.1 w1^2;  dx = w1 sqrt((u1 + 0.01) / (g + 0.01))
    g2 = 0.9 * g1 + 0.1 * w1 ** 2
    dx2 = w1 * np.sqrt((u1 + 0.01) / (g2 + 0.01))
    assert run_steps(s, 2) == pytest.approx([w1, w1 - dx2], rel=1e-5)
    assert len(s.history) == 2       # squared gradients, squared updates
    assert s.history[1].reshape(-1) == pytest.approx([0.9 * u1 + 0.1 * dx2 ** 2], rel=1e-5)


def test_adam_by_hand(tmp_path):
    s = one_param_solver(tmp_path, type='Adam', momentum=0.9, momentum2=0.999, delta=1e-8)
    # step 1 (t = 1): m = 0.1; v = 0.001; correction = sqrt(1 - 0.999) / (1 - 0.9)
    #   update = 0.1 * correction * m / (sqrt(v) + 1e-8) = 0.1 (Adam's first step: lr * sign)
    # step 2 (t = 2): m = 0.09 + 0.1 * 0.9 = 0.18; v = 0.999e-3 + 0.001 * 0.81 = 0.001809
    #   correction = sqrt(1 - 0.999^2) / (1 - 0.81)
    corr2 = np.sqrt(1 - 0.999 ** 2) / (1 - 0.81)
    w2 = 0.9 - 0.1 * corr2 * 0.18 / (np.sqrt(0.001809) + 1e-8)
    assert run_steps(s, 2) == pytest.approx([0.9, w2], rel=1e-5)


@pytest.mark.parametrize('policy,fields,rates', POLICY_CASES, ids=[c[0] for c in POLICY_CASES])
def test_every_lr_policy_drives_the_update(policy, fields, rates, tmp_path):
    # plain SGD, momentum 0: w_{k+1} = w_k - rate_k * w_k, the rate of iteration k (before
    # iter += 1); so w after 8 steps is the product of (1 - rate_k)
    s = one_param_solver(tmp_path, lr_policy=policy, **fields)
    ws = run_steps(s, 8)
    assert ws == pytest.approx(list(np.cumprod([1 - r for r in rates])), rel=1e-5)


def test_iter_size_accumulates_then_normalizes(tmp_path):
    # three forward/backward passes add 3w to the diff; Normalize divides by 3 before the
    # decay is added: same trajectory as iter_size 1
    one = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1)
    three = one_param_solver(tmp_path, momentum=0.9, weight_decay=0.1, iter_size=3)
    assert run_steps(three, 3) == pytest.approx(run_steps(one, 3), rel=1e-6)
    assert three.smoothed_loss == pytest.approx(one.smoothed_loss, rel=1e-6)


def test_clip_gradients_scales_the_global_norm(tmp_path):
    # w = (3, 4): gradient norm 5 > clip 1, so the diff becomes (0.6, 0.8); lr 1
    s = one_param_solver(tmp_path, w0=[3.0, 4.0], n=2, base_lr=1.0, clip_gradients=1.0)
    s.step(1)
    assert w_of(s) == pytest.approx([2.4, 3.2], rel=1e-6)
    # below the threshold nothing changes: w = (0.3, 0.4), norm 0.5
    s = one_param_solver(tmp_path, w0=[0.3, 0.4], n=2, base_lr=1.0, clip_gradients=1.0)
    s.step(1)
    assert w_of(s) == pytest.approx([0.0, 0.0], abs=1e-7)


def test_shared_parameter_is_updated_once_with_its_owners_multipliers(tmp_path):
    net = """
    layer { name: "a" type: "Parameter" top: "a" parameter_param { shape { dim: 1 dim: 1 } }
            param { name: "shared" lr_mult: 2 } }
    layer { name: "b" type: "Parameter" top: "b" parameter_param { shape { dim: 1 dim: 1 } }
            param { name: "shared" lr_mult: 2 } }
    layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 1 dim: 1 } } }
    layer { name: "la" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "la" }
    layer { name: "lb" type: "EuclideanLoss" bottom: "b" bottom: "t" top: "lb" }
    """
    s = get_solver(solver_param(tmp_path, net_text=net))
    s.net.params['a'][0].data[...] = 1
    assert len(s.history) == 1
    s.step(1)
    # both losses send gradient w = 1 into the one shared diff: 2; local rate 0.1 * 2
    assert s.net.params['b'][0].data.item() == pytest.approx(1 - 0.2 * 2)


def test_apply_update_and_callbacks_follow_caffes_order(tmp_path):
    s = one_param_solver(tmp_path, momentum=0.9)
    events = []
    s.add_callback(lambda: events.append(('start', s.iter, s.net.params['w'][0].diff.item())),
                   lambda: events.append(('gradients', s.iter,
                                          s.net.params['w'][0].diff.item())))
    s.step(2)
    # diffs are cleared before on_start; on_gradients sees the backward pass's diff (= w)
    assert events == [('start', 0, 0.0), ('gradients', 0, 1.0),
                      ('start', 1, 0.0), ('gradients', 1, pytest.approx(0.9))]
    # pycaffe's manual loop: forward, backward, apply_update (iter stays)
    manual = one_param_solver(tmp_path, momentum=0.9)
    for _ in range(2):
        manual.net.clear_param_diffs()
        manual.net.forward()
        manual.net.backward()
        manual.apply_update()
    assert manual.iter == 0
    assert w_of(manual) == pytest.approx(w_of(s))


@pytest.mark.parametrize('solver_type', SOLVER_TYPES)
def test_update_keeps_and_allocates_no_parameter_sized_scratch(solver_type, tmp_path):
    # Caffe keeps update_/temp_ blobs of every parameter's size; the update goes piece by
    # piece instead (the same float32 operations), so a solver holds its net and its history
    # only, and an update allocates nothing of a parameter's size (FCN's fc6 is 411 MB)
    n = 1 << 20                                               # a 4 MB parameter
    momentum = 0.0 if solver_type in ('AdaGrad', 'RMSProp') else 0.9
    param = solver_param(tmp_path, n=n, type=solver_type, momentum=momentum, weight_decay=0.1,
                         iter_size=2, delta=1e-8)
    size = 4 * n
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        net = npcaffe.Net(param.net_param, npcaffe.TRAIN)
        net_bytes = tracemalloc.get_traced_memory()[0] - before
        del net
        before = tracemalloc.get_traced_memory()[0]
        s = get_solver(param)
        held = tracemalloc.get_traced_memory()[0] - before
        s.net.params['w'][0].data[...] = 1
        for _ in range(2):
            s.net.forward()
            s.net.backward()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        s.apply_update()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    history = sum(h.nbytes for h in s.history)
    assert history == size * s.history_per_param
    assert held - net_bytes - history < size / 4
    assert peak < size / 4


# ------------------------------------------------------------------------------------------
# the steps' shared backward diffs (npcaffe.net, Training memory)
FCN_VARIANTS = ['fcn32s', 'fcn16s', 'fcn8s', 'fcn8s-atonce', 'fcn-alexnet']
FCN_SHAPE = (1, 3, 64, 80)


def fcn_solver(variant, share):
    """SGD on the variant's train net at width 1/16 (an Input for its data layer), seeded
    weights and dropout, the bench's image and label."""
    from bench import models
    param = models.sgd_solver_param(variant, models.train_net_param(variant, FCN_SHAPE,
                                                                    width=1 / 16))
    param.base_lr, param.random_seed = 1e-7, 1
    solver = get_solver(param)
    solver.share_diffs = share
    rng = np.random.default_rng(0)
    for blobs in solver.net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) * np.float32(
                np.sqrt(2.0 / max(blob.count // blob.shape[0], 1)))
    solver.net.blobs['data'].data[...] = models.test_image(FCN_SHAPE)
    solver.net.blobs['label'].data[...] = models.test_label(FCN_SHAPE)
    return solver


def poison_shared_diffs(net):
    """Fill the step's shared diff buffers with NaN (made now if need be): a layer that read
    a shared diff before writing it would spread them."""
    net._share_diffs()
    for buf in net._diff_buffers:
        buf[...] = np.nan
    net._unshare_diffs()


@pytest.mark.parametrize('variant', FCN_VARIANTS)
def test_shared_backward_diffs_give_the_very_same_weights(variant):
    runs = []
    for share in (False, True):
        s = fcn_solver(variant, share)
        for _ in range(2):
            if share:
                poison_shared_diffs(s.net)
            s.step(1)
        runs.append((params_of(s.net), [h.copy() for h in s.history],
                     float(s.net.blobs['loss'].data)))
    (w0, h0, loss0), (w1, h1, loss1) = runs
    assert loss1 == loss0 and np.isfinite(loss0)
    assert w0.keys() == w1.keys()
    assert all(np.array_equal(w0[k], w1[k]) for k in w0)
    assert all(np.array_equal(a, b) for a, b in zip(h0, h1))


def test_a_step_holds_the_shared_diffs_only_and_backward_keeps_every_diff():
    held = {}
    for share in (False, True):
        tracemalloc.start()
        try:
            s = fcn_solver('fcn8s', share)
            s.step(2)
            held[share] = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if not share:
            inner = sum(b.diff.nbytes for name, b in s.net.blobs.items()
                        if b.has_diff and name not in ('loss', 'data', 'label'))
    # FCN-8s: the inner diffs take less than half their own size when they share
    assert held[False] - held[True] > inner / 2
    # after the step the shared diffs are dropped (zeros when read); the loss weight stays
    assert not s.net.blobs['conv1_1'].has_diff and not s.net.blobs['score'].has_diff
    assert s.net.blobs['loss'].diff == 1
    # a direct backward keeps every diff, as Caffe
    s.net.forward()
    s.net.backward()
    assert s.net.blobs['conv1_1'].has_diff and np.abs(s.net.blobs['conv1_1'].diff).max() > 0


# ------------------------------------------------------------------------------------------
# solver files, nets and logging
def write_solver(tmp_path, text, name='solver.prototxt'):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def write_one_param_net(tmp_path, name='net.prototxt'):
    (tmp_path / name).write_text(ONE_PARAM_NET.format(lr_mult=1, decay_mult=1, n=1))
    return name


@pytest.mark.parametrize('text,cls', [
    ('type: "Adam"', 'AdamSolver'),
    ('solver_type: NESTEROV', 'NesterovSolver'),   # the deprecated enum
    ('', 'SGDSolver'),
])
def test_get_solver_picks_the_type(text, cls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_one_param_net(tmp_path)
    path = write_solver(tmp_path, f'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                  f'{text}\n')
    solver = get_solver(str(path))
    assert type(solver).__name__ == cls
    assert solver.param.type == cls[:-len('Solver')]
    # pycaffe's constructors by name
    assert type(getattr(npcaffe, cls)(str(path))).__name__ == cls
    # snapshot_prefix unset: Caffe derives it from the solver file name
    assert solver.param.snapshot_prefix == str(path)[:-len('.prototxt')]


def test_solver_type_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_one_param_net(tmp_path)
    both = write_solver(tmp_path, 'net: "net.prototxt"\nlr_policy: "fixed"\ntype: "SGD"\n'
                                  'solver_type: ADAM\n')
    with pytest.raises(PrototxtError, match='cannot both be given'):
        get_solver(str(both))
    unknown = write_solver(tmp_path, 'net: "net.prototxt"\nlr_policy: "fixed"\ntype: "Lion"\n')
    with pytest.raises(CaffeError, match="unknown solver type 'Lion'.*Adam"):
        get_solver(str(unknown))
    with pytest.raises(CaffeError, match='momentum cannot be used with AdaGrad'):
        get_solver(solver_param(tmp_path, type='AdaGrad', momentum=0.9))
    with pytest.raises(CaffeError, match='rms_decay'):
        get_solver(solver_param(tmp_path, type='RMSProp', rms_decay=1.0))
    with pytest.raises(CaffeError, match='unknown learning rate policy'):
        get_solver(solver_param(tmp_path, lr_policy='cosine'))
    with pytest.raises(CaffeError, match="regularization_type 'L3'"):
        get_solver(solver_param(tmp_path, weight_decay=0.1, regularization_type='L3'))


def test_train_net_must_be_given_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_one_param_net(tmp_path)
    none = write_solver(tmp_path, 'lr_policy: "fixed"\n')
    with pytest.raises(CaffeError, match='specifies none'):
        get_solver(str(none))
    two = write_solver(tmp_path, 'net: "net.prototxt"\ntrain_net: "net.prototxt"\n'
                                 'lr_policy: "fixed"\n')
    with pytest.raises(CaffeError, match='net, train_net'):
        get_solver(str(two))
    missing = write_solver(tmp_path, 'train_net: "nowhere.prototxt"\nlr_policy: "fixed"\n')
    with pytest.raises(PrototxtError, match="'nowhere.prototxt' not found"):
        get_solver(str(missing))
    mismatch = write_solver(tmp_path, 'train_net: "net.prototxt"\ntest_net: "net.prototxt"\n'
                                      'lr_policy: "fixed"\ntest_interval: 1\n')
    with pytest.raises(CaffeError, match='test_iter must be given once for each test net'):
        get_solver(str(mismatch))


def test_net_paths_resolve_like_caffe_then_beside_the_solver(tmp_path, monkeypatch):
    folder = tmp_path / 'exp'
    folder.mkdir()
    write_one_param_net(folder)
    path = write_solver(folder, 'net: "net.prototxt"\nlr_policy: "fixed"\n')
    elsewhere = tmp_path / 'run'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert get_solver(str(path)).net.name == 'one'
    # the working directory wins, as in Caffe
    (elsewhere / 'net.prototxt').write_text(
        ONE_PARAM_NET.format(lr_mult=1, decay_mult=1, n=1).replace('"one"', '"cwd"'))
    assert get_solver(str(path)).net.name == 'cwd'


TEST_NET = """
name: "staged"
state { stage: "from-net" }
layer { name: "w" type: "Parameter" top: "w" parameter_param { shape { dim: 1 dim: 1 } } }
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 1 dim: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "w" bottom: "target" top: "loss" }
layer { name: "train_only" type: "Power" bottom: "w" top: "train_only"
        include { phase: TRAIN stage: "from-solver" } }
layer { name: "test_only" type: "Power" bottom: "w" top: "test_only"
        power_param { scale: 3 } include { phase: TEST stage: "from-net" stage: "val" } }
"""


def test_test_nets_share_weights_and_follow_states(tmp_path, caplog):
    param = solver_param(tmp_path, net_text=TEST_NET, test_iter=[2], test_interval=2,
                         test_compute_loss=True, max_iter=3, display=1,
                         train_state={'text': 'stage: "from-solver"'},
                         test_state=[caffe_pb2.NetState(stage=['val'])])
    s = get_solver(param)
    s.net.params['w'][0].data[...] = 1
    assert s.net.phase == npcaffe.TRAIN and 'train_only' in s.net.blobs
    assert len(s.test_nets) == 1
    test_net = s.test_nets[0]
    assert test_net.phase == npcaffe.TEST and 'test_only' in test_net.blobs
    assert 'train_only' not in test_net.blobs
    # the test net reads the train net's weights
    assert test_net.params['w'][0].data.item() == 1
    seen = []
    s.add_callback(lambda: seen.append(dict(s.test_scores[0])), lambda: None)
    with caplog.at_level(logging.INFO, logger='npcaffe.solver'):
        s.solve()
    # tests at iteration 0 (test_initialization) and 2; none after the loop (3 % 2 != 0)
    tests = [r.getMessage() for r in caplog.records if 'Testing net' in r.getMessage()]
    assert tests == ['Iteration 0, Testing net (#0)', 'Iteration 2, Testing net (#0)']
    # at iteration 0, w = 1: loss 0.5, test_only = 3 w
    assert seen[0] == {'loss': pytest.approx(0.5), 'test_only': pytest.approx(3.0)}
    assert any(r.getMessage() == 'Test loss: 0.5' for r in caplog.records)
    assert any('Test net output #0: loss = 0.5 (* 1 = 0.5 loss)' in r.getMessage()
               for r in caplog.records)
    w2 = 0.9 ** 2
    assert seen[2]['loss'] == pytest.approx(w2 ** 2 / 2, rel=1e-6)


def test_test_initialization_false_skips_iteration_zero(tmp_path, caplog):
    param = solver_param(tmp_path, net_text=TEST_NET, test_iter=[1], test_interval=2,
                         test_initialization=False, max_iter=4,
                         test_state=[caffe_pb2.NetState(stage=['val'])])
    s = get_solver(param)
    with caplog.at_level(logging.INFO, logger='npcaffe.solver'):
        s.solve()
    tests = [r.getMessage() for r in caplog.records if 'Testing net' in r.getMessage()]
    # iteration 2 in the loop, and 4 after it (Solve's final test)
    assert tests == ['Iteration 2, Testing net (#0)', 'Iteration 4, Testing net (#0)']


def test_display_lines_have_caffes_shape_and_smooth_the_loss(tmp_path, caplog):
    s = one_param_solver(tmp_path, display=2, average_loss=2, max_iter=4)
    with caplog.at_level(logging.INFO, logger='npcaffe.solver'):
        s.step(4)
    lines = [r.getMessage() for r in caplog.records]
    heads = [m for m in lines if m.startswith('Iteration') and 'iter/s' in m]
    assert [m.split(' (')[0] for m in heads] == ['Iteration 0', 'Iteration 2']
    # losses w^2/2 for w = 1, 0.9, 0.81: the display at iteration 2 shows the mean of the
    # last two, (0.405 + 0.32805) / 2
    assert heads[0].endswith('loss = 0.5')
    assert heads[1].endswith(f"loss = {(0.405 + 0.32805) / 2:.6g}")
    assert 's/2 iters), loss = ' in heads[1]
    assert '    Train net output #0: loss = 0.32805 (* 1 = 0.32805 loss)' in lines
    assert 'Iteration 2, lr = 0.1' in lines
    assert not any(m.startswith('Iteration 1') for m in lines)


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    s = one_param_solver(tmp_path)
    s.step(3)
    assert capsys.readouterr().err == ''

    class Terminal:
        def __init__(self):
            self.text = ''

        def write(self, text):
            self.text += text

        def flush(self):
            pass

        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    s.step(2)
    assert 'iter 5/5' in terminal.text and 'loss' in terminal.text
    s.progress = False
    terminal.text = ''
    s.step(1)
    assert terminal.text == ''


def test_random_seed_makes_fillers_repeatable(tmp_path):
    net = ONE_PARAM_NET.format(lr_mult=1, decay_mult=1, n=4).replace(
        'layer { name: "loss"',
        'layer { name: "ip" type: "InnerProduct" bottom: "w" top: "ip" inner_product_param '
        '{ num_output: 4 weight_filler { type: "gaussian" std: 1 } } }\nlayer { name: "loss"')
    net = net.replace('bottom: "w" bottom: "target"', 'bottom: "ip" bottom: "target"')
    first = get_solver(solver_param(tmp_path, net_text=net, random_seed=7))
    second = get_solver(solver_param(tmp_path, net_text=net, random_seed=7))
    other = get_solver(solver_param(tmp_path, net_text=net, random_seed=8))
    a, b, c = (s.net.params['ip'][0].data for s in (first, second, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ------------------------------------------------------------------------------------------
# snapshots
def test_snapshot_schedule_and_snapshot_after_train(tmp_path):
    s = one_param_solver(tmp_path, snapshot=2, max_iter=5, snapshot_after_train=True)
    s.solve()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f'snap_iter_{i}.{ext}' for i in (2, 4, 5)
                     for ext in ('caffemodel', 'solverstate')]
    state, history = formats.read_solverstate(tmp_path / 'snap_iter_5.solverstate')
    assert state.iter == 5
    assert state.learned_net == str(tmp_path / 'snap_iter_5.caffemodel')
    assert history[0].data.reshape(-1) == pytest.approx(s.history[0].reshape(-1))
    weights = formats.read_caffemodel(tmp_path / 'snap_iter_5.caffemodel')
    blobs = {name: b for name, _, b in weights.layers()}
    assert blobs['w'][0].data.reshape(-1) == pytest.approx(w_of(s))
    # no snapshot twice for the same iteration
    (tmp_path / 'x').mkdir()
    s2 = one_param_solver(tmp_path / 'x', snapshot=2, max_iter=4, snapshot_after_train=True)
    s2.solve()
    assert sorted(p.name for p in (tmp_path / 'x').iterdir()) == \
        [f'snap_iter_{i}.{ext}' for i in (2, 4) for ext in ('caffemodel', 'solverstate')]


def test_snapshot_prefix_naming_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_one_param_net(tmp_path)
    (tmp_path / 'snaps').mkdir()
    path = write_solver(tmp_path, 'net: "net.prototxt"\nlr_policy: "fixed"\nbase_lr: 0.1\n'
                                  'snapshot_prefix: "snaps"\n', name='fcn.prototxt')
    s = get_solver(str(path))
    assert s.param.snapshot_prefix == os.path.join('snaps', 'fcn')
    s.snapshot()
    assert sorted(p.name for p in (tmp_path / 'snaps').iterdir()) == \
        ['fcn_iter_0.caffemodel', 'fcn_iter_0.solverstate']


def test_unwritable_snapshot_folder_fails_before_training(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the snapshot folder should be')
    prefix = str(blocker / 'snap')      # fails for root too, unlike chmod
    with pytest.raises(SnapshotError, match='not_a_folder') as info:
        one_param_solver(tmp_path, snapshot=10, snapshot_prefix=prefix)
    assert 'is not a folder' in str(info.value)
    missing = str(tmp_path / 'missing' / 'snap')
    with pytest.raises(SnapshotError, match='does not exist'):
        one_param_solver(tmp_path, snapshot=10, snapshot_prefix=missing)
    # snapshot 0 with snapshot_after_train: solve() checks before its first iteration
    s = one_param_solver(tmp_path, snapshot_prefix=prefix, snapshot_after_train=True)
    with pytest.raises(SnapshotError, match='not_a_folder'):
        s.solve()
    assert s.iter == 0 and w_of(s) == [1.0]



def test_restore_errors_name_the_problem(tmp_path):
    s = one_param_solver(tmp_path)
    s.step(1)
    state_file = s.snapshot()
    adam = one_param_solver(tmp_path, type='Adam')
    with pytest.raises(ModelFileError, match='holds 1 history blobs but this Adam solver '
                                             'keeps 2'):
        adam.restore(state_file)
    with pytest.raises(CaffeError, match='copy_from'):
        s.restore(str(tmp_path / 'snap_iter_1.caffemodel'))
    os.remove(tmp_path / 'snap_iter_1.caffemodel')
    with pytest.raises(ModelFileError, match='learned_net'):
        one_param_solver(tmp_path).restore(state_file)


def test_solve_resumes_from_a_solverstate(tmp_path):
    straight = one_param_solver(tmp_path, momentum=0.9, max_iter=6)
    straight.solve()
    first = one_param_solver(tmp_path, momentum=0.9, max_iter=6)
    first.step(4)
    state_file = first.snapshot()
    resumed = one_param_solver(tmp_path, w0=123.0, momentum=0.9, max_iter=6)
    resumed.solve(state_file)
    assert resumed.iter == 6
    assert np.array_equal(w_of(resumed), w_of(straight))


# ------------------------------------------------------------------------------------------
# divergence
@pytest.mark.filterwarnings('ignore:overflow encountered:RuntimeWarning')
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_snapshot(tmp_path):
    # lr 1e20: after one step w = 1 - 1e20, whose loss w^2/2 overflows float32 to inf
    s = one_param_solver(tmp_path, base_lr=1e20, snapshot=1, max_iter=10)
    with pytest.raises(TrainingDivergedError) as info:
        s.solve()
    message = str(info.value)
    assert 'iteration 1' in message and 'inf' in message
    assert 'learning rate' in message and 'base_lr' in message
    assert str(tmp_path / 'snap_iter_1.solverstate') in message
    assert isinstance(info.value, CaffeError)
    assert s.iter == 1 and w_of(s) == pytest.approx([1 - 1e20])   # no update applied
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ['snap_iter_1.caffemodel', 'snap_iter_1.solverstate']


def test_non_finite_weights_are_never_snapshotted(tmp_path):
    s = one_param_solver(tmp_path)
    s.net.params['w'][0].data[...] = np.nan
    with pytest.raises(TrainingDivergedError, match='w/0 holds NaN'):
        s.snapshot()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# interruptions: SIGINT, SIGKILL during a snapshot
CHILD_PRELUDE = """
import os, sys, time, contextlib
from pathlib import Path
import numpy as np
from google.protobuf import text_format
import npcaffe
from npcaffe import formats
from npcaffe.proto import caffe_pb2
from npcaffe.solver import get_solver

def make_solver(folder, **fields):
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy='fixed', momentum=0.9,
                                      snapshot_prefix=str(Path(folder) / 'snap'), **fields)
    text_format.Parse('''{net}''', param.net_param)
    solver = get_solver(param)
    solver.net.params['w'][0].data[...] = 1
    return solver
"""


def run_child(tmp_path, body, **popen):
    script = tmp_path / 'child.py'
    net = ONE_PARAM_NET.format(lr_mult=1, decay_mult=1, n=250000)
    script.write_text(CHILD_PRELUDE.replace('{net}', net) + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)




@pytest.mark.parametrize('which', ['caffemodel', 'solverstate'])
def test_kill_during_a_snapshot_write_leaves_the_previous_snapshot(which, tmp_path):
    # The child snapshots at iteration 1, then, writing iteration 2's <which>, writes half of
    # the bytes to the temporary file, flushes them to disk and waits to be killed.
    proc = run_child(tmp_path, f"""
    folder = Path(sys.argv[1])
    real = formats.atomic_write

    @contextlib.contextmanager
    def stalling(path, mode='wb'):
        with real(path, mode) as f:
            if str(path).endswith('_iter_2.{which}'):
                class Half:
                    def write(self, data):
                        data = bytes(data)
                        f.write(data[:len(data) // 2])
                        f.flush()
                        os.fsync(f.fileno())
                        (folder / 'writing').touch()
                        time.sleep(600)
                yield Half()
            else:
                yield f

    formats.atomic_write = stalling
    solver = make_solver(folder, snapshot=1, max_iter=5)
    solver.solve()
    """)
    try:
        wait_for((tmp_path / 'writing').exists, proc, 'the snapshot write')
        temps = [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
        assert temps and all(t.startswith(f'.snap_iter_2.{which}.') for t in temps)
        assert (tmp_path / temps[0]).stat().st_size > 0      # a half-written file on disk
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    snapshots = sorted(p.name for p in tmp_path.iterdir()
                       if p.name.endswith(('.caffemodel', '.solverstate')))
    expected = ['snap_iter_1.caffemodel', 'snap_iter_1.solverstate']
    if which == 'solverstate':     # the caffemodel is written first and was complete
        expected.append('snap_iter_2.caffemodel')
    assert snapshots == sorted(expected)   # nothing half-written under a snapshot's name
    # the previous snapshot restores and trains on
    (tmp_path / 'again').mkdir()
    s = one_param_solver(tmp_path / 'again', n=250000, momentum=0.9)
    s.restore(str(tmp_path / 'snap_iter_1.solverstate'))
    assert s.iter == 1 and w_of(s)[:3] == pytest.approx([0.9] * 3)
    s.step(1)
    assert w_of(s)[0] == pytest.approx(0.9 - (0.9 * 0.1 + 0.1 * 0.9))


def test_sigint_during_solve_snapshots_and_exits_cleanly(tmp_path):
    proc = run_child(tmp_path, """
    import logging
    logging.basicConfig(level=logging.INFO)
    folder = Path(sys.argv[1])
    solver = make_solver(folder, max_iter=1000000, snapshot=0)

    def on_start():
        if solver.iter == 3:
            (folder / 'ready').touch()
            deadline = time.monotonic() + 60
            while solver._action is None and time.monotonic() < deadline:
                time.sleep(0.01)      # the SIGINT handler runs here

    solver.add_callback(on_start, lambda: None)
    solver.solve()
    print('returned', solver.iter, solver.requested_early_exit, flush=True)
    """)
    try:
        wait_for((tmp_path / 'ready').exists, proc, 'the child to be ready')
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert 'returned 4 True' in out
    assert 'Interrupted (SIGINT)' in err and 'Optimization stopped early.' in err
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('snap'))
    assert names == ['snap_iter_4.caffemodel', 'snap_iter_4.solverstate']
    state, _ = formats.read_solverstate(tmp_path / 'snap_iter_4.solverstate')
    assert state.iter == 4


@contextlib.contextmanager
def default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigint_during_step_snapshots_then_raises_keyboard_interrupt(tmp_path):
    s = one_param_solver(tmp_path, snapshot_after_train=True)
    s.add_callback(lambda: s.iter == 2 and os.kill(os.getpid(), signal.SIGINT), lambda: None)
    with default_sigint():
        with pytest.raises(KeyboardInterrupt, match='stopped at iteration 3'):
            s.step(10)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # put back
    assert s.iter == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ['snap_iter_3.caffemodel', 'snap_iter_3.solverstate']
    # the stop request is spent: stepping on trains again
    with default_sigint():
        s.step(2)
    assert s.iter == 5 and not s.requested_early_exit


def test_second_sigint_aborts_at_once(tmp_path):
    s = one_param_solver(tmp_path, snapshot_after_train=True)

    def twice():
        if s.iter == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    s.add_callback(twice, lambda: None)
    with default_sigint():
        with pytest.raises(KeyboardInterrupt):
            s.step(10)
    assert s.iter == 2                      # iteration 2 was not finished
    assert list(tmp_path.iterdir()) == []   # and nothing was snapshotted


def test_request_stop_from_another_thread_stops_solve(tmp_path):
    import threading
    s = one_param_solver(tmp_path, max_iter=10 ** 9, snapshot_after_train=True)
    stopper = threading.Thread(target=s.request_stop)

    def on_start():
        if s.iter == 5:
            stopper.start()
            stopper.join()

    s.add_callback(on_start, lambda: None)
    s.solve()
    assert s.requested_early_exit and s.iter == 6
    assert (tmp_path / f'snap_iter_{s.iter}.solverstate').exists()
