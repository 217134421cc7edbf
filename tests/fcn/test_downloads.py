"""fcn/downloads.py (``fcn get-data``, ``python scripts/get_data.py``) without a network:
--dry-run, and fake archives through file:// URLs exercising download, resume, checksums,
extraction and the seg11valid computation."""
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fcn import downloads as get_data
from tests.conftest import ROOT, require_shared


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _tar(path, members, mode='w'):
    """A tar at ``path`` with {name: bytes} regular files (plus any TarInfo given as value
    None for a symlink to /etc/passwd)."""
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


VOC11 = 'TrainVal/VOCdevkit/VOC2011'
SBD = 'benchmark_RELEASE/dataset'


@pytest.fixture
def mirror(tmp_path):
    """A folder of fake archives: VOC2011 (val 2011_a, 2011_b, 2011_c), SBD (train 2011_b),
    and a plain 'deploy' file; returns (folder, resources pointing at their names)."""
    src = tmp_path / 'mirror'
    src.mkdir()
    voc = {f'{VOC11}/ImageSets/Segmentation/val.txt': b'2011_a\n2011_b\n2011_c\n',
           f'{VOC11}/ImageSets/Segmentation/train.txt': b'2011_t\n'}
    for i in ('2011_a', '2011_b', '2011_c', '2011_t'):
        voc[f'{VOC11}/JPEGImages/{i}.jpg'] = b'jpeg ' + i.encode()
        voc[f'{VOC11}/SegmentationClass/{i}.png'] = b'png ' + i.encode()
    voc[f'{VOC11}/Annotations/2011_a.xml'] = b'<xml/>'
    voc[f'{VOC11}/../../evil.txt'] = b'outside'
    voc[f'{VOC11}/JPEGImages/link.jpg'] = None
    _tar(src / 'voc2011.tar', voc)
    _tar(src / 'sbd.tgz', {f'{SBD}/train.txt': b'2011_b\n2008_x\n',
                           f'{SBD}/val.txt': b'2008_y\n',
                           f'{SBD}/img/2008_x.jpg': b'x', f'{SBD}/cls/2008_x.mat': b'm',
                           'benchmark_RELEASE/README': b'not wanted'}, mode='w:gz')
    (src / 'deploy.prototxt').write_text('name: "VGG"\n')
    resources = (
        get_data.Resource('voc2011', 'http://example.invalid/voc2011.tar',
                          _md5(src / 'voc2011.tar'), 1000, 'pascal/VOC2011', strip=VOC11,
                          subset='seg-val', note='fake VOC2011'),
        get_data.Resource('sbd', 'http://example.invalid/sbd.tgz', _md5(src / 'sbd.tgz'),
                          1000, 'sbdd/dataset', strip=SBD, note='fake SBD'),
        get_data.Resource('deploy', 'http://example.invalid/deploy.prototxt', None, 10,
                          'vgg16', note='fake deploy, trust on first use'),
    )
    return src, resources


def test_seg11valid_is_voc2011_val_minus_sbd_train():
    assert get_data.seg11valid(['a', 'b', 'c', 'd'], ['d', 'x', 'b']) == ['a', 'c']


def test_seg11valid_reproduces_the_papers_list():
    """From lists built around the reference seg11valid.txt: VOC2011 val = the 736 ids plus
    375 others interleaved in sorted order (1111 in all), SBD train = those 375 plus ids
    outside val; the computation must give back exactly the reference list, in order."""
    reference = require_shared('reference', 'fcn-berkeleyvision', 'seg11valid.txt')
    paper = get_data.read_list(reference)
    assert len(paper) == 736
    in_sbd_train = [f'{2008 + k % 4}_9{k:05d}' for k in range(375)]   # not VOC ids
    assert not set(in_sbd_train) & set(paper)
    voc2011_val = sorted(paper + in_sbd_train)
    assert len(voc2011_val) == 1111
    sbd_train = in_sbd_train + [f'2012_9{k:05d}' for k in range(8498 - 375)]
    assert get_data.seg11valid(voc2011_val, sbd_train) == paper


def test_dry_run_lists_everything_and_fetches_nothing(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'get_data.py'),
                             '--dry-run', '--data', str(tmp_path / 'data')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for resource in get_data.RESOURCES:
        assert resource.url in result.stdout
        if resource.md5:
            assert resource.md5 in result.stdout
    assert '6cd6e144f989b92b3379bac3b3de84fd' in result.stdout      # VOC2012's published MD5
    assert 'seg11valid' in result.stdout
    assert not (tmp_path / 'data').exists()


def test_help_runs():
    result = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'get_data.py'), '--help'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and '--dry-run' in result.stdout


def test_download_verify_extract_and_seg11valid(tmp_path, mirror, capsys):
    src, resources = mirror
    data = tmp_path / 'data'
    argv = ['--data', str(data), '--mirror', src.as_uri()]
    assert get_data.main(argv, resources=resources) == 0
    voc = data / 'pascal' / 'VOC2011'
    assert sorted(p.name for p in (voc / 'JPEGImages').iterdir()) == \
        ['2011_a.jpg', '2011_b.jpg', '2011_c.jpg']                  # seg val only, no link
    assert (voc / 'SegmentationClass' / '2011_c.png').read_bytes() == b'png 2011_c'
    assert not (voc / 'Annotations').exists()
    assert not (tmp_path / 'evil.txt').exists() and not (data / 'evil.txt').exists()
    assert (data / 'sbdd' / 'dataset' / 'cls' / '2008_x.mat').exists()
    assert not (data / 'sbdd' / 'README').exists()
    seg11 = voc / 'ImageSets' / 'Segmentation' / 'seg11valid.txt'
    assert seg11.read_text() == '2011_a\n2011_c\n'
    assert (data / 'vgg16' / 'deploy.prototxt').read_text() == 'name: "VGG"\n'
    record = json.loads((data / 'checksums.json').read_text())
    assert set(record) == {'voc2011.tar', 'sbd.tgz', 'deploy.prototxt'}
    assert record['deploy.prototxt']['sha256'] == hashlib.sha256(
        (src / 'deploy.prototxt').read_bytes()).hexdigest()
    out = capsys.readouterr().out
    assert 'matches the published checksum' in out and 'trusted on first use' in out
    # a second run reuses the files, verifies them again and extracts nothing
    assert get_data.main(argv, resources=resources) == 0
    out = capsys.readouterr().out
    assert 'already downloaded' in out and 'already unpacked' in out
    assert 'matches' in out


def test_recorded_checksum_catches_a_changed_file(tmp_path, mirror, capsys):
    src, resources = mirror
    data = tmp_path / 'data'
    argv = ['--data', str(data), '--mirror', src.as_uri(), '--only', 'deploy']
    assert get_data.main(argv, resources=resources) == 0
    (data / 'vgg16' / 'deploy.prototxt').unlink()
    (src / 'deploy.prototxt').write_text('name: "tampered"\n')
    assert get_data.main(argv, resources=resources) == 1
    err = capsys.readouterr().err
    assert 'SHA-256' in err and 'recorded' in err
    assert (data / 'vgg16' / 'deploy.prototxt.bad').exists()


def test_published_checksum_mismatch_is_refused(tmp_path, mirror, capsys):
    src, resources = mirror
    wrong = [get_data.Resource(**{**r.__dict__, 'md5': '0' * 32}) if r.name == 'sbd' else r
             for r in resources]
    data = tmp_path / 'data'
    assert get_data.main(['--data', str(data), '--mirror', src.as_uri(), '--only', 'sbd'],
                         resources=wrong) == 1
    err = capsys.readouterr().err
    assert '0' * 32 in err and 'MD5' in err
    assert (data / 'downloads' / 'sbd.tgz.bad').exists()
    assert not (data / 'sbdd').exists()


def test_real_resource_from_a_wrong_mirror_fails_its_published_md5(tmp_path):
    """The command line, as a user runs it, with a fake file named like the VOC2012 tar."""
    src = tmp_path / 'mirror'
    _tar(src.mkdir() or src / 'VOCtrainval_11-May-2012.tar', {'VOCdevkit/VOC2012/x': b'x'})
    result = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'get_data.py'),
                             '--data', str(tmp_path / 'data'), '--mirror', src.as_uri(),
                             '--only', 'voc2012'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert '6cd6e144f989b92b3379bac3b3de84fd' in result.stderr


def test_download_resumes_a_partial_file(tmp_path, mirror):
    src, resources = mirror
    data = tmp_path / 'data'
    archive = (src / 'sbd.tgz').read_bytes()
    part = data / 'downloads' / 'sbd.tgz.part'
    part.parent.mkdir(parents=True)
    part.write_bytes(archive[:len(archive) // 2])
    assert get_data.main(['--data', str(data), '--mirror', src.as_uri(), '--only', 'sbd'],
                         resources=resources) == 0
    assert (data / 'downloads' / 'sbd.tgz').read_bytes() == archive
    assert not part.exists()


def test_unreachable_source_is_one_clear_error(tmp_path, mirror, capsys):
    _, resources = mirror
    missing = (tmp_path / 'nowhere').as_uri()
    assert get_data.main(['--data', str(tmp_path / 'data'), '--mirror', missing,
                          '--only', 'deploy'], resources=resources) == 1
    assert 'cannot download' in capsys.readouterr().err


def test_zip_with_one_top_folder_and_published_sha256(tmp_path, capsys):
    """An opt-in zip resource (strip '*': its one top folder, links skipped) and a plain file
    with a published SHA-256: fetched through the mirror only with --only; a wrong SHA-256 is
    refused and the file kept as .bad."""
    import zipfile
    src = tmp_path / 'mirror'
    src.mkdir()
    with zipfile.ZipFile(src / 'Set.zip', 'w') as z:
        z.writestr('SomeSet/Images/a.jpg', b'a')
        z.writestr('SomeSet/../evil.txt', b'outside')
    (src / 'list.txt').write_bytes(b'a\n')
    good = hashlib.sha256(b'a\n').hexdigest()
    resources = (
        get_data.Resource('set', 'http://example.invalid/Set.zip', None, 10, 'set', strip='*',
                          default=False),
        get_data.Resource('list', 'http://example.invalid/list.txt', None, 2, 'set',
                          sha256=good, default=False),
    )
    data = tmp_path / 'data'
    assert get_data.main(['--data', str(data), '--mirror', src.as_uri()], resources) == 0
    assert not (data / 'set').exists()                 # opt-in: nothing by default
    assert get_data.main(['--data', str(data), '--mirror', src.as_uri(), '--only', 'set',
                          'list'], resources) == 0
    assert (data / 'set' / 'Images' / 'a.jpg').read_bytes() == b'a'
    assert not (tmp_path / 'evil.txt').exists() and not (data / 'evil.txt').exists()
    assert 'matches the published checksum' in capsys.readouterr().out
    bad = (get_data.Resource('list', 'http://example.invalid/list.txt', None, 2, 'other',
                             sha256='0' * 64),)
    assert get_data.main(['--data', str(data), '--mirror', src.as_uri()], bad) == 1
    assert (data / 'other' / 'list.txt.bad').exists()
