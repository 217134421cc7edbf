"""The update rules of Caffe's solver types (ComputeUpdateValue, CPU branch), registered by
their SolverParameter ``type`` names: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam."""
import math

from npcaffe.arraymod import xp
from npcaffe.errors import CaffeError
from npcaffe.registry import Registry
from npcaffe.solver.base import Solver

#: SolverParameter.type -> Solver subclass
SOLVERS = Registry('solver type')
_register = SOLVERS.register


@_register('SGD')
class SGDSolver(Solver):
    """Momentum SGD: ``h = momentum * h + local_rate * diff; w -= h``."""

    def _compute_update_value(self, i, rate, d, history, tmp):
        h, tmp = history[0], tmp[0]
        xp.multiply(d, self._local_rate(i, rate), out=tmp)
        h *= d.dtype.type(self._param.momentum)
        h += tmp
        d[...] = h


@_register('Nesterov')
class NesterovSolver(Solver):
    """Nesterov momentum: ``h' = momentum * h + local_rate * diff;
    update = (1 + momentum) * h' - momentum * h``."""

    scratch_arrays = 2

    def _compute_update_value(self, i, rate, d, history, tmp):
        h, (tmp, update) = history[0], tmp
        f = d.dtype.type
        momentum = f(self._param.momentum)
        update[...] = h                               # h before this step
        xp.multiply(d, self._local_rate(i, rate), out=tmp)
        h *= momentum
        h += tmp
        update *= -momentum
        xp.multiply(h, f(1) + momentum, out=tmp)
        update += tmp
        d[...] = update


@_register('AdaGrad')
class AdaGradSolver(Solver):
    """``h += diff^2; update = local_rate * diff / (sqrt(h) + delta)``."""

    def _check_solver_param(self):
        if self._param.momentum != 0:
            raise CaffeError(f"{self._where}: momentum cannot be used with AdaGrad "
                             f"(got {self._param.momentum}); remove it")

    def _compute_update_value(self, i, rate, d, history, tmp):
        h, tmp = history[0], tmp[0]
        xp.multiply(d, d, out=tmp)
        h += tmp
        self._divide_by_root(i, rate, d, h, tmp)


@_register('RMSProp')
class RMSPropSolver(Solver):
    """``h = rms_decay * h + (1 - rms_decay) * diff^2;
    update = local_rate * diff / (sqrt(h) + delta)``."""

    def _check_solver_param(self):
        p = self._param
        if p.momentum != 0:
            raise CaffeError(f"{self._where}: momentum cannot be used with RMSProp "
                             f"(got {p.momentum}); remove it")
        if not 0 <= p.rms_decay < 1:
            raise CaffeError(f"{self._where}: rms_decay should lie in [0, 1), got "
                             f"{p.rms_decay}")

    def _compute_update_value(self, i, rate, d, history, tmp):
        h, tmp = history[0], tmp[0]
        f = d.dtype.type
        decay = f(self._param.rms_decay)
        xp.multiply(d, d, out=tmp)
        tmp *= f(1) - decay
        h *= decay
        h += tmp
        self._divide_by_root(i, rate, d, h, tmp)


@_register('AdaDelta')
class AdaDeltaSolver(Solver):
    """Two histories, of squared gradients g and squared updates u (both decayed by
    momentum): ``g = m g + (1-m) diff^2; diff *= sqrt((u + delta) / (g + delta));
    u = m u + (1-m) diff^2; update = local_rate * diff``."""

    history_per_param = 2
    scratch_arrays = 2

    def _compute_update_value(self, i, rate, d, history, tmp):
        (g, u), (update, temp) = history, tmp
        f = d.dtype.type
        m = f(self._param.momentum)
        delta = f(self._param.delta)
        xp.multiply(d, d, out=update)
        update *= f(1) - m
        g *= m
        g += update
        xp.add(u, delta, out=update)
        xp.add(g, delta, out=temp)
        xp.divide(update, temp, out=update)
        xp.sqrt(update, out=update)
        d *= update
        xp.multiply(d, d, out=update)
        update *= f(1) - m
        u *= m
        u += update
        d *= self._local_rate(i, rate)


@_register('Adam')
class AdamSolver(Solver):
    """``m = b1 m + (1-b1) diff; v = b2 v + (1-b2) diff^2;
    update = local_rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta)``, t = iter + 1,
    b1 = momentum, b2 = momentum2."""

    history_per_param = 2

    def _compute_update_value(self, i, rate, d, history, tmp):
        (m, v), tmp = history, tmp[0]
        f = d.dtype.type
        b1, b2 = f(self._param.momentum), f(self._param.momentum2)
        t = self.iter + 1
        correction = f(math.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))
        xp.multiply(d, f(1) - b1, out=tmp)
        m *= b1
        m += tmp
        xp.multiply(d, d, out=tmp)
        tmp *= f(1) - b2
        v *= b2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += f(self._param.delta)
        xp.divide(m, tmp, out=tmp)
        xp.multiply(tmp, self._local_rate(i, rate) * correction, out=d)
