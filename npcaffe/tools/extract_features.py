"""``npcaffe extract_features WEIGHTS NET BLOB1[,BLOB2...] DB1[,DB2...] NUM_BATCHES DB_TYPE
[CPU|GPU] [DEVICE_ID]``: Caffe's extract_features, blobs of a TEST net over NUM_BATCHES
forward passes written into databases of Datums, one database per blob.

As in Caffe: each item ``n`` of the blob's batch becomes one float Datum (channels, height,
width of the blob's legacy 4-D shape, ``float_data`` the item's values, no label) under the
key ``%010d`` counting items per database from 0; ``DB_TYPE`` is lmdb or leveldb; records are
committed every 1000; the databases must not exist yet. The net reads its inputs from its
own data layers (a Data or ImageData layer, usually). ``GPU`` is accepted with a warning
(npcaffe runs on the CPU).
"""
import logging

import numpy as np

import npcaffe
from npcaffe.cli import brew, flags
from npcaffe.cli.runner import UsageError
from npcaffe.layers.data import db as databases
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)
COMMIT_EVERY = 1000
_USAGE = ('WEIGHTS NET BLOB1[,BLOB2,...] DB1[,DB2,...] NUM_MINI_BATCHES DB_TYPE [CPU|GPU] '
          '[DEVICE_ID=0]')


def _legacy(shape):
    return tuple(shape) + (1,) * (4 - len(shape)) if len(shape) <= 4 else None


def extract(weights, model, blob_names, db_names, num_batches, db_type):
    """Write the databases; returns the number of items written to each."""
    if len(blob_names) != len(db_names):
        raise UsageError(f"the number of blob names ({len(blob_names)}) and dataset names "
                         f"({len(db_names)}) must be equal")
    net = npcaffe.Net(model, npcaffe.TEST, weights=weights)
    for name in blob_names:
        if name not in net.blobs:
            raise ValueError(f"{model}: unknown feature blob name {name!r} in the network "
                             f"(blobs: {', '.join(net.blobs)})")
    dbs = []
    try:
        for name in db_names:
            log.info("Opening dataset %s", name)
            dbs.append(databases.open_db(name, db_type, 'new'))
        txns = [d.transaction() for d in dbs]
        counts = [0] * len(dbs)
        log.info("Extracting Features")
        for _ in range(num_batches):
            net.forward()
            for i, name in enumerate(blob_names):
                blob = net.blobs[name]
                legacy = _legacy(blob.shape)
                if legacy is None:
                    raise ValueError(f"blob {name!r} has {len(blob.shape)} axes; Datums hold "
                                     f"at most 4-D (num, channels, height, width) blobs")
                items = np.asarray(blob.data, np.float32).reshape(legacy[0], -1)
                for item in items:
                    datum = caffe_pb2.Datum(channels=legacy[1], height=legacy[2],
                                            width=legacy[3])
                    datum.float_data.extend(item.tolist())
                    txns[i].put(f"{counts[i]:010d}", datum.SerializeToString())
                    counts[i] += 1
                    if counts[i] % COMMIT_EVERY == 0:
                        txns[i].commit()
                        log.info("Extracted features of %d query images for feature blob %s",
                                 counts[i], name)
        for i, name in enumerate(blob_names):
            txns[i].commit()
            log.info("Extracted features of %d query images for feature blob %s", counts[i],
                     name)
    finally:
        for d in dbs:
            d.close()
    log.info("Successfully extracted the features!")
    return counts


def _body(args):
    pos = args.positional
    if len(pos) < 6 or len(pos) > 8:
        raise UsageError(f"extract_features takes {_USAGE}")
    weights, model, blobs, dbs, num, db_type = pos[:6]
    mode = pos[6] if len(pos) > 6 else 'CPU'
    if mode == 'GPU':
        log.warning("npcaffe has no GPU engine yet: GPU is ignored and the CPU is used")
    elif mode != 'CPU':
        raise UsageError(f"extract_features: the 7th argument is CPU or GPU, got {mode!r}")
    try:
        num_batches = int(num)
    except ValueError:
        raise UsageError(f"extract_features: NUM_MINI_BATCHES must be an integer, got "
                         f"{num!r}") from None
    extract(weights, model, blobs.split(','), dbs.split(','), num_batches,
            databases.backend_name(db_type))
    return 0


def main(argv=None):
    """``npcaffe extract_features`` (argv: the arguments after the verb)."""
    spec = flags.Flags('npcaffe extract_features', usage=_USAGE,
                       description='Extract features of blobs of a net into databases.')
    return brew.run(spec, _body, argv)
