"""InnerProduct (fully connected), as Caffe's InnerProductLayer computes it.

The bottom is flattened from ``axis``: (M, K) with M = prod(shape[:axis]) and
K = prod(shape[axis:]); the top is shape[:axis] + (num_output,)::

    top (M, N) = bottom (M, K) @ W^T + b        W (N, K)          (transpose: false)
    top (M, N) = bottom (M, K) @ W   + b        W (K, N)          (transpose: true)

Backward: bottom diff = top diff @ W (or @ W^T), overwritten; weight diff += top diff^T @ bottom
(or bottom^T @ top diff); bias diff += the column sums of the top diff.
"""
from npcaffe.arraymod import xp
from npcaffe.errors import NetError, WeightShapeError
from npcaffe.filler import fill
from npcaffe.layers import Layer, register


@register("InnerProduct")
class InnerProductLayer(Layer):
    """Caffe's InnerProduct: y = x W^T + b over the axes from ``axis`` on.

    inner_product_param: num_output, bias_term (true), weight_filler, bias_filler (constant 0),
    axis (1; negative counts from the end), transpose (false: weights (num_output, K); true:
    (K, num_output)).

    Example: bottom (10, 512, 7, 7) with num_output 4096 -> top (10, 4096), weights
    (4096, 25088).
    """

    exact_bottoms = 1
    exact_tops = 1

    def setup(self, bottom, top):
        ip = self.layer_param.inner_product_param
        self.num_output = ip.num_output
        if self.num_output <= 0:
            raise NetError(f"layer {self.name!r} (InnerProduct) needs num_output > 0")
        self.bias_term = ip.bias_term
        self.transpose = ip.transpose
        self.axis = self._axis(bottom[0])
        self.k = bottom[0].count_range(self.axis)
        n, k = self.num_output, self.k
        shapes = [(k, n) if self.transpose else (n, k)] + ([(n,)] if self.bias_term else [])
        if not self.blobs:
            self.blobs.dtype = self.param_dtype(bottom)
            for s, filler in zip(shapes, (ip.weight_filler, ip.bias_filler)):
                fill(self.blobs.add_blob(*s), filler)
        else:
            have = [b.shape for b in self.blobs]
            if have != shapes:
                raise WeightShapeError(f"layer {self.name!r} (InnerProduct): parameter shapes "
                                       f"{have} do not match the expected {shapes}")
        if len(self.param_propagate_down) != len(self.blobs):
            self.param_propagate_down = [True] * len(self.blobs)

    def _axis(self, blob):
        axis = self.layer_param.inner_product_param.axis
        try:
            return blob.canonical_axis(axis)
        except IndexError:
            raise NetError(f"layer {self.name!r} (InnerProduct): axis {axis} is out of range "
                           f"for a bottom of shape {blob.shape}") from None

    def reshape(self, bottom, top):
        b = bottom[0]
        axis = self._axis(b)
        k = b.count_range(axis)
        if k != self.k:
            raise NetError(f"layer {self.name!r} (InnerProduct): the input size {k} (bottom "
                           f"shape {b.shape} flattened from axis {axis}) does not match the "
                           f"{self.k} inputs of its weights")
        if top[0] is b:
            raise NetError(f"layer {self.name!r} (InnerProduct) cannot run in place")
        self.axis = axis
        top[0].reshape(b.shape[:axis] + (self.num_output,))

    def _flat(self, array):
        return array.reshape(-1, self.k)                        # (M, K)

    def forward(self, bottom, top):
        x = self._flat(bottom[0].data)
        y = top[0].data.reshape(-1, self.num_output)             # (M, N)
        w = self.blobs[0].data
        xp.matmul(x, w if self.transpose else w.T, out=y)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(-1, self.num_output)            # (M, N)
        x = self._flat(bottom[0].data)
        if self.param_propagate_down[0]:
            dw = self.blobs[0].diff
            dw += (x.T @ dy) if self.transpose else (dy.T @ x)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            w = self.blobs[0].data
            xp.matmul(dy, w.T if self.transpose else w, out=self._flat(bottom[0].diff))
