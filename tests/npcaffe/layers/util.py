"""Helpers for the layer tests: build one layer from LayerParameter text, run it on arrays,
run its backward; the two golden tests every layer family has."""
import numpy as np
import pytest
from google.protobuf import text_format

from npcaffe.blob import Blob
from npcaffe.layers import create_layer
from npcaffe.layers.base import TEST
from npcaffe.proto import caffe_pb2


def make_layer(type_name, params='', phase=TEST, name='l'):
    """A layer of ``type_name`` from LayerParameter text such as 'relu_param { ... }'."""
    lp = caffe_pb2.LayerParameter()
    text_format.Parse(params, lp)
    lp.name, lp.type = name, type_name
    return create_layer(lp, phase)


def run(layer, arrays, num_tops=1, dtype=np.float64, in_place=False):
    """Set up ``layer`` on blobs made from ``arrays``; forward; return (bottom, top)."""
    bottom = []
    for a in arrays:
        a = np.asarray(a, dtype)
        b = Blob(a.shape, dtype)
        b.data[...] = a
        bottom.append(b)
    top = [bottom[0]] if in_place else [Blob((), dtype) for _ in range(num_tops)]
    layer.check_blob_counts(len(bottom), len(top))
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return bottom, top


def backward(layer, bottom, top, top_diffs, propagate=None):
    """Zero diffs, write ``top_diffs``, run backward; return copies of the bottom diffs."""
    for b in bottom:
        b.diff[...] = 0
    for t, d in zip(top, top_diffs):
        t.diff[...] = d
    if propagate is None:
        propagate = [True] * len(bottom)
    if not layer.param_propagate_down:
        layer.param_propagate_down = [True] * len(layer.blobs)
    layer.backward(top, propagate, bottom)
    return [b.diff.copy() for b in bottom]


def golden_tests(cases):
    """(test_golden_direct, test_golden_net) for a module's golden case names: each case run
    on the layers alone (no Net) and through a Net, both against BVLC Caffe's results."""
    from tests.golden import run_case_directly, run_golden_case

    @pytest.mark.parametrize('case', cases)
    def test_golden_direct(case):
        run_case_directly(case)

    @pytest.mark.parametrize('case', cases)
    def test_golden_net(case):
        run_golden_case(case)

    return test_golden_direct, test_golden_net
