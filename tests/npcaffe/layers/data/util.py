"""Helpers of the data-layer, command-line and tool tests: the optional database packages
(skip without them, fail under CI=true), scratch copies of golden/data cases, small databases."""
import importlib
import os
import shutil

import numpy as np
import pytest

from tests.conftest import require_shared


def need(package):
    """Import ``package`` (lmdb, plyvel); skip when absent, fail under CI=true."""
    try:
        return importlib.import_module(package)
    except ImportError:
        message = f"the {package} package is not installed (pip install '.[data]')"
        if os.environ.get('CI') == 'true':
            pytest.fail(message + "; under CI=true it is required")
        pytest.skip(message)


def scratch_case(case, tmp_path):
    """A copy of shared/golden/data/<case> under tmp_path (LevelDB rewrites files on open)."""
    src = require_shared('golden', 'data', case)
    dst = tmp_path / case
    shutil.copytree(src, dst)
    return dst


def write_db(path, records, backend='lmdb'):
    """A database of ``records`` ([(key str, Datum)]) at ``path``."""
    from npcaffe.layers.data import db
    need('lmdb' if backend == 'lmdb' else 'plyvel')
    database = db.open_db(str(path), backend, 'new')
    txn = database.transaction()
    for key, datum in records:
        txn.put(key, datum.SerializeToString())
    txn.commit()
    database.close()
    return path


def raw_datums(arrays, labels):
    """Raw uint8 Datums (as convert_imageset writes) of (C, H, W) arrays, keyed %08d_i."""
    from npcaffe.io import array_to_datum
    out = []
    for i, (arr, label) in enumerate(zip(arrays, labels)):
        datum = array_to_datum(np.asarray(arr, np.uint8), int(label))
        datum.encoded = False
        out.append((f"{i:08d}_item{i}", datum))
    return out
