"""Writing files so that nothing already written is lost: a temporary name in the same
folder, then a rename over the target (atomic on POSIX and Windows)."""
import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``,
    on any failure it is removed and ``path`` keeps its old content."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
