"""Hot pixels: a few extreme values are coded exactly beside the image instead of stretching its range."""
import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container, outliers
from napari_microcomp.api import compress_array
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import StreamError


def _hot(shape=(128, 160), n=5, value=65535, dtype=np.uint16, seed=3):
    clean = smooth_image(shape, dtype, bits=12)
    hot = clean.copy()
    r = np.random.default_rng(seed)
    idx = r.choice(clean.size, n, replace=False)
    hot.reshape(-1)[idx] = value
    return clean, hot, np.sort(idx)


def _psnr_off(rec, ref, idx):
    keep = np.ones(ref.size, bool)
    keep[idx] = False
    err = rec.reshape(-1)[keep].astype(np.float64) - ref.reshape(-1)[keep]
    span = float(ref.reshape(-1)[keep].max()) - float(ref.reshape(-1)[keep].min())
    return 10 * np.log10(span ** 2 / np.mean(err ** 2))


@pytest.mark.parametrize("codec", ["jpeg2k", "jpegxl", "lerc", "mbt2018-mean-vbr"])
def test_hot_pixels_no_longer_cost_the_rest_of_the_image(codec):
    clean, hot, idx = _hot()
    base = _psnr_off(compress_array(clean, codec, quality=3).reconstruction, clean, idx)
    res = compress_array(hot, codec, quality=3)
    rec = decode(res.data)
    assert container.read_header(res.data)[0].meta["outliers"] == 5
    np.testing.assert_array_equal(rec.reshape(-1)[idx], 65535)          # stored exactly
    assert _psnr_off(rec, hot, idx) > base - 0.5                         # the rest as good as without them
    np.testing.assert_array_equal(rec, res.reconstruction)
    assert any("5 pixel(s) lie far outside" in n for n in res.notes)
    assert not any("far outside" in n for n in compress_array(clean, codec, quality=3).notes)


def test_stacks_floats_and_a_flat_image_with_hot_pixels():
    clean, hot, idx = _hot((3, 48, 64))
    rec = decode(get_codec("jpegxl", quality=4).encode(hot))
    np.testing.assert_array_equal(rec.reshape(-1)[idx], 65535)
    assert _psnr_off(rec, hot, idx) > _psnr_off(decode(get_codec("jpegxl", quality=4).encode(clean)), clean, idx) - 0.5
    f = hot.astype(np.float32) / 7
    recf = decode(get_codec("jpeg2k", quality=4).encode(f))
    np.testing.assert_array_equal(recf.reshape(-1)[idx], np.float32(65535 / 7))
    flat = np.full((64, 64), 100, np.uint16)
    flat[5, 7] = flat[40, 2] = 60000
    for name in ("jpeg2k", "mbt2018-mean-vbr"):
        np.testing.assert_array_equal(decode(get_codec(name, quality=2).encode(flat)), flat)


def test_ordinary_images_and_lossless_codecs_are_left_alone():
    clean, hot, _ = _hot()
    assert "outliers" not in container.read_header(get_codec("jpeg2k", quality=3).encode(clean))[0].meta
    assert "outliers" not in container.read_header(get_codec("zstd").encode(hot))[0].meta
    many = clean.copy()
    many.reshape(-1)[:: 50] = 65535   # 2 % of the pixels: content, not outliers
    assert "outliers" not in container.read_header(get_codec("jpeg2k", quality=3).encode(many))[0].meta


def test_the_bounds_from_a_sample_keep_the_count_exact(monkeypatch):
    monkeypatch.setattr(outliers, "SAMPLE", 1000)
    clean, hot, idx = _hot((256, 256), n=20)
    filled, exc = outliers.split(hot)
    np.testing.assert_array_equal(exc[0], idx)
    assert filled.max() <= clean.max() and not np.shares_memory(filled, hot)


def _repack(data, **meta):
    header, payloads = container.unpack(data)
    header.meta.update(meta)
    header.meta = {k: v for k, v in header.meta.items() if v is not None}
    return header, payloads


def test_a_decoder_that_ignores_or_misreads_the_outliers_refuses():
    _, hot, _ = _hot()
    data = get_codec("jpeg2k", quality=3).encode(hot)
    header, payloads = _repack(data, outliers=None)       # what a decoder that knows nothing of them sees
    with pytest.raises(StreamError, match="checksum"):
        decode(container.pack(header, payloads[:-1]))
    header, payloads = _repack(data, outliers=4)
    with pytest.raises(StreamError, match="outlier payload"):
        decode(container.pack(header, payloads))
    header, payloads = _repack(data)
    with pytest.raises(StreamError):
        decode(container.pack(header, payloads[:-1] + [b"\x78\x9c" + bytes(20)]))


@pytest.mark.parametrize("count, deltas, why", [
    (2, [5, 0], "not increasing"), (2, [5, 10 ** 9], "outside"), (3, [1, 2], "does not match"),
    (2, [2 ** 63, 2 ** 63 + 3], "outside")])
def test_unpack_checks_the_positions(count, deltas, why):
    import struct
    import zlib

    n = len(deltas)
    blob = zlib.compress(struct.pack("<I", count) + np.array(deltas, "<u8").tobytes() + bytes(2 * n))
    with pytest.raises(StreamError, match=why):
        outliers.unpack(blob, count, (64, 64), "uint16")


def test_benchmark_rows_say_so():
    from napari_microcomp.benchmark.rows import run_row

    _, hot, _ = _hot()
    row = run_row("hot", hot, {"id": "jpeg2k", "quality": 3}, with_ms_ssim=False)
    assert row["status"] == "ok" and "5 pixel(s) lie far outside" in row["note"]
