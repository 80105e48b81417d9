"""Learned 2D codecs with tiny random-init weights: real bitstreams for all nine architectures,
dtypes, tiles, exactness across threads and processes, refusal of damaged streams, weight lookup."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container  # noqa: E402
from napari_microcomp.codecs import available_codecs, decode, get_codec  # noqa: E402
from napari_microcomp.errors import CodecError, StreamError, WeightsNotFoundError  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ARCHS = ["bmshj2018-factorized", "bmshj2018-factorized-relu", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
         "cheng2020-anchor", "cheng2020-attn", "bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr"]


def tiny_weights(folder: Path, arch: str, quality: int = 3, seed: int = 0, name: str = None) -> Path:
    """Export a randomly initialised narrow model in the shipped format (name as the loader expects)."""
    from napari_microcomp.models import registry
    from napari_microcomp import weights as wt

    torch.manual_seed(seed)
    spec = registry.get_arch(arch)
    widths = {"N": 16} if arch.startswith("cheng") else {"N": 16, "M": 16}
    model = spec.factory(**widths)
    last = model.g_s[-1] if isinstance(model.g_s[-1], torch.nn.ConvTranspose2d) else model.g_s[-1][0]
    with torch.no_grad():
        last.bias.fill_(0.5)   # random init decodes to ~0 (clamped); centre it so reconstructions vary
    return wt.export_weights(model, arch, folder / (name or spec.weights_filename(quality)), quality, widths,
                              {"test": True})


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    for arch in ARCHS:
        tiny_weights(d, arch)
    return d


@pytest.fixture(scope="module")
def image(shared_data):
    import imageio.v3 as iio

    a = iio.imread(shared_data / "isl_phase_to_fluorescence" / "z_depth-6_channel-PHASE_CONTRAST.png")
    assert a.dtype == np.uint16
    return np.ascontiguousarray(a[300:372, 400:500])   # 72×100: exercises the padding to 64


def _codec(wdir, arch, quality=3, **kw):
    from napari_microcomp.models import registry

    return get_codec(arch, quality=quality, weights=str(wdir / registry.get_arch(arch).weights_filename(quality)), **kw)


def test_all_nine_registered():
    names = available_codecs(family="learned")
    assert set(ARCHS) <= set(names)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_round_trips(wdir, image, arch):
    src = image.copy()
    c = _codec(wdir, arch)
    data = c.encode(image)
    assert np.array_equal(image, src), "the source array was modified"
    header, payloads = container.unpack(data)
    assert header.codec["id"] == arch and header.layout == "whole" and len(payloads) == 1
    assert header.codec["threads"] >= 1 and len(header.codec["weights_id"]) == 16
    assert header.norm == {"mode": "minmax", "lo": float(image.min()), "hi": float(image.max())}
    out = decode(data)           # verifies the reconstruction CRC recorded at encode time
    assert out.dtype == np.uint16 and out.shape == image.shape
    assert image.min() <= out.min() and out.max() <= image.max()
    assert container.array_crc32(out) == header.check["crc32"]
    assert np.array_equal(out, c.decode(data))


def test_vbr_one_file_serves_every_quality(image, tmp_path):
    from napari_microcomp.models import registry
    from napari_microcomp import weights as wt

    torch.manual_seed(0)
    model = registry.get_arch("mbt2018-mean-vbr").factory(N=16, M=16)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(50)   # random init gives near-zero latents; make the rate visible
    w = wt.export_weights(model, "mbt2018-mean-vbr", tmp_path / "mbt2018-mean-vbr.pt", None,
                           {"N": 16, "M": 16}, {})
    sizes = []
    for q in (1, 8):
        c = get_codec("mbt2018-mean-vbr", quality=q, weights=str(w))
        data = c.encode(image)
        assert decode(data).shape == image.shape
        sizes.append(len(data))
    assert sizes[0] != sizes[1]   # a different quantisation gain per quality


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_dtypes(wdir, image, dtype):
    a = (image / 257).astype(dtype) if dtype == np.uint8 else image.astype(np.float32) / 1000
    out = decode(_codec(wdir, "bmshj2018-hyperprior").encode(a))
    assert out.dtype == dtype and out.shape == a.shape
    assert a.min() - 1e-3 <= out.min() and out.max() <= a.max() + 1e-3


def test_constant_image_is_exact_without_payload(wdir):
    a = np.full((40, 50), 1234, np.uint16)
    data = _codec(wdir, "mbt2018-mean").encode(a)
    assert container.unpack(data)[1] == []
    assert np.array_equal(decode(data), a)


def test_tiles_and_stacks(wdir, image):
    c = _codec(wdir, "mbt2018", tile=64)
    data = c.encode(image)                                 # 72×100 -> 2×2 tiles
    header, payloads = container.unpack(data)
    assert header.layout == "tiles" and len(payloads) == 4
    assert decode(data).shape == image.shape
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    data = _codec(wdir, "bmshj2018-factorized").encode(stack)
    header, payloads = container.unpack(data)
    assert header.layout == "slicewise" and len(payloads) == 3
    out = decode(data)
    assert out.shape == stack.shape and np.array_equal(out[1], decode(_codec(wdir, "bmshj2018-factorized")
                                                                          .encode(stack))[1])


def _retamper(data: bytes, index: int = 0) -> bytes:
    """Flip bytes inside one payload's entropy-coded strings and recompute the container CRCs."""
    header, payloads = container.unpack(data)
    p = bytearray(payloads[index])
    n, nd = p[0], p[1]
    start = 2 + 2 * nd + 4 * n
    for k in range(start + 1, len(p), max(1, (len(p) - start) // 4)):
        p[k] ^= 0x5A
    payloads[index] = bytes(p)
    return container.pack(header, payloads)


@pytest.mark.parametrize("arch", ["mbt2018-mean", "mbt2018", "bmshj2018-factorized"])
def test_tampered_stream_raises(wdir, image, arch):
    data = _codec(wdir, arch).encode(image)
    bad = _retamper(data)
    container.unpack(bad)  # the container itself accepts it: only the reconstruction check can tell
    with pytest.raises(StreamError):
        decode(bad)


def test_other_weights_are_refused(wdir, image, tmp_path):
    data = _codec(wdir, "mbt2018-mean").encode(image)
    other = tiny_weights(tmp_path, "mbt2018-mean", seed=1)
    cfg = container.unpack(data)[0].codec
    c = get_codec("mbt2018-mean", quality=3, weights=str(other), weights_id=cfg["weights_id"])
    with pytest.raises(StreamError, match="weights"):
        c.decode(data)


CHILD = textwrap.dedent("""
    import sys, numpy as np, torch
    torch.set_num_threads(int(sys.argv[1]))
    from napari_microcomp.codecs import decode, get_codec
    mode, folder = sys.argv[2], sys.argv[3]
    archs = ["mbt2018-mean", "mbt2018", "bmshj2018-hyperprior-vbr"]
    if mode == "encode":
        img = np.load(folder + "/img.npy")
        for arch in archs:
            w = folder + "/w/" + (arch + ".pt" if arch.endswith("vbr") else arch + "-q3.pt")
            for t in (1, 2, 4):
                data = get_codec(arch, quality=3, weights=w, threads=t).encode(img)
                open(f"{folder}/{arch}-{t}.mcz", "wb").write(data)
                np.save(f"{folder}/{arch}-{t}.npy", decode(data))
    else:
        for arch in archs:
            for t in (1, 2, 4):
                out = decode(open(f"{folder}/{arch}-{t}.mcz", "rb").read())
                assert np.array_equal(out, np.load(f"{folder}/{arch}-{t}.npy")), (arch, t)
        print("ok")
""")


def test_bit_exact_across_threads_and_processes(wdir, image, tmp_path):
    import shutil

    shutil.copytree(wdir, tmp_path / "w")
    np.save(tmp_path / "img.npy", image)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="4")
    for ambient, mode in [(1, "encode"), (2, "decode"), (4, "decode")]:
        r = subprocess.run([sys.executable, "-W", "ignore", str(script), str(ambient), mode, str(tmp_path)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")


def test_weights_found_by_name_in_user_folder(wdir, image, monkeypatch, tmp_path):
    from napari_microcomp import weights as wt
    from napari_microcomp.weights import locate

    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path)
    monkeypatch.setenv(wt.ENV_WEIGHTS, str(wdir))
    # q3 has its own file; the other levels are folded from the VBR file (models/derive.py)
    assert wt.available_qualities("mbt2018-mean") == {q: "user" for q in range(1, 9)}
    assert set(wt.available_qualities("mbt2018-mean-vbr")) == set(range(1, 9))
    assert wt.get_model("mbt2018-mean", 3).source.endswith("mbt2018-mean-q3.pt")
    vbr_id = wt.get_model("mbt2018-mean-vbr", 5).weights_id
    assert wt.get_model("mbt2018-mean", 5).weights_id == f"{vbr_id}.q5"
    from napari_microcomp.cli.codec_commands import codec_table
    row = next(r for r in codec_table() if r["name"] == "mbt2018-mean")
    assert row["weights"] == list(range(1, 9)) and row["weights_source"]["3"] == "user"
    assert decode(get_codec("mbt2018-mean", quality=5).encode(image)).shape == image.shape
    assert decode(get_codec("mbt2018-mean", quality=3).encode(image)).shape == image.shape
    assert decode(get_codec("mbt2018-mean-vbr", quality=6).encode(image)).shape == image.shape


def test_missing_weights_message(image, monkeypatch, tmp_path):
    from napari_microcomp import weights as wt
    from napari_microcomp.weights import locate

    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path)
    monkeypatch.delenv(wt.ENV_WEIGHTS, raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        get_codec("cheng2020-attn", quality=2).encode(image)
    msg = str(err.value)
    assert "microcomp train-codec --arch cheng2020-attn --quality 2" in msg and "cheng2020-attn-q2.pt" in msg
    assert "has no weights in this installation" in msg and "weights='compressai'" in msg
    # a level the set skips: the levels that do exist come first
    (tmp_path / "cheng2020-attn-q4.pt").write_bytes(b"")   # only its name is looked at here
    with pytest.raises(WeightsNotFoundError, match="cheng2020-attn has weights for quality 4; pick one"):
        get_codec("cheng2020-attn", quality=2).encode(image)
    (tmp_path / "cheng2020-attn-q4.pt").unlink()
    with pytest.raises(WeightsNotFoundError, match="not found"):
        get_codec("mbt2018", quality=2, weights=str(tmp_path / "nope.pt")).encode(image)
    # a modality without a file of its own, when another set has one: say which, and how to use it
    from napari_microcomp.models.registry import build_model, model_widths

    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    (tmp_path / "transmitted").mkdir()
    wt.export_weights(m, "mbt2018-mean-vbr", tmp_path / "transmitted" / "mbt2018-mean-vbr.pt", None,
                      model_widths(m), {})
    with pytest.raises(WeightsNotFoundError, match="no fluorescence weights.*weights='transmitted'"):
        get_codec("mbt2018-mean-vbr", quality=2, weights="fluorescence").encode(image)


def test_wrong_quality_file_is_refused(wdir, image):
    with pytest.raises(WeightsNotFoundError, match="quality 3"):
        get_codec("mbt2018-mean", quality=5, weights=str(wdir / "mbt2018-mean-q3.pt")).encode(image)


def test_config_round_trip_and_bad_params(wdir):
    from napari_microcomp.codecs import codec_from_config

    c = _codec(wdir, "bmshj2018-hyperprior", tile=512, threads=2)
    assert codec_from_config(c.get_config()) == c
    assert c.quality_table[1] == 0.0018 and c.family == "learned"
    with pytest.raises(CodecError):
        get_codec("bmshj2018-hyperprior", quality=3, tile=100)
    with pytest.raises(CodecError):
        get_codec("bmshj2018-hyperprior", quality=3, threads=0)
    with pytest.raises(CodecError):
        get_codec("bmshj2018-hyperprior", quality=9)


def test_vbr_fractional_level_codes_between_the_trained_levels(image):
    """level=3.5 interpolates the latent gain; the stream records it, and a stream without it or with another
    gain is refused rather than decoded wrongly."""
    from napari_microcomp.codecs.learned import vbr_gain
    from napari_microcomp.ratecontrol import axis_for

    w = "transmitted"
    sizes = {lv: len(get_codec("mbt2018-mean-vbr", level=lv, weights=w).encode(image)) for lv in (3, 4)}
    c = get_codec("mbt2018-mean-vbr", level=3.5, weights=w)
    assert c.quality is None and c.label == "mbt2018-mean-vbr level=3.5"
    data = c.encode(image)
    assert sizes[3] < len(data) < sizes[4]
    header, payloads = container.unpack(data)
    gains = header.codec["gain"]
    assert isinstance(gains, float) and gains > 0
    rec = decode(data)
    assert rec.shape == image.shape and rec.dtype == image.dtype
    # an integer level is the trained level itself: the same stream as quality=N
    assert container.unpack(get_codec("mbt2018-mean-vbr", level=4, weights=w).encode(image))[1] == \
        container.unpack(get_codec("mbt2018-mean-vbr", quality=4, weights=w).encode(image))[1]
    assert vbr_gain([1.0, 4.0], 1.5) == pytest.approx(2.0) and vbr_gain([1.0, 4.0], 2) == 4.0
    for bad in (0.5, 8.5, float("nan"), True, "4"):
        with pytest.raises(CodecError, match="level"):
            get_codec("mbt2018-mean-vbr", level=bad)
    with pytest.raises(CodecError, match="gain"):
        get_codec("mbt2018-mean-vbr", level=3.5, gain=float("inf"))
    for edit in ({"gain": None}, {"gain": gains * 1.5}):
        codec = {k: v for k, v in {**header.codec, **edit}.items() if v is not None}
        bad = container.pack(container.Header(codec=codec, shape=header.shape, dtype=header.dtype,
                                              meta=header.meta, layout=header.layout, norm=header.norm,
                                              check=header.check), payloads)
        with pytest.raises(StreamError):
            decode(bad)
    axis = axis_for("mbt2018-mean-vbr", [image])
    assert not axis.discrete and axis.kwargs(0.5) == {"level": 4.5}
    assert axis_for("mbt2018", [image]).discrete   # fixed-rate models keep their trained levels


def test_default_thread_count_respects_the_cores_this_process_may_use(monkeypatch):
    """A pinned process (cluster CPU set, taskset) must not record more threads than it has cores:
    oversubscribed, a refined encode ran several times slower."""
    from napari_microcomp.codecs import weight_levels

    monkeypatch.setattr(weight_levels.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert weight_levels.default_threads() == 1
    monkeypatch.setattr(weight_levels.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert weight_levels.default_threads() == 4
