"""coord_map: crop offsets of tiny nets, worked out by hand, and the errors for impossible crops.

Per layer, top = a * bottom + b: Convolution/Pooling a = 1/s, b = (p - (k_eff - 1)/2) / s;
Deconvolution a = s, b = (k_eff - 1)/2 - p. coord_map_from_to(x, y) gives y = a * x + b, and
the crop offset is -b.
"""
import numpy as np
import pytest

from npcaffe.coord_map import (AxisMismatchError, CoordMapError, CropError,
                               NoCommonAncestorError, compose, coord_map, coord_map_from_to,
                               crop, crop_offsets, inverse, stride)
from npcaffe.net_spec import NetSpec, layers as L, params as P


def conv_pool_deconv(ks=3, conv_stride=1, pad=0, pool=2, dstride=2, dpad=0):
    """data -> conv(ks, conv_stride, pad) -> pool(pool, pool) -> deconv(2 dstride, dstride, dpad)"""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=ks, stride=conv_stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    n.deconv = L.Deconvolution(n.pool, convolution_param=dict(
        num_output=4, kernel_size=2 * dstride, stride=dstride, pad=dpad))
    return n


def test_conv_pool_deconv_by_hand():
    # conv 3x3: (1, -1); pool 2/2: (1/2, -1/4); deconv 4/2: (2, 3/2)
    # deconv = 2 * (1/2 * (data - 1) - 1/4) + 3/2 = data + 0
    n = conv_pool_deconv()
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert (ax, list(a), list(b)) == (1, [1.0], [0.0])
    # pool 4/4: (1/4, -3/8); deconv 8/4: (4, 7/2): deconv = 4 * (1/4 * (data - 1) - 3/8) + 7/2
    # = data + 1, so data = deconv - 1: b = -1, crop offset 1
    n = conv_pool_deconv(pool=4, dstride=4)
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert (ax, list(a), list(b)) == (1, [1.0], [-1.0])
    assert crop_offsets(n.deconv, n.data) == (2, [1])


def test_padding_shifts_conv_and_deconv_oppositely():
    n = conv_pool_deconv()
    _, _, b0 = coord_map_from_to(n.deconv, n.data)
    for pad in (1, 4, 7):
        _, _, b = coord_map_from_to((n := conv_pool_deconv(pad=pad)).deconv, n.data)
        assert b[0] == b0[0] - pad
        _, _, b = coord_map_from_to((n := conv_pool_deconv(dpad=pad)).deconv, n.data)
        assert b[0] == b0[0] + pad
        _, _, b = coord_map_from_to((n := conv_pool_deconv(pad=pad, dpad=pad)).deconv, n.data)
        assert b[0] == b0[0]


def test_fcn32s_like_offset_19_by_hand():
    # conv1_1 3x3 pad 100: b = +99; four more 3x3 pad 1 convs: identity; five 2/2 pools:
    # (1/2, -1/4) each; fc6 7x7: (1, -3); upscore 64/32: (32, 31.5). Composed from upscore back:
    # 31.5 - 96 = -64.5, -72.5, -76.5, -78.5, -79.5, -80 (a = 1 again), +99 -> upscore = data + 19
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 64]))
    top = n.conv1_1 = L.Convolution(n.data, num_output=2, kernel_size=3, pad=100)
    for i in range(1, 6):
        top = n[f'conv{i}'] = L.Convolution(top, num_output=2, kernel_size=3, pad=1)
        top = n[f'relu{i}'] = L.ReLU(top, in_place=True)
        top = n[f'pool{i}'] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.fc6 = L.Convolution(top, num_output=2, kernel_size=7)
    n.drop6 = L.Dropout(n.fc6, in_place=True)
    n.score_fr = L.Convolution(n.drop6, num_output=2, kernel_size=1)
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(
        num_output=2, kernel_size=64, stride=32, bias_term=False))
    n.score = crop(n.upscore, n.data)
    assert n.score.fn.params['crop_param'] == dict(axis=2, offset=[19])
    assert stride(n.score_fr, n.data) == 32 and stride(n.pool3, n.data) == 8
    assert [layer.crop_param.offset for layer in n.to_proto().layer if layer.type == 'Crop'] \
        == [[19]]


def test_crop_of_a_crop_and_dilation():
    n = conv_pool_deconv(pool=4, dstride=4)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=3)
    _, _, b = coord_map_from_to(n.crop, n.data)
    assert b[0] == -1 + 3  # crop moves the origin by its offset; only its first bottom counts
    # dilation 2 makes a 3x3 kernel span 5: b = (p - 2) / 1
    m = NetSpec()
    m.data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    m.c = L.Convolution(m.data, num_output=1, kernel_size=3, dilation=2, pad=5)
    assert crop_offsets(m.c, m.data) == (2, [3])


def test_anisotropic_maps_are_per_axis():
    n = conv_pool_deconv(ks=[3, 5], conv_stride=[1, 2], pad=[0, 10])
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    # axis 0 as the 3x3/1 net (b = 0); axis 1: conv 5/2 pad 10: (1/2, 4); pool: (1/2, -1/4);
    # deconv: (2, 3/2): deconv = 2 * (1/2 * (data/2 + 4) - 1/4) + 3/2 = data/2 + 5,
    # so data = 2 * deconv - 10
    assert ax == 1 and list(a) == [1.0, 2.0] and list(b) == [0.0, -10.0]


def test_pass_through_only_and_multi_bottom_layers():
    n = conv_pool_deconv()
    n.relu = L.ReLU(n.data)
    assert coord_map_from_to(n.relu, n.data)[0] is None
    assert crop_offsets(n.relu, n.data) == (2, [0])
    n.both, n.both_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=1, kernel_size=5,
                                       stride=2)
    # conv 5x5/2: both = data/2 - 1, so data = 2 * both + 2, alike for both bottoms
    assert list(map(list, coord_map_from_to(n.both, n.data)[1:])) == [[2.0], [2.0]]
    assert list(map(list, coord_map_from_to(n.both_aux, n.aux)[1:])) == [[2.0], [2.0]]


def test_layer_maps_and_pycaffe_compose_inverse():
    n = conv_pool_deconv(pad=2)
    assert [list(x) for x in coord_map(n.conv)[1:]] == [[1.0], [1.0]]
    assert [list(x) for x in coord_map(n.deconv.fn)[1:]] == [[2.0], [1.5]]
    ax, a, b = compose((1, np.array([0.5]), np.array([1.0])), (None, 1, 2))
    assert (ax, list(a), list(b)) == (1, [0.5], [2.0])
    ax, a, b = inverse((1, np.array([0.5]), np.array([1.0])))
    assert (ax, list(a), list(b)) == (1, [2.0], [-2.0])
    with pytest.raises(AxisMismatchError):
        compose((1, 1, 0), (2, 1, 0))


def test_unconnected_tops_name_the_layer_without_a_map():
    n = conv_pool_deconv()
    n.other = L.Convolution(n.data, num_output=4, kernel_size=1)
    n.concat = L.Concat(n.deconv, n.other)
    with pytest.raises(NoCommonAncestorError, match=r"'concat' \(Concat\) has no coordinate map"):
        crop(n.concat, n.data)
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError, match=r"'ip' \(InnerProduct\)"):  # pycaffe raises this
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(CoordMapError, match="different inputs"):
        coord_map_from_to(n.data, n.aux)


def test_impossible_crops_are_explained():
    n = conv_pool_deconv(pool=3, dstride=2)  # pooled by 3, upsampled by 2
    with pytest.raises(CropError, match="differ in scale by 3/2"):
        crop(n.deconv, n.data)
    n = conv_pool_deconv(dpad=10)  # the output starts inside the input: offset -10
    with pytest.raises(CropError, match=r"top 'deconv' to top 'data'.*negative"):
        crop(n.deconv, n.data)
    with pytest.raises(AssertionError):  # as pycaffe
        crop(n.deconv, n.data)
    m = NetSpec()
    m.data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    m.even = L.Convolution(m.data, num_output=1, kernel_size=2)  # b = -1/2
    with pytest.raises(CropError, match="offset 1/2 is not a whole number"):
        crop(m.data, m.even)
    assert issubclass(CropError, ValueError)


def test_misaligned_branches_are_reported():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    n.a = L.Convolution(n.data, num_output=1, kernel_size=3, pad=1)
    n.b = L.Convolution(n.data, num_output=1, kernel_size=3, pad=0)
    n.sum = L.Eltwise(n.a, n.b)
    with pytest.raises(CoordMapError, match=r"two paths.*'a' \(Convolution\).*'b' \(Convolution\)"):
        crop(n.sum, n.data)


def test_legacy_and_global_geometry_are_refused():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    n.conv = L.Convolution(n.data, num_output=1, kernel_h=3, kernel_w=3)
    with pytest.raises(CoordMapError, match="kernel_h"):
        crop(n.conv, n.data)
    n.gp = L.Pooling(n.data, pool=P.Pooling.AVE, global_pooling=True)
    with pytest.raises(CoordMapError, match="'gp'.*globally"):
        crop(n.gp, n.data)
