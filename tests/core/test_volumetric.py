"""The learned 3D codec (factorized3d) with tiny random-init weights: shapes, exactness, errors."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers import smooth_image

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container  # noqa: E402
from napari_microcomp.codecs import decode, get_codec, info  # noqa: E402
from napari_microcomp.errors import CodecError, DecodeDriftWarning, StreamError, WeightsNotFoundError  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _tiny_weights(path: Path, arch: str = "factorized3d", seed: int = 0) -> Path:
    from napari_microcomp.models import registry
    from napari_microcomp import weights as wt

    torch.manual_seed(seed)
    widths = {"N": 8, "M": 8}
    model = registry.get_arch(arch).factory(**widths)
    return wt.export_weights(model, arch, path, 4, widths, {"test": True})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(_tiny_weights(tmp_path_factory.mktemp("w3d") / "factorized3d-q4.pt"))


def _codec(weights):
    return get_codec("factorized3d", quality=4, weights=weights)


@pytest.mark.parametrize("shape,dtype", [((7, 65, 130), np.uint16), ((5, 33, 40), np.uint8),
                                         ((4, 40, 36), np.float32), ((48, 40), np.uint16)])
def test_round_trip_exact_shape_and_dtype(weights, shape, dtype):
    a = smooth_image(shape, dtype)
    before = a.copy()
    data = _codec(weights).encode(a)
    out = decode(data)
    assert out.shape == a.shape and out.dtype == a.dtype
    np.testing.assert_array_equal(a, before)  # source untouched
    h = info(data)
    assert h["layout"] == "volume" and h["codec"]["id"] == "factorized3d"
    assert h["check"]["crc32"] == container.array_crc32(out)
    assert h["norm"]["lo"] == float(a.min()) and h["norm"]["hi"] == float(a.max())
    # reconstruction stays inside the original range (clipped), so no wrap-around in uint types
    assert out.min() >= a.min() and out.max() <= a.max()


def test_constant_volume_is_exact(weights):
    a = np.full((5, 20, 24), 1234, np.uint16)
    np.testing.assert_array_equal(decode(_codec(weights).encode(a)), a)


def test_hyperprior3d_round_trip(tmp_path):
    w = str(_tiny_weights(tmp_path / "hyperprior3d-q4.pt", arch="hyperprior3d"))
    a = smooth_image((7, 65, 130), np.uint16)
    data = get_codec("hyperprior3d", quality=4, weights=w).encode(a)
    assert len(info(data)["payloads"]) == 2  # y and z strings
    out = decode(data)
    assert out.shape == a.shape and out.dtype == a.dtype


def test_blocks_cover_volume_and_decode_the_same(weights, monkeypatch):
    from napari_microcomp.codecs.volumetric import Factorized3DCodec

    a = smooth_image((9, 70, 66), np.uint16)
    monkeypatch.setattr(Factorized3DCodec, "block", (4, 32, 32))
    monkeypatch.setattr(Factorized3DCodec, "block_halo", (1, 4, 4))
    data = _codec(weights).encode(a)
    h = info(data)
    # cores are cut at multiples of block - 2*halo = (2, 24, 24): 5 x 3 x 3 blocks, each outer at most a block
    assert len(h["meta"]["blocks"]) == 5 * 3 * 3 == len(h["payloads"])
    assert all(o1 - o0 <= b for blk in h["meta"]["blocks"] for (o0, o1), b in zip(blk["outer"], (4, 32, 32)))
    out = decode(data)  # decoding reads the blocks from the header, not the class attribute
    monkeypatch.setattr(Factorized3DCodec, "block", (64, 256, 256))
    np.testing.assert_array_equal(decode(data), out)
    assert out.shape == a.shape


def test_rate_estimate_matches_stream(weights):
    """Real payload bytes follow the entropy model (the training rate is what the stream costs)."""
    from napari_microcomp import weights as wt
    from napari_microcomp.models.arch3d import pad_multiple

    a = smooth_image((8, 64, 64), np.uint16)
    data = _codec(weights).encode(a)
    lm = wt.load_weights(weights)
    x = torch.from_numpy(((a - a.min()) / (a.max() - a.min())).astype(np.float32))[None, None]
    with torch.no_grad():
        lik = lm.model(pad_multiple(x, lm.model.downsampling_factor)[0])["likelihoods"]["y"]
    est_bytes = float(-torch.log2(lik).sum()) / 8
    payload = sum(n for n, _ in info(data)["payloads"])
    assert abs(payload - est_bytes) <= 0.05 * est_bytes + 16


@pytest.mark.parametrize("damage", ["payload", "header", "truncate", "append"])
def test_corrupted_stream_raises_stream_error(weights, damage):
    a = smooth_image((6, 40, 48), np.uint16)
    data = bytearray(_codec(weights).encode(a))
    if damage == "payload":
        data[-5] ^= 0x40
    elif damage == "header":
        data[20] ^= 0x01
    elif damage == "truncate":
        data = data[:-7]
    else:
        data += b"\0"
    with pytest.raises(StreamError):
        decode(bytes(data))


def test_wrong_weights_or_bad_reconstruction_refused(weights, tmp_path):
    a = smooth_image((6, 40, 48), np.uint16)
    data = _codec(weights).encode(a)
    other = str(_tiny_weights(tmp_path / "factorized3d-q4.pt", seed=1))
    with pytest.raises(StreamError, match="weights"):
        get_codec("factorized3d", quality=4, weights=other).decode(data)
    # a payload that still passes its CRC but decodes to other latents is caught by the checksums
    h, payloads = container.unpack(data)
    h.check["crc32"] ^= 1
    h.check["symbols"] ^= 1
    with pytest.raises(StreamError, match="checksum"):
        decode(container.pack(h, payloads))
    # the same latents with another reconstruction: float rounding on another CPU, returned with a warning
    h.check["symbols"] ^= 1
    with pytest.warns(DecodeDriftWarning):
        decode(container.pack(h, payloads))


def test_missing_weights_and_bad_quality(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(tmp_path))
    from napari_microcomp.weights import locate
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    with pytest.raises(WeightsNotFoundError, match="train-codec --arch factorized3d") as err:
        get_codec("factorized3d", quality=3).encode(smooth_image((4, 32, 32), np.uint16))
    assert "compressai" not in str(err.value)   # CompressAI publishes no 3D weights: no such advice
    with pytest.raises(CodecError):
        get_codec("factorized3d", quality=9)


def test_weights_found_by_zoo_name(weights, tmp_path, monkeypatch):
    """A file named {arch}-q{Q}.pt in $MICROCOMP_WEIGHTS is picked up without weights=."""
    import shutil
    shutil.copy(weights, tmp_path / "factorized3d-q4.pt")
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(tmp_path))
    a = smooth_image((4, 32, 32), np.uint16)
    data = get_codec("factorized3d", quality=4).encode(a)
    # only the detected modality is recorded (it picks the modality's file, else the general one), never a path
    assert info(data)["codec"].get("weights") in ("transmitted", "fluorescence")
    assert decode(data).shape == a.shape


_ENC = """
import sys, numpy as np, torch
torch.set_num_threads({threads})
from napari_microcomp.codecs import get_codec, decode
a = np.load(sys.argv[1])
data = get_codec("factorized3d", quality=4, weights=sys.argv[2]).encode(a)
open(sys.argv[3], "wb").write(data)
np.save(sys.argv[4], decode(data))
"""
_DEC = """
import sys, numpy as np, torch
torch.set_num_threads({threads})
from napari_microcomp.codecs import decode
np.save(sys.argv[2], decode(open(sys.argv[1], "rb").read()))
assert torch.get_num_threads() == {threads}  # the codec restored the caller's thread count
"""


def _py(code: str, *args) -> None:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_cross_process_cross_thread_bit_exact(weights, tmp_path):
    a = smooth_image((7, 65, 130), np.uint16, seed=3)
    np.save(tmp_path / "a.npy", a)
    _py(_ENC.format(threads=1), tmp_path / "a.npy", weights, tmp_path / "s.mcz", tmp_path / "enc.npy")
    _py(_DEC.format(threads=3), tmp_path / "s.mcz", tmp_path / "dec.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "enc.npy"), np.load(tmp_path / "dec.npy"))


def test_trained_weights_load_in_codec(tmp_path):
    """`microcomp train-codec --arch factorized3d` exports weights this codec uses."""
    import tifffile
    from napari_microcomp.cli import main

    stack = smooth_image((10, 48, 48), np.uint16, seed=5)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    out = tmp_path / "factorized3d-q2.pt"
    rc = main(["train-codec", "--arch", "factorized3d", "--quality", "2", "--data", str(tmp_path / "stack.tif"),
               "--steps", "2", "--patch", "4", "32", "32", "--batch", "2", "--widths", "N=8,M=8",
               "--device", "cpu", "--threads", "1", "--log-every", "1", "--out", str(out), "--no-bf16"])
    assert rc == 0 and out.is_file()
    data = get_codec("factorized3d", quality=2, weights=str(out)).encode(stack)
    assert decode(data).shape == stack.shape
