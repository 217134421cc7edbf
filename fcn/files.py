"""Writing files and images so that nothing already written is lost: a temporary name in the
same folder, then a rename over the target (atomic on POSIX and Windows). Every output file of
the toolkit goes through here."""
import contextlib
import os
import tempfile
from pathlib import Path


def _file_mode():
    """0666 less the umask: the mode open() would give a new file (mkstemp gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` to write to (by any writer that takes a path);
    on success it replaces ``path``, on any failure it is removed and ``path`` is unchanged."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _file_mode())
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Open a temporary file beside ``path`` for writing (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def save_image(image, path, format='PNG', **options):
    """Save the PIL ``image`` at ``path`` atomically (never left half written)."""
    with atomic_write(path) as f:
        image.save(f, format=format, **options)


def save_png(image, path):
    """Save the PIL ``image`` as PNG at ``path`` atomically."""
    save_image(image, path, 'PNG')
