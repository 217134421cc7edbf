"""Caffe's learning-rate policies, with rates worked out by hand (base_lr 0.1 throughout)."""
import math

import numpy as np
import pytest

from npcaffe.errors import CaffeError
from npcaffe.lr_policy import POLICIES, check_policy, learning_rate
from npcaffe.proto import caffe_pb2


def solver_param(**fields):
    param = caffe_pb2.SolverParameter(base_lr=0.1)
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(param, key).extend(value)
        else:
            setattr(param, key, value)
    return param


def rates(param, iterations):
    """Rates for consecutive iterations, carrying current_step as the solver does."""
    out, step = [], 0
    for it in iterations:
        rate, step = learning_rate(param, it, step)
        out.append(rate)
    return out


# policy, fields, iterations 0..7 -> the rates by hand
CASES = [
    # fixed: always base_lr
    ('fixed', {}, [0.1] * 8),
    # step, stepsize 3, gamma 0.5: 0.1 * 0.5^floor(iter / 3)
    ('step', dict(stepsize=3, gamma=0.5), [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]),
    # exp, gamma 0.5: 0.1 * 0.5^iter
    ('exp', dict(gamma=0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125, 0.0015625,
                              0.00078125]),
    # inv, gamma 1, power 1: 0.1 / (1 + iter)
    ('inv', dict(gamma=1.0, power=1.0), [0.1, 0.05, 0.1 / 3, 0.025, 0.02, 0.1 / 6, 0.1 / 7,
                                         0.0125]),
    # multistep at 2 and 5, gamma 0.1: 0.1 before 2, 0.01 from 2, 0.001 from 5
    ('multistep', dict(stepvalue=[2, 5], gamma=0.1), [0.1, 0.1, 0.01, 0.01, 0.01, 0.001,
                                                      0.001, 0.001]),
    # poly, max_iter 8, power 2: 0.1 * (1 - iter/8)^2
    ('poly', dict(max_iter=8, power=2.0), [0.1, 0.1 * 49 / 64, 0.1 * 36 / 64, 0.1 * 25 / 64,
                                           0.1 * 16 / 64, 0.1 * 9 / 64, 0.1 * 4 / 64,
                                           0.1 * 1 / 64]),
    # sigmoid, gamma ln(3), stepsize 4: 0.1 / (1 + 3^(4 - iter)); at iter 4 it is 0.05
    ('sigmoid', dict(gamma=math.log(3), stepsize=4),
     [0.1 / (1 + 3.0 ** (4 - i)) for i in range(8)]),
]


@pytest.mark.parametrize('policy,fields,expected', CASES, ids=[c[0] for c in CASES])
def test_policy_by_hand(policy, fields, expected):
    param = solver_param(lr_policy=policy, **fields)
    check_policy(param)
    got = rates(param, range(8))
    # the gamma/power fields are float32 in the proto, so allow their rounding
    np.testing.assert_allclose(got, expected, rtol=2e-7 if policy != 'sigmoid' else 1e-6)
    # Caffe returns its rate as float32
    assert all(r == float(np.float32(r)) for r in got)


def test_every_policy_is_covered():
    assert sorted(POLICIES) == sorted(c[0] for c in CASES)


def test_step_policy_keeps_current_step():
    param = solver_param(lr_policy='step', stepsize=2, gamma=0.5)
    assert learning_rate(param, 5, 0) == (pytest.approx(0.025), 2)


def test_multistep_moves_one_step_per_call_as_caffe():
    # restored at iteration 10 with current_step 0: Caffe's `if` (not `while`) advances one
    # step per iteration, so the rate reaches 0.001 only on the next call
    param = solver_param(lr_policy='multistep', stepvalue=[2, 5], gamma=0.1)
    rate, step = learning_rate(param, 10, 0)
    assert (rate, step) == (pytest.approx(0.01), 1)
    rate, step = learning_rate(param, 11, step)
    assert (rate, step) == (pytest.approx(0.001), 2)
    assert learning_rate(param, 12, step)[1] == 2


def test_poly_past_max_iter_is_nan_like_c_pow():
    param = solver_param(lr_policy='poly', max_iter=4, power=0.5)
    assert math.isnan(learning_rate(param, 5, 0)[0])


@pytest.mark.parametrize('fields,message', [
    (dict(lr_policy='cosine'), "unknown learning rate policy 'cosine'"),
    (dict(), 'lr_policy is not set'),
    (dict(lr_policy='step', gamma=0.1), 'stepsize > 0'),
    (dict(lr_policy='exp', gamma=-1.0), 'gamma >= 0'),
    (dict(lr_policy='poly', power=1.0), 'max_iter > 0'),
])
def test_bad_policies_are_named(fields, message):
    with pytest.raises(CaffeError, match=message) as info:
        check_policy(solver_param(**fields), 'my_solver.prototxt')
    assert 'my_solver.prototxt' in str(info.value)
    if 'unknown' in message or 'not set' in message:
        assert 'multistep' in str(info.value)   # the known policies are listed
