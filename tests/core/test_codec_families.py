"""The shared codec harness over EVERY registered codec (issue 14): classical, lossless, learned 2D and 3D
(tiny random-weight models, no shipped weights needed), the tiling wrapper and the study's TIFF setting.

Each codec gets the same contract: shape and dtype survive, the input is untouched, the stream decodes the
same through the generic ``decode`` and through the codec, decoding is deterministic, the config survives
JSON and pickle, and a damaged payload is refused. A newly registered codec fails ``test_every_codec_is_covered``
until it has an entry here.
"""
import json
import pickle

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import container
from napari_microcomp.codecs import available_codecs, codec_class, codec_from_config, decode, get_codec
from napari_microcomp.errors import CodecError, StreamError

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

LEARNED_2D = ["bmshj2018-factorized", "bmshj2018-factorized-relu", "bmshj2018-hyperprior", "mbt2018-mean",
              "mbt2018", "cheng2020-anchor", "cheng2020-attn", "bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr"]
LEARNED_3D = ["factorized3d", "hyperprior3d", "mbt2018-mean-vbr3d"]
IMG2D = [((48, 40), np.uint16), ((48, 40), np.uint8)]
IMG3D = [((3, 40, 36), np.uint16)]


def _tiny(folder, arch, quality):
    from napari_microcomp import weights as wt
    from napari_microcomp.models import registry

    torch.manual_seed(0)
    spec = registry.get_arch(arch)
    widths = {"N": 8, "M": 8} if arch in LEARNED_3D else ({"N": 16} if arch.startswith("cheng") else
                                                           {"N": 16, "M": 16})
    model = spec.factory(**widths)
    path = folder / spec.weights_filename(quality)
    return str(wt.export_weights(model, arch, path, None if spec.vbr else quality, widths, {"test": True}))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-weights")


def _cases():
    """(case id, factory(tiny_dir) -> codec, inputs)"""
    out = []
    for name in available_codecs("classical") + available_codecs("lossless"):
        cls = codec_class(name)
        if cls.wrapper:
            continue
        kw = {} if cls.lossless_only else {"quality": 5}
        inputs = IMG2D + IMG3D + ([((40, 36), np.float32)] if getattr(cls, "native_float", False) or
                                  not cls.lossless_only else [])
        out.append((name, lambda d, n=name, k=kw: get_codec(n, **k), inputs))
    for arch in LEARNED_2D:
        out.append((arch, lambda d, a=arch: get_codec(a, quality=3, weights=_tiny(d, a, 3)), IMG2D + IMG3D[:0]))
    for arch in LEARNED_3D:
        out.append((arch, lambda d, a=arch: get_codec(a, quality=4, weights=_tiny(d, a, 4)), [((4, 64, 64), np.uint16)]))
    out.append(("tiled", lambda d: get_codec("tiled", inner="jpegxl", quality=5, tile=(2, 24, 24), halo=(0, 4, 4)),
                IMG3D))
    out.append(("tiled(zstd)", lambda d: get_codec("tiled", inner="zstd", tile=(2, 24, 24), halo=(0, 0, 0)), IMG3D))
    out.append(("tiff-tiles", lambda d: get_codec("tiff-tiles", compression="jpeg2000"), IMG2D))
    return out


CASES = _cases()


def test_every_codec_is_covered():
    covered = {c[0].split("(")[0] for c in CASES}
    assert set(available_codecs()) <= covered, set(available_codecs()) - covered


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_shared_contract(case, tiny_dir):
    name, make, inputs = case
    codec = make(tiny_dir)
    cfg = json.loads(json.dumps(codec.get_config()))
    assert codec_from_config(cfg).get_config() == codec.get_config()
    assert pickle.loads(pickle.dumps(codec)) == codec                 # results travel from the GUI's worker process
    for k, (shape, dtype) in enumerate(inputs):
        a = smooth_image(shape, dtype, seed=k)
        before = a.copy()
        data = codec.encode(a)
        out = decode(data)
        np.testing.assert_array_equal(a, before)                      # the input is untouched
        assert out.shape == a.shape and out.dtype == a.dtype, (name, shape, dtype)
        np.testing.assert_array_equal(codec.decode(data), out)        # the codec and the registry agree
        np.testing.assert_array_equal(decode(data), out)              # decoding is deterministic
        if codec.lossless or codec_class(name.split("(")[0]).lossless_only:
            np.testing.assert_array_equal(out, a)
        header, offset = container.read_header(data)
        damaged = bytearray(data)
        damaged[offset + header.payloads[0][0] // 2] ^= 0xFF          # one byte in the first payload
        with pytest.raises(StreamError):
            decode(bytes(damaged))


@pytest.mark.parametrize("value", ["no", "false", 1, None])
def test_lossless_must_be_a_bool(value):
    """lossless="no" is truthy: it used to code losslessly."""
    with pytest.raises(CodecError, match="lossless must be True or False"):
        get_codec("jpeg2k", quality=4, lossless=value)
    assert get_codec("jpeg2k", lossless=np.bool_(True)).lossless
