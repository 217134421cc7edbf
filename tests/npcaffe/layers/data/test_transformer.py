"""Caffe's DataTransformer corners, worked out by hand: crop centring at odd sizes, the mean
file cropped with the image, mirror in every phase, scale after mean, gray/colour forcing of
encoded Datums, and the reader's wrap point."""
import numpy as np
import pytest

import npcaffe
from npcaffe.io import array_to_blobproto
from npcaffe.layers.base import TEST, TRAIN
from npcaffe.layers.data.image import datum_pixels, encode
from npcaffe.layers.data.transformer import DataTransformer
from npcaffe.proto import caffe_pb2
from tests.npcaffe.layers.data.util import raw_datums, write_db


def transformer(phase=TEST, seed=0, **fields):
    param = caffe_pb2.TransformationParameter()
    for name, value in fields.items():
        if name == 'mean_value':
            param.mean_value.extend(value)
        else:
            setattr(param, name, value)
    return DataTransformer(param, phase, np.random.default_rng(seed), "layer 'test'")


def ramp(c, h, w):
    return np.arange(c * h * w, dtype=np.uint8).reshape(c, h, w)


@pytest.mark.parametrize('h, w, crop, offsets', [
    (7, 8, 4, (1, 2)),      # (7-4)//2 = 1, (8-4)//2 = 2
    (5, 5, 2, (1, 1)),      # 1.5 rounds down
    (9, 6, 3, (3, 1)),
    (4, 4, 4, (0, 0)),
])
def test_test_crop_is_centred_with_integer_division(h, w, crop, offsets):
    x = ramp(2, h, w)
    out = transformer(crop_size=crop).transform(x)
    dh, dw = offsets
    np.testing.assert_array_equal(out, x[:, dh:dh + crop, dw:dw + crop].astype(np.float32))


def test_mean_file_is_cropped_at_the_image_offsets(tmp_path):
    x = ramp(1, 7, 8)
    mean = np.random.default_rng(3).uniform(0, 50, (1, 1, 7, 8)).astype(np.float32)
    path = tmp_path / 'mean.binaryproto'
    path.write_bytes(array_to_blobproto(mean).SerializeToString())
    out = transformer(crop_size=4, mean_file=str(path), scale=0.5).transform(x)
    expected = (x[:, 1:5, 2:6].astype(np.float32) - mean[0, :, 1:5, 2:6]) * np.float32(0.5)
    np.testing.assert_array_equal(out, expected)


def test_mean_file_of_another_size_is_an_error(tmp_path):
    path = tmp_path / 'mean.binaryproto'
    path.write_bytes(array_to_blobproto(np.zeros((1, 1, 4, 4))).SerializeToString())
    with pytest.raises(npcaffe.NetError, match="mean file is 1x4x4 but item is 1x7x8"):
        transformer(crop_size=4, mean_file=str(path)).transform(ramp(1, 7, 8))


def test_mean_values_one_or_per_channel_then_scale():
    x = ramp(3, 2, 2)
    one = transformer(mean_value=[10], scale=2.0).transform(x)
    np.testing.assert_array_equal(one, (x.astype(np.float32) - 10) * 2)
    per = transformer(mean_value=[1, 2, 3]).transform(x)
    np.testing.assert_array_equal(per, x - np.array([1, 2, 3], np.float32)[:, None, None])
    with pytest.raises(npcaffe.NetError, match="2 mean_value given for item with 3 channels"):
        transformer(mean_value=[1, 2]).transform(x)


def test_mean_file_and_mean_value_together_are_refused(tmp_path):
    with pytest.raises(npcaffe.NetError, match="mean_file and mean_value"):
        transformer(mean_file=str(tmp_path / 'm'), mean_value=[1])


@pytest.mark.parametrize('phase', [TRAIN, TEST])
def test_mirror_is_random_in_every_phase(phase):
    x = ramp(1, 3, 5)
    t = transformer(phase=phase, mirror=True, seed=5)
    outs = [t.transform(x) for _ in range(40)]
    flipped = [bool(np.array_equal(o, x[:, :, ::-1])) for o in outs]
    plain = [bool(np.array_equal(o, x)) for o in outs]
    assert all(f or p for f, p in zip(flipped, plain))
    assert any(flipped) and any(plain)


def test_train_crop_offsets_are_random_within_the_image():
    x = ramp(1, 6, 6)
    t = transformer(phase=TRAIN, crop_size=3, seed=1)
    seen = set()
    for _ in range(200):
        out = t.transform(x)
        h, w = divmod(int(out[0, 0, 0]), 6)
        np.testing.assert_array_equal(out, x[:, h:h + 3, w:w + 3])
        seen.add((h, w))
    assert seen == {(h, w) for h in range(4) for w in range(4)}


def test_crop_larger_than_the_item_is_an_error():
    with pytest.raises(npcaffe.NetError, match="crop_size 9 is larger than the 7x8 item"):
        transformer(crop_size=9).infer_shape((1, 7, 8))


def _encoded(img):
    datum = caffe_pb2.Datum(data=encode(img, 'png'), label=1)
    datum.encoded = True
    return datum


def test_encoded_datums_decode_as_stored_or_forced():
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (4, 5, 1), dtype=np.uint8)
    assert datum_pixels(_encoded(color)).shape == (3, 4, 5)
    np.testing.assert_array_equal(datum_pixels(_encoded(color)), color.transpose(2, 0, 1))
    assert datum_pixels(_encoded(gray)).shape == (1, 4, 5)
    forced = datum_pixels(_encoded(gray), force_color=True)
    np.testing.assert_array_equal(forced, np.repeat(gray.transpose(2, 0, 1), 3, axis=0))
    # PNG gray from colour: libpng's 15-bit rgb_to_gray (B, G, R planes in the Datum)
    b, g, r = (color[..., i].astype(np.int64) for i in range(3))
    expected = (9797 * r + 19234 * g + 3737 * b + 16384) >> 15
    np.testing.assert_array_equal(datum_pixels(_encoded(color), force_gray=True)[0], expected)


def test_both_forcings_are_refused():
    with pytest.raises(npcaffe.NetError, match="both force_color and force_gray"):
        transformer(force_color=True, force_gray=True)


def _data_net(tmp_path, source, batch, extra='', backend='LMDB'):
    path = tmp_path / 'net.prototxt'
    path.write_text(f'layer {{ name: "d" type: "Data" top: "data" top: "label" {extra} '
                    f'data_param {{ source: "{source}" batch_size: {batch} '
                    f'backend: {backend} }} }}')
    return npcaffe.Net(str(path), TEST)


def test_reader_wraps_to_the_first_record_inside_a_batch(tmp_path):
    arrays = [np.full((1, 2, 2), i, np.uint8) for i in range(7)]
    write_db(tmp_path / 'db', raw_datums(arrays, range(7)))
    net = _data_net(tmp_path, tmp_path / 'db', 3)
    seen = []
    for _ in range(4):
        net.forward()
        seen.append(net.blobs['label'].data.astype(int).tolist())
        np.testing.assert_array_equal(net.blobs['data'].data[:, 0, 0, 0], seen[-1])
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 0, 1], [2, 3, 4]]


def test_one_top_gives_no_labels_and_prefetch_zero_reads_in_forward(tmp_path):
    write_db(tmp_path / 'db', raw_datums([np.zeros((1, 2, 2))] * 2, [4, 5]))
    path = tmp_path / 'net.prototxt'
    path.write_text(f'layer {{ name: "d" type: "Data" top: "data" data_param {{ source: '
                    f'"{tmp_path / "db"}" batch_size: 2 backend: LMDB prefetch: 0 }} }}')
    net = npcaffe.Net(str(path), TEST)
    net.forward()
    assert list(net.blobs) == ['data'] and net.blobs['data'].shape == (2, 1, 2, 2)


def test_items_of_another_size_within_a_batch_are_named(tmp_path):
    write_db(tmp_path / 'db', raw_datums([np.zeros((1, 2, 2)), np.zeros((1, 3, 3))], [0, 1]))
    net = _data_net(tmp_path, tmp_path / 'db', 2)
    with pytest.raises(npcaffe.NetError, match="record '00000001_item1' of .* gives a 1x3x3"):
        net.forward()


def test_rand_skip_starts_at_a_seeded_random_record(tmp_path):
    write_db(tmp_path / 'db', raw_datums([np.zeros((1, 1, 1))] * 10, range(10)))
    starts = set()
    for seed in range(6):
        npcaffe.set_random_seed(seed)
        path = tmp_path / 'net.prototxt'
        path.write_text(f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param '
                        f'{{ source: "{tmp_path / "db"}" batch_size: 1 backend: LMDB '
                        f'rand_skip: 10 }} }}')
        net = npcaffe.Net(str(path), TEST)
        net.forward()
        starts.add(int(net.blobs['label'].data[0]))
    assert len(starts) > 1 and starts <= set(range(10))


def test_deprecated_data_param_scale_is_honoured(tmp_path):
    write_db(tmp_path / 'db', raw_datums([np.full((1, 1, 1), 8)], [0]))
    path = tmp_path / 'net.prototxt'
    path.write_text(f'layer {{ name: "d" type: "Data" top: "data" data_param {{ source: '
                    f'"{tmp_path / "db"}" batch_size: 1 backend: LMDB scale: 0.5 }} }}')
    net = npcaffe.Net(str(path), TEST)
    net.forward()
    assert net.blobs['data'].data.item() == 4.0
