"""Blob: an N-d array of data and an array of gradients (diff) of the same shape, as in Caffe.

``data`` and ``diff`` are writable NumPy arrays (views of a flat buffer that only grows, as
Caffe's Blob keeps its capacity), so ``blob.data[...] = x`` writes into the net. ``diff`` is
allocated on first use, as Caffe's SyncedMemory is, so nets that never run backward do not
pay for it.

``num``/``channels``/``height``/``width`` are Caffe's legacy accessors (Blob::LegacyShape):
axes 0-3, with 1 for axes past the blob's last (``Blob((10, 3, 2)).width == 1``, a scalar blob
is 1 x 1 x 1 x 1); a blob of more than four axes has none (ValueError, where Caffe aborts).
"""
from npcaffe.arraymod import xp

_LEGACY_AXES = ('num', 'channels', 'height', 'width')


class Blob:
    """Data and diff arrays of one shape.

    Args:
        shape: tuple of non-negative ints (may be empty for a scalar blob).
        dtype: float dtype; float32 as Caffe, float64 for gradient checks.
    """

    def __init__(self, shape=(), dtype=xp.float32):
        self.dtype = xp.dtype(dtype)
        self._shape = None
        self._data_buf = xp.zeros(0, self.dtype)
        self._diff_buf = None
        self._data = None
        self._diff = None
        self.reshape(*shape)

    # -- shape -------------------------------------------------------------------------
    def reshape(self, *shape):
        """Give the blob a new shape; keeps the buffer when it is large enough (as Caffe).

        Accepts ``reshape(1, 3, 5, 5)`` or ``reshape((1, 3, 5, 5))``.
        """
        if len(shape) == 1 and not isinstance(shape[0], (int, xp.integer)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"blob dimensions must be non-negative, got {shape}")
        if shape == self._shape:
            return
        count = 1
        for d in shape:
            count *= d
        if count > self._data_buf.size:
            self._data_buf = xp.zeros(count, self.dtype)
            self._diff_buf = None
        self._shape = shape
        self._data = self._data_buf[:count].reshape(shape)
        if self._diff_buf is not None and self._diff_buf.size >= count:
            self._diff = self._diff_buf[:count].reshape(shape)
        else:
            self._diff_buf = None
            self._diff = None

    def reshape_like(self, other):
        self.reshape(other.shape)

    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        return self._data.size

    @property
    def num_axes(self):
        return len(self._shape)

    def shape_at(self, axis):
        """Size of ``axis`` (negative counts from the end), as Caffe's shape(i)."""
        return self._shape[self.canonical_axis(axis)]

    def canonical_axis(self, axis):
        n = len(self._shape)
        if not -n <= axis < max(n, 1):
            raise IndexError(f"axis {axis} out of range for a blob of shape {self._shape}")
        return axis % n if n else 0

    def count_range(self, start, end=None):
        c = 1
        for d in self._shape[start:end]:
            c *= d
        return c

    def _legacy(self, i):
        """Caffe's Blob::LegacyShape: axis ``i`` of at most four, 1 for an axis the blob lacks
        (the missing axes are padded at the end, so a (10, 3, 2) blob is 10 x 3 x 2 x 1)."""
        if len(self._shape) > 4:
            raise ValueError(f"{_LEGACY_AXES[i]} is defined only for blobs of at most 4 axes, "
                             f"not for shape {self._shape}")
        return self._shape[i] if i < len(self._shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    # -- data ----------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @property
    def diff(self):
        if self._diff is None:
            if self._diff_buf is None or self._diff_buf.size < self._data_buf.size:
                self._diff_buf = xp.zeros(self._data_buf.size, self.dtype)
            self._diff = self._diff_buf[:self._data.size].reshape(self._shape)
        return self._diff

    @property
    def has_diff(self):
        """True once the diff has been allocated (reading ``diff`` allocates it)."""
        return self._diff is not None

    def share_data(self, other):
        """Make this blob's data a view of ``other``'s (same count, shape kept)."""
        self._check_same_count(other)
        self._data = other.data.reshape(self._shape)
        self._data_buf = self._data.reshape(-1)

    def share_diff(self, other):
        """Make this blob's diff a view of ``other``'s (same count, shape kept)."""
        self._check_same_count(other)
        self._diff = other.diff.reshape(self._shape)
        self._diff_buf = self._diff.reshape(-1)

    def use_diff_buffer(self, flat):
        """Make the diff a view of the first ``count`` elements of ``flat`` (a 1-d array of the
        blob's dtype, at least that long; npcaffe: the Solver's shared backward buffers). Its
        content is whatever ``flat`` holds."""
        if flat.ndim != 1 or flat.size < self.count or flat.dtype != self.dtype:
            raise ValueError(f"a diff buffer for {self!r} must be 1-d {self.dtype.name} of at "
                             f"least {self.count} elements, got {flat.dtype.name} "
                             f"{flat.shape}")
        self._diff_buf = flat[:self.count]
        self._diff = self._diff_buf.reshape(self._shape)

    def drop_diff(self):
        """Forget the diff (the next read of ``diff`` allocates a zero one)."""
        self._diff_buf = self._diff = None

    def _check_same_count(self, other):
        if other.count != self.count:
            raise ValueError(f"cannot share a blob of shape {other.shape} "
                             f"with one of shape {self.shape}: counts differ")

    def __repr__(self):
        return f"Blob(shape={self._shape}, dtype={self.dtype.name})"


class BlobVec(list):
    """A layer's list of parameter blobs; ``add_blob(*shape)`` as in pycaffe's Python layers."""

    def __init__(self, blobs=(), dtype=xp.float32):
        super().__init__(blobs)
        self.dtype = dtype

    def add_blob(self, *shape):
        self.append(Blob(shape, self.dtype))
        return self[-1]
