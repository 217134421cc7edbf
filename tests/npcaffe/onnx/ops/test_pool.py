"""Pooling's awkward corners, expected values worked out by hand, static and dynamic.

MAX 2x2 stride 2 pad 1 on 5x5: ceil((5+2-2)/2)+1 = 4, but window 3 would start at 6 >= 5+1
(in the padding): 3x3, windows rows [-1,1) [1,3) [3,5). AVE 3x3 stride 2 pad 1 on 4x4: ceil((4+2-3)/2)+1
= 3, window 2 starts at 3 < 5: kept, rows [3, 6) clipped to H + p = 5, so its divisor is 2
per axis (the pad row counts, the overhang does not); window 0 is rows [-1, 2): divisor 3.
"""
import numpy as np
import pytest

from tests.npcaffe.onnx.util import compare, compare_sizes, net_from_text, require_runtime

POOL = """
layer {{ name: 'data' type: 'Input' top: 'x' input_param {{ shape {{ dim: 1 dim: 1 dim: {h} dim: {w} }} }} }}
layer {{ name: 'pool' type: 'Pooling' bottom: 'x' top: 'y'
        pooling_param {{ pool: {pool} kernel_size: {k} stride: {s} pad: {p} {extra} }} }}
"""


@pytest.fixture(autouse=True)
def _runtime():
    require_runtime()


def pool_net(pool, k, s, p, h, w, extra=''):
    return net_from_text(POOL.format(pool=pool, k=k, s=s, p=p, h=h, w=w, extra=extra))


@pytest.mark.parametrize('dynamic', [False, True])
def test_max_ceil_mode_drops_the_window_starting_in_the_padding(dynamic):
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    _, got = compare(pool_net('MAX', 2, 2, 1, 5, 5), {'x': x}, dynamic=dynamic)
    rows = [0, 2, 4]         # the last row of each window [-1,1) [1,3) [3,5)
    expected = x[0, 0][np.ix_(rows, rows)]
    np.testing.assert_array_equal(got['y'][0, 0], expected)


@pytest.mark.parametrize('dynamic', [False, True])
def test_ave_divides_by_the_window_clipped_to_the_padded_input(dynamic):
    x = np.ones((1, 1, 4, 4), np.float32)
    _, got = compare(pool_net('AVE', 3, 2, 1, 4, 4), {'x': x}, dynamic=dynamic)
    # per axis: window 0 rows [-1,2): 2 real of divisor 3; 1: [1,4): 3 of 3; 2: [3,5]: 1 of 2
    real, div = np.array([2, 3, 1]), np.array([3, 3, 2])
    np.testing.assert_allclose(got['y'][0, 0], np.outer(real, real) / np.outer(div, div),
                               rtol=1e-6)


@pytest.mark.parametrize('pool', ['MAX', 'AVE'])
@pytest.mark.parametrize('k,s,p', [(3, 2, 1), (2, 2, 1), (3, 3, 2), (2, 2, 0), (3, 1, 1),
                                   (5, 3, 2)])
def test_pooling_geometries_match_npcaffe_at_odd_sizes(pool, k, s, p):
    net = pool_net(pool, k, s, p, 7, 9)
    rng = np.random.default_rng(0)
    sizes = [(7, 9), (4, 5), (6, 6), (k, k + 1), (11, 3)]
    for h, w in sizes:
        compare(net, {'x': rng.normal(size=(1, 1, h, w)).astype(np.float32)})
    compare_sizes(net, 'x', sizes)


@pytest.mark.parametrize('pool', ['MAX', 'AVE'])
def test_floor_round_mode_and_global_pooling(pool):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 1, 7, 8)).astype(np.float32)
    compare(pool_net(pool, 3, 2, 1, 7, 8, 'round_mode: FLOOR'), {'x': x})
    text = POOL.replace('kernel_size: {k} stride: {s} pad: {p} {extra}', 'global_pooling: true')
    worst, got = compare(net_from_text(text.format(pool=pool, h=7, w=8)), {'x': x})
    expected = x.max() if pool == 'MAX' else x.mean()
    np.testing.assert_allclose(got['y'].reshape(()), expected, rtol=1e-5)
