"""Blob: shapes, legacy accessors, capacity reuse, lazy diff, sharing."""
import numpy as np
import pytest

from npcaffe.blob import Blob, BlobVec


def test_shape_count_and_legacy_axes():
    b = Blob((2, 3, 4, 5))
    assert b.shape == (2, 3, 4, 5) and b.count == 120 and b.num_axes == 4
    assert (b.num, b.channels, b.height, b.width) == (2, 3, 4, 5)
    assert Blob(()).count == 1            # a 0-axis blob is a scalar, as in Caffe
    with pytest.raises(ValueError, match=r'at most 4 axes.*\(1, 2, 3, 4, 5\)'):
        Blob((1, 2, 3, 4, 5)).num


@pytest.mark.parametrize('shape, legacy', [
    ((10, 3, 2), (10, 3, 2, 1)),          # Caffe's Blob::LegacyShape pads missing axes at the end
    ((10, 10), (10, 10, 1, 1)),           # an InnerProduct top: num is the batch
    ((7,), (7, 1, 1, 1)),
    ((), (1, 1, 1, 1)),
])
def test_legacy_accessors_pad_missing_axes_at_the_end(shape, legacy):
    b = Blob(shape)
    assert (b.num, b.channels, b.height, b.width) == legacy


def test_reshape_keeps_buffer_when_it_fits_and_accepts_tuple():
    b = Blob((2, 3))
    b.data[...] = np.arange(6).reshape(2, 3)
    b.reshape(3, 2)                       # same count: Caffe keeps the memory
    np.testing.assert_array_equal(b.data.ravel(), np.arange(6))
    b.reshape((1, 2))
    assert b.data.shape == (1, 2) and b.data.dtype == np.float32
    b.reshape(4, 4)                       # grows: new zeroed memory
    assert b.count == 16 and not b.data.any()
    with pytest.raises(ValueError, match='non-negative'):
        b.reshape(-1, 2)


def test_diff_is_lazy_and_follows_reshape():
    b = Blob((2, 2))
    assert not b.has_diff
    b.diff[...] = 1
    assert b.has_diff and b.diff.shape == (2, 2)
    b.reshape(1, 4)
    assert b.diff.shape == (1, 4)


def test_data_is_a_writable_view():
    b = Blob((3,))
    view = b.data
    view[1] = 5
    assert b.data[1] == 5


def test_share_data_and_diff():
    owner, other = Blob((2, 3)), Blob((3, 2))
    other.share_data(owner)
    other.share_diff(owner)
    owner.data[0, 0] = 7
    other.diff[...] += 1
    assert other.data[0, 0] == 7 and owner.diff.sum() == 6
    with pytest.raises(ValueError, match='counts differ'):
        Blob((5,)).share_data(owner)


def test_blobvec_add_blob():
    vec = BlobVec(dtype=np.float64)
    blob = vec.add_blob(2, 3)
    assert len(vec) == 1 and blob.shape == (2, 3) and blob.dtype == np.float64
