"""Caffe's learning-rate policies (SGDSolver::GetLearningRate), as pure functions.

==========  ===================================================================
fixed       base_lr
step        base_lr * gamma ^ floor(iter / stepsize)          (current_step = iter // stepsize)
exp         base_lr * gamma ^ iter
inv         base_lr * (1 + gamma * iter) ^ (-power)
multistep   base_lr * gamma ^ current_step; current_step moves on by one when iter reaches
            stepvalue[current_step] (at most one step per call, as Caffe)
poly        base_lr * (1 - iter / max_iter) ^ power
sigmoid     base_lr / (1 + exp(-gamma * (iter - stepsize)))
==========  ===================================================================

The rate is computed in double precision and rounded to float32, as Caffe returns it as its
``Dtype``. ``current_step`` is the solver state that ``step`` and ``multistep`` keep (and that a
``.solverstate`` stores).
"""
import math

import numpy as np

from npcaffe.errors import CaffeError

POLICIES = ('fixed', 'step', 'exp', 'inv', 'multistep', 'poly', 'sigmoid')


def _cpow(x, y):
    """C's pow: NaN (not a complex number) for a negative base and a fractional exponent."""
    try:
        return math.pow(x, y)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf


def _cexp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def check_policy(param, where='solver'):
    """Raise CaffeError for an unknown policy or a setting the policy needs that Caffe CHECKs."""
    policy = param.lr_policy
    if policy not in POLICIES:
        shown = repr(policy) if policy else 'missing (lr_policy is not set)'
        raise CaffeError(f"{where}: unknown learning rate policy {shown}; known policies: "
                         f"{', '.join(POLICIES)}")
    if policy in ('step', 'exp', 'inv', 'multistep', 'sigmoid') and param.gamma < 0:
        raise CaffeError(f"{where}: lr_policy {policy!r} needs gamma >= 0, got {param.gamma}")
    if policy in ('step', 'sigmoid') and param.stepsize <= 0:
        raise CaffeError(f"{where}: lr_policy {policy!r} needs stepsize > 0, got "
                         f"{param.stepsize}")
    if policy == 'poly' and param.max_iter <= 0:
        raise CaffeError(f"{where}: lr_policy 'poly' needs max_iter > 0, got {param.max_iter}")


def learning_rate(param, iteration, current_step=0):
    """The rate at ``iteration`` under SolverParameter ``param``.

    Returns ``(rate, current_step)``: the rate as a Python float holding a float32 value, and
    the (possibly advanced) step counter. Raises CaffeError for an unknown policy.
    """
    policy = param.lr_policy
    base = param.base_lr
    gamma = param.gamma
    if policy == 'fixed':
        rate = base
    elif policy == 'step':
        current_step = iteration // param.stepsize
        rate = base * _cpow(gamma, current_step)
    elif policy == 'exp':
        rate = base * _cpow(gamma, iteration)
    elif policy == 'inv':
        rate = base * _cpow(1.0 + gamma * iteration, -param.power)
    elif policy == 'multistep':
        if (current_step < len(param.stepvalue)
                and iteration >= param.stepvalue[current_step]):
            current_step += 1
        rate = base * _cpow(gamma, current_step)
    elif policy == 'poly':
        rate = base * _cpow(1.0 - iteration / param.max_iter, param.power)
    elif policy == 'sigmoid':
        rate = base / (1.0 + _cexp(-gamma * (iteration - param.stepsize)))
    else:
        check_policy(param)   # raises with the list of known policies
        raise AssertionError(policy)
    return float(np.float32(rate)), current_step
