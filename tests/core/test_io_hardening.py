"""Robustness of file input: RGB samples, CZI metadata fallback, damaged files in the tiled path, crafted
.mcz display metadata, index bounds, `info` on damaged streams, --chunks parsing."""
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import jxr_czi, smooth_image
from napari_microcomp import container, tiled
from napari_microcomp._reader import napari_get_reader, read_mcz, read_microscopy
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import InputError
from napari_microcomp.io import image_files, read_image

RGB = np.dstack([np.full((16, 16), v, np.uint8) for v in (10, 20, 30)])


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def only(folder, *names):
    """No file in ``folder`` but ``names``: nothing partial was left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


# 1. RGB / multi-sample OME-TIFF in the napari reader -----------------------------------------------------
def test_reader_gives_one_layer_per_rgb_sample(tmp_path):
    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, RGB, photometric="rgb")
    (data, kw, kind), = napari_get_reader(str(path))(str(path))
    assert kind == "image" and kw["channel_axis"] == 0 and data.shape == (3, 16, 16)
    assert [n.split()[-2:] for n in kw["name"]] == [["sample", "0"], ["sample", "1"], ["sample", "2"]]
    assert [int(data[i, 0, 0]) for i in range(3)] == [10, 20, 30]


def test_reader_gives_channels_times_samples(tmp_path):
    path = tmp_path / "c2rgb.ome.tif"
    tifffile.imwrite(path, np.stack([RGB, RGB + 100]), photometric="rgb", metadata={"axes": "CYXS"})
    (data, kw, _), = read_microscopy(str(path))
    assert data.shape == (6, 16, 16) and len(kw["name"]) == 6 and len(kw["metadata"]) == 6
    assert [int(v) for v in data[:, 0, 0]] == [10, 20, 30, 110, 120, 130]


# 2. --channel selects a sample of a trailing RGB axis (TIFF, PNG, NPY) -------------------------------------
def _write(path, a):
    if path.suffix == ".npy":
        np.save(path, a)
    elif path.suffix == ".png":
        import imageio.v3 as iio
        iio.imwrite(path, a)
    else:
        tifffile.imwrite(path, a, photometric="rgb")


@pytest.mark.parametrize("name", ["rgb.tif", "rgb.png", "rgb.npy"])
def test_channel_selects_rgb_sample(tmp_path, capsys, name):
    a = np.dstack([smooth_image((32, 40), np.uint8, seed=s) for s in range(3)])
    src = tmp_path / name
    _write(src, a)
    for c in (1, 2, -1):
        got, meta = read_image(src, channel=c)
        np.testing.assert_array_equal(got, a[..., c])
        assert meta["channel"] == c % 3
    with pytest.raises(InputError, match="--channel 3 is out of range"):
        read_image(src, channel=3)
    rc, _, err = run(["compress", src, tmp_path / "o.mcz", "-c", "zstd", "--channel", "2", "--no-metrics"], capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), a[..., 2])


@pytest.mark.parametrize("name", ["grey.tif", "grey.png", "grey.npy"])
def test_a_grey_image_stored_as_rgb_is_read_as_its_one_channel(tmp_path, capsys, name):
    g = smooth_image((32, 40), np.uint8, seed=4)
    src = tmp_path / name
    _write(src, np.dstack([g] * 3))
    got, meta = read_image(src)
    np.testing.assert_array_equal(got, g)
    assert "grey image as 3 samples" in " ".join(meta["notes"])
    rc, text, err = run(["compress", src, tmp_path / "o.mcz", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and "reading it as one channel" in text + err, err
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), g)
    # grey + opaque alpha, RGBA with equal colours: grey; one differing sample or a varying alpha: colour
    for a, grey in ((np.dstack([g, np.full_like(g, 255)]), True), (np.dstack([g, g, g, np.full_like(g, 9)]), True),
                    (np.dstack([g, g + 1, g]), False), (np.dstack([g, g[::-1]]), False)):
        np.save(tmp_path / "x.npy", a)
        assert read_image(tmp_path / "x.npy")[0].shape == ((32, 40) if grey else a.shape)


@pytest.mark.parametrize("name", ["mask.png", "mask.tif", "mask.npy"])
def test_a_boolean_mask_is_read_as_uint8_and_said(tmp_path, capsys, name):
    """A 1-bit PNG/TIFF or a bool NPY (a segmentation) was refused with advice only the API could follow."""
    m = smooth_image((32, 40), np.uint8, seed=5) > 128
    src = tmp_path / name
    if name.endswith(".png"):
        from PIL import Image
        Image.fromarray(m).save(src)   # mode "1": one bit per pixel
    elif name.endswith(".tif"):
        tifffile.imwrite(src, m)
    else:
        np.save(src, m)
    got, meta = read_image(src)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, m.astype(np.uint8))
    assert "boolean (1-bit) mask" in " ".join(meta["notes"])
    rc, text, err = run(["compress", src, tmp_path / "o.mcz", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and "coding it as uint8 0/1" in text + err, err
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), m.astype(np.uint8))


def test_grey_samples_of_a_stack_saved_as_rgb():
    """The napari docks use it on RGB layers of any dimension: (Z, Y, X, 3) too."""
    from napari_microcomp._validate import grey_samples

    z = np.stack([smooth_image((16, 20), np.uint16, seed=s) for s in range(3)])
    got = grey_samples(np.stack([z] * 3, axis=-1))
    np.testing.assert_array_equal(got, z)
    colour = np.stack([z, z, z], axis=-1)
    colour[2, 3, 4, 1] += 1   # one sample of one pixel of one slice
    assert grey_samples(colour) is None
    assert grey_samples(z) is None   # 20 values on the last axis are not colour samples


def test_interleaved_rgb_is_called_colour_by_compress_tiled(tmp_path, capsys):
    a = np.dstack([smooth_image((32, 40), np.uint16, seed=s) for s in range(3)])
    np.save(tmp_path / "rgb.npy", a)
    tifffile.imwrite(tmp_path / "rgb.tif", a, photometric="rgb")
    for f in ("rgb.npy", "rgb.tif"):
        rc, _, err = run(["compress-tiled", tmp_path / f, tmp_path / "t.mcz"], capsys)
        assert rc == 2 and "RGB" in err, err   # was "image too small"
    # planar samples (S, Y, X) stay planes: tifffile itself writes a (3, Y, X) stack that way by default
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(a, -1, 0), photometric="rgb", planarconfig="separate")
    assert read_image(tmp_path / "planar.tif")[0].shape == (3, 32, 40)


def test_channel_on_grey_npy_is_checked_not_ignored(tmp_path):
    np.save(tmp_path / "g.npy", smooth_image((32, 32)))
    assert read_image(tmp_path / "g.npy", channel=0)[0].shape == (32, 32)
    with pytest.raises(InputError, match="--channel 2 is out of range: g.npy has 1 channel"):
        read_image(tmp_path / "g.npy", channel=2)


def test_real_hela_channels_are_selectable(shared_data):
    hela = shared_data / "fluorescence" / "hela-cells.tif"
    if not hela.is_file():
        pytest.skip("hela-cells.tif not in the shared data")
    raw = tifffile.imread(hela)  # (Y, X, S)
    for c in range(3):
        np.testing.assert_array_equal(read_image(hela, channel=c)[0], raw[..., c])


# 3. CZI whose metadata aicsimageio cannot parse ------------------------------------------------------------
@pytest.fixture
def dapi_gfp(shared_data):
    f = shared_data / "fluorescence" / "DAPI_GFP.czi"
    if not f.is_file():
        pytest.skip("DAPI_GFP.czi not in the shared data")
    return f


def test_zstd_compressed_czi_reads_exactly(tmp_path, capsys):
    # ZEN saves CZI subblocks zstd-compressed ("zstd1": hi/lo bytes split first); written by pylibCZIrw 5
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    want = np.load(fixtures / "zstd1_2ch.expected.npy")
    for c in (0, 1):
        np.testing.assert_array_equal(read_image(fixtures / "zstd1_2ch.czi", channel=c)[0], want[c])
    rc, _, err = run(["compress", fixtures / "zstd1_2ch.czi", tmp_path / "o.mcz", "-c", "zstd", "--channel", "1"],
                     capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), want[1])


@pytest.mark.parametrize("field, value", [("data", 0x64 << 56), ("data", -5), ("meta", 10**6)])
def test_czi_subblock_claiming_more_than_its_segment_is_refused(tmp_path, field, value):
    """The file fuzzer's find: the top byte of the second subblock's data size set (0x64) had libCZI kill the
    process with SIGSEGV inside read_image; the subblock's own header is now held to its segment first."""
    import struct

    src = Path(__file__).resolve().parents[1] / "fixtures" / "zstd1_2ch.czi"
    b = bytearray(src.read_bytes())
    at = b.find(b"ZISRAWSUBBLOCK", b.find(b"ZISRAWSUBBLOCK") + 1) + 32   # MetadataSize, AttachmentSize, DataSize
    if field == "data":
        struct.pack_into("<q", b, at + 8, value)
    else:
        struct.pack_into("<i", b, at, value)
    bad = tmp_path / "bad.czi"
    bad.write_bytes(bytes(b))
    with pytest.raises(InputError, match=r"bad.czi: a subblock at byte [\d,]+ says it holds"):
        read_image(bad, channel=1)
    with pytest.raises(InputError, match="says it holds"):
        read_microscopy(str(bad))


def test_jpeg_xr_czi_reads_and_a_header_that_crashes_jxrlib_is_refused(dapi_gfp, tmp_path):
    """libCZI decodes JPEG XR subblocks with jxrlib, in this process: a plane header with a reserved colour format
    (byte 0xa0) killed it with SIGSEGV (measured); such headers are refused first, as for .mcz and TIFF tiles."""
    import subprocess
    import sys

    from aicspylibczi import CziFile

    jxr_czi(dapi_gfp, tmp_path / "jxr.czi")
    raw, _ = CziFile(str(dapi_gfp)).read_image()
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(read_image(tmp_path / "jxr.czi", channel=1)[0], raw[0, 1])   # lossless

    def crash(jxr):
        i = bytes(jxr).find(b"WMPHOTO\0")
        jxr[i + (16 if jxr[i + 10] & 0x80 else 20)] = 0xA0   # the image plane header's colour format byte
    jxr_czi(dapi_gfp, tmp_path / "bad.czi", crash)

    def grow(jxr):   # 20000 columns, in the image header (short: width − 1) and in the directory (tag 0xBC80)
        import struct

        i = bytes(jxr).find(b"WMPHOTO\0")
        assert jxr[i + 10] & 0x80
        struct.pack_into(">H", jxr, i + 12, 19999)
        ifd = struct.unpack_from("<I", jxr, 4)[0]
        for k in range(struct.unpack_from("<H", jxr, ifd)[0]):
            if struct.unpack_from("<H", jxr, ifd + 2 + 12 * k)[0] == 0xBC80:
                struct.pack_into("<I", jxr, ifd + 2 + 12 * k + 8, 20000)
    jxr_czi(dapi_gfp, tmp_path / "big.czi", grow)
    code = ("import sys\nfrom napari_microcomp.io import read_image\nfrom napari_microcomp.errors import InputError\n"
            "try:\n    read_image(sys.argv[1])\nexcept InputError as e:\n    print(e)")
    for name, said in (("bad.czi", "reserved colour format"), ("big.czi", "of 640×640 pixels declares 640×20000")):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], capture_output=True, text=True,
                             timeout=120)   # a separate process: a regression would crash it, not the test run
        assert out.returncode == 0 and "JPEG XR subblock" in out.stdout and said in out.stdout, out


def test_czi_without_scaling_opens_through_aicspylibczi(dapi_gfp):
    from aicspylibczi import CziFile

    raw, _ = CziFile(str(dapi_gfp)).read_image()  # (T, C, Y, X)
    with pytest.warns(UserWarning, match="aicspylibczi"):
        a, meta = read_image(dapi_gfp, channel=1)
    np.testing.assert_array_equal(a, raw[0, 1])
    assert meta["channel_names"] == ["DAPI", "GFP"] and meta["pixel_size"] == [None, None, None]
    with pytest.warns(UserWarning):
        (data, kw, _), = read_microscopy(str(dapi_gfp))
    assert data.shape == (2, 640, 640) and kw["name"] == ["DAPI_GFP DAPI", "DAPI_GFP GFP"]
    np.testing.assert_array_equal(data, raw[0])


def test_damaged_czi_still_reported_as_damaged(dapi_gfp, tmp_path):
    bad = tmp_path / "cut.czi"
    bad.write_bytes(dapi_gfp.read_bytes()[:400_000])
    with pytest.raises(InputError, match=r"cut.czi: a subblock at byte [\d,]+ runs to byte [\d,]+ but the file has "
                                         "400,000; the file is truncated"):
        read_image(bad)
    with pytest.raises(InputError, match="cut.czi: .* truncated"):
        read_microscopy(str(bad))
    head = tmp_path / "head.czi"   # cut in its first subblock: aicsimageio would ask to install a reader it has
    head.write_bytes(dapi_gfp.read_bytes()[:20_000])
    with pytest.raises(InputError, match="head.czi: .* but the file has 20,000; the file is truncated"):
        read_image(head)
    head.write_bytes(dapi_gfp.read_bytes()[:3_000])   # cut before its directory: left to aicsimageio, which asks to
    with pytest.raises(InputError, match="aicspylibczi is installed and could not open it") as err:   # install it
        read_image(head)
    assert "pip install" not in str(err.value)


# 4. compress-tiled on damaged inputs ----------------------------------------------------------------------
def _damaged(folder, kind):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 4000, (64, 80), dtype=np.uint16)
    if kind == "zero.npy":
        (folder / kind).write_bytes(b"")
    elif kind == "object.npy":
        np.save(folder / kind, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "random.tif":
        (folder / kind).write_bytes(rng.bytes(3000))
    else:  # a TIFF cut inside its pixel data
        tifffile.imwrite(folder / "full.tif", img, compression="zlib" if kind.startswith("zlib") else None)
        data = (folder / "full.tif").read_bytes()
        (folder / "full.tif").unlink()
        if kind == "zlib_zeroed.tif":   # same length, the strip's last 200 bytes zeroed: only decoding shows it
            data = data[: len(data) - 200] + bytes(200)
        (folder / kind).write_bytes(data[: len(data) - 200] if kind == "zlib_cut.tif" else
                                    data if kind == "zlib_zeroed.tif" else data[: len(data) // 2])
    return folder / kind


@pytest.mark.parametrize("kind", ["zero.npy", "object.npy", "random.tif", "cut.tif", "zlib_cut.tif"])
def test_compress_tiled_damaged_input_clean_error_no_output(tmp_path, capsys, kind):
    src = _damaged(tmp_path, kind)
    rc, _, err = run(["compress-tiled", src, tmp_path / "o.mcz"], capsys)
    said = f"{kind}: its strips run to byte" if "cut" in kind else f"could not read {kind}"   # cut: from the header
    assert rc == 2 and said in err and "Traceback" not in err, err
    only(tmp_path, kind)


def test_tiff_damaged_inside_a_strip_fails_cleanly_when_the_tile_is_read(tmp_path):
    src = _damaged(tmp_path, "zlib_zeroed.tif")
    vol = tiled.open_lazy(src)  # the header is fine: the damage shows only when pixels are decoded
    with pytest.raises(InputError, match="could not read zlib_zeroed.tif: not a readable TIFF"):
        tiled.compress(vol, tmp_path / "o.mcz")
    only(tmp_path, "zlib_zeroed.tif")


def test_tiff_whose_strips_cannot_hold_its_declared_size_is_refused(tmp_path, capsys):
    """A 4×4 TIFF edited to declare 2³¹−1 rows and columns: compress-tiled read fill for hours (one strip listed)."""
    import struct

    path = tmp_path / "giant.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        for tag in ("ImageWidth", "ImageLength"):
            t = tf.pages[0].tags[tag]
            fmt = "<I" if t.dtype == 4 else "<H"
            raw[t.valueoffset:t.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, 60000 if fmt == "<H" else 2**31 - 1)
    path.write_bytes(bytes(raw))
    for cmd in ("compress-tiled", "compress"):
        rc, _, err = run([cmd, path, tmp_path / "o.mcz"], capsys)
        assert rc == 2 and "strips but lists 1" in err, err
    only(tmp_path, "giant.tif")


def test_uncompressed_page_wider_than_the_file_is_refused_in_every_reader(tmp_path, capsys):
    """A page of a multi-page TIFF edited to be 60000 pixels wide (one strip, its byte count unchanged): tifffile
    reads uncompressed data by the declared size, so napari's lazy layer raised a bare ValueError when shown."""
    import struct

    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, smooth_image((3, 40, 48), seed=4), photometric="minisblack", metadata=None)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        t = tf.pages[1].tags["ImageWidth"]
        raw[t.valueoffset:t.valueoffset + 2] = struct.pack("<H", 60000)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"wide.tif: a page of shape \(40, 60000\) needs 4,800,000 bytes"):
        read_image(path)
    with pytest.raises(InputError, match="needs 4,800,000 bytes"):
        read_microscopy(str(path))
    rc, _, err = run(["compress-tiled", path, tmp_path / "o.mcz"], capsys)
    assert rc == 2 and "needs 4,800,000 bytes" in err, err
    only(tmp_path, "wide.tif")


# 5. crafted .mcz display metadata -------------------------------------------------------------------------
IMG = smooth_image((32, 40), np.uint16, seed=3)


def _mcz(tmp_path, **meta):
    h, p = container.unpack(get_codec("zstd").encode(IMG))
    h.meta.update(meta)
    path = tmp_path / "x.mcz"
    path.write_bytes(container.pack(h, p))
    return path


@pytest.mark.parametrize("meta", [
    {"scale": ["a", "b"]}, {"scale": 5}, {"scale": [None, None]}, {"scale": [float("nan"), 1.0]},
    {"scale": [-1.0, 0.0]}, {"scale": [1.0, 2.0, 3.0]}, {"scale": [[1], [2]]}, {"scale": [True, 1]},
    {"translate": "xy"}, {"translate": {"a": 1, "b": 2}}, {"translate": [float("inf"), 0]},
    {"pixel_size": [None, "a", "b"]},
])
def test_invalid_scale_or_translate_is_ignored_with_a_warning(tmp_path, meta):
    path = _mcz(tmp_path, **meta)
    with pytest.warns(UserWarning, match="ignoring the stream's"):
        (data, kw, _), = napari_get_reader(str(path))(str(path))
    np.testing.assert_array_equal(data, IMG)  # the pixels are fine
    assert "scale" not in kw and "translate" not in kw


def test_valid_scale_translate_and_pixel_size_are_kept(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (_, kw, _), = read_mcz(str(_mcz(tmp_path, scale=[1, 2.5], translate=[-3, 4])))
        assert kw["scale"] == [1.0, 2.5] and kw["translate"] == [-3.0, 4.0]
        (_, kw, _), = read_mcz(str(_mcz(tmp_path, pixel_size=[None, 0.5, 0.25])))
        assert kw["scale"] == [0.5, 0.25]


@pytest.mark.parametrize("value", ["INF", "NaN", "-1", "0"])
def test_unusable_physical_size_in_an_ome_file_opens_unscaled(tmp_path, value):
    """A crafted PhysicalSizeX="INF" became a layer scale that napari's add_image refused ("array must not
    contain infs or NaNs"), so the file would not open; now it opens with that axis unscaled."""
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="40" SizeY="32" '
           f'SizeC="1" SizeZ="1" SizeT="1" PhysicalSizeX="{value}" PhysicalSizeY="0.5">'
           '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>')
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, IMG.astype(np.uint16), description=xml, metadata=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (data, kw, _), = read_microscopy(path)
    assert kw["scale"][1] == 1.0 and all(0 < s < float("inf") for s in kw["scale"])
    np.testing.assert_array_equal(np.asarray(data), IMG.astype(np.uint16))


def test_pixel_size_keeps_only_finite_positive_values():
    from napari_microcomp.io import pixel_size

    assert [pixel_size(v) for v in (0.25, 2, "0.5", None, 0.0, -1.0, float("nan"), float("inf"), "abc")] == \
        [0.25, 2.0, 0.5, None, None, None, None, None, None]


# 6. negative / out-of-range indices ------------------------------------------------------------------------
@pytest.fixture
def tz(tmp_path):
    d = (np.arange(2 * 3 * 16 * 16).reshape(2, 3, 16, 16) % 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tz.tif", d, imagej=True, metadata={"axes": "TZYX"})
    return tmp_path / "tz.tif", d


def test_negative_timepoint_counts_from_the_end_and_meta_records_it(tz):
    path, d = tz
    for t in (-1, -2, 1):
        a, meta = read_image(path, timepoint=t)
        np.testing.assert_array_equal(a, d[t])
        assert meta["timepoint"] == t % 2
    with pytest.raises(InputError, match=r"--timepoint -3 is out of range: tz.tif has 2 time point"):
        read_image(path, timepoint=-3)
    with pytest.raises(InputError, match=r"--scene -2 is out of range"):
        read_image(path, scene=-2)


def test_cli_out_of_range_timepoint_is_not_called_damaged(tz, tmp_path, capsys):
    path, d = tz
    rc, _, err = run(["compress", path, tmp_path / "o.mcz", "--timepoint", "-3"], capsys)
    assert rc == 2 and "--timepoint -3 is out of range" in err and "damaged" not in err
    rc, _, err = run(["compress", path, tmp_path / "o.mcz", "-c", "zstd", "--timepoint", "-1", "--no-metrics"],
                     capsys)
    assert rc == 0, err
    assert container.unpack((tmp_path / "o.mcz").read_bytes())[0].meta["timepoint"] == 1


def test_channels_and_time_points_of_a_plain_tiff_are_not_read_as_z(tmp_path, capsys):
    # ImageJ hyperstacks and tifffile's shaped TIFFs declare C and T; neither may become a z-stack
    d = (np.arange(2 * 3 * 2 * 16 * 16).reshape(2, 3, 2, 16, 16) % 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "h.tif", d, imagej=True, metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "c.tif", d[0, 0], metadata={"axes": "CYX"})
    a, meta = read_image(tmp_path / "h.tif")
    np.testing.assert_array_equal(a, d[0, :, 0])
    assert any("2 time points" in n for n in meta["notes"]) and any("2 channels" in n for n in meta["notes"])
    a, meta = read_image(tmp_path / "c.tif", channel=1)
    np.testing.assert_array_equal(a, d[0, 0, 1])
    assert "notes" not in meta
    rc, _, err = run(["compress", tmp_path / "c.tif", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and "has 2 channels" in err and "--channel" in err
    assert container.unpack((tmp_path / "c.tif.mcz").read_bytes())[0].shape == [16, 16]


def test_a_file_with_several_scenes_says_which_one_it_read(tmp_path, capsys):
    with tifffile.TiffWriter(tmp_path / "s.tif", ome=True) as tw:
        tw.write(np.zeros((16, 16), np.uint16), metadata={"axes": "YX"})
        tw.write(np.full((8, 8), 7, np.uint16), metadata={"axes": "YX"})
    a, meta = read_image(tmp_path / "s.tif")
    assert a.shape == (16, 16) and "2 scenes" in meta["notes"][0]
    a, meta = read_image(tmp_path / "s.tif", scene=1)
    assert a.shape == (8, 8) and a.max() == 7 and "notes" not in meta
    rc, _, err = run(["compress", tmp_path / "s.tif", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and "2 scenes" in err and "--scene" in err


def test_options_may_sit_between_input_and_output(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((2, 16, 16), np.uint16), metadata={"axes": "CYX"})
    rc, _, err = run(["compress", tmp_path / "c.tif", "--channel", "1", tmp_path / "o.mcz", "-c", "zstd"], capsys)
    assert rc == 0, err
    assert container.unpack((tmp_path / "o.mcz").read_bytes())[0].meta["channel"] == 1


# 7. info on a damaged stream --------------------------------------------------------------------------------
@pytest.mark.parametrize("damage,message", [("cut", "truncated"), ("flip", "checksum"), ("extra", "trailing")])
def test_info_reports_a_damaged_stream(tmp_path, capsys, damage, message):
    data = get_codec("zstd").encode(IMG)
    bad = {"cut": data[:-5], "flip": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:], "extra": data + b"xx"}[damage]
    (tmp_path / "x.mcz").write_bytes(bad)
    for extra in ([], ["--json"]):
        rc, _, err = run(["info", tmp_path / "x.mcz", *extra], capsys)
        assert rc == 2 and message in err


# 8. --chunks --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunks", ["a,b", "0,0", "", "16,-1", "1.5"])
def test_bad_zarr_chunks_clear_error(tmp_path, capsys, chunks):
    np.save(tmp_path / "img.npy", IMG)
    rc, _, err = run(["compress", tmp_path / "img.npy", "--zarr", tmp_path / "z.zarr", "--chunks", chunks], capsys)
    want = "--chunks is given an empty value" if chunks == "" else "--chunks must be comma-separated positive integers"
    assert rc == 2 and want in err
    only(tmp_path, "img.npy")


def test_good_zarr_chunks_still_work(tmp_path, capsys):
    pytest.importorskip("zarr")
    np.save(tmp_path / "img.npy", IMG)
    rc, _, err = run(["compress", tmp_path / "img.npy", "--zarr", tmp_path / "z.zarr", "-c", "zstd",
                      "--chunks", "16,20"], capsys)
    assert rc == 0, err
    shutil.rmtree(tmp_path / "z.zarr")


# A truncated TIFF is refused, never read in part --------------------------------------------------------

@pytest.mark.parametrize("kind", ["ome", "imagej", "zlib", "tiled"])
def test_a_truncated_stack_is_refused_not_read_as_its_first_pages(tmp_path, capsys, kind):
    """tifffile reads such a file as the pages before the cut (and an OME file without its XML) and only logs
    it; 61 of 80 truncation points of these four layouts used to come back as a smaller image, no error."""
    kw = {"ome": dict(ome=True, metadata={"axes": "ZYX"}), "imagej": dict(imagej=True, metadata={"axes": "ZYX"}),
          "zlib": dict(compression="zlib"), "tiled": dict(tile=(32, 32))}[kind]
    whole = tmp_path / "whole.tif"
    stack = np.stack([smooth_image((64, 64), seed=s) for s in range(6)])
    tifffile.imwrite(whole, stack, **kw)
    assert np.array_equal(read_image(whole)[0], stack)
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    for frac in (0.3, 0.6, 0.9):
        cut.write_bytes(data[:int(len(data) * frac)])
        with pytest.raises(InputError, match="cut.tif"):
            read_image(cut)
    rc, _, err = run(["compress", cut, tmp_path / "cut.mcz", "-c", "jpegxl"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "cut.tif" in err
    assert not (tmp_path / "cut.mcz").exists()
    rc, _, err = run(["compress-tiled", cut, tmp_path / "cut.mcz", "-c", "jpegxl"], capsys)
    assert rc == 2 and "cut.tif" in err and "truncated" in err and not (tmp_path / "cut.mcz").exists()
    if kind == "ome":   # the napari reader of OME files says the same, not a wrapped type name
        with pytest.raises(InputError, match="damaged or truncated"):
            read_microscopy(str(cut))


def _ome_set(folder, names, planes):
    """A multi-file OME-TIFF as Micro-Manager and Bio-Formats write it: plane z in file ``names[z]``, each file's
    OME-XML naming all of them by UUID and FileName."""
    import uuid

    ids = [f"urn:uuid:{uuid.uuid4()}" for _ in names]
    tds = "".join(f'<TiffData IFD="0" FirstZ="{z}" PlaneCount="1"><UUID FileName="{n}">{u}</UUID></TiffData>'
                  for z, (n, u) in enumerate(zip(names, ids)))
    y, x = planes[0].shape
    for i, name in enumerate(names):
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
               f'UUID="{ids[i]}"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
               f'SizeX="{x}" SizeY="{y}" SizeZ="{len(names)}" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" '
               f'SamplesPerPixel="1"/>{tds}</Pixels></Image></OME>')
        if "/" not in name and ".." not in name:
            tifffile.imwrite(folder / name, planes[i], description=xml, metadata=None)
    return folder / names[0]


def test_a_multi_file_ome_tiff_missing_a_file_is_refused_not_read_with_black_planes(tmp_path, capsys):
    """tifffile fills the planes of a missing file with zeros and only logs it: the stack was coded with them."""
    planes = [smooth_image((40, 48), seed=s) for s in range(2)]
    first = _ome_set(tmp_path, ["set_0.ome.tif", "set_1.ome.tif"], planes)
    assert np.array_equal(read_image(first)[0], np.stack(planes))        # the whole set, from its first file
    np.save(tmp_path / "other.npy", planes[0])
    assert image_files([tmp_path]) == [tmp_path / "other.npy", first]   # a folder walk codes the set once
    (tmp_path / "set_1.ome.tif").unlink()
    with pytest.raises(InputError, match="set_1.ome.tif is missing"):
        read_image(first)
    with pytest.raises(InputError, match="is missing"):
        read_microscopy(str(first))
    for cmd in ("compress", "compress-tiled"):
        rc, _, err = run([cmd, first, tmp_path / "o.mcz", "-c", "zstd"], capsys)
        assert rc == 2 and "is missing" in err and not (tmp_path / "o.mcz").exists()
    # a renamed single-file OME-TIFF names its old name, under its own UUID: still itself (tifffile matches by UUID)
    renamed = tmp_path / "renamed.ome.tif"
    _ome_set(tmp_path, ["original.ome.tif"], planes[:1])
    (tmp_path / "original.ome.tif").rename(renamed)
    assert np.array_equal(read_image(renamed)[0], planes[0])
    from napari_microcomp.tiff_check import ome_set_head
    assert ome_set_head(renamed) == "renamed.ome.tif" and ome_set_head(first) == "set_0.ome.tif"
    # a single file whose OME-XML points past its pages: the plane read as zeros too
    (tmp_path / "p").mkdir()
    past = _ome_set(tmp_path / "p", ["past.ome.tif"], planes[:1])
    with tifffile.TiffFile(past) as tf:
        xml = tf.ome_metadata.replace('IFD="0"', 'IFD="1"').replace('SizeZ="1"', 'SizeZ="2"')
        xml = xml.replace('PlaneCount="1"', 'PlaneCount="2"')   # planes at pages 1 and 2 of two
    with tifffile.TiffWriter(past) as tw:
        tw.write(planes[0], description=xml, metadata=None)
        tw.write(planes[1], metadata=None)
    with pytest.raises(InputError, match="1 of the 2 planes its metadata lists are not in the file"):
        read_image(past)
    for bad in ("/etc/passwd", "../x.ome.tif"):   # planes from a file elsewhere on the disk
        (tmp_path / "b").mkdir(exist_ok=True)
        with pytest.raises(InputError, match="not a file name beside it"):
            read_image(_ome_set(tmp_path / "b", ["b_0.ome.tif", bad], planes))


@pytest.mark.parametrize("dtype", ["float16", "int64", "uint64"])
def test_decompress_to_tiff_keeps_pixel_types_ome_xml_cannot_describe(tmp_path, capsys, dtype):
    # OME-XML has no float16/int64/uint64: the writer used to raise from inside tifffile (a traceback)
    a = (smooth_image((48, 64), np.float32, seed=3) + 200).astype(dtype)
    np.save(tmp_path / "a.npy", a)
    rc, _, err = run(["compress", tmp_path / "a.npy", tmp_path / "a.mcz", "-c", "zstd"], capsys)
    assert rc == 0, err
    rc, _, err = run(["decompress", tmp_path / "a.mcz", tmp_path / "b.tif"], capsys)
    assert rc == 0, err
    b = tifffile.imread(tmp_path / "b.tif")
    assert b.dtype == a.dtype and np.array_equal(a, b)
    only(tmp_path, "a.npy", "a.mcz", "b.tif")


def test_write_image_keeps_the_pixel_size_of_a_plain_tiff_in_its_resolution_tags(tmp_path):
    from napari_microcomp.io_write import write_image

    write_image(tmp_path / "x.tif", np.zeros((8, 8), np.float16), {"pixel_size": [None, 0.5, 0.25]})
    with tifffile.TiffFile(tmp_path / "x.tif") as tf:
        tags = tf.pages[0].tags
        assert tags["XResolution"].value == (40000, 1) and tags["YResolution"].value == (20000, 1)
        assert tags["ResolutionUnit"].value == 3   # centimetre


@pytest.mark.parametrize("names, channel, expected", [
    (["DAPI", 'A&B <x> "q"'], 1, 'A&B <x> "q"'),   # XML's special characters: the OME-XML still parses
    (["tab\tbell\x07 Ω"], 0, "tabbell Ω"),        # control characters left out
    (["DAPI"], 3, None), (["DAPI"], True, None), ("DAPI", 0, None),   # no such channel: no name
])
def test_the_coded_channels_name_reaches_the_ome_tiff(tmp_path, names, channel, expected):
    from aicsimageio import AICSImage

    from napari_microcomp.io_write import write_image

    p = tmp_path / "x.ome.tif"
    write_image(p, np.zeros((2, 8, 8), np.uint16), {"channel_names": names, "channel": channel})
    assert AICSImage(p).channel_names == [expected or "Channel:0:0"]


@pytest.mark.parametrize("dtype, bytes_per_pixel", [("float16", 2), ("int32", 4), ("float64", 8)])
def test_compression_ratio_counts_the_callers_array_not_its_coded_copy(dtype, bytes_per_pixel):
    from napari_microcomp.api import compress_array

    a = (smooth_image((64, 64), np.float32, seed=4) + 200).astype(dtype)
    r = compress_array(a, "jpeg2k", quality=4, with_ms_ssim=False)
    assert r.metrics["compression_ratio"] == pytest.approx(a.size * bytes_per_pixel / len(r.data))
    t = compress_array(a, "jpeg2k", target="cr=6", with_ms_ssim=False)
    assert t.target["achieved"] == pytest.approx(a.size * bytes_per_pixel / len(t.data))
    # the benchmark and the advisor count the same bytes
    from napari_microcomp._progress import result_of
    from napari_microcomp.advise import Tolerance, advise
    from napari_microcomp.benchmark import iter_benchmark

    row, = result_of(iter_benchmark({"a": a}, ["jpeg2k"], qualities=[4], with_ms_ssim=False))
    assert row["dtype"] == dtype and row["raw_bytes"] == a.size * bytes_per_pixel
    assert row["compression_ratio"] == pytest.approx(row["raw_bytes"] / row["compressed_bytes"])
    adv = advise([a], Tolerance(psnr=30), ["jpeg2k"])
    assert adv.images[0]["dtype"] == dtype
    assert adv.rows[0].compression_ratio == pytest.approx(8 * bytes_per_pixel / adv.rows[0].bpp)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("command", ["compress", "decompress", "info", "compress-tiled", "decompress-tiled"])
def test_a_named_pipe_is_refused_not_read_forever(tmp_path, capsys, command):
    import os

    fifo = tmp_path / ("in.mcz" if "decompress" in command or command == "info" else "in.tif")
    os.mkfifo(fifo)   # opening it for reading would block until a writer comes, i.e. forever
    out = tmp_path / ("out.npy" if "decompress" in command else "out.mcz")
    argv = [command, fifo] + ([] if command == "info" else [out])
    rc, _, err = run(argv, capsys)
    assert rc == 2 and "not a regular file" in err


def _tiff_with_a_lying_tile(path, compression, rows=20000):
    """A small tiled TIFF whose second tile's own codestream says it is rows×rows (both of JPEG XR's size
    fields, so the codestream is self-consistent)."""
    import struct

    a = np.round(smooth_image((64, 64), seed=3) * 3000).astype(np.uint16)
    tifffile.imwrite(path, np.stack([a, a]), tile=(16, 16), compression=compression, photometric="minisblack")
    b = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        off = tf.pages[1].dataoffsets[1]
    if compression == "jpegxr":
        i = b.find(b"WMPHOTO", off)
        b[i + 12:i + 16] = struct.pack(">HH", rows - 1, rows - 1)
        for tag in (0xBC80, 0xBC81):
            j = b.find(struct.pack("<HHI", tag, 4, 1), off)
            b[j + 8:j + 12] = struct.pack("<I", rows)
    else:
        i = b.find(b"\xff\x4f\xff\x51", off)
        b[i + 8:i + 16] = struct.pack(">II", rows, rows)
    path.write_bytes(bytes(b))
    return a


@pytest.mark.parametrize("compression", ["jpegxr", "jpeg2000"])
def test_a_tiff_tile_declaring_a_huge_image_is_refused_before_the_native_decoder(tmp_path, capsys, compression):
    """jxrlib allocated the 20000² (800 MB, 5 s) a crafted 16² tile declared before tifffile refused the
    reshape; each reader (read_image, compress-tiled's lazy view, the napari OME reader) now reads the tiles'
    headers first."""
    from napari_microcomp.io import open_aics

    for name in ("lie.tif", "lie.ome.tif"):
        path = tmp_path / name
        _tiff_with_a_lying_tile(path, compression)
        with pytest.raises(InputError, match=r"tile of 16×16 pixels declares 20000×20000"):
            read_image(path)
        with pytest.raises(InputError, match="declares 20000"):
            tiled.open_lazy(path)
        with pytest.raises(InputError, match="declares 20000"):
            open_aics(path)
    with pytest.raises(InputError, match="declares 20000"):
        read_microscopy(str(tmp_path / "lie.ome.tif"))
    rc, _, err = run(["compress", tmp_path / "lie.tif", tmp_path / "out.mcz", "--codec", "jpeg2k"], capsys)
    assert rc == 2 and "declares 20000×20000" in err and not (tmp_path / "out.mcz").exists()


@pytest.mark.parametrize("wrap", ["zstd", "deflate"])
def test_a_wrapped_lerc_tile_declaring_a_huge_image_is_refused(tmp_path, wrap):
    """LERC in a TIFF may be wrapped in zstd or deflate (LercParameters). A 32² tile whose (valid-checksum) blob
    said 20000² made the LERC decoder allocate 1.6 GB for 1.6 s, and the tile came back as zeros, silently
    (measured 2026-12-06); the blob is now unwrapped enough to read its header first."""
    import struct
    import zlib

    import imagecodecs

    path = tmp_path / "lerc.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.float32) + 3, tile=(32, 32), compression="lerc",
                     compressionargs={"compression": wrap})
    b = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tf:
        off, n = tf.pages[0].dataoffsets[0], tf.pages[0].databytecounts[0]
        at_off, at_n = tf.pages[0].tags["TileOffsets"].valueoffset, tf.pages[0].tags["TileByteCounts"].valueoffset
    seg = bytes(b[off:off + n])
    blob = bytearray(imagecodecs.zstd_decode(seg) if wrap == "zstd" else zlib.decompress(seg))
    struct.pack_into("<ii", blob, 14, 20000, 20000)   # Lerc2 v3+: rows, cols after the checksum
    new = imagecodecs.zstd_encode(bytes(blob)) if wrap == "zstd" else zlib.compress(bytes(blob))
    struct.pack_into("<I", b, at_off, len(b))
    struct.pack_into("<I", b, at_n, len(new))
    path.write_bytes(bytes(b) + new)
    with pytest.raises(InputError, match=r"LERC tile of 32×32 pixels declares 20000×20000"):
        read_image(path)


def test_honest_compressed_tiffs_of_every_peeked_kind_read_as_written(tmp_path):
    """No false alarm: strips whose last one is short, padded edge tiles, colour JPEG, and LERC bare and wrapped
    in zstd or deflate."""
    a = np.round(smooth_image((101, 77), seed=4) * 200).astype(np.uint8)
    for compression, dtype, args in [("jpeg", np.uint8, {}), ("png", np.uint16, {}), ("jpegxl", np.uint16, {}),
                                     ("jpegxr", np.uint16, {}), ("jpeg2000", np.uint16, {}),
                                     ("lerc", np.float32, {}), ("lerc", np.float32, {"compression": "zstd"}),
                                     ("lerc", np.float32, {"compression": "deflate"})]:
        for layout in ({"tile": (32, 32)}, {"rowsperstrip": 16}):
            path = tmp_path / "ok.tif"
            tifffile.imwrite(path, a.astype(dtype), compression=compression, compressionargs=args,
                             photometric="minisblack", **layout)
            assert read_image(path)[0].shape == a.shape and tiled.open_lazy(path).shape == a.shape
    rgb = np.dstack([a, a[::-1], a[:, ::-1]])
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, compression="jpeg", tile=(32, 32), photometric="rgb")
    assert read_image(tmp_path / "rgb.tif", channel=1)[0].shape == a.shape


@pytest.mark.parametrize("edit", [('PlaneCount="2"', 'PlaneCount="999999999"'), ('SizeC="1"', 'SizeC="60000"'),
                                  ('SizeT="1"', 'SizeT="5000000000"'), ('SizeT="1"', 'SizeT="60000"'),
                                  ('SizeX="40"', 'SizeX="999999999"')])
def test_ome_xml_declaring_absurd_plane_counts_is_refused_before_it_is_expanded(tmp_path, edit):
    """tifffile listed the 10^9 planes a crafted PlaneCount declared (16 GB, ~3 min) and aicsimageio built
    60000 channel coordinates (42 s) before either compared them with the file's two pages; SizeT="60000" on a
    six-page file (found by tests/fuzz_files.py) cost aicsimageio 91 s and 1.2 GB, SizeX="999999999" 15 GB."""
    import re
    import time

    from napari_microcomp.io import open_aics

    path = tmp_path / "odd.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 32, 40), np.uint16), ome=True, metadata={"axes": "ZYX"})
    xml = re.search(r"<OME.*</OME>", path.read_bytes().decode("latin-1"), re.S).group(0)
    assert edit[0] in xml
    tifffile.tiffcomment(path, comment=xml.replace(*edit))
    start = time.monotonic()
    for read in (read_image, tiled.open_lazy, open_aics, read_microscopy):
        with pytest.raises(InputError, match="its OME-XML (declares|says) .* refusing to read it"):
            read(str(path) if read is read_microscopy else path)
    assert time.monotonic() - start < 30


def test_czi_directory_spanning_more_indices_than_subblocks_is_refused_before_aicsimageio(dapi_gfp, tmp_path):
    """One subblock moved to channel 65535 (found by tests/fuzz_files.py on a shared CZI) had aicsimageio work
    128 s and take 1.9 GB before the decode budget refused the array it then declared."""
    import struct
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fuzz_files import _czi_fields
    from napari_microcomp.czi_check import check_czi

    data = bytearray(dapi_gfp.read_bytes())
    check_czi(dapi_gfp)                                   # the real file passes
    starts = [off for off, _, _ in _czi_fields(bytes(data)) if data[off - 4:off] == b"C\0\0\0"]
    struct.pack_into("<i", data, starts[0], 65535)        # a channel Start
    path = tmp_path / "moved.czi"
    path.write_bytes(bytes(data))
    t = time.monotonic()
    for read in (read_image, read_microscopy):
        with pytest.raises(InputError, match=r"subblock directory spans C indices \d+\.\.65535 with \d+ subblocks"):
            read(str(path) if read is read_microscopy else path)
    assert time.monotonic() - t < 20


def test_cmyk_jpeg_is_read_as_viewers_show_it_not_as_inverted_ink(tmp_path, capsys):
    from PIL import Image

    grey = (smooth_image((64, 80), seed=7, bits=8)).astype(np.uint8)
    path = tmp_path / "print.jpg"
    Image.fromarray(np.dstack([grey] * 3)).convert("CMYK").save(path, quality=95)
    a, meta = read_image(path)
    assert a.shape == grey.shape and np.abs(a.astype(int) - grey).mean() < 3   # the cyan sample would be 255 - grey
    assert any("CMYK" in n for n in meta["notes"])
    colour = tmp_path / "colour.jpg"
    Image.fromarray(np.dstack([grey, grey // 2, 255 - grey])).convert("CMYK").save(colour, quality=95)
    rc, _, err = run(["compress", colour, tmp_path / "o.mcz", "-c", "zstd"], capsys)
    assert rc == 2 and "RGB" in err
    assert np.abs(read_image(colour, channel=1)[0].astype(int) - grey // 2).mean() < 4


@pytest.mark.parametrize("command", ["compress", "info"])
def test_a_broken_link_is_named_as_one(tmp_path, capsys, command):
    """A link to itself was reported as "file not found", which sends a user looking for a file that is there."""
    import os

    for name, target in (("loop.tif", "loop.tif"), ("gone.tif", "nowhere.tif")):
        os.symlink(target, tmp_path / name)
        rc, _, err = run([command, tmp_path / name], capsys)
        assert rc == 2 and f"{name} is a broken link" in err


def test_broken_links_in_a_folder_are_skipped_aloud_and_a_looping_weights_link_is_one_line(tmp_path, capsys):
    """A folder walk skipped broken links without a word; with them listed, a link loop made Path.resolve raise
    RuntimeError (a traceback), as it did for --weights naming one."""
    import os

    d = tmp_path / "d"
    d.mkdir()
    np.save(d / "a.npy", smooth_image((32, 32), seed=1))
    os.symlink("loop.ome.tif", d / "loop.ome.tif")
    os.symlink(tmp_path / "nowhere.tif", d / "gone.tif")
    rc, out, err = run(["compress", d, "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 1 and "compressed 1 of 3" in out and (d / "a.npy.mcz").exists()
    assert "loop.ome.tif is a broken link" in err and "gone.tif is a broken link" in err
    os.symlink("w.pt", tmp_path / "w.pt")
    rc, _, err = run(["compress", d / "a.npy", tmp_path / "b.mcz", "-c", "mbt2018-mean-vbr", "--weights",
                      tmp_path / "w.pt"], capsys)
    assert rc == 2 and "weight file not found" in err and "Traceback" not in err
