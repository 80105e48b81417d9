"""Tiled volumes: grid, exact shapes, seam bound, memory-mapped/dask inputs, bounded memory, errors."""
import tracemalloc

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container, tiled, tiling
from napari_microcomp.codecs import decode, get_codec, info
from napari_microcomp.errors import CodecError, InputError, StreamError


@pytest.mark.parametrize("shape,tile,halo", [((7, 65, 130), (4, 32, 64), (1, 3, 5)), ((1, 9, 9), 4, 2),
                                             ((100, 37), (16, 16), (4, 0)), ((5, 8, 8), 100, 3)])
def test_grid_partitions_the_volume(shape, tile, halo):
    tiles = tiling.tile_grid(shape, tile, halo)
    count = np.zeros(shape, dtype=np.int32)
    tile_t = (tile,) * len(shape) if np.isscalar(tile) else tile
    halo_t = (halo,) * len(shape) if np.isscalar(halo) else halo
    for t in tiles:
        count[t.slices("core")] += 1
        for (c0, c1), (o0, o1), s, ts, h in zip(t.core, t.outer, shape, tile_t, halo_t):
            assert c1 - c0 <= ts
            assert o0 == max(0, c0 - h) and o1 == min(s, c1 + h)
    assert (count == 1).all()
    # near-equal pieces: no thin remainder tile
    for d in range(len(shape)):
        sizes = {t.core[d][1] - t.core[d][0] for t in tiles}
        assert max(sizes) - min(sizes) <= 1


def test_lossless_odd_shape_exact_in_memory_and_file(tmp_path):
    a = smooth_image((7, 65, 130), np.uint16)
    data = get_codec("tiled", inner="zstd", tile=[4, 32, 64]).encode(a)
    np.testing.assert_array_equal(decode(data), a)
    h = info(data)
    assert h["layout"] == "tiles" and h["meta"]["tiles"]["n_tiles"] == 2 * 3 * 3
    res = tiled.compress(a, tmp_path / "a.mcz", "zstd", tile=(4, 32, 64))
    assert res["tiles"] == 18 and res["bytes"] == (tmp_path / "a.mcz").stat().st_size
    # the streamed file is an ordinary container: identical to the in-memory stream
    assert (tmp_path / "a.mcz").read_bytes() == data
    np.testing.assert_array_equal(tiled.decompress(tmp_path / "a.mcz"), a)


def test_an_output_larger_than_the_free_disk_space_is_refused_before_writing(tmp_path, monkeypatch):
    """A memory map filled past the free space kills the process with SIGBUS: measured first, refused."""
    import shutil
    from collections import namedtuple

    a = smooth_image((4, 32, 40), np.uint16)
    tiled.compress(a, tmp_path / "a.mcz", "zstd", tile=(4, 32, 32))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    for out in ("b.npy", "b.tif"):
        with pytest.raises(InputError, match=f"{out} needs .* GiB free"):
            tiled.decompress(tmp_path / "a.mcz", tmp_path / out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mcz"]


@pytest.mark.parametrize("dtype", ["int32", "uint64", "float64", "float16"])
def test_streamed_files_of_other_pixel_types_decode_to_that_type(tmp_path, dtype):
    # before: each tile recorded its own int32/float64 type, and the finished file failed to decode
    f = smooth_image((3, 40, 48), np.float32)
    a = ((f - f.min()) / (f.max() - f.min()) * 30000).astype(dtype)
    res = tiled.compress(a, tmp_path / "a.mcz", "zstd", tile=(1, 16, 16), halo=(0, 0, 0))
    assert res["tiles"] == 3 * 3 * 3
    exact = a.astype(np.float32).astype(dtype)   # floats are coded as float32
    for out in (tiled.decompress(tmp_path / "a.mcz"), decode((tmp_path / "a.mcz").read_bytes()),
                tiled.decompress(tmp_path / "a.mcz", out=tmp_path / "b.npy")):
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, exact)
    data = get_codec("tiled", inner="zstd", tile=[1, 16, 16], halo=[0, 0, 0]).encode(a)
    assert (tmp_path / "a.mcz").read_bytes() == data   # the streamed file equals the in-memory stream


def test_streamed_signed_volumes_use_one_offset_for_every_tile(tmp_path):
    f = smooth_image((3, 40, 48), np.float32)
    a = ((f - f.min()) / (f.max() - f.min()) * 60000 - 30000).astype(np.int32)
    a[2, -5:, -5:] = -30500        # the minimum lies in the last tile: the offset must come from all of them
    res = tiled.compress(a, tmp_path / "a.mcz", "zstd", tile=(1, 16, 16), halo=(0, 0, 0))
    assert res["tiles"] == 27
    for out in (tiled.decompress(tmp_path / "a.mcz"), decode((tmp_path / "a.mcz").read_bytes()),
                tiled.decompress(tmp_path / "a.mcz", out=tmp_path / "b.npy")):
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, a)
    tiled.compress(a, tmp_path / "c.mcz", "jpeg2k", quality=7)
    lossy = tiled.decompress(tmp_path / "c.mcz")
    assert lossy.dtype == np.int32 and np.abs(lossy.astype(np.int64) - a).max() < 3000
    wide = a.copy()
    wide[0, 0, 0] = 40000           # the volume spans 70,500 levels: every tile coded as float32, exactly
    tiled.compress(wide, tmp_path / "d.mcz", "zstd", tile=(1, 16, 16), halo=(0, 0, 0))
    assert container.read_header((tmp_path / "d.mcz").read_bytes())[0].meta["int_as_float"] is True
    for out in (tiled.decompress(tmp_path / "d.mcz"), decode((tmp_path / "d.mcz").read_bytes())):
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, wide)
    tiled.compress(wide, tmp_path / "e.mcz", "jpeg2k", quality=7)
    lossy = tiled.decompress(tmp_path / "e.mcz")
    assert lossy.dtype == np.int32 and np.abs(lossy.astype(np.int64) - wide).max() < 3000
    huge = wide.astype(np.int64)
    huge[0, 0, 0] = 2 ** 30         # beyond float32's exact integers: refused before anything is written
    with pytest.raises(InputError, match="2\\*\\*24"):
        tiled.compress(huge, tmp_path / "f.mcz", "zstd", tile=(1, 16, 16))
    assert not (tmp_path / "f.mcz").exists()


def test_halo_and_crop_identity():
    """Each core is exactly the inner codec's reconstruction of the tile WITH its halo."""
    a = smooth_image((6, 70, 90), np.uint16, seed=2)
    inner = get_codec("jpegxl", quality=3)
    codec = get_codec("tiled", inner=inner.get_config(), tile=[3, 40, 40], halo=[0, 6, 6])
    out = decode(codec.encode(a))
    for t in tiling.tile_grid(a.shape, (3, 40, 40), (0, 6, 6)):
        ref = inner.decode(inner.encode(a[t.slices("outer")]))
        np.testing.assert_array_equal(out[t.slices("core")], ref[t.core_in_outer()])


def test_a_halo_larger_than_the_tile_is_refused(tmp_path):
    a = smooth_image((4, 70, 90), np.uint16, seed=2)
    with pytest.raises(CodecError, match="halo .* larger than the tile core"):
        get_codec("tiled", inner="jpegxl", tile=[4, 32, 32], halo=[0, 40, 8]).encode(a)
    with pytest.raises(CodecError, match="larger than the tile core"):
        tiled.compress(a, tmp_path / "a.mcz", "jpegxl", tile=(4, 32, 32), halo=(0, 8, 33))
    assert not list(tmp_path.iterdir())     # refused before anything is written
    ok = get_codec("tiled", inner="jpegxl", tile=[4, 32, 32], halo=[4, 32, 32]).encode(a)   # equal: allowed
    assert decode(ok).shape == a.shape


@pytest.mark.parametrize("name,quality", [("jpegxl", 3), ("jpeg2k", 2)])
def test_seams_within_documented_bound(name, quality):
    a = smooth_image((4, 192, 192), np.uint16, seed=4, bits=12)
    codec = get_codec("tiled", inner=name, quality=quality, tile=[4, 64, 64])
    out = decode(codec.encode(a))
    _, _, tiles = codec.plan(a.shape)
    assert codec.plan(a.shape)[1] == (0, 8, 8)  # default halo for a lossy 2D codec
    ratio = tiling.seam_error_ratio(a, out, tiles)
    assert ratio <= 2.0, ratio
    # and without a halo the seams are measurably worse for JPEG 2000 (its wavelets need context)
    if name == "jpeg2k":
        bare = decode(get_codec("tiled", inner=name, quality=quality, tile=[4, 64, 64], halo=0).encode(a))
        assert tiling.seam_error_ratio(a, bare, tiles) > ratio


def test_memmap_dask_and_tifffile_inputs_and_memmap_outputs(tmp_path):
    import dask.array as da
    import tifffile

    a = smooth_image((9, 50, 70), np.uint16, seed=6)
    mm = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", dtype=a.dtype, shape=a.shape)
    mm[:] = a
    mm.flush()
    del mm
    ro = np.load(tmp_path / "in.npy", mmap_mode="r")
    tifffile.imwrite(tmp_path / "in.tif", a)
    sources = {"npy-memmap": ro, "tifffile-memmap": tifffile.memmap(tmp_path / "in.tif", mode="r"),
               "dask": da.from_array(a, chunks=(3, 25, 35))}
    for label, src in sources.items():
        f = tmp_path / f"{label}.mcz"
        tiled.compress(src, f, "zstd", tile=(4, 32, 32))
        np.testing.assert_array_equal(tiled.decompress(f), a, err_msg=label)
    np.testing.assert_array_equal(ro, a)  # input unchanged, still readable
    # outputs: .npy and .tif paths (memory maps renamed into place) and a caller's np.memmap
    f = tmp_path / "npy-memmap.mcz"
    got = tiled.decompress(f, tmp_path / "o.npy")
    assert isinstance(got, np.memmap) and str(got.filename) == str((tmp_path / "o.npy").resolve())
    np.testing.assert_array_equal(got, a)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), a)
    tiled.decompress(f, tmp_path / "o.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), a)
    out = np.memmap(tmp_path / "o.raw", dtype=a.dtype, mode="w+", shape=a.shape)
    assert tiled.decompress(f, out) is out
    np.testing.assert_array_equal(np.fromfile(tmp_path / "o.raw", dtype=a.dtype).reshape(a.shape), a)
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind
    with pytest.raises(InputError, match="output array"):
        tiled.decompress(f, np.empty((9, 50, 71), np.uint16))


def test_peak_memory_bounded_by_tile(tmp_path):
    """Compressing and decompressing a memory-mapped volume allocates about one tile, not the volume."""
    shape, tile = (64, 256, 256), (8, 64, 64)
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.uint16, shape=shape)
    for z in range(shape[0]):
        mm[z] = smooth_image(shape[1:], np.uint16, seed=z)
    mm.flush()
    vol = np.load(tmp_path / "v.npy", mmap_mode="r")
    vol_bytes, tile_bytes = vol.nbytes, int(np.prod(tile)) * 2
    out = np.lib.format.open_memmap(tmp_path / "o.npy", mode="w+", dtype=np.uint16, shape=shape)
    tracemalloc.start()
    try:
        tiled.compress(vol, tmp_path / "v.mcz", "zstd", tile=tile)
        _, peak_c = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        tiled.decompress(tmp_path / "v.mcz", out)
        _, peak_d = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one tile and its stream, plus the fixed copy buffer of the final assembly
    assert max(peak_c, peak_d) < tiled._COPY_CHUNK + 8 * tile_bytes < vol_bytes / 4, (peak_c, peak_d)
    np.testing.assert_array_equal(out, vol)


def test_release_pages_keeps_data(tmp_path):
    a = smooth_image((6, 40, 40), np.uint16)
    mm = np.lib.format.open_memmap(tmp_path / "r.npy", mode="w+", dtype=a.dtype, shape=a.shape)
    mm[:] = a
    tiled.release_pages(mm, 0, 6)  # flushes, drops pages
    np.testing.assert_array_equal(mm, a)
    mm[2:4, 10:20] = 7
    tiled.release_pages(mm, 2, 4, rows=(10, 20))  # one band of rows in each slice
    a[2:4, 10:20] = 7
    np.testing.assert_array_equal(mm, a)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), a)
    plain = a.copy()
    tiled.release_pages(plain, 0, 6)  # a no-op for ordinary memory
    np.testing.assert_array_equal(plain, a)


def test_large_2d_image_tiled(tmp_path):
    a = smooth_image((300, 200), np.uint8)
    tiled.compress(a, tmp_path / "i.mcz", "zstd", tile=(128, 128))
    np.testing.assert_array_equal(tiled.decompress(tmp_path / "i.mcz"), a)


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "header"])
def test_corrupted_tiled_file_raises_stream_error(tmp_path, damage):
    a = smooth_image((5, 40, 40), np.uint16)
    f = tmp_path / "c.mcz"
    tiled.compress(a, f, "jpegxl", quality=4, tile=(2, 20, 20))
    data = bytearray(f.read_bytes())
    if damage == "flip":
        data[-30] ^= 0x10
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "append":
        data += b"x"
    else:
        data[30] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(StreamError):
        tiled.decompress(f)
    with pytest.raises(StreamError):
        decode(bytes(data))


def test_tile_table_is_validated():
    a = smooth_image((4, 32, 32), np.uint16)
    h, payloads = container.unpack(get_codec("tiled", inner="zstd", tile=[2, 16, 16]).encode(a))
    h.meta["tiles"]["edges"][1] = [0, 20, 16, 32]  # cuts out of order
    with pytest.raises(StreamError, match="tile"):
        decode(container.pack(h, payloads))


def test_config_round_trip_and_errors():
    from napari_microcomp.codecs import codec_from_config

    c = get_codec("tiled", inner="jpegxl", quality=5, tile=[8, 64, 64], halo=[0, 4, 4])
    assert codec_from_config(c.get_config()) == c
    assert c.get_config()["inner"]["quality"] == 5
    with pytest.raises(CodecError):
        get_codec("tiled", inner=c)
    with pytest.raises(CodecError):
        tiling.tile_grid((4, 32, 32), (0, 16, 16))
    with pytest.raises(InputError):
        tiled.compress(np.zeros((2, 3, 40, 40), np.uint16), "/tmp/never.mcz")


def test_open_lazy_and_cli_round_trip(tmp_path, capsys):
    import tifffile
    from napari_microcomp.cli import main

    a = smooth_image((6, 48, 40), np.uint16, seed=8)
    tifffile.imwrite(tmp_path / "plain.tif", a)
    tifffile.imwrite(tmp_path / "zlib.tif", a[:, None], compression="zlib", tile=(16, 16))  # 4D, tiled
    np.save(tmp_path / "a.npy", a)
    assert isinstance(tiled.open_lazy(tmp_path / "plain.tif"), np.memmap)
    assert isinstance(tiled.open_lazy(tmp_path / "a.npy"), np.memmap)
    lazy = tiled.open_lazy(tmp_path / "zlib.tif")
    assert not isinstance(lazy, np.ndarray) and lazy.shape == a.shape  # lazy (zarr via tifffile), singleton dropped
    np.testing.assert_array_equal(lazy[1:3, 5:9, 7:20], a[1:3, 5:9, 7:20])
    for name in ("plain.tif", "zlib.tif", "a.npy"):
        out = tmp_path / f"{name}.mcz"
        assert main(["compress-tiled", str(tmp_path / name), str(out), "-c", "zstd", "--tile", "4", "32", "32"]) == 0
        assert main(["decompress-tiled", str(out), str(tmp_path / f"{name}.back.npy")]) == 0
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.back.npy"), a)
    assert main(["info", str(tmp_path / "a.npy.mcz")]) == 0
    assert "tiling:" in capsys.readouterr().out
    assert main(["compress-tiled", str(tmp_path / "a.npy"), str(tmp_path / "x.bin")]) == 2


def test_open_lazy_refuses_multichannel_tiff(tmp_path):
    import tifffile

    rgb = np.zeros((40, 48, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, compression="zlib", photometric="rgb")
    with pytest.raises(InputError, match="single-channel"):
        tiled.open_lazy(tmp_path / "rgb.tif")


def test_one_tile_size_serves_every_axis(tmp_path, capsys):
    """`--tile 16` on a 2D image meant (16, 16); it was refused as "must be 2 non-negative integers"."""
    from napari_microcomp.cli import main

    assert tiling.as_axes([16], 2, "tile") == (16, 16) and tiling.as_axes(16, 3, "tile") == (16, 16, 16)
    src, out = tmp_path / "a.npy", tmp_path / "a.mcz"
    np.save(src, smooth_image((48, 40), np.uint16, seed=3))
    assert main(["compress-tiled", str(src), str(out), "-c", "zstd", "--tile", "16"]) == 0
    assert "tiles of ≤ [16, 16]" in capsys.readouterr().out
    assert np.array_equal(decode(out.read_bytes()), np.load(src))
    with pytest.raises(CodecError, match="must be 2 non-negative"):
        tiling.as_axes([8, 8, 8], 2, "tile")


@pytest.mark.parametrize("tile,halo", [(float("nan"), 2), (64.5, 2), ("abc", 2), (64, [2, float("inf")]), ([], 2)])
def test_tile_and_halo_must_be_whole_numbers_in_calls_and_streams(tile, halo):
    """NaN was cast to a huge negative size and 64.5 to 64, with only a RuntimeWarning."""
    with pytest.raises(CodecError, match="whole numbers"):
        get_codec("tiled", inner="zstd", tile=tile, halo=halo)
    data = get_codec("tiled", inner="zstd", tile=64, halo=2).encode(smooth_image((70, 90), seed=5))
    h, payloads = container.unpack(data)
    h.codec.update(tile=tile, halo=halo)
    with pytest.raises(StreamError):
        decode(container.pack(h, payloads))
    assert get_codec("tiled", inner="zstd", tile=64.0, halo=[2]).tile == [64]
