"""CLI tests in-process through main(argv)."""
import json

import numpy as np
import pytest
import tifffile

from helpers import smooth_image
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_codecs_lists_classical_with_mapping(capsys):
    rc, out, _ = run(["codecs", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0
    classical = [n for n, r in rows.items() if r["family"] in ("classical", "lossless") and r["available"]]
    assert len(classical) >= 7
    assert rows["jpeg2k"]["qualities"]["8"] == 70 and rows["jpegxl"]["native"] == "distance"
    rc, out, _ = run(["codecs"], capsys)
    assert "jpegxr" in out and "quality 1 … 8" in out


def test_compress_decompress_info_round_trip(tmp_path, capsys):
    a = smooth_image((3, 64, 80), np.uint16, bits=12)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, a)
    out = tmp_path / "stack.mcz"
    rc, text, err = run(["compress", src, out, "--codec", "jpeg2k", "--quality", "5"], capsys)
    assert rc == 0, err
    assert "psnr=" in text and "compression_ratio=" in text and "per-slice PSNR" in text
    rc, text, _ = run(["info", out], capsys)
    assert rc == 0 and "jpeg2k" in text and "slicewise" in text and 'stretch16' in text
    back = tmp_path / "back.ome.tif"
    rc, _, _ = run(["decompress", out, back], capsys)
    restored = tifffile.imread(back)
    assert restored.shape == a.shape and restored.dtype == a.dtype
    assert np.abs(restored.astype(int) - a).max() < 0.1 * a.max()


def test_lossless_and_target_and_native_param(tmp_path, capsys):
    a = smooth_image((96, 96), np.uint16)
    src = tmp_path / "img.npy"
    np.save(src, a)
    rc, _, err = run(["compress", src, tmp_path / "a.mcz", "-c", "jpegxl", "--lossless"], capsys)
    assert rc == 0, err
    rc, _, _ = run(["decompress", tmp_path / "a.mcz", tmp_path / "a.npy"], capsys)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), a)
    rc, text, err = run(["compress", src, tmp_path / "t.mcz", "-c", "jpeg2k", "--target", "psnr=45"], capsys)
    assert rc == 0, err
    assert "target psnr=45: achieved" in text and "met" in text
    # a target no setting meets: the closest stream is written, and the exit status says so
    rc, text, err = run(["compress", src, tmp_path / "u.mcz", "-c", "jpeg2k", "--target", "bpp=0.0001"], capsys)
    assert rc == 1 and "NOT met" in text and (tmp_path / "u.mcz").is_file()
    # --no-metrics skips the report, not the rate control; --zarr has no rate control and says so
    rc, text, err = run(["compress", src, tmp_path / "n.mcz", "-c", "jpeg2k", "--target", "psnr=45", "--no-metrics"],
                        capsys)
    assert rc == 0 and "target psnr=45: achieved" in text and "psnr=" not in text.split("trials)")[-1]
    rc, _, err = run(["compress", src, "-c", "jpeg2k", "--target", "psnr=45", "--zarr", tmp_path / "z.zarr"], capsys)
    assert rc == 2 and "--target does not work with --zarr" in err and not (tmp_path / "z.zarr").exists()
    rc, _, err = run(["compress", src, tmp_path / "c.mcz", "-c", "jpeg2k", "--chunks", "64,64"], capsys)
    assert rc == 2 and "--zarr" in err and not (tmp_path / "c.mcz").exists()
    rc, text, err = run(["compress", src, tmp_path / "p.mcz", "-c", "jpegxl", "--param", "distance=1.5"], capsys)
    assert rc == 0, err
    rc, text, _ = run(["info", tmp_path / "p.mcz", "--json"], capsys)
    assert json.loads(text)["codec"]["distance"] == 1.5


@pytest.mark.parametrize("array,message", [
    (np.dstack([np.full((40, 40), v, np.uint16) for v in (0, 1, 2)]), "RGB"),   # equal samples would be grey
    (np.zeros((2, 2, 40, 40), np.uint16), "4D"),
    (np.zeros((0, 40), np.uint16), "empty"),
    (np.full((40, 40), np.nan, np.float32), "NaN"),
])
def test_bad_arrays_give_clear_errors(tmp_path, capsys, array, message):
    src = tmp_path / "bad.npy"
    np.save(src, array)
    rc, out, err = run(["compress", src, tmp_path / "bad.mcz"], capsys)
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "bad.mcz").exists()


def test_bad_paths_codecs_quality(tmp_path, capsys):
    src = tmp_path / "ok.npy"
    np.save(src, smooth_image((32, 32)))
    for argv, message in [
        (["compress", tmp_path / "missing.tif", tmp_path / "x.mcz"], "not found"),
        (["compress", src, tmp_path / "x.mcz", "-c", "jpeg3000"], "unknown codec"),
        (["compress", src, tmp_path / "x.mcz", "-q", "9"], "quality must be"),
        (["compress", src, tmp_path / "x.tif"], ".mcz"),
        (["compress", src, tmp_path / "x.mcz", "--target", "psnr=abc"], "target"),
        (["decompress", tmp_path / "missing.mcz", tmp_path / "x.tif"], "not found"),
    ]:
        rc, _, err = run(argv, capsys)
        assert rc == 2 and message in err, (argv, err)


def test_corrupted_stream_clear_error_and_no_output(tmp_path, capsys):
    src = tmp_path / "ok.npy"
    np.save(src, smooth_image((32, 32)))
    run(["compress", src, tmp_path / "ok.mcz"], capsys)
    data = (tmp_path / "ok.mcz").read_bytes()
    (tmp_path / "bad.mcz").write_bytes(data[: len(data) // 2])
    rc, _, err = run(["decompress", tmp_path / "bad.mcz", tmp_path / "out.tif"], capsys)
    assert rc == 2 and "truncated" in err
    assert not (tmp_path / "out.tif").exists()


def test_real_nd2_round_trip_keeps_pixel_size(shared_data, tmp_path, capsys):
    nd2 = shared_data / "arcadia_brightfield_fluorescence" / "example-pbmc.nd2"
    if not nd2.exists():
        pytest.skip("example-pbmc.nd2 not in the shared data")
    out = tmp_path / "pbmc.mcz"
    rc, text, err = run(["compress", nd2, out, "-c", "jpegxl", "-q", "6", "--channel", "1"], capsys)
    assert rc == 0, err
    assert "psnr=" in text
    rc, text, _ = run(["info", out, "--json"], capsys)
    meta = json.loads(text)["meta"]
    assert meta["channel_names"][1] == "DAPI" and meta["pixel_size"][-1] == pytest.approx(0.6468, abs=1e-3)
    rc, _, _ = run(["decompress", out, tmp_path / "pbmc.ome.tif"], capsys)
    with tifffile.TiffFile(tmp_path / "pbmc.ome.tif") as tf:
        assert tf.is_ome and "PhysicalSizeX" in tf.ome_metadata
    rc, _, err = run(["compress", nd2, tmp_path / "c7.mcz", "--channel", "7"], capsys)
    assert rc == 2 and "channel" in err


def test_decompress_no_verify_rescues_a_checksum_mismatch(tmp_path, capsys):
    """A reconstruction that differs from the encoder's (another CPU type rounding a few pixels differently
    looks like this) is refused, and can be rescued explicitly."""
    from napari_microcomp import container
    from napari_microcomp.codecs import get_codec
    from napari_microcomp.cli import main

    img = (np.arange(64 * 64).reshape(64, 64) % 1000).astype(np.uint16)
    header, payloads = container.unpack(get_codec("jpeg2k", quality=6).encode(img))
    header.check["crc32"] = (header.check["crc32"] + 1) % 2 ** 32
    src = tmp_path / "x.mcz"
    src.write_bytes(container.pack(header, payloads))
    assert main(["decompress", str(src), str(tmp_path / "a.npy")]) == 2
    assert "--no-verify" in capsys.readouterr().err and not (tmp_path / "a.npy").exists()
    assert main(["decompress", str(src), str(tmp_path / "b.npy"), "--no-verify"]) == 0
    assert "UNVERIFIED" in capsys.readouterr().err and np.load(tmp_path / "b.npy").shape == img.shape


def test_compress_many_files_and_folders(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    a, b = smooth_image((48, 40), np.uint16, seed=1, bits=12), smooth_image((2, 32, 32), np.uint16, seed=2)
    tifffile.imwrite(src / "a.tif", a)
    np.save(src / "sub" / "b.npy", b)
    tifffile.imwrite(src / "rgb.tif", np.dstack([np.full((32, 32), v, np.uint8) for v in (0, 1, 2)]), photometric="rgb")
    out = tmp_path / "out"
    rc, text, err = run(["compress", src, "--out-dir", out, "-c", "jpegxl", "--lossless"], capsys)
    assert rc == 1 and "skipped" in err and "rgb.tif" in err          # the rest is done, the stray one said
    assert "compressed 2 of 3 file(s)" in text
    for name, want in (("a.tif.mcz", a), ("sub/b.npy.mcz", b)):      # sub-folders kept, streams exact
        assert np.array_equal(decode((out / name).read_bytes()), want)
    assert not (out / "rgb.tif.mcz").exists()
    # and back: a folder of streams to images named after their sources, sub-folders kept
    (out / "junk.mcz").write_bytes(b"not a stream")
    back = tmp_path / "back"
    rc, text, err = run(["decompress", out, "--out-dir", back], capsys)
    assert rc == 1 and "junk.mcz" in err and "decompressed 2 of 3" in text
    assert np.array_equal(tifffile.imread(back / "a.tif"), a) and np.array_equal(np.load(back / "sub" / "b.npy"), b)
    rc, _, _ = run(["decompress", out / "a.tif.mcz", out / "sub" / "b.npy.mcz", "--out-dir", back / "n",
                    "--format", "npy"], capsys)
    assert rc == 0 and np.array_equal(np.load(back / "n" / "a.npy"), a) and (back / "n" / "b.npy").is_file()
    rc, _, err = run(["decompress", out / "a.tif.mcz", out / "sub" / "b.npy.mcz", "--out-dir", back], capsys)
    assert rc == 2 and "exists" in err                                # nothing replaced without --overwrite
    # every output is checked before anything is written
    (out / "a.tif.mcz").write_bytes(b"keep")
    rc, _, err = run(["compress", src, "--out-dir", out, "-c", "zstd"], capsys)
    assert rc == 2 and "a.tif.mcz exists" in err and (out / "a.tif.mcz").read_bytes() == b"keep"
    # several named files without --out-dir: each beside its input
    rc, text, _ = run(["compress", src / "a.tif", src / "sub" / "b.npy", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and (src / "a.tif.mcz").is_file() and (src / "sub" / "b.npy.mcz").is_file()
    # -o OUTPUT: the same as naming the output after the single input
    rc, _, _ = run(["compress", src / "a.tif", "-o", tmp_path / "o1.mcz", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and np.array_equal(decode((tmp_path / "o1.mcz").read_bytes()), a)
    rc, _, _ = run(["decompress", tmp_path / "o1.mcz", "--output", tmp_path / "o.npy"], capsys)
    assert rc == 0 and np.array_equal(np.load(tmp_path / "o.npy"), a)
    (tmp_path / "empty").mkdir()
    for argv, message in [
        (["compress", src / "a.tif", src / "sub" / "b.npy", tmp_path / "o.mcz"], "use --out-dir"),
        (["compress", src, tmp_path / "o.mcz"], "is a folder"),
        (["compress", src / "a.tif", tmp_path / "o.mcz", "--out-dir", out], "not both"),
        (["compress", src / "a.tif", src / "a.tif", "--overwrite"], "a.tif is named more than once"),
        (["compress", src / "a.tif", src / "sub" / ".." / "a.tif"], "named more than once"),
        (["compress", src / "a.tif", tmp_path / "x.tif"], "output must end in .mcz"),
        (["compress", src / "a.tif", tmp_path / "empty"], "use --out-dir"),      # an empty folder named last
        (["compress", src, "--zarr", tmp_path / "z.zarr"], "one input"),
        (["decompress", out / "sub" / "b.npy.mcz", tmp_path / "x.tif", "--format", "npy"], "contradicts"),
        (["compress", src / "a.tif", src / "sub" / "b.npy", "-o", tmp_path / "o.mcz"], "single input"),
        (["compress", src / "a.tif", "-o", tmp_path / "o.tif"], "output must end in .mcz"),
        (["compress", src / "a.tif", "-o", tmp_path / "empty"], "use --out-dir"),
        (["compress", src / "a.tif", "-o", tmp_path / "o.mcz", "--out-dir", out], "not both"),
        (["compress", src / "a.tif", "-o", tmp_path / "o.mcz", "--zarr", tmp_path / "z.zarr"], "one input"),
        (["decompress", out / "sub" / "b.npy.mcz", "-o", tmp_path / "x.tif", "--format", "npy"], "contradicts"),
    ]:
        rc, _, err = run(argv, capsys)
        assert rc == 2 and message in err, (argv, err)


def test_a_reader_that_stops_reading_ends_the_command_quietly():
    """`microcomp info x.mcz | head -2` printed "error: Broken pipe" (and Python's exit flush a traceback)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "napari_microcomp.cli", "codecs"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()   # before anything is written: every write meets a closed pipe
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == b"", err


def test_decompress_relays_the_decoders_warnings_not_library_deprecations(tmp_path):
    """A fresh `microcomp decompress` of a learned stream printed compressai's import-time `torch.jit.script`
    deprecation twice, as "warning: x.mcz: …", as if it were about the file."""
    import subprocess
    import sys

    from napari_microcomp.codecs import get_codec

    src = tmp_path / "x.mcz"
    src.write_bytes(get_codec("bmshj2018-factorized", quality=4).encode(smooth_image((64, 64), np.uint16)))
    p = subprocess.run([sys.executable, "-m", "napari_microcomp.cli", "decompress", str(src),
                        str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


def test_an_undefined_metric_is_said_not_printed_as_nan(tmp_path, capsys):
    """`ms_ssim=nan` on a 64² image read as a failure of the measurement; MS-SSIM is undefined below 161 px."""
    src = tmp_path / "small.npy"
    np.save(src, smooth_image((64, 64), np.uint16))
    rc, text, err = run(["compress", src, tmp_path / "s.mcz", "-c", "jpeg2k", "-q", "4"], capsys)
    assert rc == 0, err
    assert "ms_ssim=n/a" in text and "(ms_ssim: undefined below 161 px a side)" in text and "nan" not in text


def test_channel_all_codes_benchmarks_and_advises_every_channel(tmp_path, capsys):
    chans = np.stack([smooth_image((48, 56), np.uint16, seed=s, bits=12) for s in range(3)])
    src = tmp_path / "cells.ome.tif"
    tifffile.imwrite(src, chans, metadata={"axes": "CYX", "Channel": {"Name": ["BF", "DAPI", "GFP"]}})
    rc, text, err = run(["compress", src, "--channel", "all", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0, err
    assert "compressed 3 of 3 image(s)" in text
    for c in range(3):
        np.testing.assert_array_equal(decode((tmp_path / f"cells.ome.tif.c{c}.mcz").read_bytes()), chans[c])
    # every output is checked before anything is written
    (tmp_path / "cells.ome.tif.c0.mcz").unlink()
    before = (tmp_path / "cells.ome.tif.c2.mcz").read_bytes()
    rc, _, err = run(["compress", src, "--channel", "all", "-c", "jpegxl"], capsys)
    assert rc == 2 and "c1.mcz exists" in err and not (tmp_path / "cells.ome.tif.c0.mcz").exists()
    assert (tmp_path / "cells.ome.tif.c2.mcz").read_bytes() == before
    rc, _, err = run(["compress", src, "--channel", "all", "--zarr", tmp_path / "z.zarr"], capsys)
    assert rc == 2 and "pick one channel" in err
    with pytest.raises(SystemExit):   # argparse's own exit
        run(["compress", src, "--channel", "x"], capsys)
    assert "a channel index or 'all'" in capsys.readouterr().err
    # the napari reader names a channel's stream after its channel
    from napari_microcomp._reader import read_mcz

    assert read_mcz(tmp_path / "cells.ome.tif.c1.mcz")[0][1]["name"] == "cells.ome.tif.c1 DAPI"
    # benchmark: one row set per channel, named after it
    rc, text, err = run(["benchmark", src, "--channel", "all", "--codecs", "jpegxl", "--qualities", "3",
                         "--no-phase2", "--out", tmp_path / "b"], capsys)
    assert rc == 0, err
    rows = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert sorted({r["image"] for r in rows}) == ["cells.ome.tif c0 BF", "cells.ome.tif c1 DAPI",
                                                   "cells.ome.tif c2 GFP"]
    # advise: the worst case over the channels, applied to each
    rc, text, err = run(["advise", src, "--channel", "all", "--psnr", "40", "--codecs", "jpegxl",
                         "--apply", tmp_path / "a"], capsys)
    assert rc == 0, err
    for c in range(3):
        out = decode((tmp_path / "a" / f"cells.c{c}.mcz").read_bytes())
        assert out.shape == chans[c].shape and np.abs(out.astype(int) - chans[c]).max() < 400
    # in a folder, a file that cannot be read is skipped, the others' channels are coded
    (tmp_path / "d").mkdir()
    tifffile.imwrite(tmp_path / "d" / "cells.ome.tif", chans, metadata={"axes": "CYX"})
    (tmp_path / "d" / "broken.tif").write_bytes(b"II*\0garbage")
    rc, text, err = run(["compress", tmp_path / "d", "--channel", "all", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 1 and "broken.tif" in err and "compressed 3 of 4 image(s)" in text
    # a one-channel file under --channel all: one image, named as usual
    np.save(tmp_path / "g.npy", chans[0])
    rc, text, err = run(["compress", tmp_path / "g.npy", "--channel", "all", "-c", "zstd", "--no-metrics"], capsys)
    assert rc == 0 and (tmp_path / "g.npy.mcz").exists(), err


def test_info_describes_an_image_file_and_still_checks_a_damaged_stream(tmp_path, capsys):
    src = tmp_path / "hyper.tif"
    tifffile.imwrite(src, np.zeros((3, 2, 40, 50), np.uint16), imagej=True, metadata={"axes": "ZCYX", "unit": "um"},
                     resolution=(2.0, 2.0))
    assert main(["info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "TIFF image, 1 scene" in out and "uint16 Z=3 Y=40 X=50" in out and "0.5 µm, 0.5 µm" in out
    assert "2 channels" in out   # the note that says which channel compress picks
    (tmp_path / "bad.mcz").write_bytes(b"\x89MCZ" + b"\0" * 4)
    assert main(["info", str(tmp_path / "bad.mcz")]) == 2
    assert "truncated" in capsys.readouterr().err


def test_info_describes_a_large_plain_file_from_its_header_as_reading_would(tmp_path, monkeypatch, capsys):
    """`info` of a 3 GB TIFF read it all (or was refused by the decode budget); a header says as much."""
    from napari_microcomp import io_describe

    files = {"a.npy": np.zeros((1, 30, 40), np.uint16), "z.npy": np.zeros((5, 30, 40), np.float32),
             "rgb.npy": np.zeros((30, 40, 3), np.uint8)}
    for name, a in files.items():
        np.save(tmp_path / name, a)
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((4, 30, 40), np.uint16), imagej=True,
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 2.5}, resolution=(2.0, 2.0))
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((2, 30, 40), np.uint16), imagej=True, metadata={"axes": "CYX"})
    read = {n: io_describe.describe_image(tmp_path / n) for n in [*files, "s.tif", "c.tif"]}
    monkeypatch.setattr(io_describe, "HEADER_ONLY_BYTES", 1000)
    for name, want in read.items():
        got = io_describe.describe_image(tmp_path / name)
        assert got["scenes"] == want["scenes"], name
        assert any("from its header" in t for t in got.get("notes", [])) == (name not in ("rgb.npy", "c.tif")), name
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "2000")   # what compress refuses, info still describes
    assert main(["info", str(tmp_path / "s.tif")]) == 0
    out = capsys.readouterr().out
    assert "uint16 Z=4 Y=30 X=40" in out and "2.5 µm, 0.5 µm, 0.5 µm" in out and "compress-tiled" in out
    assert main(["compress", str(tmp_path / "s.tif"), "-c", "zstd"]) == 2
    assert "compress-tiled" in capsys.readouterr().err
    liar = tmp_path / "liar.npy"   # a header declaring far more than the file holds: one line, no traceback
    liar.write_bytes((tmp_path / "z.npy").read_bytes().replace(b"(5, 30, 40)", b"(5, 3000, 4000)"))
    assert main(["info", str(liar)]) == 2
    assert "not a readable NPY file" in capsys.readouterr().err


def test_info_names_colour_samples_and_extra_axes_as_compress_reads_them(tmp_path, capsys):
    """An RGB file was listed as Z=64 Y=80 X=3 and a 4D array as Z Y X S: info named axes compress does not see."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rgb.npy", rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 16, 20), np.uint16))
    np.save(tmp_path / "z.npy", np.zeros((3, 16, 20), np.uint16))   # a stack of three planes stays Z
    assert main(["info", str(tmp_path / "rgb.npy")]) == 0
    out = capsys.readouterr().out
    assert "uint8 Y=64 X=80 S=3" in out and "3 colour samples" in out and "--channel" in out
    assert main(["compress", str(tmp_path / "rgb.npy"), "--channel", "1", "-c", "zstd", "--no-metrics"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "four.npy")]) == 0
    assert "uint16 axis0=2 axis1=3 Y=16 X=20" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "z.npy")]) == 0
    out = capsys.readouterr().out
    assert "uint16 Z=3 Y=16 X=20" in out and "colour samples" not in out
