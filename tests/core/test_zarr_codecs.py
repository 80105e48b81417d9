"""Zarr arrays written and read chunk by chunk with project codecs (classical and learned)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import smooth_image

try:  # zarr 2.15 cannot even be imported next to numcodecs >= 0.16: say so instead of failing obscurely
    import zarr
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"zarr is not importable here ({exc}); install zarr>=2.18 (numcodecs<0.16) or zarr>=3",
                allow_module_level=True)
import numcodecs

from napari_microcomp.codecs import get_codec
from napari_microcomp.errors import CodecError, InputError
from napari_microcomp.zarr_codecs import MicrocompZarrCodec, compress_to_zarr, open_zarr


@pytest.fixture(scope="module")
def stack():
    return smooth_image((3, 70, 90), np.uint16, seed=11, bits=12)


def test_classical_round_trip_chunk_by_chunk(stack, tmp_path):
    out = tmp_path / "s.zarr"
    info = compress_to_zarr(stack, out, "jpegls", quality=6, chunks=(1, 32, 48))
    z = zarr.open(str(out), mode="r")
    back = z[:]
    codec = get_codec("jpegls", quality=6)
    assert back.shape == stack.shape and back.dtype == stack.dtype
    # each chunk is one stream: the error bound of the codec holds everywhere, edge chunks included
    first = stack[:1, :32, :48]
    near = codec._resolve_native(float(first.max()) - float(first.min()))
    assert np.abs(back.astype(int) - stack).max() <= max(near, 1) + 1
    np.testing.assert_array_equal(z[1, 40:70, 50:90], back[1, 40:70, 50:90])  # partial reads
    assert info["chunks"] == [1, 32, 48] and info["stored_bytes"] > 0
    assert info["compression_ratio"] == pytest.approx(stack.nbytes / info["stored_bytes"])
    meta = json.loads((out / ".zarray").read_text())
    assert meta["compressor"] == {"id": "microcomp", "codec": codec.get_config(), "dtype": "uint16",
                                  "chunks": [1, 32, 48]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # temp dir renamed away


def test_lossless_from_dask_matches_exactly(stack, tmp_path):
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(stack, chunks=(2, 35, 45))
    compress_to_zarr(lazy, tmp_path / "d.zarr", "zstd")
    np.testing.assert_array_equal(open_zarr(tmp_path / "d.zarr")[:], stack)
    with pytest.raises(InputError, match="exists"):
        compress_to_zarr(stack, tmp_path / "d.zarr", "zstd")
    compress_to_zarr(stack[:1], tmp_path / "d.zarr", "zstd", overwrite=True)
    assert open_zarr(tmp_path / "d.zarr").shape == (1, 70, 90)


def test_learned_codec_round_trip(tmp_path):
    pytest.importorskip("compressai")
    from napari_microcomp.models import registry
    from napari_microcomp import weights as wt

    arch = "bmshj2018-factorized"
    weights = wt.export_weights(registry.build_model(arch, 1, N=8, M=8), arch, tmp_path / "tiny.pt", 1,
                                 {"N": 8, "M": 8}, {"note": "random init, test only"})
    img = smooth_image((80, 96), np.uint16, seed=3)
    codec = get_codec(arch, quality=1, weights=str(weights))
    compress_to_zarr(img, tmp_path / "l.zarr", codec, chunks=(64, 64))
    back = open_zarr(tmp_path / "l.zarr")[:]
    expect = np.zeros((128, 128), np.uint16)
    expect[:80, :96] = img
    for y in (0, 64):  # every chunk equals the codec's own reconstruction of that (padded) chunk
        for x in (0, 64):
            tile = expect[y:y + 64, x:x + 64]
            ref = codec.decode(codec.encode(tile))
            np.testing.assert_array_equal(back[y:y + 64, x:x + 64], ref[:80 - y if y else 64, :96 - x if x else 64])


def test_signed_16_bit_stacks_are_stored(tmp_path):
    a = (smooth_image((2, 40, 50), np.uint16, seed=5, bits=12).astype(np.int32) - 3000).astype(np.int16)
    compress_to_zarr(a, tmp_path / "s.zarr", "zstd", chunks=(1, 32, 32))     # edge chunks padded with 0
    back = open_zarr(tmp_path / "s.zarr")[:]
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, a)
    compress_to_zarr(a, tmp_path / "j.zarr", "jpeg2k", quality=7, chunks=(1, 32, 32))
    assert np.abs(open_zarr(tmp_path / "j.zarr")[:].astype(np.int32) - a).max() < 100
    with pytest.raises(InputError, match="int16"):
        compress_to_zarr(a.astype(np.int32), tmp_path / "w.zarr", "zstd")


def test_numcodecs_registry_and_bad_inputs():
    cfg = get_codec("jpegxl", quality=3).get_config()
    codec = numcodecs.get_codec({"id": "microcomp", "codec": cfg})
    assert isinstance(codec, MicrocompZarrCodec) and codec.get_config() == {"id": "microcomp", "codec": cfg}
    with pytest.raises(CodecError, match="dtype"):
        codec.encode(np.zeros((16, 16), np.float64))
    with pytest.raises(CodecError, match="2D or 3D"):
        codec.encode(np.zeros((2, 2, 16, 16), np.uint16))


def test_plain_zarr_reads_through_the_entry_point(stack, tmp_path):
    """What `pip install napari-microcomp` gives: plain zarr finds the codec via numcodecs' entry point."""
    out = tmp_path / "e.zarr"
    compress_to_zarr(stack, out, "zstd")
    dist = tmp_path / "site" / "napari_microcomp_ep-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: napari-microcomp-ep\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[numcodecs.codecs]\nmicrocomp = napari_microcomp.zarr_codecs:MicrocompZarrCodec\n")
    code = textwrap.dedent(f"""
        import sys, zarr
        assert "napari_microcomp" not in sys.modules
        a = zarr.open({str(out)!r}, mode="r")[:]
        print(a.shape, int(a.astype("int64").sum()))
    """)
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "site"), os.path.abspath(src)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["(3,", "70,", "90)", str(int(stack.astype(np.int64).sum()))]


@pytest.mark.parametrize("stored, message", [
    (np.full((32, 32), 5, np.uint16), r"shape \[32, 32\], not the array's chunks \[64, 64\]"),
    (np.full((2, 64, 32), 5, np.uint16), r"shape \[2, 64, 32\]"),          # same bytes, another shape
    (np.full((64, 64), -5, np.int16), "decodes to int16 but the array holds uint16"),   # same size, other type
    (np.full((64, 64), 0.5, np.float32), "decodes to float32"),
])
def test_a_chunk_stream_of_another_type_or_shape_is_refused_not_reinterpreted(tmp_path, stored, message):
    """Every chunk is a valid stream on its own, so a swapped or crafted one passes its checksums; zarr would
    view its bytes as the array's dtype and chunk shape (-5 read as 65531)."""
    from napari_microcomp.api import compress_array
    from napari_microcomp.errors import StreamError

    a = smooth_image((128, 128), seed=4)
    out = tmp_path / "a.zarr"
    compress_to_zarr(a, out, "zstd", chunks=(64, 64))
    (out / "0.0").write_bytes(compress_array(stored, "zstd").data)
    with pytest.raises(StreamError, match=message):
        open_zarr(out)[:]
    (out / "0.0").write_bytes(compress_array(np.full((64, 64), 7, np.uint16), "zstd").data)
    assert (open_zarr(out)[:64, :64] == 7).all() and np.array_equal(open_zarr(out)[64:, 64:], a[64:, 64:])
