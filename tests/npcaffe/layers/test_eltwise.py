"""Tests of npcaffe/layers/eltwise.py (Eltwise): shapes worked out by hand (MAX ties),
float64 gradient checks and the golden cases recorded with BVLC Caffe."""
import numpy as np
import pytest

from npcaffe.errors import NetError
from tests.gradcheck import check_layer_gradient
from tests.npcaffe.layers.util import backward, golden_tests, make_layer, run

RNG = np.random.default_rng(99)

test_golden_direct, test_golden_net = golden_tests(['eltwise_max', 'eltwise_prod', 'eltwise_sum_coeff'])


# -- Eltwise -----------------------------------------------------------------------------------
def test_eltwise_sum_coeff_and_gradient():
    xs = [RNG.standard_normal((2, 3)) for _ in range(3)]
    params = 'eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1 }'
    _, top = run(make_layer('Eltwise', params), xs)
    np.testing.assert_allclose(top[0].data, 0.5 * xs[0] - 2 * xs[1] + xs[2])
    check_layer_gradient(make_layer('Eltwise', params), xs)
    check_layer_gradient(make_layer('Eltwise'), xs[:2])


@pytest.mark.parametrize('stable', ['true', 'false'])
def test_eltwise_prod_gradient(stable):
    xs = [RNG.standard_normal((2, 3)) + 3 for _ in range(3)]
    params = f'eltwise_param {{ operation: PROD stable_prod_grad: {stable} }}'
    _, top = run(make_layer('Eltwise', params), xs)
    np.testing.assert_allclose(top[0].data, xs[0] * xs[1] * xs[2])
    check_layer_gradient(make_layer('Eltwise', params), xs)


def test_eltwise_max_gradient():
    # integers plus k/3: no two bottoms ever tie, whatever the permutations
    xs = [RNG.permutation(18).reshape(3, 6).astype(float) + k / 3 for k in range(3)]
    check_layer_gradient(make_layer('Eltwise', 'eltwise_param { operation: MAX }'), xs)


def test_eltwise_max_ties_follow_caffe():
    """Caffe: bottoms 0 and 1 compare with ``x0 > x1`` (a tie goes to 1); bottoms 2.. win only
    when strictly greater than the running max."""
    layer = make_layer('Eltwise', 'eltwise_param { operation: MAX }')
    x0 = [1.0, 5.0, 2.0, 3.0]
    x1 = [1.0, 4.0, 2.0, 3.0]
    x2 = [0.0, 5.0, 2.0, 7.0]
    bottom, top = run(layer, [x0, x1, x2])
    np.testing.assert_array_equal(top[0].data, [1, 5, 2, 7])
    d0, d1, d2 = backward(layer, bottom, top, [[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_array_equal(d0, [0, 20, 0, 0])
    np.testing.assert_array_equal(d1, [10, 0, 30, 0])
    np.testing.assert_array_equal(d2, [0, 0, 0, 40])


def test_eltwise_errors():
    with pytest.raises(NetError, match="'l'.*one coeff per bottom"):
        run(make_layer('Eltwise', 'eltwise_param { coeff: 1 }'), [[1.0], [2.0]])
    with pytest.raises(NetError, match="'l'.*only for SUM"):
        run(make_layer('Eltwise', 'eltwise_param { operation: PROD coeff: 1 coeff: 2 }'),
            [[1.0], [2.0]])
    with pytest.raises(NetError, match=r"'l'.*\(2,\).*\(3,\)"):
        run(make_layer('Eltwise'), [[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(NetError, match='at least 2 bottom'):
        make_layer('Eltwise').check_blob_counts(1, 1)
