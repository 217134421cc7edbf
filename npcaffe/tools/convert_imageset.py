"""``npcaffe convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME``: Caffe's
convert_imageset, a list of images to an LMDB or LevelDB of Datums a Data layer reads.

The list holds ``path label`` per line (split at the last space); each image is
``ROOTFOLDER + path`` (plain concatenation). Flags: ``-backend lmdb|leveldb`` (lmdb),
``-gray`` (read as grayscale), ``-shuffle`` (shuffle the lines; ``-random_seed`` makes it
repeatable, an npcaffe addition), ``-resize_height``/``-resize_width`` (cv::resize
INTER_LINEAR), ``-check_size`` (every Datum the size of the first), ``-encoded`` (store the
image file, not pixels), ``-encode_type jpg|png|...`` (implies -encoded).

What is written is Caffe's, byte for byte where Caffe's own bytes are defined: keys
``%08d_<path>`` (the line's index in the list after shuffling), raw Datums as CVMatToDatum
writes them (channels, height, width, BGR planar data, label, ``encoded: false``) and, for
``-encoded`` without resizing where the extension matches the encoding (and the read's channel
count matches -gray), the file's own bytes (data, label, ``encoded: true``). Images re-encoded
(resized, or another type) are encoded by Pillow, so their bytes differ from OpenCV's (the
pixels they decode to do not, beyond JPEG's own loss). As in Caffe an unreadable image is
logged and skipped (its line's index is not reused); records are committed every 1000.
"""
import logging
import random

from npcaffe.cli import brew, flags
from npcaffe.cli.runner import UsageError
from npcaffe.layers.data import db as databases
from npcaffe.layers.data import image
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)
COMMIT_EVERY = 1000


def read_list(path):
    """[(path, label)] of a list file, Caffe's way (split at the last space, atoi label);
    a line without a label or with a non-integer one is an error naming the line."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as exc:
        raise OSError(f"{path}: cannot read the list file ({exc.strerror or exc})") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip('\r')
        pos = line.rfind(' ')
        try:
            label = int(line[pos + 1:]) if pos >= 0 else None
        except ValueError:
            label = None
        if label is None:
            raise ValueError(f"{path}:{number}: {line!r} is not 'path label' (the label after "
                             f"the last space must be an integer)")
        lines.append((line[:pos], label))
    return lines


def _matches_ext(filename, encoding):
    """Caffe's matchExt: the file's extension is the encoding (jpeg counts as jpg)."""
    pos = filename.rfind('.')
    ext = (filename[pos + 1:] if pos >= 0 else filename).lower()
    encoding = encoding.lower()
    return ext == encoding or (encoding == 'jpg' and ext == 'jpeg')


def image_to_datum(filename, label, height, width, is_color, encoding):
    """Caffe's ReadImageToDatum: the Datum for one image, or None when it cannot be read."""
    try:
        img = image.imread(filename, 'color' if is_color else 'gray')
    except image.ImageReadError as exc:
        log.error("Could not open or find file %s (%s)", filename,
                  str(exc).split(': ', 1)[-1])
        return None
    if height > 0 and width > 0:
        img = image.resize_linear(img, height, width)
    if encoding:
        if (img.shape[2] == 3) == is_color and not height and not width and \
                _matches_ext(filename, encoding):
            with open(filename, 'rb') as f:
                data = f.read()
        else:
            data = image.encode(img, encoding)
        datum = caffe_pb2.Datum(data=data, label=label)
        datum.encoded = True
        return datum
    return image.mat_to_datum(img, label)


def convert(root, list_file, db_name, backend='lmdb', gray=False, shuffle=False, seed=None,
            resize_height=0, resize_width=0, check_size=False, encoded=False, encode_type=''):
    """Write the database; returns the number of records written."""
    lines = read_list(list_file)
    if shuffle:
        log.info("Shuffling data")
        random.Random(seed).shuffle(lines)
    log.info("A total of %d images.", len(lines))
    if encode_type and not encoded:
        log.info("encode_type specified, assuming encoded=true.")
    encoded = encoded or bool(encode_type)
    height, width = max(0, resize_height), max(0, resize_width)
    database = databases.open_db(db_name, backend, 'new')
    count, data_size = 0, None
    try:
        txn = database.transaction()
        for line_id, (path, label) in enumerate(lines):
            enc = encode_type
            if encoded and not enc:
                pos = path.rfind('.')
                if pos < 0:
                    log.warning("Failed to guess the encoding of '%s'", path)
                enc = path[pos + 1:].lower()
            datum = image_to_datum(root + path, label, height, width, not gray, enc)
            if datum is None:
                continue
            if check_size:
                size = datum.channels * datum.height * datum.width
                if data_size is None:
                    data_size = size
                elif len(datum.data) != data_size:
                    raise ValueError(f"{root + path} ({list_file} line {line_id + 1}): "
                                     f"incorrect data field size {len(datum.data)}, the first "
                                     f"image has {data_size} (-check_size)")
            txn.put(f"{line_id:08d}_{path}", datum.SerializeToString())
            count += 1
            if count % COMMIT_EVERY == 0:
                txn.commit()
                log.info("Processed %d files.", count)
        if count % COMMIT_EVERY:
            txn.commit()
            log.info("Processed %d files.", count)
    finally:
        database.close()
    return count


def _body(args):
    if len(args.positional) != 3:
        raise UsageError("convert_imageset takes ROOTFOLDER/ LISTFILE DB_NAME")
    root, list_file, db_name = args.positional
    convert(root, list_file, db_name, backend=args.backend, gray=args.gray,
            shuffle=args.shuffle, seed=None if args.random_seed < 0 else args.random_seed,
            resize_height=args.resize_height, resize_width=args.resize_width,
            check_size=args.check_size, encoded=args.encoded, encode_type=args.encode_type)
    return 0


def flag_spec():
    spec = flags.Flags('npcaffe convert_imageset', usage='ROOTFOLDER/ LISTFILE DB_NAME',
                       description='Convert a set of images to the leveldb/lmdb format used as '
                                   'input for Caffe.')
    spec.define('gray', False, 'When this option is on, treat images as grayscale ones')
    spec.define('shuffle', False, 'Randomly shuffle the order of images and their labels')
    spec.define('random_seed', -1, 'Seed of -shuffle (npcaffe; -1: a random order each run)')
    spec.define('backend', 'lmdb', 'The backend {lmdb, leveldb} for storing the result')
    spec.define('resize_width', 0, 'Width images are resized to')
    spec.define('resize_height', 0, 'Height images are resized to')
    spec.define('check_size', False, 'When this option is on, check that all the datum have '
                                     'the same size')
    spec.define('encoded', False, 'When this option is on, the encoded image will be save in '
                                  'datum')
    spec.define('encode_type', '', "Optional: What type should we encode the image as "
                                   "('png','jpg',...).")
    return spec


def main(argv=None):
    """``npcaffe convert_imageset`` (argv: the arguments after the verb)."""
    return brew.run(flag_spec(), _body, argv)
