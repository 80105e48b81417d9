"""Zarr format 3 / OME-Zarr 0.5 stores (io_zarr3): what the reference writer writes reads back exactly; codec
pipelines (transpose, endianness, compressors, crc32c, shards) decode; a damaged or crafted store is refused."""
import gzip
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from napari_microcomp.errors import InputError
from napari_microcomp.io import read_image
from napari_microcomp.io_zarr import read_zarr_all
from napari_microcomp.io_zarr3 import crc32c

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RNG = np.random.default_rng(3)


def _fixture(tmp_path) -> Path:
    """An OME-Zarr 0.5 image written by ome-zarr 0.18 / zarr-python 3.1.6 (2 channels × 3 z × 24 × 32, uint16,
    inner chunks 8 × 16 in one shard per channel, crc32c on the shard index); units and scale added by hand."""
    return Path(shutil.copytree(FIXTURES / "ome05_sharded.zarr", tmp_path / "ome05.zarr"))


def test_reads_what_zarr_python_3_wrote(tmp_path, capsys):
    from napari_microcomp.cli import main
    from napari_microcomp.codecs import decode

    want = np.load(FIXTURES / "ome05_sharded.expected.npy")
    p = _fixture(tmp_path)
    arr, meta = read_image(p, channel=1)
    np.testing.assert_array_equal(arr, want[1])
    assert meta["pixel_size"] == [2.0, 0.5, 0.5] and meta["channel_names"] == ["DAPI", "GFP"]
    arr, axes, _ = read_zarr_all(p)
    assert axes == "czyx"
    np.testing.assert_array_equal(arr, want)
    assert main(["compress", str(p), str(tmp_path / "o.mcz"), "-c", "zstd"]) == 0
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), want[0])


def test_crc32c_is_castagnoli():
    assert crc32c(b"123456789") == 0xE3069283   # the standard check value


def _v3_array(path: Path, a: np.ndarray, chunks, codecs, encode, fill=0, key=None) -> Path:
    """A format-3 array written by hand: each (edge-padded) chunk of ``a`` through ``encode``."""
    path.mkdir()
    key = key or {"name": "default"}
    (path / "zarr.json").write_text(json.dumps({
        "zarr_format": 3, "node_type": "array", "shape": list(a.shape), "data_type": a.dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": key, "fill_value": fill, "codecs": codecs}))
    sep = key.get("configuration", {}).get("separator", "/" if key["name"] == "default" else ".")
    for idx in np.ndindex(*[-(-n // c) for n, c in zip(a.shape, chunks)]):
        block = np.full(chunks, fill, a.dtype)
        src = a[tuple(slice(i * c, i * c + c) for i, c in zip(idx, chunks))]
        block[tuple(slice(0, s) for s in src.shape)] = src
        f = path / sep.join((["c"] if key["name"] == "default" else []) + [str(i) for i in idx])
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(encode(block))
    return path


def _crc(b: bytes) -> bytes:
    return b + struct.pack("<I", crc32c(b))


def test_transpose_big_endian_gzip_crc32c_and_v2_keys(tmp_path):
    a = RNG.integers(-3000, 3000, (3, 40, 50)).astype(np.int16)
    codecs = [{"name": "transpose", "configuration": {"order": [2, 0, 1]}},
              {"name": "bytes", "configuration": {"endian": "big"}}, {"name": "gzip", "configuration": {"level": 5}},
              {"name": "crc32c"}]
    p = _v3_array(tmp_path / "t.zarr", a, (2, 16, 24), codecs,
                  lambda b: _crc(gzip.compress(b.transpose(2, 0, 1).astype(">i2").tobytes())),
                  key={"name": "v2", "configuration": {"separator": "."}})
    np.testing.assert_array_equal(read_image(p)[0], a)


def test_absent_chunks_are_the_fill_value_and_said(tmp_path):
    a = RNG.random((40, 50)).astype(np.float32)
    p = _v3_array(tmp_path / "f.zarr", a, (16, 16), [{"name": "bytes"}], lambda b: b.tobytes(), fill="NaN")
    (p / "c" / "0" / "1").unlink()
    arr, meta = read_image(p)
    assert np.isnan(arr[:16, 16:32]).all() and np.array_equal(arr[16:], a[16:])
    assert any("1 of 12 chunk(s) absent" in n for n in meta["notes"])


def _shard_file(p: Path) -> Path:
    return p / "s0" / "c" / "0" / "0" / "0" / "0"


def _rewrite_index(f: Path, edit) -> None:
    """Replace a shard's (end) index — 3 × 3 × 2 inner chunks here — by ``edit(index)``, with a valid crc32c."""
    data = f.read_bytes()
    n = 16 * 18
    index = np.frombuffer(data[-n - 4:-4], "<u8").reshape(18, 2).copy()
    f.write_bytes(data[:-n - 4] + _crc(edit(index).astype("<u8").tobytes()))


@pytest.mark.parametrize("edit, match", [
    (lambda i: (i.__setitem__((2, 0), 10 ** 9), i)[1], "points outside the shard"),
    (lambda i: (i.__setitem__((0, 1), 2 ** 40), i)[1], "points outside the shard"),
    (lambda i: (i.__setitem__((1, 0), 2 ** 64 - 20), i)[1], "points outside the shard"),
    (lambda i: (i.__setitem__((0, 1), 3), i)[1], "damaged chunk|decodes to|holds"),   # a cut inner chunk
])
def test_crafted_shard_index_is_refused(tmp_path, edit, match):
    p = _fixture(tmp_path)
    _rewrite_index(_shard_file(p), edit)
    with pytest.raises(InputError, match=match):
        read_image(p)


def test_damaged_shard_index_fails_its_checksum(tmp_path):
    p = _fixture(tmp_path)
    f = _shard_file(p)
    data = bytearray(f.read_bytes())
    data[-30] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match="crc32c"):
        read_image(p)
    f.write_bytes(bytes(data[-50:]))   # shorter than its index
    with pytest.raises(InputError, match="shorter than its index|crc32c"):
        read_image(p)


@pytest.mark.parametrize("key, value, match", [
    ("codecs", [{"name": "bytes"}, {"name": "lzw"}], "codec 'lzw' is not supported"),
    ("codecs", [{"name": "zstd"}], "exactly one 'bytes'"),
    ("codecs", [{"name": "transpose", "configuration": {"order": [0, 0]}}, {"name": "bytes"}], "permutation"),
    ("codecs", [{"name": "bytes"}, {"name": "zstd"}, {"name": "gzip"}], "more than one compressor"),
    ("codecs", [{"name": "sharding_indexed", "configuration": {"chunk_shape": [4, 4], "codecs": [
        {"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 2], "codecs": [{"name": "bytes"}]}}]}}],
     "sharding inside a shard"),
    ("codecs", [{"name": "sharding_indexed", "configuration": {"chunk_shape": [5, 5], "codecs": [
        {"name": "bytes"}]}}], "do not tile"),
    ("data_type", "complex64", "data type"),
    ("data_type", "r16", "data type"),
    ("chunk_grid", {"name": "rectilinear", "configuration": {}}, "chunk grid"),
    ("chunk_key_encoding", {"name": "hash"}, "chunk_key_encoding"),
    ("fill_value", "blue", "fill_value"),
    ("storage_transformers", [{"name": "x"}], "storage transformers"),
    ("shape", [16, -1], "invalid shape"),
])
def test_crafted_array_metadata_is_refused(tmp_path, key, value, match):
    a = RNG.integers(0, 100, (16, 16)).astype(np.uint16)
    p = _v3_array(tmp_path / "m.zarr", a, (8, 8), [{"name": "bytes"}], lambda b: b.tobytes())
    meta = json.loads((p / "zarr.json").read_text())
    meta[key] = value
    (p / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=match):
        read_image(p)


def test_a_chunk_that_decodes_to_another_size_is_refused(tmp_path):
    a = RNG.integers(0, 100, (16, 16)).astype(np.uint16)
    p = _v3_array(tmp_path / "z.zarr", a, (8, 8), [{"name": "bytes"}, {"name": "gzip"}],
                  lambda b: gzip.compress(b.tobytes()))
    (p / "c" / "1" / "0").write_bytes(gzip.compress(bytes(10 ** 6)))   # a "bomb": stops at the declared size
    with pytest.raises(InputError, match="decodes to|damaged"):
        read_image(p)


@pytest.mark.parametrize("shape, shard, inner, match", [
    ([512, 512], [512, 512], [1, 1], "262144 inner chunks per shard"),   # an index of 4 MB, checksummed in Python
    ([4096, 4096], [64, 64], [1, 1], "split into 16777216 chunks"),      # 4,096 shards × 4,096 inner chunks
])
def test_shards_cannot_hide_more_chunks_than_a_read_visits(tmp_path, shape, shard, inner, match):
    p = tmp_path / "s.zarr"
    p.mkdir()
    (p / "zarr.json").write_text(json.dumps({
        "zarr_format": 3, "node_type": "array", "shape": shape, "data_type": "uint8", "fill_value": 0,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shard}},
        "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": inner, "codecs": [
            {"name": "bytes"}]}}]}))
    with pytest.raises(InputError, match=match):
        read_image(p)
