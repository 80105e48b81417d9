"""Hostile streams and odd arrays (issue 11): crafted learned payloads, thread counts and shapes are refused
before native code or big allocations run; out-of-range floats are refused or coded without hanging."""
import re
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from helpers import smooth_image  # noqa: E402
from napari_microcomp import container  # noqa: E402
from napari_microcomp._validate import check_image  # noqa: E402
from napari_microcomp.api import compress_array  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.errors import CodecError, InputError, MicrocompError, StreamError  # noqa: E402
from napari_microcomp.models import registry  # noqa: E402
from napari_microcomp import weights as wt  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    out = {}
    for arch, q in (("mbt2018-mean-vbr", None), ("bmshj2018-factorized", 4)):
        model = registry.build_model(arch, 4, N=8, M=8)
        path = d / f"{arch}.pt"
        wt.export_weights(model, arch, path, q, registry.model_widths(model), {"note": "untrained, test only"})
        out[arch] = str(path)
    return out


def _restream(data: bytes, edit_header=None, edit_payload=None) -> bytes:
    header, payloads = container.unpack(data)
    if edit_header:
        edit_header(header)
    if edit_payload:
        payloads = [edit_payload(p) for p in payloads]
    return container.pack(header, payloads)   # valid CRCs: only the content lies


def _bigger_latent(p: bytes) -> bytes:
    n, nd = struct.unpack_from("<BB", p, 0)
    shape = struct.unpack_from(f"<{nd}H", p, 2)
    return p[:2] + struct.pack(f"<{nd}H", *[s * 40 for s in shape]) + p[2 + 2 * nd:]


@pytest.mark.parametrize("arch", ["mbt2018-mean-vbr", "bmshj2018-factorized"])
def test_payload_declaring_a_bigger_latent_is_refused(weights, arch):
    img = smooth_image((96, 80), seed=1)
    data = get_codec(arch, quality=4, weights=weights[arch]).encode(img)
    with pytest.raises(StreamError, match="latent"):
        decode(_restream(data, edit_payload=_bigger_latent))


def test_hostile_thread_count_is_refused(weights):
    data = get_codec("mbt2018-mean-vbr", quality=4, weights=weights["mbt2018-mean-vbr"]).encode(
        smooth_image((64, 64), seed=2))
    bad = _restream(data, edit_header=lambda h: h.codec.update(threads=5000))
    with pytest.raises(MicrocompError, match="threads"):
        decode(bad)


def test_declared_size_above_budget_is_refused_before_allocating(monkeypatch):
    data = get_codec("zstd", lossless=True).encode(smooth_image((64, 64), seed=3))
    bad = _restream(data, edit_header=lambda h: h.__setattr__("shape", [60000, 60000, 60]))
    with pytest.raises(StreamError, match="decode budget"):
        decode(bad)
    monkeypatch.setenv(container.ENV_BUDGET, "1K")
    with pytest.raises(StreamError, match="decode budget"):
        decode(data)                       # 8 KiB > 1 KiB
    monkeypatch.setenv(container.ENV_BUDGET, "lots")
    with pytest.raises(StreamError, match="not a size"):
        decode(data)


def test_an_image_whose_coding_would_not_fit_in_memory_is_refused_with_the_way_round(monkeypatch, tmp_path, capsys):
    """A 0.84 GiB uint8 TIFF passed the decode budget and took 9.5 GB and rising to code whole: past the machine's
    memory the kernel kills the process without a word. The working set is checked first, and said."""
    from napari_microcomp import memory
    from napari_microcomp.cli import main

    monkeypatch.setattr(memory, "_SMALL", 0)
    monkeypatch.setattr(memory, "FIXED_BYTES", 0)
    monkeypatch.setenv(memory.ENV_WORK, "3M")
    small, big = smooth_image((64, 64), seed=1), smooth_image((512, 512), seed=2)   # 0.06 MiB / 4 MiB of work
    assert decode(get_codec("jpeg2k", quality=4).encode(small)).shape == small.shape
    with pytest.raises(InputError, match=r"needs about 4 MiB of memory, and 3 MiB is available.*compress-tiled"):
        get_codec("jpeg2k", quality=4).encode(big)
    assert decode(get_codec("tiled", inner="zstd", tile=128).encode(big)).shape == big.shape   # 8 B/px: 3 MiB
    np.save(tmp_path / "big.npy", big)
    assert main(["compress", str(tmp_path / "big.npy"), "-c", "jpegxl"]) == 2
    assert "compress-tiled" in capsys.readouterr().err and not (tmp_path / "big.npy.mcz").exists()
    monkeypatch.setenv(memory.ENV_WORK, "64G")
    assert decode(get_codec("jpeg2k", quality=4).encode(big)).shape == big.shape
    monkeypatch.setenv(memory.ENV_WORK, "plenty")
    with pytest.raises(InputError, match="not a size"):
        get_codec("jpeg2k", quality=4).encode(big)
    monkeypatch.delenv(memory.ENV_WORK)
    have = memory.available()
    assert have is None or have > 0

def test_floats_beyond_float32_are_refused():
    a = np.full((16, 16), 1e39, dtype=np.float64)
    a[0, 0] = 0
    with pytest.raises(InputError, match="float32 range"):
        get_codec("zstd", lossless=True).encode(a)


@pytest.mark.parametrize("make", [lambda r: r * 1e-300, lambda r: 1e6 + r * 1e-3, lambda r: r * 0 + 1e-300],
                         ids=["below-float32", "offset-swamps-range", "constant-below-float32"])
def test_float64_that_float32_cannot_hold_is_refused_not_zeroed(make):
    """float64 at 1e-300 was cast to all zeros, coded, and reported as PSNR inf (MSE underflowed)."""
    a = make(np.random.default_rng(0).random((16, 16)))
    for codec in ("jpeg2k", "zstd"):
        with pytest.raises(InputError, match="float32"):
            compress_array(a, codec, quality=5, with_ms_ssim=False)
    with pytest.raises(InputError) as info:
        check_image(a)
    lo, hi = str(info.value).split("(values ")[1].split(")")[0].split("..")
    assert lo != hi or a.min() == a.max()   # the message tells the bounds apart ("1000000..1000000" did not)
    ok = np.random.default_rng(0).random((16, 16)) * 1e-30 + 0.5e-30   # small but within float32: coded
    assert compress_array(ok, "jpeg2k", quality=8, with_ms_ssim=False).metrics["pearson_r"] > 0.99


def test_learned_codec_on_extreme_float_range_finishes(weights):
    a = np.linspace(-3.0e38, 3.0e38, 64 * 64, dtype=np.float32).reshape(64, 64)
    data = get_codec("mbt2018-mean-vbr", quality=4, weights=weights["mbt2018-mean-vbr"]).encode(a)
    rec = decode(data)
    assert rec.shape == a.shape and np.isfinite(rec).all()


def test_bad_threads_and_refine_parameters():
    for bad in (0, -1, 5000, True, 2.0):
        with pytest.raises(CodecError, match="threads"):
            get_codec("mbt2018-mean-vbr", quality=4, threads=bad)


@pytest.mark.parametrize("codec", ["zstd", "jpegxl-lossless", "tiled", "jpeg2k"])
def test_bad_quality_is_refused_even_where_lossless_ignores_it(codec):
    for bad in (0, 9, -1, 2 ** 70, "4", 4.5):
        with pytest.raises(CodecError, match="quality"):
            get_codec(codec, quality=bad)
    assert get_codec(codec, quality=3) is not None


def test_integers_beyond_float64_are_a_clean_refusal():
    """A Python int too large for numpy made np.isfinite raise TypeError instead of a CodecError."""
    with pytest.raises(CodecError, match="level"):
        get_codec("mbt2018-mean-vbr", level=2 ** 70)
    for huge in (10 ** 400, -10 ** 400):
        with pytest.raises(CodecError):
            get_codec("jpegxl", distance=huge)


def _smooth(shape, seed):
    from scipy.ndimage import gaussian_filter

    r = np.random.default_rng(seed)
    b = gaussian_filter(r.random(shape), 6)
    return (b - b.min()) / (b.max() - b.min())


RANGES = [(np.uint8, 0, 1), (np.uint8, 0, 255), (np.uint16, 0, 1), (np.uint16, 0, 255), (np.uint16, 0, 256),
          (np.uint16, 0, 4095), (np.uint16, 0, 65535), (np.uint16, 30000, 30050), (np.float32, 0, 1e-6)]


@pytest.mark.parametrize("codec", ["jpeg2k", "htj2k", "jpegxr", "lerc", "jpegxl", "jpegls"])
@pytest.mark.parametrize("dtype,lo,hi", RANGES, ids=[f"{d.__name__}-{lo}-{hi}" for d, lo, hi in RANGES])
def test_every_value_range_is_coded_or_refused_never_zeroed(codec, dtype, lo, hi):
    """A dim uint16 image (values < 256) used to decode to all zeros with jpeg2k q1–q5 (issue 11)."""
    a = (lo + _smooth((80, 72), 1) * (hi - lo))
    a = a.astype(dtype) if dtype == np.float32 else np.round(a).astype(dtype)
    for q in (3, 6):
        try:
            rec = decode(get_codec(codec, quality=q).encode(a))
        except MicrocompError:
            continue   # a clear refusal is allowed; a silent wrong answer is not
        r = np.corrcoef(a.ravel().astype(np.float64), rec.ravel().astype(np.float64))[0, 1]
        assert r >= 0.99, (codec, q, r)


@pytest.mark.parametrize("codec", ["jpeg2k", "htj2k", "jpegxr", "lerc", "jpegxl", "jpegls", "zstd"])
def test_constant_and_hot_pixel_images(codec):
    const = np.full((40, 40), 1234, np.uint16)
    q = {"lossless": True} if codec == "zstd" else {"quality": 4}
    rec = decode(get_codec(codec, **q).encode(const))
    np.testing.assert_array_equal(rec, const)             # lossy codecs too: a constant is coded exactly
    if codec not in ("jpegls", "zstd"):                    # float32 too (jpeg2k returned 412s for a constant 0.0)
        for v in (0.0, -0.0, 5.5):
            fc = np.full((40, 40), v, np.float32)
            np.testing.assert_array_equal(decode(get_codec(codec, quality=4).encode(fc)), fc)
    hot = np.full((40, 40), 100, np.uint16)
    hot[3, 3] = 60000
    try:
        rec = decode(get_codec(codec, **q).encode(hot))
    except MicrocompError:
        return   # htj2k refuses what it would wrap around: a clear refusal
    assert abs(int(rec[3, 3]) - 60000) < 6000 and np.median(np.abs(rec.astype(int) - 100)) < 600


def test_decoding_never_goes_online(weights, monkeypatch, tmp_path):
    """A stream naming a weights URL must not make decode download anything (issue 11)."""
    from napari_microcomp import weights as z

    def no_network(*a, **k):
        raise AssertionError("decode tried to download")

    import pooch
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(pooch, "retrieve", no_network)
    monkeypatch.setenv("MICROCOMP_CACHE", str(tmp_path / "cache"))
    data = get_codec("mbt2018-mean-vbr", quality=4, weights=weights["mbt2018-mean-vbr"]).encode(
        smooth_image((64, 64), seed=4))
    for url in ("https://example.invalid/mbt2018-mean-vbr-abcdef12.pth.tar", "http://example.invalid/x-abcdef12.pth"):
        bad = _restream(data, edit_header=lambda h, u=url: h.codec.update(weights=u))
        with pytest.raises(MicrocompError, match="never downloads"):
            decode(bad)
    # the same weights, put in a user folder under the usual name, are found by their fingerprint
    folder = tmp_path / "user"
    folder.mkdir()
    import shutil
    shutil.copy(weights["mbt2018-mean-vbr"], folder / "mbt2018-mean-vbr.pt")
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(folder))
    z.clear_cache()
    bad = _restream(data, edit_header=lambda h: h.codec.update(weights="https://example.invalid/w-abcdef12.pth"))
    assert decode(bad).shape == (64, 64)
    with pytest.raises(MicrocompError, match="http"):
        z.get_model("bmshj2018-hyperprior", 4, "http://example.invalid/x-abcdef12.pth")


@pytest.mark.parametrize("codec", ["jpeg2k", "htj2k", "jpegxr", "lerc", "jpegxl", "jpegls"])
def test_edited_classical_normalisation_is_refused(codec):
    """Classical streams carry the reconstruction checksum: an edited header cannot decode silently wrong."""
    a = np.round(_smooth((64, 64), 2) * 3000 + 100).astype(np.uint16)
    data = get_codec(codec, quality=5).encode(a)
    header, _ = container.unpack(data)
    assert "crc32" in header.check

    def edit(h):
        if h.norm.get("kind") == "stretch16":
            h.norm["offset"] += 7
        else:
            h.meta["native"] = {k: v * 2 for k, v in h.meta.get("native", {}).items()}
            h.check["crc32"] ^= 1     # no norm to edit: a flipped checksum must be caught just the same
    with pytest.raises(StreamError, match="checksum"):
        decode(_restream(data, edit_header=edit))


def test_tiles_decode_with_their_own_recorded_config(weights):
    """A tiled learned stream coded with another thread count decodes (each tile's own config is used)."""
    from napari_microcomp.codecs.tiled import TiledCodec

    vol = smooth_image((2, 70, 60), seed=8)
    inner = get_codec("bmshj2018-factorized", quality=4, weights=weights["bmshj2018-factorized"], threads=1)
    data = TiledCodec(inner=inner, tile=(1, 64, 64), halo=(0, 0, 0)).encode(vol)
    ref = decode(data)

    def outer_threads(h):
        h.codec["inner"]["threads"] = 3     # as if the outer config had been written elsewhere
    assert np.array_equal(decode(_restream(data, edit_header=outer_threads)), ref)


def test_cli_refuses_to_overwrite_and_reports_path_errors(tmp_path, capsys):
    from napari_microcomp.cli import main

    src = tmp_path / "a.npy"
    np.save(src, smooth_image((32, 32), seed=9))
    out = tmp_path / "a.mcz"
    assert main(["compress", str(src), str(out), "-c", "zstd", "--lossless"]) == 0
    before = out.read_bytes()
    assert main(["compress", str(src), str(out), "-c", "jpegxl"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["compress", str(src), str(out), "-c", "jpegxl", "--overwrite"]) == 0 and out.read_bytes() != before
    back = tmp_path / "back.npy"
    back.write_bytes(b"keep")
    assert main(["decompress", str(out), str(back)]) == 2 and back.read_bytes() == b"keep"
    assert "exists" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os
        if os.access(locked, os.W_OK):   # root ignores permissions: use a path under a file instead
            target = src / "x.mcz"
        else:
            target = locked / "x.mcz"
        rc = main(["compress", str(src), str(target), "-c", "zstd", "--lossless"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "error" in err
    finally:
        locked.chmod(0o700)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.suffix == ".part"]


def test_an_image_too_big_for_memory_is_one_clear_line_and_no_output(tmp_path, capsys, monkeypatch):
    """A header-only 60000² TIFF is under the decode budget, but coding it needs a float copy the
    machine cannot hold: the user gets the allocation and the way round it, not a traceback."""
    from napari_microcomp.cli import main
    from napari_microcomp.codecs import classical

    def no_memory(self, a, header):
        raise MemoryError("Unable to allocate 26.8 GiB for an array with shape (60000, 60000)")
    monkeypatch.setattr(classical.ImagecodecsCodec, "_encode_2d", no_memory)
    src = tmp_path / "a.npy"
    np.save(src, smooth_image((32, 32), seed=9))
    out = tmp_path / "a.mcz"
    assert main(["compress", str(src), str(out), "-c", "jpegxl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory (Unable to allocate 26.8 GiB" in err and "compress-tiled" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".part"]


def test_api_fixes():
    from concurrent.futures import ThreadPoolExecutor

    from napari_microcomp.api import compress_array

    # tiny images: every codec that encodes them, compress_array measures them too (SSIM is NaN below 11 px)
    tiny = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 300)
    res = compress_array(tiny, "jpegxl", quality=4)
    assert np.isnan(res.metrics["ssim"]) and res.metrics["psnr"] > 0
    # target mode keeps the caller's codec parameters
    img = smooth_image((96, 96), seed=11)
    res = compress_array(img, get_codec("jpeg2k", quality=4, numthreads=1), target="psnr=40")
    assert res.config.get("numthreads") == 1
    # one codec instance encodes different images concurrently and each stream is right
    codec = get_codec("jpegxl", quality=8)
    imgs = [smooth_image((64 + 8 * i, 64), seed=i) * (i + 1) // 4 for i in range(6)]
    with ThreadPoolExecutor(4) as ex:
        streams = list(ex.map(codec.encode, imgs))
    for a, s in zip(imgs, streams):
        r = decode(s)
        assert r.shape == a.shape and np.corrcoef(a.ravel(), r.ravel())[0, 1] > 0.99
    # a nested list comes back in the type numpy gives it, values intact where the codec is lossless
    rows = (tiny.astype(np.int64) - 5000).tolist()
    res = compress_array(rows, "zstd")
    assert res.reconstruction.dtype == np.asarray(rows).dtype
    assert np.array_equal(res.reconstruction, np.asarray(rows))
    # ragged nested lists are not an image: one clear line, in the API and in the codec directly
    for call in (lambda: compress_array([[1, 2], [3]], "zstd"), lambda: get_codec("zstd").encode([[1, 2], [3]])):
        with pytest.raises(InputError, match="nested lists of unequal lengths"):
            call()


def test_learned_tile_size_is_recorded(weights):
    data = get_codec("bmshj2018-factorized", quality=4, weights=weights["bmshj2018-factorized"]).encode(
        smooth_image((70, 70), seed=12))
    header, _ = container.unpack(data)
    assert header.codec["tile"] == 1024


def test_benchmark_exits_nonzero_when_rows_fail(tmp_path, monkeypatch, capsys):
    from napari_microcomp.cli import main

    src = tmp_path / "a.npy"
    np.save(src, smooth_image((64, 64), seed=13))
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(tmp_path / "none"))
    rc = main(["benchmark", str(src), "--codecs", "jpegxl", "mbt2018", "--qualities", "7", "--no-phase2",
               "--no-ms-ssim", "--quiet", "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert rc == 1 and "failed" in err


def test_temp_files_are_cleaned_and_outputs_get_the_users_mode(tmp_path):
    import os

    from napari_microcomp.io_write import atomic_write_bytes
    from napari_microcomp.tiled import compress

    stale = tmp_path / ".out.mcz.999999999.abc.part"   # from a killed run (that pid does not exist)
    stale.write_bytes(b"x" * 100)
    alive = tmp_path / f".out.mcz.{os.getppid()}.abc.part"  # a running process's file is left alone
    alive.write_bytes(b"y")
    old = os.umask(0o022)
    try:
        compress(smooth_image((2, 40, 40), seed=1), tmp_path / "out.mcz", "zstd")
        atomic_write_bytes(tmp_path / "b.bin", b"data")
    finally:
        os.umask(old)
    assert not stale.exists() and alive.exists()
    assert (tmp_path / "out.mcz").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """After a power cut the target must be the old file or the whole new one, not an empty file renamed."""
    import os

    from napari_microcomp import io_write

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(io_write.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                          real_fsync(fd)))
    monkeypatch.setattr(io_write.os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    io_write.atomic_write_bytes(tmp_path / "b.bin", b"data")
    (kind0, tmp), (kind1, target), (kind2, folder) = events
    assert (kind0, kind1, kind2) == ("fsync", "replace", "fsync")
    assert os.path.dirname(tmp) == str(tmp_path) and target == str(tmp_path / "b.bin") and folder == str(tmp_path)
    assert (tmp_path / "b.bin").read_bytes() == b"data"


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "vol.npy"
    np.save(src, np.random.default_rng(0).integers(0, 65535, (64, 512, 512), dtype=np.uint16))
    out = tmp_path / "vol.mcz"
    proc = subprocess.Popen([sys.executable, "-m", "napari_microcomp.cli", "compress-tiled", str(src), str(out),
                             "-c", "jpegxl", "-q", "8", "--tile", "1", "512", "512"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".vol.mcz.*")):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not out.exists() and not list(tmp_path.glob(".vol.mcz.*"))


def test_zstd_bomb_is_refused_without_inflating():
    import imagecodecs

    data = get_codec("zstd", lossless=True).encode(smooth_image((32, 32), seed=2))
    bomb = imagecodecs.zstd_encode(bytes(50_000_000), level=1)
    # decoding into a buffer of the declared size: zstd stops at its end instead of inflating 50 MB
    with pytest.raises(StreamError, match="frame declares|too small"):
        decode(_restream(data, edit_payload=lambda p: bomb))


def test_nested_json_and_huge_tile_tables_are_refused():
    data = get_codec("zstd", lossless=True).encode(smooth_image((32, 32), seed=3))
    nested = _restream(data, edit_header=lambda h: h.meta.update(x=[[[[[]]]]]))
    assert decode(nested).shape == (32, 32)
    # a header that nests 100k levels deep: one-line StreamError, not a RecursionError
    import struct as st
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    prefix = st.pack("<4sHII", container.MAGIC, 1, len(deep), container.crc32(deep))   # plain JSON: format 1
    with pytest.raises(StreamError):
        decode(prefix + deep)
    from napari_microcomp.codecs.tiled import TiledCodec

    t = TiledCodec(inner="zstd", tile=(1, 16, 16), halo=(0, 0, 0)).encode(smooth_image((2, 32, 32), seed=4))

    def huge(h):
        h.shape = [2, 60000, 60000]
        h.meta["tiles"]["edges"] = [[0, 1, 2], list(range(0, 60001, 1)), list(range(0, 60001, 1))]
    with pytest.raises(StreamError):
        decode(_restream(t, edit_header=huge))


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {os.environ.get('MCZ_PWNED', '/tmp/mcz-pwned')}",))


def test_crafted_pickles_run_nothing_through_any_entry_point(tmp_path, monkeypatch):
    import os
    import pickle

    from napari_microcomp.cli import main
    from napari_microcomp.labelfree import load_model

    marker = tmp_path / "pwned"
    monkeypatch.setenv("MCZ_PWNED", str(marker))
    evil = tmp_path / "mbt2018-mean-vbr.pt"
    torch.save({"format": wt.FORMAT, "arch": "mbt2018-mean-vbr", "payload": _Boom()}, evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"x": _Boom()}))
    img = smooth_image((64, 64), seed=1)
    src = tmp_path / "img.npy"
    np.save(src, img)
    for f in (evil, raw):
        with pytest.raises(MicrocompError):                                   # API weights=
            get_codec("mbt2018-mean-vbr", quality=3, weights=str(f)).encode(img)
        with pytest.raises(Exception):                                        # label-free models
            load_model(str(f))
        assert main(["compress", str(src), str(tmp_path / "o.mcz"), "-c", "mbt2018-mean-vbr",
                     "--weights", str(f), "--overwrite"]) == 2                # CLI --weights
        for flag in ("--init", "--resume"):                                   # training
            assert main(["train-codec", "--arch", "mbt2018-mean-vbr", "--data", str(src), "--steps", "1",
                         flag, str(f)]) == 2
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(tmp_path))                    # a weights folder
    wt.clear_cache()
    with pytest.raises(MicrocompError):
        get_codec("mbt2018-mean-vbr", quality=3, weights="transmitted").encode(img)
    wt.clear_cache()
    assert not marker.exists() and not os.path.exists("/tmp/mcz-pwned")


@pytest.mark.parametrize("codec", ["jpegxl-lossless", "jpeg2k", "jpegls", "zstd", "htj2k", "jpegxr", "lerc"])
@pytest.mark.parametrize("dtype,lo,hi", RANGES, ids=[f"{d.__name__}-{lo}-{hi}" for d, lo, hi in RANGES])
def test_lossless_is_bit_exact_or_refused(codec, dtype, lo, hi):
    """The napari writer saves layers losslessly with JPEG XL: uint16 data < 256 used to raise a raw JpegxlError."""
    a = (lo + _smooth((48, 40), 5) * (hi - lo))
    a = a.astype(dtype) if dtype == np.float32 else np.round(a).astype(dtype)
    kw = {} if codec == "jpegxl-lossless" else {"lossless": True}
    try:
        rec = decode(get_codec(codec, **kw).encode(a))
    except MicrocompError:
        return
    np.testing.assert_array_equal(rec, a)


def test_volumetric_stream_with_hostile_thread_count_is_refused():
    """Found by the 50k fuzz run: threads=65536 in a factorized3d stream made libgomp abort the process."""
    if not wt.find_weights("mbt2018-mean-vbr3d", 4, "fluorescence"):
        pytest.skip("no shipped 3D weights")
    data = get_codec("mbt2018-mean-vbr3d", quality=4).encode(smooth_image((8, 64, 64), seed=1))
    for bad in (65536, 0, -3):
        with pytest.raises(MicrocompError, match="threads"):
            decode(_restream(data, edit_header=lambda h, b=bad: h.codec.update(threads=b)))


def test_a_tile_or_block_too_big_to_decode_is_refused_before_any_work(weights, monkeypatch):
    """A stream's own ``tile`` (2D) or block list (3D) sets the decoder's working memory, ~190 bytes per pixel
    for one 2D tile: one 16384² tile asked for ~50 GB, under a decode budget that only counted the output."""
    data = get_codec("mbt2018-mean-vbr", quality=4, weights=weights["mbt2018-mean-vbr"]).encode(
        smooth_image((64, 64), seed=2))
    big = _restream(data, edit_header=lambda h: (h.__setattr__("shape", [16384, 16384]), h.codec.update(tile=16384)))
    with pytest.raises(StreamError, match=r"16384×16384 tile needs ~64 GiB of working memory"):
        decode(big)
    monkeypatch.setenv(container.ENV_BUDGET, "512K")   # the same rule at encode, with the advice that fits
    with pytest.raises(CodecError, match="choose a smaller tile"):
        get_codec("mbt2018-mean-vbr", quality=4, weights=weights["mbt2018-mean-vbr"]).encode(
            smooth_image((64, 64), seed=2))
    monkeypatch.delenv(container.ENV_BUDGET)
    if not wt.find_weights("mbt2018-mean-vbr3d", 4, "fluorescence"):
        return
    vol = get_codec("mbt2018-mean-vbr3d", quality=4).encode(smooth_image((8, 64, 64), seed=1))

    def one_huge_block(h):
        h.shape = [64, 2048, 2048]
        h.meta["blocks"][0].update(core=[[0, 64], [0, 2048], [0, 2048]], outer=[[0, 64], [0, 2048], [0, 2048]])
    with pytest.raises(StreamError, match="larger than any this codec writes"):
        decode(_restream(vol, edit_header=one_huge_block))


@pytest.mark.parametrize("arch", ["mbt2018-mean-vbr", "bmshj2018-factorized", "mbt2018-mean-vbr3d"])
def test_damaged_intensity_range_is_refused_before_decoding(weights, arch):
    """The fuzzer's NaN/1e308 in norm lo/hi went through float64 maths (RuntimeWarnings, inf/NaN pixels)
    until the checksum refused the result; the header is now checked first."""
    if arch.endswith("3d"):
        if not wt.find_weights(arch, 4, "fluorescence"):
            pytest.skip("no shipped 3D weights")
        data = get_codec(arch, quality=4).encode(smooth_image((4, 32, 32), seed=1))
    else:
        data = get_codec(arch, quality=4, weights=weights[arch]).encode(smooth_image((48, 40), seed=1))
    for lo, hi in ((float("nan"), 1.0), (0.0, float("inf")), (-1e308, 1e308), (5.0, 1.0), ("x", 1.0)):
        with pytest.raises(StreamError, match="intensity range"):
            decode(_restream(data, edit_header=lambda h, a=lo, b=hi: h.norm.update(lo=a, hi=b)))


def test_damaged_htj2k_payload_is_one_clear_error_not_a_printed_traceback(capfd):
    """OpenJPH fails inside a Cython callback that cannot raise: Python printed 'Exception ignored in …' with a
    traceback per damaged tile, then the checksum refused the garbage. Now the decoder refuses it itself."""
    header, payloads = container.unpack(get_codec("htj2k", quality=4).encode(smooth_image((64, 64), seed=1)))
    rng = np.random.default_rng(0)
    said = set()
    for _ in range(60):
        b = bytearray(payloads[0])
        for j in rng.integers(0, len(b), 3):
            b[j] = int(rng.integers(0, 256))
        with pytest.raises(StreamError) as info:
            decode(container.pack(header, [bytes(b)]))
        said.add(str(info.value).split("(")[0])
    assert "htj2k: damaged codestream " in said   # the callback's error is seen, not only the checksum's
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "Traceback" not in err


def _jxl_with_size(p: bytes, rows: int, cols: int) -> bytes:
    """The JPEG XL payload with its SizeHeader rewritten to rows×cols (30-bit fields), the rest bit-shifted."""
    from napari_microcomp.codestreams import _Bits

    i = p.find(b"\xff\x0a")
    bits = _Bits(p[i + 2:])
    small = bits.u(1)
    bits.u(5) if small else bits.u32_size()
    if bits.u(3) == 0:
        bits.u(5) if small else bits.u32_size()
    header = 0b0 | 3 << 1 | (rows - 1) << 3 | 0 << 33 | 3 << 36 | (cols - 1) << 38   # 68 bits
    rest = int.from_bytes(p[i + 2:], "little") >> bits.pos
    n = 8 * len(p[i + 2:]) - bits.pos + 68
    return p[:i + 2] + (rest << 68 | header).to_bytes((n + 7) // 8, "little")


@pytest.mark.parametrize("codec", ["jpeg2k", "htj2k", "jpegls", "lerc", "jpegxr", "jpegxl", "jpegxl-lossless"])
def test_codestream_dims_are_checked_before_the_native_decoder(codec):
    """A payload whose own codestream declares a huge image must not reach the allocating native decoder."""
    import struct as st

    a = np.round(_smooth((40, 56), 3) * 3000).astype(np.uint16)
    data = get_codec(codec, quality=5).encode(a)

    def grow(p: bytes) -> bytes:
        b = bytearray(p)
        if codec in ("jpeg2k", "htj2k"):
            i = b.find(b"\xff\x4f\xff\x51")
            b[i + 8:i + 16] = st.pack(">II", 60000, 60000)
            j = b.find(b"ihdr")
            if j >= 0:
                b[j + 4:j + 12] = st.pack(">II", 60000, 60000)
        elif codec == "jpegls":
            i = b.find(b"\xff\xf7")
            b[i + 5:i + 9] = st.pack(">HH", 60000, 60000)
        elif codec == "jpegxr":   # a 15 kB payload edited so made jxrlib allocate 7.2 GB and run 58 s
            i = b.find(b"WMPHOTO")
            b[i + 12:i + 16] = st.pack(">HH", 59999, 59999)
            for tag in (0xBC80, 0xBC81):
                j = b.find(st.pack("<HHI", tag, 4, 1))
                b[j + 8:j + 12] = st.pack("<I", 60000)
        elif codec.startswith("jpegxl"):   # a real 42 kB JPEG XL stream of a flat 16000² image decodes to 512 MB
            return _jxl_with_size(p, 60000, 60000)
        else:
            b[14:22] = st.pack("<ii", 60000, 60000)
        return bytes(b)
    with pytest.raises(StreamError, match="codestream declares 60000"):
        decode(_restream(data, edit_payload=grow))


@pytest.mark.parametrize("comp", ["jpegxr", "jpeg2000", "lerc"])
def test_tiff_tiles_refuses_a_tile_or_page_declaring_another_size_before_decoding(comp):
    """The study's TIFF-of-tiles payload: tifffile hands each tile to the native decoder, which allocated what
    a crafted tile declared (20000² → 800 MB, 5 s) before tifffile refused the reshape."""
    import io
    import struct as st

    import tifffile

    a = np.round(_smooth((40, 56), 3) * 3000).astype(np.uint16)
    data = get_codec("tiff-tiles", compression=comp).encode(a)
    assert np.array_equal(decode(data).shape, a.shape)

    def big_tile(p: bytes) -> bytes:
        page = tifffile.TiffFile(io.BytesIO(p)).pages[0]
        b, off = bytearray(p), page.dataoffsets[1]
        if comp == "jpegxr":
            i = b.find(b"WMPHOTO", off)
            b[i + 12:i + 16] = st.pack(">HH", 19999, 19999)
            for tag in (0xBC80, 0xBC81):
                j = b.find(st.pack("<HHI", tag, 4, 1), off)
                b[j + 8:j + 12] = st.pack("<I", 20000)
        elif comp == "jpeg2000":
            i = b.find(b"\xff\x4f\xff\x51", off)
            b[i + 8:i + 16] = st.pack(">II", 20000, 20000)
        else:
            b[off + 14:off + 22] = st.pack("<ii", 20000, 20000)
        return bytes(b)

    def big_page(p: bytes) -> bytes:
        b = bytearray(p)
        j = b.find(st.pack("<HHQ", 256, 3, 1))   # ImageWidth, SHORT, one value: a BigTIFF directory entry
        b[j + 12:j + 14] = st.pack("<H", 60000)
        return bytes(b)
    with pytest.raises(StreamError, match="tile's codestream declares 20000"):
        decode(_restream(data, edit_payload=big_tile))
    with pytest.raises(StreamError, match="not one"):
        decode(_restream(data, edit_payload=big_page))


def test_jpegxr_size_fields_must_agree_and_jpegxl_size_header_is_read_exactly():
    import struct as st

    import imagecodecs

    from napari_microcomp.codestreams import jxl_dims

    a = np.round(_smooth((40, 56), 3) * 3000).astype(np.uint16)

    def image_header_only(p: bytes) -> bytes:
        b = bytearray(p)
        i = b.find(b"WMPHOTO")
        b[i + 12:i + 16] = st.pack(">HH", 59999, 59999)
        return bytes(b)
    with pytest.raises(StreamError, match="disagree on the size"):
        decode(_restream(get_codec("jpegxr", quality=5).encode(a), edit_payload=image_header_only))
    # the parser against libjxl's own encoder: small/large fields and every aspect-ratio code
    for shape in [(8, 8), (1, 1), (100, 133), (90, 160), (1000, 1250), (600, 720), (257, 300), (3, 1000)]:
        payload = bytes(imagecodecs.jpegxl_encode(np.zeros(shape, np.uint16), distance=1.0))
        assert jxl_dims(payload) == shape
        assert jxl_dims(_jxl_with_size(payload, *shape)) == shape


@pytest.mark.parametrize("name,content", [
    ("empty.tif", b""), ("garbage.tif", b"II*\x00" + bytes(range(256)) * 8), ("garbage.czi", bytes(range(256)) * 20),
    ("garbage.nd2", bytes(range(256)) * 20), ("text.png", b"hello world"), ("bad.npy", b"\x93NUMPY garbage"),
    ("header-only.tif", b"II*\x00\x08\x00\x00\x00")])
def test_damaged_files_get_one_clear_line(tmp_path, caplog, name, content):
    """A corrupt or mislabelled file: which file, that it is damaged or not that format, and the reader's
    first line only (not a page of 'install this plugin' advice for a reader that is installed, nor the
    readers' own log lines about what they tried)."""
    import logging

    from napari_microcomp.io import read_image

    path = tmp_path / name
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING), pytest.raises(InputError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"could not read {name}: not a readable") and "\n" not in msg and len(msg) < 400
    assert not caplog.records, [r.getMessage()[:80] for r in caplog.records]


def test_complex_pixels_are_refused_with_advice():
    from napari_microcomp.api import compress_array

    with pytest.raises(InputError, match="complex pixel values"):
        compress_array(np.zeros((16, 16), np.complex64), "jpeg2k", quality=4)


def test_masks_and_grey_alpha_get_advice_not_a_wrong_reason(tmp_path):
    from napari_microcomp.api import compress_array
    from napari_microcomp.cli import main

    with pytest.raises(InputError, match=r"mask.*astype\(numpy.uint8\)"):
        compress_array(np.zeros((16, 16), bool), "jpeg2k", quality=4)
    with pytest.raises(InputError, match="expected integer or floating-point"):
        compress_array(np.zeros((16, 16), "U1"), "jpeg2k", quality=4)
    with pytest.raises(InputError, match="mask"):   # the tile-by-tile path says the same
        get_codec("tiled", inner=get_codec("jpeg2k", quality=4)).encode(np.zeros((32, 32), bool))
    # a grey+alpha PNG (Y, X, 2) was refused as "too small"
    from PIL import Image

    la = np.dstack([np.full((40, 50), 90, np.uint8), np.tile(np.arange(50, dtype=np.uint8), (40, 1))])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")   # a varying alpha: not a plain grey image
    with pytest.raises(InputError, match="grey\+alpha"):
        compress_array(np.zeros((40, 50, 2), np.uint8), "jpeg2k", quality=4)
    assert main(["compress", str(tmp_path / "la.png"), str(tmp_path / "la.mcz"), "-c", "jpeg2k"]) == 2
    assert main(["compress", str(tmp_path / "la.png"), str(tmp_path / "la.mcz"), "-c", "jpeg2k",
                 "--channel", "0"]) == 0
    # an opaque alpha adds nothing: read as the grey image it is
    Image.fromarray(la[..., 0]).convert("LA").save(tmp_path / "opaque.png")
    assert main(["compress", str(tmp_path / "opaque.png"), str(tmp_path / "o.mcz"), "-c", "jpeg2k"]) == 0


def _tiff_declaring(path, side: int) -> None:
    """A 64x64 zlib TIFF whose header is edited to declare ``side`` x ``side`` pixels in its one strip."""
    import io as _io
    import struct

    import tifffile

    buf = _io.BytesIO()
    tifffile.imwrite(buf, np.zeros((64, 64), np.uint16), compression="zlib", rowsperstrip=64)
    b = bytearray(buf.getvalue())
    off = struct.unpack("<I", b[4:8])[0]
    for i in range(struct.unpack("<H", b[off:off + 2])[0]):
        e = off + 2 + 12 * i
        tag, typ = struct.unpack("<HH", b[e:e + 4])
        if tag in (256, 257, 278):  # ImageWidth, ImageLength, RowsPerStrip (one strip, as listed)
            b[e + 8:e + 12] = struct.pack("<H", side) + b"\0\0" if typ == 3 else struct.pack("<I", side)
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_a_file_declaring_more_pixels_than_the_budget_is_refused_before_reading(tmp_path, monkeypatch, suffix):
    from napari_microcomp.io import read_image

    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1M")
    path = tmp_path / f"bomb{suffix}"
    if suffix == ".tif":
        _tiff_declaring(path, 4000)               # 32 MB declared, a few hundred bytes on disk
    else:
        np.save(path, np.zeros((1000, 1000), np.uint16))   # a real 2 MB array
    with pytest.raises(InputError, match=r"declares a uint16 image .* above the decode budget"):
        read_image(path)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1G")
    if suffix == ".npy":
        assert read_image(path)[0].shape == (1000, 1000)


def _png_declaring(path, side: int) -> None:
    """A valid 16-bit greyscale PNG of ``side``² zeros: a few kB on disk."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\0" + bytes(2 * side)) * side
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def test_png_declaring_more_than_the_budget_or_a_bomb_is_refused_before_reading(tmp_path, monkeypatch):
    from napari_microcomp.io import read_image

    path = tmp_path / "big.png"
    _png_declaring(path, 1000)                   # 2 MB of pixels
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1M")
    with pytest.raises(InputError, match=r"declares a uint16 image .* above the decode budget"):
        read_image(path)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1G")
    assert read_image(path)[0].shape == (1000, 1000)
    _png_declaring(path, 15000)                  # 225 Mpx: Pillow's decompression-bomb guard, said as such
    with pytest.raises(InputError, match="Pillow refuses such PNG/JPEG files; if it is genuine, convert it to TIFF"):
        read_image(path)


def test_animated_png_counts_every_frame_against_the_budget(tmp_path, monkeypatch):
    """An animated PNG reads as a stack, but only one frame was held to the budget: 100 frames of 1000² from a
    200 kB file became 100 MB (10^4 frames of 4000² would be 160 GB)."""
    from PIL import Image

    from napari_microcomp.io import read_image

    frames = [Image.fromarray(np.full((200, 200), 7 * (k % 2), np.uint8)) for k in range(50)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:], duration=10)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1M")   # one frame (40 kB) fits, 50 (2 MB) do not
    with pytest.raises(InputError, match=r"shape \(50, 200, 200, 1\) .* above the decode budget"):
        read_image(tmp_path / "anim.png")
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1G")
    assert read_image(tmp_path / "anim.png")[0].shape == (50, 200, 200)


@pytest.mark.parametrize("change", ["huge width", "text width", "unknown width", "wrong width", "missing tensor",
                                    "unknown arch", "no state dict", "list in state dict", "cdf rows",
                                    "cdf negative row"])
def test_crafted_codec_weight_file_is_refused_before_allocating(tmp_path, change):
    """A weight file is user input (``weights=path``): its declared widths are checked before a
    model is built (M=10**6 tried to allocate 150 TB), and a mismatch is one clear error."""
    m = registry.build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    good = wt.export_weights(m, "mbt2018-mean-vbr", tmp_path / "good.pt", None, {"N": 8, "M": 8}, {})
    d = torch.load(good, weights_only=True)
    sd = dict(d["state_dict"])
    sd.pop("g_s.0.weight")
    d = {"huge width": dict(d, widths={"N": 8, "M": 10 ** 6}), "text width": dict(d, widths={"N": "8", "M": 8}),
         "unknown width": dict(d, widths={"N": 8, "M": 8, "K": 2}), "wrong width": dict(d, widths={"N": 8, "M": 16}),
         "missing tensor": dict(d, state_dict=sd), "unknown arch": dict(d, arch="nope"),
         "no state dict": {k: v for k, v in d.items() if k != "state_dict"},
         "list in state dict": dict(d, state_dict=dict(sd, extra=[1, 2])),
         # the bottleneck table is stored without padding: its row lengths must account for every entry
         "cdf rows": dict(d, state_dict=dict(d["state_dict"], **{
             "entropy_bottleneck._cdf_length": d["state_dict"]["entropy_bottleneck._cdf_length"] + 1})),
         "cdf negative row": dict(d, state_dict=dict(d["state_dict"], **{
             "entropy_bottleneck._cdf_length": -d["state_dict"]["entropy_bottleneck._cdf_length"]}))}[change]
    bad = tmp_path / "bad.pt"
    torch.save(d, bad)
    from napari_microcomp.errors import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="bad.pt"):
        wt.load_weights(bad)
    odd = tmp_path / "odd.pt"   # metadata that is not a mapping is only metadata: the weights still load
    torch.save(dict(torch.load(good, weights_only=True), meta="x"), odd)
    assert wt.load_weights(odd).meta["widths"] == {"N": 8, "M": 8}


@pytest.mark.parametrize("change", ["mask sees ahead", "mask shape", "too few taps"])
def test_crafted_context_model_file_is_refused(tmp_path, change):
    """The causal mask comes from the architecture: a file's mask that lets the context read symbols the
    decoder has not decoded yet would write streams that decode wrongly, so it is refused."""
    m = registry.build_model("mbt2018", 4, N=8, M=8)
    good = wt.export_weights(m, "mbt2018", tmp_path / "good.pt", 4, {"N": 8, "M": 8}, {})
    d = torch.load(good, weights_only=True)
    sd, mask = dict(d["state_dict"]), m.context_prediction.mask
    if change == "too few taps":
        sd["context_prediction.weight"] = sd["context_prediction.weight"][:-1]
    else:
        full = torch.zeros(mask.shape, dtype=torch.float16)
        full[mask.bool()] = sd["context_prediction.weight"]
        sd.update({"context_prediction.weight": full,
                   "context_prediction.mask": torch.ones_like(full) if change == "mask sees ahead" else full[:1]})
    bad = tmp_path / "bad.pt"
    torch.save(dict(d, state_dict=sd), bad)
    from napari_microcomp.errors import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError, match="bad.pt"):
        wt.load_weights(bad)


@pytest.mark.parametrize("arch", [{"in_channels": 1, "out_channels": 1, "depth": 4, "base": 10 ** 6, "ndim": 2},
                                  {"in_channels": 1, "out_channels": 1, "depth": 4.5, "base": 16, "ndim": 2},
                                  {"in_channels": 1, "out_channels": 1, "depth": 4, "base": 16}, None])
def test_crafted_labelfree_weight_file_is_refused_before_allocating(tmp_path, arch):
    from napari_microcomp.models.unet import UNet

    net = UNet(depth=2, base=4)
    meta = {"kind": "unet", "arch": arch}
    p = wt.export_labelfree(tmp_path / "lf.pt", net.state_dict(), meta)
    with pytest.raises(MicrocompError, match="architecture"):
        wt.read_labelfree(p)


def test_truncated_jpegls_payload_is_refused_before_charls():
    """CharLS spent ~7 s failing on a payload cut before its EOI marker (found by the stream fuzzer)."""
    from napari_microcomp import container
    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.errors import StreamError

    a = (np.arange(64 * 80).reshape(64, 80) % 977).astype(np.uint16)
    header, payloads = container.unpack(get_codec("jpegls", quality=4).encode(a))
    cut = container.pack(header, [payloads[0][: len(payloads[0]) // 2]])
    with pytest.raises(StreamError, match="EOI"):
        decode(cut)


def test_user_meta_cannot_steer_the_decoder_and_must_be_plain_json():
    img = (np.arange(4096).reshape(64, 64) % 3000).astype(np.uint16)
    # keys the codecs write for themselves (e.g. copied from another stream's info) are dropped
    out = decode(get_codec("zstd").encode(img, meta={"source_dtype": "int8", "bits": 3, "note": "kept"}))
    assert out.dtype == np.uint16 and np.array_equal(out, img)
    assert not np.array_equal(decode(get_codec("jpeg2k", quality=1).encode(img, meta={"constant": True})), img)
    data = get_codec("zstd").encode(img, meta={"gain": np.float32(2.5), "n": np.int64(3)})
    assert container.unpack(data)[0].meta["gain"] == 2.5
    for bad in ([1, 2], {"x": object()}, {"x": float("nan")}, {1: "a"}):
        with pytest.raises(InputError, match="meta"):
            get_codec("zstd").encode(img, meta=bad)


@pytest.mark.parametrize("codec", ["jpeg2k", "jpegxl"])
def test_float32_near_the_range_limits_is_coded_in_float64(codec):
    """(a - offset) in float32 overflowed for data spanning ±3.4e38 and every positive value clipped."""
    a = np.linspace(-3.4e38, 3.4e38, 4096, dtype=np.float32).reshape(64, 64)
    err = np.abs(decode(get_codec(codec, quality=8).encode(a)).astype(np.float64) - a).max()
    assert err < 0.01 * 6.8e38
    tiny = (np.linspace(0, 1, 4096).reshape(64, 64) * 1e-40).astype(np.float32)   # subnormal range
    assert len(np.unique(decode(get_codec(codec, quality=8).encode(tiny)))) > 1000


def test_labelfree_normalization_of_extreme_ranges():
    from napari_microcomp.labelfree.normalize import DEFAULT_SCHEME, normalize

    a = np.linspace(-3.4e38, 3.4e38, 4096, dtype=np.float32).reshape(64, 64)
    n = normalize(a, DEFAULT_SCHEME)
    assert np.isfinite(n).all() and -0.1 < n.min() < 0.1 and 0.9 < n.max() < 1.1
    spike = np.zeros((64, 64), np.float32)
    spike[0, 0], spike[0, 1] = 3e38, 1e-38
    spike[1:, :] = np.linspace(0, 1e-37, 64 * 63).reshape(63, 64)
    with pytest.raises(InputError, match="orders of magnitude"):
        normalize(spike, DEFAULT_SCHEME)


def test_parameters_of_the_wrong_kind_get_clear_errors(monkeypatch):
    from napari_microcomp import metrics

    img = (np.arange(4096).reshape(64, 64) % 999).astype(np.uint16)
    for codec, kw in [("jpegxl", {"distance": "abc"}), ("jpegxl", {"distance": float("nan")}),
                      ("jpeg2k", {"level": "x"}), ("jpegls", {"near": [1]}), ("zstd", {"level": {}}),
                      ("jpegxl", {"quality": float("nan")}), ("jpegxl", {"quality": float("inf")}),
                      ("jpegxl", {"quality": [4]}), ("jpegxl", {"distance": 2.0, "effort": "7"})]:
        with pytest.raises(CodecError):
            get_codec(codec, **kw).encode(img)
    for name in (None, 5):
        with pytest.raises(CodecError, match="string"):
            get_codec(name)
    for bad in (0, -5, float("nan"), "x"):
        with pytest.raises(InputError, match="data_range"):
            metrics.psnr(img, img + 1, bad)
    assert metrics.psnr(img, img + 1, None) == metrics.psnr(img, img + 1)
    with pytest.raises(InputError):
        metrics.compression_ratio(img, 0)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "inf")
    with pytest.raises(StreamError, match="not a size"):
        decode(get_codec("zstd").encode(img))


def test_the_encoder_never_writes_a_header_its_decoder_refuses():
    img = np.zeros((16, 16), np.uint16)
    with pytest.raises(InputError, match="too large"):
        get_codec("zstd").encode(img, meta={"note": "a" * (17 << 20)})


def test_labelfree_arguments_are_checked(tmp_path):
    from napari_microcomp.labelfree import load_model

    with pytest.raises(InputError, match="device"):
        load_model("unet2d-isl-dapi", device="foo")
    m = load_model("unet2d-isl-dapi")
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    for kw in ({"tile": [32, 48]}, {"overlap": [8, 8]}, {"tile": float("nan")}, {"batch": 0}):
        with pytest.raises(InputError):
            m.predict(img, **kw)


@pytest.mark.parametrize("codec", ["tiff-tiles", "jpeg2k", "jpegxl", "lerc", "zstd"])
def test_big_endian_input_codes_like_native(codec):
    # a big-endian TIFF or FITS reads as '>u2': tiff-tiles once coded its raw bytes (PSNR -6 dB)
    a = smooth_image((64, 80))
    native = compress_array(a, codec, quality=4, with_ms_ssim=False)
    swapped = compress_array(a.astype(">u2"), codec, quality=4, with_ms_ssim=False)
    assert native.data == swapped.data
    assert np.array_equal(swapped.reconstruction, native.reconstruction)
    assert swapped.metrics["psnr"] == native.metrics["psnr"]


@pytest.mark.parametrize("shape, squeezed", [((40, 56, 1), (40, 56)), ((1, 1, 40, 56), (40, 56)),
                                             ((1, 1, 3, 40, 56), (3, 40, 56)), ((3, 1, 40, 56), (3, 40, 56))])
def test_length_one_axes_are_named_with_the_fix(shape, squeezed):
    """(Y, X, 1) used to be called "too small"; a TCZYX array with T = C = 1 "select one channel"."""
    a = np.zeros(shape, np.uint16)
    with pytest.raises(InputError, match=re.escape(f"axes of length 1; drop them (numpy.squeeze) to code it "
                                                   f"as a {len(squeezed)}D image of shape {squeezed}")):
        compress_array(a, "zstd")
    compress_array(np.squeeze(a) + 1, "zstd")   # the suggested fix works
    one = np.ones((1, 40, 56), np.uint16)   # a 1-slice stack stays one
    assert compress_array(one, "zstd").reconstruction.shape == (1, 40, 56)


@pytest.mark.parametrize("shape, why", [((), "a single value is not an image"),
                                        ((1, 1, 1, 1, 1), "a single value is not an image"),
                                        ((100,), "a 1D signal is not an image"),
                                        ((1, 1, 100, 1), "a 1D signal is not an image"),
                                        ((2, 3, 40, 56), "select one channel/time point first")])
def test_too_few_or_too_many_axes_say_what_to_do(shape, why):
    """Only extra axes are fixed by picking a channel; a 1D signal or a single value never was."""
    with pytest.raises(InputError, match=re.escape(why)):
        compress_array(np.zeros(shape, np.uint16), "zstd")


def test_a_masked_array_is_refused_rather_than_losing_its_mask():
    img = smooth_image((64, 64))
    m = np.ma.masked_greater(img, np.percentile(img, 90))
    with pytest.raises(InputError, match=r"masked pixel\(s\).*m\.filled"):
        compress_array(m, "jpeg2k", quality=4)
    # nothing masked: nothing to lose, coded like its data
    r = compress_array(np.ma.masked_array(img, mask=False), "jpeg2k", quality=4)
    assert r.data == compress_array(img, "jpeg2k", quality=4).data


def test_jpegxr_headers_that_crashed_jxrlib_are_refused_in_a_child_process(tmp_path):
    """One-byte edits of a JPEG XR header killed the process inside jxrlib (SIGSEGV, SIGFPE: the file fuzzer found
    the first one in a TIFF tile): an output format of YUV422 with BD16S, the packed BD565 depth, a reserved
    colour format in the image plane header. Run in a child, so that a regression is a failure, not a dead run."""
    import subprocess
    import sys

    code = r'''
import sys, numpy as np, tifffile
from napari_microcomp import container
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import MicrocompError
from napari_microcomp.io import read_image
a = (np.random.default_rng(0).random((16, 16)) * 3000).astype(np.uint16)
header, (payload,) = container.unpack(get_codec("jpegxr", quality=5).encode(a))
i = payload.find(b"WMPHOTO")
for at, value in ((11, 0x23), (11, 0x0A), (11, 0xDD), (16, 0xB6)):
    b = bytearray(payload)
    b[i + at] = value
    try:
        decode(container.pack(header, [bytes(b)]))
        print("decoded", at, value)
    except MicrocompError as exc:
        print("refused", str(exc)[:60])
    tifffile.imwrite(sys.argv[1], np.stack([a, a]), tile=(16, 16), compression="jpegxr")
    raw = bytearray(open(sys.argv[1], "rb").read())
    j = raw.find(b"WMPHOTO", len(raw) // 2)
    raw[j + at] = value
    open(sys.argv[1], "wb").write(bytes(raw))
    try:
        read_image(sys.argv[1])
        print("read", at, value)
    except MicrocompError as exc:
        print("refused", str(exc)[:60])
'''
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.tif")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    lines = r.stdout.split("\n")[:8]
    assert len(lines) == 8 and all(line.startswith("refused") for line in lines), r.stdout


def test_htj2k_headers_that_crashed_openjph_are_refused_in_a_child_process():
    """One-byte edits that killed the process inside OpenJPH (exhaustive scan of a stream's first 160 bytes): tile
    size 0, sub-sampling 0, a QCD length or style that does not fit, a step-size exponent of 31, a tile-part length
    beyond the data. Each must now be one StreamError."""
    import subprocess
    import sys

    code = r'''
import numpy as np
from napari_microcomp import container
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import MicrocompError
a = (np.random.default_rng(0).random((24, 24)) * 3000).astype(np.uint16)
header, (payload,) = container.unpack(get_codec("htj2k", quality=4).encode(a))
qcd, sot = payload.find(b"\xff\x5c"), payload.find(b"\xff\x90")
edits = [(27, 0), (31, 0), (43, 0), (44, 0), (qcd + 3, 3), (qcd + 4, 0xC0), (qcd + 5, 0xF8), (sot + 7, 1)]
for at, value in edits:
    b = bytearray(payload)
    b[at] = value
    try:
        decode(container.pack(header, [bytes(b)]))
        print("decoded", at, value)
    except MicrocompError as exc:
        print("refused", str(exc)[:70])
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    lines = r.stdout.split("\n")[:8]
    assert len(lines) == 8 and all(line.startswith("refused") for line in lines), r.stdout
