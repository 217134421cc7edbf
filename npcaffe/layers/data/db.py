"""Caffe's key-value databases (``caffe::db``): LMDB through the ``lmdb`` package, LevelDB
through ``plyvel``, behind one small interface. Both packages are imported only when a
database is opened, so ``import npcaffe`` works without them.

Contract::

    db = open_db('images_lmdb', 'lmdb')            # mode 'read' (default), 'new' or 'write'
    cur = db.cursor()                              # at the first key (byte order)
    while cur.valid:
        key, value = cur.key, cur.value            # bytes
        cur.next()
    cur.seek_first()
    txn = db.transaction()                         # mode 'new' / 'write'
    txn.put(b'00000000_a.jpg', datum_bytes)
    txn.commit()                                   # puts are buffered until commit
    db.close()

As in Caffe: mode ``'new'`` refuses an existing path (convert_imageset never overwrites), keys
are returned in byte order, LMDB is a folder holding ``data.mdb`` and ``lock.mdb`` (opened
read-only with locking, falling back to no locking where the folder is not writable, as
Caffe's db_lmdb.cpp does), and LevelDB is written with Caffe's options (write buffer 256 MiB,
100 open files, Snappy compression). The LMDB map grows by doubling when a commit fills it.
LMDB and LevelDB both allow one open handle per database and process: handles opened for
reading are shared (counted) per path, so that a train and a test net may read one database and
a net may be rebuilt before the old one is collected.
"""
import logging
import os
import threading

from npcaffe.errors import NotSupportedError
from npcaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

BACKENDS = ('lmdb', 'leveldb')
MODES = ('read', 'new', 'write')
_LMDB_START_MAP = 1 << 26            # 64 MiB, doubled as needed
_LEVELDB_WRITE_BUFFER = 268435456    # Caffe's db_leveldb.cpp
_LEVELDB_MAX_OPEN_FILES = 100


class DatabaseError(OSError):
    """A database that cannot be opened, read or written (the message names its path)."""


def backend_name(value):
    """'lmdb' or 'leveldb' from a name (any case) or a DataParameter.DB enum value."""
    if isinstance(value, int):
        return {caffe_pb2.DataParameter.LMDB: 'lmdb',
                caffe_pb2.DataParameter.LEVELDB: 'leveldb'}[value]
    name = str(value).lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown database backend {value!r}; use lmdb or leveldb")
    return name


def _import(backend):
    package = 'lmdb' if backend == 'lmdb' else 'plyvel'
    try:
        return __import__(package)
    except ImportError:
        raise NotSupportedError(
            f"{'LMDB' if backend == 'lmdb' else 'LevelDB'} databases need the {package} "
            f"package: pip install {package} (or pip install 'fcn-npcaffe[data]')") from None


def _looks_like(path):
    """'lmdb', 'leveldb' or None from the files in the folder ``path``."""
    if os.path.isfile(os.path.join(path, 'data.mdb')):
        return 'lmdb'
    if os.path.isfile(os.path.join(path, 'CURRENT')):
        return 'leveldb'
    return None


def open_db(path, backend, mode='read'):
    """Open the database at ``path`` (see the module contract)."""
    backend = backend_name(backend)
    if mode not in MODES:
        raise ValueError(f"database mode must be one of {MODES}, got {mode!r}")
    path = os.fspath(path)
    if mode == 'new' and os.path.exists(path):
        raise DatabaseError(f"{path} already exists; a new database is never written over an "
                            f"old one (remove it or choose another name)")
    if mode != 'new':
        if not os.path.exists(path):
            raise DatabaseError(f"{path}: no such {backend_name(backend).upper()} database "
                                f"(the path is read relative to the working directory "
                                f"{os.getcwd()})")
        kind = _looks_like(path) if os.path.isdir(path) else None
        if kind and kind != backend:
            want = 'LMDB' if kind == 'lmdb' else 'LEVELDB'
            raise DatabaseError(f"{path} is a {kind.upper()} database but the {backend.upper()} "
                                f"backend was asked for; set backend: {want} in data_param "
                                f"(its default is LEVELDB) or --backend={kind}")
    module = _import(backend)
    if backend == 'lmdb':
        return _LMDB(module, path, mode)
    return _LevelDB(module, path, mode)


_OPEN_LOCK = threading.Lock()
_OPEN = {}        # (backend, real path) -> [handle, open count], handles opened for reading


def _acquire(backend, path, opener):
    """The shared read handle of ``path`` (opened by ``opener()`` the first time)."""
    key = (backend, os.path.realpath(path))
    with _OPEN_LOCK:
        entry = _OPEN.get(key)
        if entry is None:
            entry = _OPEN[key] = [opener(), 0]
        entry[1] += 1
        return entry[0]


def _release(backend, path, handle):
    """Drop one use of a shared read handle; close it after the last."""
    key = (backend, os.path.realpath(path))
    with _OPEN_LOCK:
        entry = _OPEN.get(key)
        if entry is None or entry[0] is not handle:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _OPEN[key]
            handle.close()


class _Transaction:
    """Buffered puts written by one commit (Caffe's db::Transaction)."""

    def __init__(self, write):
        self._write, self._pending = write, []

    def put(self, key, value):
        self._pending.append((key.encode() if isinstance(key, str) else bytes(key),
                              bytes(value)))

    def commit(self):
        if self._pending:
            self._write(self._pending)
        self._pending = []


# ------------------------------------------------------------------------------------------
class _LMDBCursor:
    def __init__(self, env, path):
        self._path = path
        self._txn = env.begin(write=False, buffers=False)
        self._cursor = self._txn.cursor()
        self.valid = self._cursor.first()

    def seek_first(self):
        self.valid = self._cursor.first()

    def next(self):
        self.valid = self._cursor.next()

    @property
    def key(self):
        return self._cursor.key()

    @property
    def value(self):
        return self._cursor.value()

    def close(self):
        self._cursor.close()
        self._txn.abort()


class _LMDB:
    def __init__(self, lmdb, path, mode):
        self._lmdb, self.path, self.mode = lmdb, path, mode
        self._cursors = []
        try:
            if mode == 'read':
                self._env = _acquire('lmdb', path, self._open_read)
            else:
                if mode == 'new':
                    os.mkdir(path, 0o755)
                self._env = lmdb.open(path, map_size=_LMDB_START_MAP, subdir=True,
                                      create=False)
        except (lmdb.Error, OSError) as exc:
            raise DatabaseError(f"{path}: cannot open the LMDB database ({exc})") from None

    def _open_read(self):
        lmdb, path = self._lmdb, self.path
        try:
            return lmdb.open(path, readonly=True, lock=True, subdir=True, max_readers=126,
                             create=False)
        except lmdb.Error as exc:
            if 'ermission' not in str(exc) and 'read-only' not in str(exc):
                raise
            log.info("%s: not writable, opening the LMDB without locking", path)
            return lmdb.open(path, readonly=True, lock=False, subdir=True, create=False)

    def cursor(self):
        cur = _LMDBCursor(self._env, self.path)
        self._cursors.append(cur)
        return cur

    def transaction(self):
        if self.mode == 'read':
            raise DatabaseError(f"{self.path}: opened for reading; open it with mode 'new' or "
                                f"'write' to add records")
        return _Transaction(self._write)

    def _write(self, items):
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key, value)
                return
            except self._lmdb.MapFullError:
                size = self._env.info()['map_size'] * 2
                log.info("%s: growing the LMDB map to %d MiB", self.path, size >> 20)
                self._env.set_mapsize(size)

    def __len__(self):
        return self._env.stat()['entries']

    def close(self):
        for cur in self._cursors:
            cur.close()
        self._cursors = []
        if self._env is not None:
            if self.mode == 'read':
                _release('lmdb', self.path, self._env)
            else:
                self._env.close()
            self._env = None


# ------------------------------------------------------------------------------------------
class _LevelDBCursor:
    def __init__(self, handle):
        self._it = handle.raw_iterator()
        self.seek_first()

    def seek_first(self):
        self._it.seek_to_first()
        self.valid = self._it.valid()

    def next(self):
        self._it.next()
        self.valid = self._it.valid()

    @property
    def key(self):
        return self._it.key()

    @property
    def value(self):
        return self._it.value()

    def close(self):
        self._it.close()


class _LevelDB:
    def __init__(self, plyvel, path, mode):
        self.path, self.mode = path, mode
        self._cursors = []

        def opener():
            return plyvel.DB(path, create_if_missing=mode == 'new', error_if_exists=mode == 'new',
                             write_buffer_size=_LEVELDB_WRITE_BUFFER,
                             max_open_files=_LEVELDB_MAX_OPEN_FILES, compression='snappy')
        try:
            self._db = _acquire('leveldb', path, opener) if mode == 'read' else opener()
        except (plyvel.Error, OSError) as exc:
            raise DatabaseError(f"{path}: cannot open the LevelDB database ({exc})") from None

    def cursor(self):
        cur = _LevelDBCursor(self._db)
        self._cursors.append(cur)
        return cur

    def transaction(self):
        if self.mode == 'read':
            raise DatabaseError(f"{self.path}: opened for reading; open it with mode 'new' or "
                                f"'write' to add records")
        return _Transaction(self._write)

    def _write(self, items):
        with self._db.write_batch() as batch:
            for key, value in items:
                batch.put(key, value)

    def __len__(self):
        return sum(1 for _ in self._db.iterator(include_value=False))

    def close(self):
        if self._db is None:
            return
        for cur in self._cursors:
            cur.close()
        self._cursors = []
        if self.mode == 'read':
            _release('leveldb', self.path, self._db)
        else:
            self._db.close()
        self._db = None
