"""Download the data of the reference FCN recipe, check it, and lay it out for ``python -m nets``.

``python scripts/get_data.py [--data data] [--only NAME ...] [--dry-run]``

What it fetches (``--dry-run`` lists it, with sizes and where each file goes):

=============  ===============================================  ====================================
name           file                                             becomes
=============  ===============================================  ====================================
voc2012        VOCtrainval_11-May-2012.tar (2.0 GB)             data/pascal/VOC2012/
voc2011        VOCtrainval_25-May-2011.tar (1.7 GB)             data/pascal/VOC2011/: the
                                                                segmentation lists and the images
                                                                and labels of its seg val
sbd            benchmark.tgz (1.4 GB)                           data/sbdd/dataset/ (img, cls, inst,
                                                                train.txt, val.txt)
vgg16          VGG_ILSVRC_16_layers.caffemodel (553 MB)         data/vgg16/
vgg16-deploy   VGG_ILSVRC_16_layers_deploy.prototxt             data/vgg16/
=============  ===============================================  ====================================

Named with ``--only`` (not fetched by default): ``siftflow`` (SiftFlowDataset.zip ->
data/sift-flow/), ``siftflow-trainval`` and ``siftflow-test`` (the reference's split lists,
SHA-256 of the reference commit), ``nyud`` (the reference's prepared nyud.tar.gz -> data/nyud/)
and ``nyud-gupta`` (Gupta et al.'s data.tgz). PASCAL-Context and VOC2010 have no address in the
reference: fetch them from the PASCAL-Context site by hand.

and then writes ``seg11valid.txt`` -- the paper's validation set, VOC2011 segmentation val minus
the SBD train images (736 of 1111) -- into ``data/pascal/VOC2011/ImageSets/Segmentation`` (and
into VOC2012's, when that tree is there: VOC2012 holds the same images).

Checksums: the published MD5s of the VOC archives, of benchmark.tgz and of the VGG16 caffemodel
are built in, and a file that does not match is refused (the download is kept as ``.bad`` for
inspection). The deploy prototxt has no published checksum: its SHA-256 is recorded in
``data/checksums.json`` on first download (trust on first use) and verified on every later run.
SHA-256 and MD5 of every file are recorded there.

Downloads go to ``data/downloads/NAME.part`` and resume where they stopped when the script is run
again (HTTP range requests; a server that ignores them is read past the part already held).
Extraction is done once (a ``.extracted-NAME`` stamp) and only regular files below the archive's
expected folder are written. ``--mirror URL`` fetches every file as ``URL/<file name>`` instead
(for a local copy: ``--mirror file:///srv/datasets``). Python standard library only.
"""
import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger('get_data')

CHUNK = 1 << 20
USER_AGENT = 'fcn-toolkit-get-data/1.0'


class DataError(Exception):
    """A download, checksum or archive that cannot be used (the message says which)."""


@dataclass(frozen=True)
class Resource:
    """One file to fetch: ``name`` (for --only), ``url``, the published ``md5`` (None: trust
    on first use), an approximate ``size`` in bytes (for --dry-run), and how to unpack it:
    ``strip`` is the archive folder whose contents go to ``target`` (relative to the data
    folder); ``subset`` None extracts every regular file below it, ``'seg-val'`` only
    ImageSets/Segmentation and the JPEGImages and SegmentationClass files of the ids in
    ImageSets/Segmentation/val.txt. A resource without ``strip`` is a plain file stored in
    ``target``. ``strip='*'`` is the archive's one top-level folder, whatever its name (tar or
    zip). ``sha256``: a published SHA-256 (checked like the MD5); ``default`` False: fetched
    only when named with --only (the datasets beyond the VOC recipe)."""
    name: str
    url: str
    md5: str | None
    size: int
    target: str
    strip: str | None = None
    subset: str | None = None
    note: str = ''
    sha256: str | None = None
    default: bool = True

    @property
    def filename(self):
        return PurePosixPath(urllib.parse.urlparse(self.url).path).name

    @property
    def is_archive(self):
        return self.strip is not None


# ------------------------------------------------------------------------------------------
# the 'seg-val' subset (VOC2011): segmentation lists, and the images and labels of seg val
def _is_segmentation_list(rel):
    return rel.parts[:2] == ('ImageSets', 'Segmentation')


def _seg_val_images(seg_val):
    """keep() for JPEGImages/<id>.jpg and SegmentationClass/<id>.png of the ids in
    ``seg_val``."""
    def keep(rel):
        parts = rel.parts
        return (len(parts) == 2 and parts[0] in ('JPEGImages', 'SegmentationClass')
                and PurePosixPath(parts[1]).stem in seg_val)
    return keep


#: the reference repository at the commit whose files are pinned here (its split lists)
_REFERENCE_RAW = ('https://raw.githubusercontent.com/shelhamer/fcn.berkeleyvision.org/'
                  '1305c7378a9f0ab44b2c936f4d60e4687e3d8743')

RESOURCES = (
    Resource('voc2012', 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/'
             'VOCtrainval_11-May-2012.tar', '6cd6e144f989b92b3379bac3b3de84fd',
             2_000_000_000, 'pascal/VOC2012', strip='VOCdevkit/VOC2012',
             note='PASCAL VOC 2012 train/val'),
    Resource('voc2011', 'http://host.robots.ox.ac.uk/pascal/VOC/voc2011/'
             'VOCtrainval_25-May-2011.tar', '6c3384ef61512963050cb5d687e5bf1e',
             1_700_000_000, 'pascal/VOC2011', strip='TrainVal/VOCdevkit/VOC2011',
             subset='seg-val',
             note='PASCAL VOC 2011: segmentation lists + seg val images and labels'),
    Resource('sbd', 'http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/'
             'semantic_contours/benchmark.tgz', '82b4d87ceb2ed10f6038a1cba92111cb',
             1_400_000_000, 'sbdd/dataset', strip='benchmark_RELEASE/dataset',
             note='SBD (Hariharan et al.): 11,355 images, train 8,498 / val 2,857'),
    Resource('vgg16', 'http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/'
             'VGG_ILSVRC_16_layers.caffemodel', '441315b0ff6932dbfde97731be7ca852',
             553_000_000, 'vgg16', note='VGG16 ILSVRC weights (V1 caffemodel)'),
    Resource('vgg16-deploy', 'https://gist.githubusercontent.com/ksimonyan/'
             '211839e770f7b538e2d8/raw/0067c9b32f60362c74f4c445a080beed06b07eb3/'
             'VGG_ILSVRC_16_layers_deploy.prototxt', None, 6_000, 'vgg16',
             note='VGG16 deploy prototxt (no published checksum: recorded on first use)'),
    # the datasets of the other reference models: fetched only when named with --only
    Resource('siftflow', 'http://www.cs.unc.edu/~jtighe/Papers/ECCV10/siftflow/'
             'SiftFlowDataset.zip', None, 200_000_000, 'sift-flow', strip='*', default=False,
             note='SIFT Flow (Liu et al.): 2,688 256x256 images, semantic + geometric labels '
                  '(no published checksum: recorded on first use)'),
    Resource('siftflow-trainval', f'{_REFERENCE_RAW}/data/sift-flow/trainval.txt', None, 41_642,
             'sift-flow', sha256='4321de2b164556875661a66c64e6b5ebe1493a6e3dfa51d93700e3d17dbedfe7',
             default=False, note='SIFT Flow trainval split of the reference (2,486 ids)'),
    Resource('siftflow-test', f'{_REFERENCE_RAW}/data/sift-flow/test.txt', None, 3_355,
             'sift-flow', sha256='d9d024d06b1ed2139b0e1bdbc78ede9897c3389cd588cd5c37268a931c1d36ae',
             default=False, note='SIFT Flow test split of the reference (200 ids)'),
    Resource('nyud', 'http://dl.caffe.berkeleyvision.org/nyud.tar.gz', None, 1_000_000_000,
             'nyud', strip='*', default=False,
             note='NYUDv2 prepared by the reference (images, depth, HHA, 40-class labels; no '
                  'published checksum: recorded on first use)'),
    Resource('nyud-gupta', 'http://people.eecs.berkeley.edu/~sgupta/cvpr13/data.tgz', None,
             1_000_000_000, 'nyud-gupta', strip='*', default=False,
             note='the NYUDv2 data of Gupta et al. CVPR 2013 (for reproducing the paper)'),
)


# ------------------------------------------------------------------------------------------
# checksums
def file_digests(path):
    """(md5 hex, sha256 hex) of the file at ``path``, in one pass."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return md5.hexdigest(), sha256.hexdigest()
            md5.update(block)
            sha256.update(block)


class ChecksumRecord:
    """``data/checksums.json``: {file name: {'md5': ..., 'sha256': ..., 'url': ...}}."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            self.entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.entries = {}
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot read the checksum record ({exc}); fix or "
                            f"delete it") from None

    def get(self, filename):
        return self.entries.get(filename)

    def put(self, filename, md5, sha256, url):
        self.entries[filename] = {'md5': md5, 'sha256': sha256, 'url': url}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + '.tmp')
        tmp.write_text(json.dumps(self.entries, indent=2, sort_keys=True) + '\n')
        os.replace(tmp, self.path)


def verify(resource, path, record):
    """Check ``path`` against the resource's published SHA-256 or MD5, else against the SHA-256
    recorded on first download (recording it when there is none). Raises DataError on a
    mismatch."""
    md5, sha256 = file_digests(path)
    if resource.sha256 is not None:
        if sha256 != resource.sha256:
            raise DataError(f"{path}: SHA-256 {sha256} differs from the published "
                            f"{resource.sha256} ({resource.url}); the file is corrupt or not "
                            f"the expected one")
        how = f"SHA-256 {sha256} matches the published checksum"
    elif resource.md5 is not None:
        if md5 != resource.md5:
            raise DataError(f"{path}: MD5 {md5} differs from the published {resource.md5} "
                            f"({resource.url}); the file is corrupt or not the expected one")
        how = f"MD5 {md5} matches the published checksum"
    else:
        known = record.get(resource.filename)
        if known is None:
            how = (f"SHA-256 {sha256} recorded in {record.path} (no published checksum: "
                   f"trusted on first use, verified from now on)")
        elif known['sha256'] != sha256:
            raise DataError(f"{path}: SHA-256 {sha256} differs from {known['sha256']} recorded "
                            f"in {record.path} when it was first downloaded; delete that entry "
                            f"only if the new file is known to be good")
        else:
            how = f"SHA-256 {sha256} matches {record.path}"
    record.put(resource.filename, md5, sha256, resource.url)
    return how


# ------------------------------------------------------------------------------------------
# downloading
def progress_line(done, total, seconds, width=30):
    """The progress bar of a download: ``[#####.....]  42%  226 of 537 MiB  3.1 MiB/s``
    (without a known total: the MiB and the rate)."""
    rate = done / max(seconds, 1e-6)
    if total:
        filled = min(width, int(width * done / total))
        return (f"[{'#' * filled}{'.' * (width - filled)}] {100 * done / total:3.0f}%  "
                f"{done / 2**20:.0f} of {total / 2**20:.0f} MiB  {rate / 2**20:.1f} MiB/s")
    return f"{done / 2**20:.0f} MiB  {rate / 2**20:.1f} MiB/s"


def _progress(done, total, start):
    if not sys.stderr.isatty():
        return
    sys.stderr.write(f"\r  {progress_line(done, total, time.monotonic() - start)}")
    sys.stderr.flush()


def download(url, dest, timeout=60, expected_size=None):
    """Fetch ``url`` into ``dest`` through ``dest.part``, resuming a part left by an earlier
    run: a Range request, and where the server ignores it (status 200, or a file:// URL) the
    bytes already held are read past. ``expected_size`` (bytes) scales the progress bar when
    the server sends no length. Returns ``dest``."""
    dest = Path(dest)
    part = dest.with_name(dest.name + '.part')
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={'User-Agent': USER_AGENT})
    if have:
        request.add_header('Range', f'bytes={have}-')
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:         # the part is already complete
            os.replace(part, dest)
            return dest
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: cannot download ({getattr(exc, 'reason', exc)})") from None
    with response:
        status = getattr(response, 'status', None) or response.getcode()
        length = response.headers.get('Content-Length')
        total = int(length) if length and length.isdigit() else None
        if have and status != 206:           # range ignored: skip what we already have
            log.info("%s: the server sent the whole file; skipping the %d bytes held", url,
                     have)
            skip = have
            while skip:
                block = response.read(min(CHUNK, skip))
                if not block:
                    raise DataError(f"{url}: the file is shorter than the {have} bytes "
                                    f"already downloaded into {part}; delete {part}")
                skip -= len(block)
            total = total - have if total is not None else None
        if have:
            print(f"  resuming at {have / 2**20:.1f} MiB", flush=True)
        start, done = time.monotonic(), have
        with open(part, 'ab') as f:
            while True:
                try:
                    block = response.read(CHUNK)
                except OSError as exc:
                    raise DataError(f"{url}: download interrupted ({exc}); run the script "
                                    f"again to resume from {part}") from None
                if not block:
                    break
                f.write(block)
                done += len(block)
                _progress(done, total + have if total is not None else expected_size, start)
        if sys.stderr.isatty():
            sys.stderr.write('\n')
        if total is not None and done - have < total:
            raise DataError(f"{url}: the connection closed after {done} bytes; run the script "
                            f"again to resume from {part}")
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------------------------------
# unpacking
def _safe_relative(name, strip):
    """The member ``name`` relative to the archive folder ``strip``, or None when it lies
    outside it or would escape the target (absolute, ``..``)."""
    path = PurePosixPath(name)
    if path.is_absolute() or '..' in path.parts:
        return None
    try:
        rel = path.relative_to(strip)
    except ValueError:
        return None
    return rel if rel.parts else None


def _archive_root(names, archive):
    """The one top-level folder of the member ``names`` (DataError when there are several)."""
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts
            and not PurePosixPath(n).is_absolute()}
    if len(tops) != 1:
        raise DataError(f"{archive}: expected one top-level folder in the archive, found "
                        f"{', '.join(sorted(tops)[:5]) or 'none'}")
    return tops.pop()


def _extract_zip(archive, strip, target, keep):
    import zipfile
    count = 0
    try:
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            if strip == '*':
                strip = _archive_root([i.filename for i in infos], archive)
            for info in infos:
                rel = _safe_relative(info.filename, strip)
                mode = (info.external_attr >> 16) & 0o170000
                if rel is None or info.is_dir() or mode == 0o120000:   # links are skipped
                    continue
                if keep is not None and not keep(rel):
                    continue
                out = Path(target).joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + '.tmp')
                with z.open(info) as source, open(tmp, 'wb') as f:
                    shutil.copyfileobj(source, f, CHUNK)
                os.replace(tmp, out)
                count += 1
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({exc})") from None
    return count, strip


def extract(archive, strip, target, keep=None):
    """Extract the regular files below ``strip`` in the tar or zip ``archive`` into ``target``
    (directory structure below ``strip`` kept; links, devices and anything outside refused or
    skipped; ``strip='*'``: the archive's one top-level folder); ``keep(rel)`` chooses members
    (None: all). Returns the number of files written."""
    import zipfile
    target = Path(target)
    if zipfile.is_zipfile(archive):
        count, strip = _extract_zip(archive, strip, target, keep)
        if not count:
            raise DataError(f"{archive}: no files below {strip}/ in the archive; is it the "
                            f"expected one?")
        return count
    count = 0
    if strip == '*':
        try:
            with tarfile.open(archive) as tar:
                strip = _archive_root(tar.getnames(), archive)
        except (tarfile.TarError, EOFError) as exc:
            raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                rel = _safe_relative(member.name, strip)
                if rel is None or not member.isfile():
                    continue
                if keep is not None and not keep(rel):
                    continue
                out = target.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                tmp = out.with_name(out.name + '.tmp')
                with source, open(tmp, 'wb') as f:
                    shutil.copyfileobj(source, f, CHUNK)
                os.replace(tmp, out)
                count += 1
    except (tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    if not count:
        raise DataError(f"{archive}: no files below {strip}/ in the archive; is it the "
                        f"expected one?")
    return count


def read_list(path):
    """The ids of a split list (first word per non-blank line), in order."""
    return [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]


def seg11valid(voc2011_val, sbd_train):
    """The paper's validation ids: VOC2011 segmentation val (``voc2011_val``, in its order)
    without the ids of SBD train (``sbd_train``)."""
    train = set(sbd_train)
    return [i for i in voc2011_val if i not in train]


def _stamp(resource, data_dir):
    return data_dir / resource.target / f'.extracted-{resource.name}'


def unpack(resource, path, data_dir):
    """Extract (or place) a verified download; a stamp makes a second run skip it."""
    target = data_dir / resource.target
    stamp = _stamp(resource, data_dir)
    if stamp.exists():
        print(f"  {target} is already unpacked")
        return
    if resource.subset == 'seg-val':      # two passes: the lists, then val's files
        count = extract(path, resource.strip, target, _is_segmentation_list)
        val_list = target / 'ImageSets' / 'Segmentation' / 'val.txt'
        if not val_list.exists():
            raise DataError(f"{path}: no ImageSets/Segmentation/val.txt in the archive")
        count += extract(path, resource.strip, target, _seg_val_images(set(read_list(val_list))))
    else:
        count = extract(path, resource.strip, target)
    stamp.write_text(f"{resource.filename}\n")
    print(f"  unpacked {count} files into {target}")


def write_seg11valid(data_dir):
    """Write seg11valid.txt when the VOC2011 val list and SBD train list are there; returns
    the number of ids (None when an input is missing)."""
    val = data_dir / 'pascal' / 'VOC2011' / 'ImageSets' / 'Segmentation' / 'val.txt'
    train = data_dir / 'sbdd' / 'dataset' / 'train.txt'
    if not (val.exists() and train.exists()):
        missing = ', '.join(str(p) for p in (val, train) if not p.exists())
        print(f"seg11valid.txt not written: {missing} missing")
        return None
    ids = seg11valid(read_list(val), read_list(train))
    text = ''.join(i + '\n' for i in ids)
    written = []
    for year in ('VOC2011', 'VOC2012'):
        folder = data_dir / 'pascal' / year / 'ImageSets' / 'Segmentation'
        if folder.is_dir():
            (folder / 'seg11valid.txt').write_text(text)
            written.append(str(folder / 'seg11valid.txt'))
    print(f"seg11valid: {len(ids)} images (VOC2011 seg val {len(read_list(val))} minus SBD train "
          f"{len(read_list(train))}; the paper's list has 736) -> {', '.join(written)}")
    return len(ids)


# ------------------------------------------------------------------------------------------
def _size(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB" if n >= 2**20 \
        else f"{n / 2**10:.0f} KiB"


def fetch(resource, data_dir, record, mirror=None):
    """Download (or reuse), verify and unpack one resource."""
    url = f"{mirror.rstrip('/')}/{resource.filename}" if mirror else resource.url
    if resource.is_archive:
        path = data_dir / 'downloads' / resource.filename
    else:
        path = data_dir / resource.target / resource.filename
    print(f"{resource.name}: {resource.note}")
    if resource.is_archive and _stamp(resource, data_dir).exists() and not path.exists():
        print(f"  {data_dir / resource.target} is already unpacked (archive removed)")
        return
    print(f"  {obtain(resource, url, path, record)}")
    if resource.is_archive:
        unpack(resource, path, data_dir)


def obtain(resource, url, path, record, check=None):
    """Download ``url`` into ``path`` (resuming a ``.part``; a file already there is reused),
    run ``check(path)`` (raises DataError; e.g. a size check) and ``verify``. A file that
    fails is moved aside to ``<path>.bad`` and the DataError raised; returns verify's
    sentence. The one download path of get-data and of ``fcn models``."""
    path = Path(path)
    if path.exists():
        print(f"  {path} is already downloaded")
    else:
        print(f"  fetching {url} -> {path}", flush=True)
        download(url, path, expected_size=resource.size or None)
    try:
        if check is not None:
            check(path)
        return verify(resource, path, record)
    except DataError:
        bad = path.with_name(path.name + '.bad')
        os.replace(path, bad)
        log.error("moved the file that failed its check to %s", bad)
        raise


def build_parser(resources=RESOURCES):
    names = [r.name for r in resources]
    parser = argparse.ArgumentParser(
        prog='fcn get-data',
        description='Download PASCAL VOC 2012 and 2011, SBD and the VGG16 ILSVRC model (about '
        '5.7 GB), verify their checksums, unpack them into the layout python -m nets expects, '
        'and write seg11valid.txt (VOC2011 seg val minus SBD train).',
        epilog="examples:\n"
               "  python scripts/get_data.py --dry-run\n"
               "  python scripts/get_data.py --data data\n"
               "  python scripts/get_data.py --only voc2011 sbd        # seg11valid + SBD only\n"
               "  python scripts/get_data.py --mirror file:///srv/datasets\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', type=Path, default=Path('data'),
                        help='folder to download and unpack into (default: data)')
    parser.add_argument('--only', nargs='+', choices=names, metavar='NAME',
                        help=f"fetch only these ({', '.join(names)}); default: all")
    parser.add_argument('--mirror', metavar='URL',
                        help='fetch every file as URL/<file name> (e.g. file:///srv/datasets)')
    parser.add_argument('--dry-run', action='store_true',
                        help='list what would be fetched and where it would go; fetch nothing')
    parser.add_argument('--remove-archives', action='store_true',
                        help='delete each archive once it is verified and unpacked')
    parser.add_argument('-v', '--verbose', action='store_true', help='log more detail')
    return parser


def main(argv=None, resources=RESOURCES):
    """Run the command line; returns the exit status (0 done, 1 a failure, 2 bad usage)."""
    args = build_parser(resources).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(levelname)s: %(message)s')
    chosen = [r for r in resources if (r.name in args.only if args.only else r.default)]
    data_dir = args.data
    if args.dry_run:
        def show(r):
            url = f"{args.mirror.rstrip('/')}/{r.filename}" if args.mirror else r.url
            check = (f"sha256 {r.sha256}" if r.sha256 else f"md5 {r.md5}" if r.md5
                     else 'sha256 recorded on first download')
            where = (f"{data_dir / 'downloads' / r.filename} -> {data_dir / r.target}/"
                     if r.is_archive else str(data_dir / r.target / r.filename))
            print(f"{r.name:<13} {_size(r.size):>9}  {url}\n{'':<13} {'':>9}  {check}; {where}")
        for r in chosen:
            show(r)
        total = sum(r.size for r in chosen)
        print(f"total about {_size(total)}; then seg11valid.txt (VOC2011 seg val minus SBD "
              f"train) in {data_dir / 'pascal' / 'VOC2011' / 'ImageSets' / 'Segmentation'}")
        optional = [r for r in resources if not r.default and r not in chosen]
        if optional:
            print("also available with --only NAME (not fetched by default):")
            for r in optional:
                show(r)
        return 0
    record = ChecksumRecord(data_dir / 'checksums.json')
    try:
        for resource in chosen:
            fetch(resource, data_dir, record, args.mirror)
            if args.remove_archives and resource.is_archive:
                (data_dir / 'downloads' / resource.filename).unlink()
        write_seg11valid(data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run again to resume", file=sys.stderr)
        return 130
    print(f"done: data in {data_dir}, checksums in {record.path}")
    return 0
