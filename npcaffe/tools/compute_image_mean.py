"""``npcaffe compute_image_mean [-backend lmdb|leveldb] INPUT_DB [OUTPUT_FILE]``: Caffe's
compute_image_mean, the mean image of a database of Datums as a binaryproto (a BlobProto
``transform_param { mean_file: ... }`` reads).

As Caffe: encoded Datums are decoded as stored (DecodeDatumNative); the sum runs in float32
in key order, then is divided by the count in float32; the file holds the legacy
num (1) / channels / height / width fields and the values (no ``shape``), byte-equal to
Caffe's; the per-channel means are logged (``mean_value channel [c]: m``). Every Datum must have
the size of the first (an error names the record that does not). ``-backend`` defaults to lmdb.
"""
import logging

import numpy as np

from npcaffe import formats
from npcaffe.cli import brew, flags
from npcaffe.cli.runner import UsageError
from npcaffe.layers.data import db as databases
from npcaffe.layers.data.image import datum_pixels
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)


def compute_mean(db_path, backend='lmdb'):
    """(BlobProto of the mean, per-channel means as float32) of the database."""
    database = databases.open_db(db_path, backend, 'read')
    try:
        cursor = database.cursor()
        if not cursor.valid:
            raise ValueError(f"{db_path}: the database holds no records")
        total, count, first_shape = None, 0, None
        while cursor.valid:
            datum = caffe_pb2.Datum()
            datum.ParseFromString(cursor.value)
            what = f"record {cursor.key.decode(errors='replace')!r} of {db_path}"
            if count == 0 and datum.encoded:
                log.info("Decoding Datum")
            pixels = datum_pixels(datum, where=what)
            if total is None:
                first_shape = pixels.shape
                total = np.zeros(pixels.size, np.float32)
                log.info("Starting iteration")
            elif pixels.shape != first_shape:
                raise ValueError(f"{what} is {'x'.join(map(str, pixels.shape))}, the first "
                                 f"record {'x'.join(map(str, first_shape))}; all images of a "
                                 f"mean must have one size")
            total += pixels.reshape(-1).astype(np.float32)
            count += 1
            if count % 10000 == 0:
                log.info("Processed %d files.", count)
            cursor.next()
    finally:
        database.close()
    if count % 10000:
        log.info("Processed %d files.", count)
    mean = total / np.float32(count)
    c, h, w = first_shape
    blob = caffe_pb2.BlobProto(num=1, channels=c, height=h, width=w)
    blob.data.extend(mean.tolist())
    per_channel = np.zeros(c, np.float32)
    planes = mean.reshape(c, h * w)
    for ch in range(c):       # float accumulation in order, as Caffe (cumsum is sequential)
        per_channel[ch] = np.cumsum(planes[ch], dtype=np.float32)[-1] / np.float32(h * w)
    return blob, per_channel


def _body(args):
    if len(args.positional) not in (1, 2):
        raise UsageError("compute_image_mean takes INPUT_DB [OUTPUT_FILE]")
    blob, per_channel = compute_mean(args.positional[0], args.backend)
    if len(args.positional) == 2:
        out = args.positional[1]
        log.info("Write to %s", out)
        with formats.atomic_write(out) as f:
            f.write(blob.SerializeToString())
    log.info("Number of channels: %d", len(per_channel))
    for c, value in enumerate(per_channel):
        log.info("mean_value channel [%d]: %s", c, f"{float(value):.6g}")
    return 0


def main(argv=None):
    """``npcaffe compute_image_mean`` (argv: the arguments after the verb)."""
    spec = flags.Flags('npcaffe compute_image_mean', usage='INPUT_DB [OUTPUT_FILE]',
                       description='Compute the mean_image of a set of images given by a '
                                   'leveldb/lmdb')
    spec.define('backend', 'lmdb', 'The backend {leveldb, lmdb} containing the images')
    return brew.run(spec, _body, argv)
