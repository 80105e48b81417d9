"""Reading OME-Zarr / zarr stores (io_zarr): what a store holds comes back exactly, a hostile store is refused."""
import json
import os
import zlib
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from napari_microcomp.errors import InputError
from napari_microcomp.io import image_files, read_image

RNG = np.random.default_rng(7)
AXES = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"}, {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"}]


def ome_zarr(path: Path, a: np.ndarray, axes=AXES, scale=(1, 1, 2.0, 250.0, 250.0), chunks=None, **kw) -> Path:
    """A minimal NGFF 0.4 image: level 0 = ``a``, a half-size level 1, omero channel labels."""
    g = zarr.open_group(str(path), mode="w")
    g.create_dataset("0", data=a, chunks=chunks or a.shape, **kw)
    g.create_dataset("1", data=a[..., ::2, ::2], **kw)
    g.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]},
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": list(scale[:-2]) + [
            2 * scale[-2], 2 * scale[-1]]}]}]}]
    if "c" in [x["name"] for x in axes]:
        g.attrs["omero"] = {"channels": [{"label": f"ch{i}"} for i in range(a.shape[1])]}
    return path


def test_ome_zarr_level0_channel_timepoint_and_pixel_size(tmp_path):
    a = RNG.integers(0, 4000, (2, 3, 4, 40, 50)).astype(np.uint16)
    p = ome_zarr(tmp_path / "img.ome.zarr", a, chunks=(1, 1, 2, 16, 16))
    arr, meta = read_image(p)
    np.testing.assert_array_equal(arr, a[0, 0])
    assert meta["pixel_size"] == [2.0, 0.25, 0.25]   # nanometre scales converted to µm
    assert meta["channel_names"] == ["ch0", "ch1", "ch2"]
    assert any("3 channels" in n for n in meta["notes"]) and any("2 time points" in n for n in meta["notes"])
    arr, meta = read_image(p, channel=-1, timepoint=1)
    np.testing.assert_array_equal(arr, a[1, 2])
    assert (meta["channel"], meta["timepoint"]) == (2, 1)
    with pytest.raises(InputError, match="--channel 3 is out of range"):
        read_image(p, channel=3)


@pytest.mark.parametrize("comp", [None, numcodecs.Blosc("zstd", 3, numcodecs.Blosc.SHUFFLE), numcodecs.Zstd(),
                                  numcodecs.LZ4(), numcodecs.Zlib(), numcodecs.GZip(), numcodecs.BZ2(),
                                  numcodecs.LZMA()], ids=lambda c: c.codec_id if c else "raw")
@pytest.mark.parametrize("order,sep", [("C", "."), ("F", "/")])
def test_plain_array_every_compressor_order_and_separator(tmp_path, comp, order, sep):
    a = RNG.standard_normal((37, 53)).astype(">f4")   # big-endian, edge chunks partly outside the image
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=a.shape, chunks=(16, 20), dtype=a.dtype,
                        compressor=comp, order=order, dimension_separator=sep)
    z[:] = a
    arr, meta = read_image(tmp_path / "a.zarr")
    np.testing.assert_array_equal(arr, a)
    assert arr.dtype == np.float32 and meta["pixel_size"] == [None, None, None]


def test_absent_chunks_are_the_fill_value_and_said(tmp_path):
    z = zarr.open_array(str(tmp_path / "s.zarr"), mode="w", shape=(32, 32), chunks=(16, 16), dtype="u2",
                        fill_value=7)
    z[:16, :16] = 1
    arr, meta = read_image(tmp_path / "s.zarr")
    assert (arr[:16, :16] == 1).all() and (arr[16:] == 7).all()
    assert any("3 of 4 chunk(s) absent" in n for n in meta["notes"])


def test_bioformats2raw_scenes(tmp_path):
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w").attrs["bioformats2raw.layout"] = 3
    imgs = [RNG.integers(0, 255, (1, 1, 1, 24, 24)).astype(np.uint8) for _ in range(2)]
    for i, a in enumerate(imgs):
        ome_zarr(root / str(i), a)
    arr, meta = read_image(root, scene=1)
    np.testing.assert_array_equal(arr, imgs[1][0, 0, 0])
    assert meta["scene"] == 1
    assert any("2 scenes" in n for n in read_image(root)[1]["notes"])
    with pytest.raises(InputError, match="--scene 2 is out of range"):
        read_image(root, scene=2)


def test_folders_hold_zarr_stores_as_images(tmp_path):
    (tmp_path / "sub").mkdir()
    ome_zarr(tmp_path / "sub" / "b.zarr", RNG.integers(0, 9, (1, 1, 1, 16, 16)).astype(np.uint8))
    np.save(tmp_path / "a.npy", np.zeros((16, 16), np.uint8))
    assert image_files([tmp_path]) == [tmp_path / "a.npy", tmp_path / "sub" / "b.zarr"]


def _plain(tmp_path, **kw) -> Path:
    z = zarr.open_array(str(tmp_path / "h.zarr"), mode="w", shape=(32, 32), chunks=(16, 16), dtype="u2", **kw)
    z[:] = RNG.integers(0, 100, (32, 32))
    return tmp_path / "h.zarr"


def _edit(p: Path, **changes) -> None:
    meta = json.loads((p / ".zarray").read_text())
    meta.update(changes)
    (p / ".zarray").write_text(json.dumps(meta))


@pytest.mark.parametrize("changes,match", [
    ({"shape": [10 ** 6, 10 ** 6]}, "above the decode budget"),
    ({"chunks": [10 ** 6, 10 ** 6]}, "one chunk.*above the decode budget"),
    ({"shape": [4096, 4096], "chunks": [1, 1]}, "more than 1000000 are not read"),
    ({"dtype": "|O"}, "unsupported"), ({"dtype": "<c8"}, "unsupported pixel type"),
    ({"filters": [{"id": "delta", "dtype": "<u2"}]}, "filters"),
    ({"compressor": {"id": "jpeg2k"}}, "compressor"), ({"zarr_format": 3}, "zarr_format"),
    ({"shape": [32, -1]}, "invalid shape"), ({"order": "K"}, "memory order"),
    ({"dimension_separator": "\\"}, "dimension_separator"),
])
def test_hostile_array_metadata_refused_before_reading(tmp_path, changes, match):
    p = _plain(tmp_path, compressor=numcodecs.Zlib())
    _edit(p, **changes)
    with pytest.raises(InputError, match=match):
        read_image(p)


@pytest.mark.parametrize("comp", [numcodecs.Zlib(), numcodecs.Blosc(), numcodecs.Zstd(), numcodecs.LZ4(), None],
                         ids=lambda c: c.codec_id if c else "raw")
def test_bombs_and_damaged_chunks_refused(tmp_path, comp):
    p = _plain(tmp_path, compressor=comp)
    chunk = p / "0.0"
    big = np.zeros(10 ** 7, np.uint16).tobytes()   # 20 MB where the chunk holds 512 bytes
    chunk.write_bytes(comp.encode(big) if comp else big[:1000])
    with pytest.raises(InputError, match="0.0"):
        read_image(p)
    chunk.write_bytes(_plain_bytes(tmp_path, comp)[:40])   # truncated
    with pytest.raises(InputError, match="0.0"):
        read_image(p)


def _plain_bytes(tmp_path, comp) -> bytes:
    q = tmp_path / "ref"
    q.mkdir(exist_ok=True)
    return (_plain(q, compressor=comp) / "0.0").read_bytes()


def test_a_zlib_bomb_is_not_inflated(tmp_path):
    p = _plain(tmp_path, compressor=numcodecs.Zlib())
    (p / "0.0").write_bytes(zlib.compress(bytes(32 << 20), 9))   # 32 MiB of zeros in ~33 kB
    with pytest.raises(InputError, match="decodes to 513 bytes, 512 expected"):
        read_image(p)


def test_chunks_must_be_regular_files_and_paths_stay_inside(tmp_path):
    p = _plain(tmp_path)
    (p / "0.0").unlink()
    os.mkfifo(p / "0.0")   # reading it would block forever
    with pytest.raises(InputError, match="not a regular file"):
        read_image(p)
    for target in (tmp_path / "gone", p / "0.0"):   # a link to nothing, or to itself, was read as sparse (zeros)
        (p / "0.0").unlink()
        os.symlink(target, p / "0.0")
        with pytest.raises(InputError, match="chunk 0.0 is a broken link"):
            read_image(p)
    q = ome_zarr(tmp_path / "o.zarr", RNG.integers(0, 9, (1, 1, 1, 16, 16)).astype(np.uint8))
    attrs = json.loads((q / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["path"] = "../h.zarr"
    (q / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(InputError, match="not a path inside the store"):
        read_image(q)


@pytest.mark.parametrize("attrs,match", [
    ("[1, 2]", "JSON object"), ("{not json", "not valid JSON"), ("[" * 100_000, "not valid JSON"),
    ('{"plate": {}}', "HCS plate"),
    ('{"multiscales": [{"datasets": []}]}', "without datasets"),
    ('{"multiscales": [{"axes": ["y", "x"], "datasets": [{"path": "0"}]}]}', "do not match"),
    ('{"multiscales": [{"axes": ["t", "c", "z", "x", "x"], "datasets": [{"path": "0"}]}]}', "one y and one x"),
])
def test_hostile_group_metadata(tmp_path, attrs, match):
    q = ome_zarr(tmp_path / "o.zarr", RNG.integers(0, 9, (1, 1, 1, 16, 16)).astype(np.uint8))
    (q / ".zattrs").write_text(attrs)
    with pytest.raises(InputError, match=match):
        read_image(q)


def test_groups_without_an_image_say_what_to_do(tmp_path):
    v3 = tmp_path / "v3.zarr"
    v3.mkdir()
    (v3 / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(InputError, match="not a zarr array nor an OME-Zarr image"):
        read_image(v3)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_dataset("raw", data=np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError, match="g.zarr/raw"):
        read_image(tmp_path / "g.zarr")


def test_cli_compresses_an_ome_zarr_with_its_pixel_size(tmp_path, capsys):
    from napari_microcomp.cli import main
    from napari_microcomp.codecs import decode
    from napari_microcomp import container

    a = RNG.integers(0, 4000, (1, 2, 1, 64, 64)).astype(np.uint16)
    p = ome_zarr(tmp_path / "img.ome.zarr", a)
    assert main(["compress", str(p), str(tmp_path / "o.mcz"), "-c", "zstd", "--channel", "1"]) == 0
    data = (tmp_path / "o.mcz").read_bytes()
    np.testing.assert_array_equal(decode(data), a[0, 1, 0])
    assert container.read_header(data)[0].meta["pixel_size"] == [2.0, 0.25, 0.25]


def test_napari_reader_opens_channels_as_layers_with_scale(tmp_path):
    from napari_microcomp._reader import napari_get_reader

    a = RNG.integers(0, 4000, (3, 2, 4, 24, 32)).astype(np.uint16)
    p = ome_zarr(tmp_path / "img.ome.zarr", a)
    layers = napari_get_reader(str(p))(str(p))
    (data, kw, kind), = layers
    assert kind == "image" and kw["channel_axis"] == 0 and kw["name"] == ["img ch0", "img ch1"]
    np.testing.assert_array_equal(data, np.moveaxis(a, 1, 0))   # (C, T, Z, Y, X)
    assert kw["scale"] == [1.0, 2.0, 0.25, 0.25] and kw["metadata"][1]["microcomp"]["axes"] == "TZYX"
    b = RNG.integers(0, 9, (1, 1, 1, 16, 16)).astype(np.uint8)   # singleton t, c, z dropped
    (data, kw, _), = napari_get_reader(str(ome_zarr(tmp_path / "b.zarr", b)))(str(tmp_path / "b.zarr"))
    assert data.shape == (16, 16) and kw["metadata"]["microcomp"]["axes"] == "YX"
    assert napari_get_reader(str(tmp_path)) is None   # a plain folder is not ours


def test_lazy_view_reads_tiles_and_compress_tiled_matches_the_array(tmp_path):
    from napari_microcomp.io_zarr import ZarrView
    from napari_microcomp.tiled import compress_file, open_lazy

    a = RNG.integers(0, 4000, (1, 2, 3, 70, 90)).astype(np.uint16)
    p = ome_zarr(tmp_path / "v.zarr", a, chunks=(1, 1, 2, 32, 32), compressor=numcodecs.Zlib())
    v = ZarrView(p, channel=1)
    assert v.shape == (3, 70, 90) and v.ndim == 3 and v.dtype == np.uint16
    np.testing.assert_array_equal(v[1:3, 10:50, -7], a[0, 1, 1:3, 10:50, -7])
    np.testing.assert_array_equal(v[-1], a[0, 1, -1])
    with pytest.raises(IndexError):
        v[::2]
    lazy = open_lazy(p)
    assert isinstance(lazy, ZarrView) and lazy.meta["channel"] == 0
    s1, s2 = tmp_path / "z.mcz", tmp_path / "n.mcz"
    list(compress_file(lazy, s1, "zstd", tile=32))
    list(compress_file(np.ascontiguousarray(a[0, 0]), s2, "zstd", tile=32))
    assert s1.read_bytes() == s2.read_bytes()


def test_cli_zarr_round_trip_and_clear_refusals(tmp_path, capsys):
    from napari_microcomp.cli import main

    a = RNG.integers(0, 4000, (48, 40)).astype(np.uint16)
    np.save(tmp_path / "a.npy", a)
    mc, img = tmp_path / "mc.zarr", ome_zarr(tmp_path / "img.zarr", a[None, None, None])
    assert main(["compress", str(tmp_path / "a.npy"), "-c", "zstd", "--zarr", str(mc)]) == 0
    assert main(["decompress", str(mc), str(tmp_path / "back.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), a)   # zstd: lossless
    for argv, said in ((["compress", str(mc)], "microcomp streams"),
                       (["decompress", str(img), str(tmp_path / "x.tif")], "OME-Zarr image or zarr group")):
        capsys.readouterr()
        assert main(argv) != 0
        assert said in capsys.readouterr().err
    for store in (img, mc):   # info describes a store as an image file: what compress would read
        assert main(["info", str(store)]) == 0
        assert "uint16 Y=48 X=40" in capsys.readouterr().out
    (mc / "0.0").write_bytes((mc / "0.0").read_bytes()[:-9])   # a damaged stream chunk: refused, not returned
    capsys.readouterr()
    assert main(["decompress", str(mc), str(tmp_path / "bad.npy"), "--overwrite"]) != 0
    assert not (tmp_path / "bad.npy").exists() and "error" in capsys.readouterr().err


def test_napari_reader_opens_a_microcomp_zarr_array(tmp_path):
    from napari_microcomp._reader import napari_get_reader
    from napari_microcomp.zarr_codecs import compress_to_zarr

    a = RNG.integers(0, 4000, (40, 48)).astype(np.uint16)
    compress_to_zarr(a, tmp_path / "mc.zarr", "zstd", chunks=(16, 16))
    (data, kw, kind), = napari_get_reader(str(tmp_path / "mc.zarr"))(str(tmp_path / "mc.zarr"))
    np.testing.assert_array_equal(np.asarray(data[:]), a)
    assert kind == "image" and kw["name"] == "mc"


def test_napari_reader_is_lazy_for_large_stores(tmp_path, monkeypatch):
    import dask.array as da

    from napari_microcomp import _reader

    monkeypatch.setattr(_reader, "EAGER_BYTES", 1000)
    a = RNG.integers(0, 4000, (2, 2, 3, 40, 50)).astype(np.uint16)
    p = ome_zarr(tmp_path / "big.zarr", a, chunks=(1, 1, 1, 16, 16), compressor=numcodecs.Zlib())
    (data, kw, _), = _reader.read_zarr_layers(str(p))
    assert isinstance(data, da.Array) and data.shape == (2, 2, 3, 40, 50)
    np.testing.assert_array_equal(data[1, 0, 2].compute(), a[0, 1, 2])   # (C, T, Z, Y, X)
    np.testing.assert_array_equal(data.compute(), np.moveaxis(a, 1, 0))
    (p / "0" / "0.0.1.1.1").write_bytes(b"damaged")   # found when that chunk is shown, as one clear error
    with pytest.raises(InputError, match="0.0.1.1.1"):
        data[0, 0, 1].compute()
    monkeypatch.setattr(_reader, "MAX_CHANNEL_LAYERS", 1)   # a store declaring more channels than layers to add
    with pytest.warns(UserWarning, match="holds 2 channels; opened the first 1"):
        (data, kw, _), = _reader.read_zarr_layers(str(tmp_path / "big.zarr"))
    assert data.shape == (2, 3, 40, 50) and kw["name"] == "big ch0"   # one channel: one layer


def test_folder_walk_does_not_follow_linked_folders(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((16, 16), np.uint8))
    os.symlink(tmp_path, tmp_path / "loop")   # a folder linking back to its parent
    assert image_files([tmp_path]) == [tmp_path / "a.npy"]


def test_folder_walks_skip_hidden_folders(tmp_path, capsys):
    """`compress .` in a project folder walked .venv's test images and .git; dot-folders are not the user's."""
    from napari_microcomp.cli import main

    np.save(tmp_path / "a.npy", np.zeros((16, 16), np.uint8))
    for hidden in (".venv/lib", ".ipynb_checkpoints"):
        (tmp_path / hidden).mkdir(parents=True)
        np.save(tmp_path / hidden / "b.npy", np.zeros((16, 16), np.uint8))
    assert image_files([tmp_path]) == [tmp_path / "a.npy"]
    assert main(["compress", str(tmp_path), "--out-dir", str(tmp_path / "o"), "-c", "zstd", "--no-metrics"]) == 0
    (tmp_path / "o" / ".old").mkdir()
    (tmp_path / "o" / "a.npy.mcz").rename(tmp_path / "o" / ".old" / "a.npy.mcz")
    assert main(["decompress", str(tmp_path / "o"), "--out-dir", str(tmp_path / "d")]) == 2
    assert "nothing to do" in capsys.readouterr().err


def test_an_empty_argument_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch, capsys):
    from napari_microcomp.cli import main

    np.save(tmp_path / "a.npy", np.zeros((16, 16), np.uint8))
    monkeypatch.chdir(tmp_path)
    assert main(["compress", "", "-c", "zstd"]) == 2
    assert "argument 2 is an empty value" in capsys.readouterr().err and not (tmp_path / "a.npy.mcz").exists()


def test_advise_apply_names_zarr_outputs_and_never_replaces_the_input(tmp_path, monkeypatch, capsys):
    from napari_microcomp.cli import main

    a = RNG.integers(0, 4000, (1, 1, 1, 48, 40)).astype(np.uint16)
    p = ome_zarr(tmp_path / "b.zarr", a)
    monkeypatch.chdir(tmp_path)
    argv = ["advise", "b.zarr", "--psnr", "40", "--codecs", "zstd", "--apply", ".", "--apply-format", "zarr",
            "--overwrite"]
    assert main(argv) != 0 and "is the input itself" in capsys.readouterr().err
    np.testing.assert_array_equal(read_image(p)[0], a[0, 0, 0])   # untouched
    assert main(["advise", "b.zarr", "--psnr", "40", "--codecs", "zstd", "--apply", "out"]) == 0
    assert (tmp_path / "out" / "b.mcz").is_file()


def test_compress_zarr_output_overwrite_is_explicit_and_never_the_input(tmp_path, capsys):
    from napari_microcomp.cli import main

    np.save(tmp_path / "a.npy", RNG.integers(0, 99, (16, 16)).astype(np.uint16))
    src, out = str(tmp_path / "a.npy"), str(tmp_path / "o.zarr")
    assert main(["compress", src, "-c", "zstd", "--zarr", out]) == 0
    assert main(["compress", src, "-c", "zstd", "--zarr", out]) != 0
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["compress", src, "-c", "zstd", "--zarr", out, "--overwrite"]) == 0
    assert main(["compress", out, "-c", "zstd", "--zarr", out, "--overwrite"]) != 0
    assert "the input itself" in capsys.readouterr().err


@pytest.mark.parametrize("unit,um", [("µm", 0.5), ("um", 0.5), ("nm", 5e-4), ("parsec", None), (None, None)])
def test_pixel_size_units_outside_ngff_names(tmp_path, unit, um):
    axes = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in "yx"]
    p = ome_zarr(tmp_path / "u.zarr", RNG.integers(0, 9, (16, 16)).astype(np.uint8), axes=axes, scale=(0.5, 0.5))
    assert read_image(p)[1]["pixel_size"] == [None, um, um]


def test_crafted_scale_and_channel_count(tmp_path):
    # found by fuzzing the OME-Zarr 0.5 seed: a scale given as a string crashed, 10⁹ channels built 10⁹ names
    p = ome_zarr(tmp_path / "o.zarr", RNG.integers(0, 9, (1, 2, 1, 16, 16)).astype(np.uint8))
    attrs = json.loads((p / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 1, "2", 0.5, 0.5]
    (p / ".zattrs").write_text(json.dumps(attrs))
    assert read_image(p)[1]["pixel_size"] == [2.0, 0.0005, 0.0005]   # y, x in nanometres
    zarray = json.loads((p / "0" / ".zarray").read_text())
    zarray["shape"][1] = 10 ** 9
    (p / "0" / ".zarray").write_text(json.dumps(zarray))
    with pytest.raises(InputError, match="channels; more than 10,000"):
        read_image(p)
