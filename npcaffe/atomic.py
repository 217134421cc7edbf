"""Writing files so that nothing already written is lost: a temporary name in the same
folder, synced, then renamed over the target (atomic on POSIX and Windows); on any failure the
temporary file is removed and the target keeps its content. Every file the engine and the
toolkit write goes through here (the toolkit's ``fcn.files`` adds images on top)."""
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
    """Yield a temporary path beside ``path`` for any writer that takes a path; on success it
    is synced and renamed over ``path``, on failure removed (``path`` keeps its content)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path('.')
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=folder)
    os.close(fd)
    os.chmod(tmp, _file_mode())
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Open a temporary file beside ``path``; rename it over ``path`` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
