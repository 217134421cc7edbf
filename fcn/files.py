"""Writing files and images so that nothing already written is lost: a temporary name in the
same folder, then a rename over the target (``npcaffe.atomic``, the one writer the engine uses
too). Every output file of the toolkit goes through here."""
import os
from pathlib import Path

from npcaffe.atomic import atomic_path, atomic_write

__all__ = ['atomic_path', 'atomic_write', 'cache_dir', 'save_image', 'save_png']


def cache_dir(cache=None):
    """The toolkit's cache folder (published models, exported ONNX models): ``cache``, else
    ``$FCN_CACHE``, else ``$XDG_CACHE_HOME/fcn``, else ``~/.cache/fcn``."""
    if cache:
        return Path(cache)
    if os.environ.get('FCN_CACHE'):
        return Path(os.environ['FCN_CACHE'])
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'fcn'


def save_image(image, path, format='PNG', **options):
    """Save the PIL ``image`` at ``path`` atomically (never left half written)."""
    with atomic_write(path) as f:
        image.save(f, format=format, **options)


def save_png(image, path):
    """Save the PIL ``image`` as PNG at ``path`` atomically."""
    save_image(image, path, 'PNG')
