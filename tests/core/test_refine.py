"""Encode-time latent refinement: real streams that the unchanged decoder reads, never a worse RD cost."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from helpers import smooth_image  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.codecs.refine import _rd, refine_latents  # noqa: E402
from napari_microcomp.errors import CodecError  # noqa: E402
from napari_microcomp.models import registry  # noqa: E402
from napari_microcomp import weights as wt  # noqa: E402
from napari_microcomp.training.codec import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny weight files (a few training steps) for one architecture of each family."""
    import tifffile

    d = tmp_path_factory.mktemp("refine")
    tifffile.imwrite(d / "a.tif", smooth_image((128, 128), seed=3))
    out = {}
    for arch, q in (("mbt2018-mean-vbr", None), ("bmshj2018-hyperprior", 3), ("bmshj2018-factorized", 3),
                    ("mbt2018", 3)):
        path = d / f"{arch}.pt"
        list(train(TrainConfig(arch=arch, quality=q, data=[str(d / "a.tif")], steps=3, patch=[64], batch=2,
                               widths={"N": 8, "M": 8}, threads=1, out=str(path))))
        out[arch] = path
    return out


@pytest.mark.parametrize("arch,q", [("mbt2018-mean-vbr", 6), ("bmshj2018-hyperprior", 3),
                                    ("bmshj2018-factorized", 3), ("mbt2018", 3)])
def test_refined_stream_decodes_with_plain_decoder(tiny, arch, q):
    img = smooth_image((70, 90), seed=1)
    plain = get_codec(arch, quality=q, weights=str(tiny[arch])).encode(img)
    refined = get_codec(arch, quality=q, weights=str(tiny[arch]), refine=4).encode(img)
    rec = decode(refined)          # the decoder does not know about refinement; the CRC check must pass
    assert rec.shape == img.shape and rec.dtype == img.dtype
    assert refined != plain


@pytest.mark.parametrize("method,arch", [("ssl", "mbt2018-mean-vbr"), ("sga", "mbt2018-mean-vbr"),
                                         ("ste", "mbt2018-mean-vbr"), ("ssl", "mbt2018"), ("sga", "mbt2018")])
def test_refinement_never_raises_the_rd_cost(tiny, method, arch):
    lm = wt.load_weights(tiny[arch])
    x = torch.from_numpy(smooth_image((64, 64), seed=2).astype(np.float32) / 65535)[None, None]
    s, lam = (5, registry.get_arch(arch).lambdas[5]) if arch.endswith("vbr") else (None, 0.0067)
    with torch.no_grad():
        y0 = lm.model.g_a(x)
        z0 = lm.model.h_a(y0)
        before = float(_rd(lm.model, x, y0, z0, lam, s, 64 * 64)[0])
    y, z = refine_latents(lm.model, x, lam, 10, s=s, lr=1e-2, method=method)
    with torch.no_grad():
        after = float(_rd(lm.model, x, y, z, lam, s, 64 * 64)[0])
    assert after <= before + 1e-6


def test_refinement_is_reproducible(tiny):
    """The stochastic rounding draws its own seeded noise: the same image and settings give the same stream."""
    img = smooth_image((64, 80), seed=4)
    make = lambda: get_codec("bmshj2018-hyperprior", quality=3, weights=str(tiny["bmshj2018-hyperprior"]), refine=6)
    assert make().encode(img) == make().encode(img)
    lm = wt.load_weights(tiny["bmshj2018-hyperprior"])
    with pytest.raises(CodecError, match="method"):
        refine_latents(lm.model, torch.zeros(1, 1, 64, 64), 0.01, 2, method="gumbel")


def test_refine_refuses_bad_step_counts():
    for bad in (-1, 1.5, True, 10**6):
        with pytest.raises(CodecError, match="refine"):
            get_codec("mbt2018-mean-vbr", quality=3, refine=bad)


def test_cli_refine_and_weights(tiny, tmp_path):
    from napari_microcomp.cli import main
    from napari_microcomp.container import unpack

    src = tmp_path / "img.npy"
    np.save(src, smooth_image((64, 80), seed=4))
    out = tmp_path / "img.mcz"
    assert main(["compress", str(src), str(out), "-c", "mbt2018-mean-vbr", "-q", "5", "--weights",
                 str(tiny["mbt2018-mean-vbr"]), "--refine", "3"]) == 0
    header, _ = unpack(out.read_bytes())
    assert header.codec["refine"] == 3 and header.codec["weights"] == str(tiny["mbt2018-mean-vbr"])
    assert main(["decompress", str(out), str(tmp_path / "back.npy")]) == 0
