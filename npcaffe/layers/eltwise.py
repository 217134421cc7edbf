"""Eltwise: element-wise PROD, SUM (with coefficients) and MAX over the bottoms, as Caffe's
eltwise_layer.cpp computes them."""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError
from npcaffe.layers import register
from npcaffe.layers.base import Layer
from npcaffe.proto import caffe_pb2

_EltwiseOp = caffe_pb2.EltwiseParameter


@register("Eltwise")
class EltwiseLayer(Layer):
    """Elementwise PROD, SUM (default; optional ``coeff`` per bottom) or MAX of >= 2 bottoms of
    one shape.

    Backward: SUM dx_i = coeff_i dy; PROD dx_i = dy * prod_{j != i} x_j (stable_prod_grad, the
    default) or dy * y / x_i; MAX routes dy to the bottom that won. MAX ties follow Caffe's
    loop exactly: between bottoms 0 and 1 a tie goes to bottom 1 (it tests ``x0 > x1``), later
    bottoms win only when strictly greater.
    """

    min_bottoms = 2
    exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        self.op = p.operation
        if len(p.coeff) not in (0, len(bottom)):
            raise NetError(f"layer {self.name!r}: Eltwise takes one coeff per bottom "
                           f"({len(bottom)}), got {len(p.coeff)}")
        if len(p.coeff) and self.op != _EltwiseOp.SUM:
            raise NetError(f"layer {self.name!r}: Eltwise takes coeff only for SUM, not "
                           f"{_EltwiseOp.EltwiseOp.Name(self.op)}")
        self.coeffs = [float(c) for c in p.coeff] or [1.0] * len(bottom)
        self.stable_prod_grad = bool(p.stable_prod_grad)
        self._forward, self._backward = {
            _EltwiseOp.PROD: (self._forward_prod, self._backward_prod),
            _EltwiseOp.SUM: (self._forward_sum, self._backward_sum),
            _EltwiseOp.MAX: (self._forward_max, self._backward_max),
        }[self.op]

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise NetError(f"layer {self.name!r}: Eltwise bottoms must have one shape; "
                               f"bottom 0 has {bottom[0].shape}, bottom {i} has {b.shape}")
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self._forward([b.data for b in bottom])

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, down in enumerate(propagate_down):
            if down:
                bottom[i].diff[...] = self._backward(i, dy, bottom, top)

    # -- per operation -----------------------------------------------------------------------
    def _forward_prod(self, xs):
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y *= x
        return y

    def _backward_prod(self, i, dy, bottom, top):
        if self.stable_prod_grad:
            others = [b.data for j, b in enumerate(bottom) if j != i]
            prod = others[0].copy()
            for x in others[1:]:
                prod *= x
            return dy * prod
        return dy * (top[0].data / bottom[i].data)

    def _forward_sum(self, xs):
        t = xs[0].dtype.type
        y = xs[0] * t(self.coeffs[0])
        for x, c in zip(xs[1:], self.coeffs[1:]):
            y += x * t(c) if c != 1 else x
        return y

    def _backward_sum(self, i, dy, bottom, top):
        c = self.coeffs[i]
        return dy if c == 1 else dy * dy.dtype.type(c)

    def _forward_max(self, xs):
        first = xs[0] > xs[1]
        y = xp.where(first, xs[0], xs[1])
        self.argmax = xp.where(first, 0, 1).astype(xp.int32)
        for k, x in enumerate(xs[2:], 2):
            wins = x > y
            y = xp.where(wins, x, y)
            self.argmax[wins] = k
        return y

    def _backward_max(self, i, dy, bottom, top):
        return xp.where(self.argmax == i, dy, 0).astype(dy.dtype)