"""A segmentation data layer for one's own data: a folder of images and index label PNGs
(prototxt ``module: "layers.folder"``).

Layout (the default; or name the two folders with ``image_dir`` / ``label_dir``)::

    ROOT/images/<id>.jpg     (or .jpeg .png .bmp .ppm .tif .tiff; any size, RGB or grey)
    ROOT/labels/<id>.png     (P or L mode: each pixel its class number, or the ignore value)
    ROOT/train.txt           (optional split lists: one <id> per line)

Labels are checked as they are read: an RGB-coloured label is refused (convert it with
``fcn labels convert``), a value outside [0, num_classes) that is not ``ignore_label``
and an image/label size mismatch are errors naming the file. ``fcn labels check``
checks a whole dataset ahead of training.
"""
import os

from layers.images import (COMMON_PARAMS, DataError, PairSource, SegDataLayer,
                           check_label_values, read_split)
from layers.params import (Param, ParamError, extension, optional, path, positive_integer,
                           non_negative_integer)

__all__ = ['FolderSegDataLayer', 'FolderSource', 'IMAGE_EXTENSIONS']

#: image file extensions looked for when ``image_ext`` is not given (lower case)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.tif', '.tiff')
LABEL_EXTENSION = '.png'


def _images_by_stem(folder, extensions):
    """{stem: [file names]} of the images in ``folder`` with one of ``extensions``."""
    found = {}
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the image folder ({exc.strerror})") from None
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions and os.path.isfile(os.path.join(folder, name)):
            found.setdefault(stem, []).append(name)
    return found


def _resolve_split(split, root):
    """The split list file for ``split``: a path (as given, or under ``root``), or the name
    ``ROOT/<split>.txt``."""
    candidates = [split]
    if root is not None and not os.path.isabs(split):
        candidates.append(os.path.join(root, split))
        if not split.endswith('.txt'):
            candidates.append(os.path.join(root, split + '.txt'))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise DataError(f"split {split!r}: no split list at {' or '.join(candidates)}")


class FolderSource(PairSource):
    """The image/label pairs of a folder dataset (see the module docstring)."""

    def __init__(self, image_dir, label_dir, split, mean, num_classes, ignore_label,
                 image_ext=None, root=None):
        for what, folder in (('image', image_dir), ('label', label_dir)):
            if not os.path.isdir(folder):
                raise DataError(f"{folder}: the {what} folder does not exist")
        self.image_dir, self.label_dir = image_dir, label_dir
        self.mean = mean
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        extensions = (image_ext.lower(),) if image_ext else IMAGE_EXTENSIONS
        images = _images_by_stem(image_dir, extensions)
        if split is not None:
            self.split_file = _resolve_split(split, root)
            ids = read_split(self.split_file)
            for sample_id in ids:
                if sample_id not in images:
                    wanted = (image_ext if image_ext
                              else '.{' + ','.join(e[1:] for e in IMAGE_EXTENSIONS) + '}')
                    raise DataError(f"{self.split_file}: image "
                                    f"{os.path.join(image_dir, sample_id + wanted)} does not "
                                    f"exist")
        else:
            self.split_file = None
            ids = [s for s in images
                   if os.path.isfile(os.path.join(label_dir, s + LABEL_EXTENSION))]
            if not ids:
                raise DataError(f"no image in {image_dir} has a label "
                                f"{os.path.join(label_dir, '<name>' + LABEL_EXTENSION)}")
        ambiguous = sorted(s for s in set(ids) if len(images[s]) > 1)
        if ambiguous:
            raise DataError(f"{image_dir}: several images for {ambiguous[0]!r} "
                            f"({', '.join(images[ambiguous[0]])}); keep one, or choose one "
                            f"with the image_ext parameter")
        self.ids = ids
        self._image_names = {s: images[s][0] for s in ids}

    def paths(self, sample_id):
        return (os.path.join(self.image_dir, self._image_names[sample_id]),
                os.path.join(self.label_dir, sample_id + LABEL_EXTENSION))

    def check_label(self, label, label_path):
        check_label_values(label, label_path, self.num_classes, self.ignore_label)


class FolderSegDataLayer(SegDataLayer):
    """Image/label pairs from a folder of one's own data, one per forward, at their own size.

    Parameters (``param_str``, a Python-literal or JSON dict):

    - ``root``: the dataset folder, holding ``images/`` and ``labels/`` (and split lists);
    - ``image_dir`` / ``label_dir``: the two folders instead (relative to ``root`` if given);
      either ``root`` or both of these are required;
    - ``split`` (default None): a split list (one id per line: ``<id>`` of ``images/<id>.jpg``
      and ``labels/<id>.png``), as a path or a name ``ROOT/<split>.txt``; None: every image
      that has a label, in name order;
    - ``num_classes`` (required): labels hold 0 .. num_classes - 1 (or ``ignore_label``);
    - ``ignore_label`` (default 255; None for none): the value the loss ignores;
    - ``image_ext`` (default None): the images' extension, e.g. ``.png``; None: any of .jpg
      .jpeg .png .bmp .ppm .tif .tiff (one image per id);
    - ``mean`` (required): (B, G, R) means subtracted, e.g. (104.00699, 116.66877, 122.67892);
    - ``randomize`` (default True): random order in the TRAIN phase (a TEST net reads the list
      in order, wrapping around);
    - ``seed`` (default None): seed of the random order (None: different each run);
    - ``prefetch`` (default 2): samples loaded ahead in a background thread (0: none).

    Tops: ``data`` (1, 3, H, W) float32 BGR minus mean; ``label`` (1, 1, H, W) class indices as
    float. Labels must be index PNGs (P or L mode); RGB-coloured ones are refused with a pointer
    to ``fcn labels convert``. Prototxt::

        layer {
          name: "data" type: "Python" top: "data" top: "label"
          python_param {
            module: "layers.folder" layer: "FolderSegDataLayer"
            param_str: "{'root': '/data/streets', 'split': 'train', 'num_classes': 12, 'ignore_label': 255, 'seed': 1337, 'mean': (104.00699, 116.66877, 122.67892)}"
          }
        }
    """

    PARAMS = {
        'root': Param(optional(path), doc='dataset folder with images/ and labels/'),
        'image_dir': Param(optional(path), doc='image folder (default ROOT/images)'),
        'label_dir': Param(optional(path), doc='label folder (default ROOT/labels)'),
        'split': Param(optional(path), doc='split list path or name; None: every pair'),
        'num_classes': Param(positive_integer, required=True, doc='number of classes'),
        'ignore_label': Param(optional(non_negative_integer), default=255,
                              doc='label value to ignore; default 255'),
        'image_ext': Param(optional(extension), doc='image extension, e.g. .jpg'),
        **COMMON_PARAMS,
    }

    def make_source(self, params):
        root = params['root']
        dirs = {}
        for key, default in (('image_dir', 'images'), ('label_dir', 'labels')):
            folder = params[key]
            if folder is None:
                if root is None:
                    raise ParamError(f"{type(self).__name__}: give 'root' (a folder with "
                                     f"images/ and labels/) or both 'image_dir' and "
                                     f"'label_dir'")
                folder = os.path.join(root, default)
            elif root is not None and not os.path.isabs(folder):
                folder = os.path.join(root, folder)
            dirs[key] = folder
        return FolderSource(dirs['image_dir'], dirs['label_dir'], params['split'], self.mean,
                            params['num_classes'], params['ignore_label'],
                            params['image_ext'], root)
