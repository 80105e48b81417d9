"""models.derive: a fixed-rate mbt2018-mean folded from one rate level of mbt2018-mean-vbr."""
import numpy as np
import pytest

from helpers import smooth_image

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp.models.arch2d import (bmshj2018_hyperprior, bmshj2018_hyperprior_vbr, mbt2018_mean,  # noqa: E402
                                             mbt2018_mean_vbr)
from napari_microcomp.models.derive import derive  # noqa: E402


PAIRS = {"mbt2018-mean": (mbt2018_mean_vbr, mbt2018_mean),
         "bmshj2018-hyperprior": (bmshj2018_hyperprior_vbr, bmshj2018_hyperprior)}


@pytest.fixture(scope="module", params=list(PAIRS))
def pair(request):
    """(fixed-rate arch, a random VBR model with distinct gains per level, the fixed-rate factory)."""
    make_vbr, make_fixed = PAIRS[request.param]
    torch.manual_seed(0)
    m = make_vbr(16, 16).eval()
    m.Gain.data = torch.logspace(-0.3, 0.9, 8)
    m.no_quantoffset = True   # the learned offsets are the one part a fixed-rate model cannot hold
    m.update(force=True)
    return request.param, m, make_fixed


@pytest.fixture(scope="module")
def vbr():
    torch.manual_seed(0)
    m = mbt2018_mean_vbr(16, 16).eval()
    m.Gain.data = torch.logspace(-0.3, 0.9, 8)   # trained files have distinct gains per level
    m.no_quantoffset = True   # the learned offsets are the one part a fixed-rate model cannot hold
    m.update(force=True)
    return m


def _x(seed=0):
    a = smooth_image((64, 128), np.float32, seed=seed)
    return torch.from_numpy((a - a.min()) / (a.max() - a.min()))[None, None]


@pytest.mark.parametrize("quality", [1, 4, 8])
def test_folded_level_codes_like_the_vbr_level(pair, quality):
    arch, vbr, make_fixed = pair
    fixed = make_fixed(16, 16).eval()
    fixed.load_state_dict(derive(f"{arch}-vbr", arch, vbr.state_dict(), quality))
    fixed.update(force=True)
    x = _x()
    with torch.no_grad():
        cv = vbr.compress(x, stage=2, s=quality - 1)
        cf = fixed.compress(x)
        rv = vbr.decompress(cv["strings"], cv["shape"], stage=2, s=quality - 1)["x_hat"]
        rf = fixed.decompress(cf["strings"], cf["shape"])["x_hat"]
    assert [len(s[0]) for s in cf["strings"]] == [len(s[0]) for s in cv["strings"]]   # the same rate
    torch.testing.assert_close(rf, rv, atol=1e-4, rtol=0)


def test_no_derivation_is_an_error(vbr):
    with pytest.raises(ValueError, match="cannot start"):
        derive("mbt2018-mean", "cheng2020-anchor", vbr.state_dict(), 4)
    with pytest.raises(ValueError, match="--quality"):
        derive("mbt2018-mean-vbr", "mbt2018-mean", vbr.state_dict(), None)


def test_served_level_decodes_after_its_vbr_file_is_retired(tmp_path, monkeypatch):
    """mbt2018-mean without a file of its own is served by the VBR file; its streams name '{vbr id}.qN'."""
    from napari_microcomp import weights
    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.errors import WeightsNotFoundError
    from napari_microcomp.models.registry import build_model, model_widths
    from napari_microcomp.weights import locate
    from napari_microcomp.weights.export import retire

    torch.manual_seed(0)
    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    m.Gain.data = torch.logspace(-0.3, 0.9, 8)
    user = tmp_path / "user"
    path = weights.export_weights(m, "mbt2018-mean-vbr", user / "mbt2018-mean-vbr.pt", None, model_widths(m), {})
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(user))
    img = (smooth_image((64, 80), np.float32) * 4000).astype(np.uint16)
    data = get_codec("mbt2018-mean", quality=4).encode(img)
    vbr_id = weights.file_id(path)
    from napari_microcomp.codecs import info
    assert info(data)["codec"]["weights_id"] == f"{vbr_id}.q4"
    expected = decode(data)
    # an explicit path to the VBR file serves the level too
    assert get_codec("mbt2018-mean", quality=4, weights=str(path)).load().weights_id == f"{vbr_id}.q4"
    retire(path, user / locate.RETIRED)
    path.unlink()
    np.testing.assert_array_equal(decode(data), expected)
    with pytest.raises(WeightsNotFoundError):
        get_codec("mbt2018-mean", quality=4).encode(img)


@pytest.mark.parametrize("arch,quality", [("mbt2018-mean", 3), ("mbt2018-mean-vbr3d", None)])
def test_training_starts_from_a_vbr_file(tmp_path, arch, quality):
    """`train-codec --arch mbt2018-mean(-vbr3d) --init VBR.pt`: the converted weights load, with the VBR λ table."""
    from napari_microcomp import weights
    from napari_microcomp.models.registry import build_model, get_arch, model_widths
    from napari_microcomp.training.warmstart import start_state

    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    lams = [0.001 * 2 ** k for k in range(8)]
    path = weights.export_weights(m, "mbt2018-mean-vbr", tmp_path / "v.pt", None, model_widths(m), {"lambda": lams})
    state, widths, lam, _ = start_state(path, arch, quality)
    assert widths == {"N": 8, "M": 8} and lam == (lams[quality - 1] if quality else lams)
    get_arch(arch).factory(**widths).load_state_dict(state)
    with pytest.raises(Exception, match="cannot start"):
        start_state(path, "cheng2020-anchor", 4)


def test_transplant_starts_hyperprior_vbr_from_mean_scale_vbr():
    """A training start, not a derivation: shared tensors copied, the scale-only hyper-synthesis left fresh."""
    from napari_microcomp.models import arch2d
    from napari_microcomp.models.derive import derive

    src = arch2d.mbt2018_mean_vbr(N=8, M=8).state_dict()
    fresh = arch2d.bmshj2018_hyperprior_vbr(N=8, M=8).state_dict()
    out = derive("mbt2018-mean-vbr", "bmshj2018-hyperprior-vbr", src, fresh=fresh)
    assert out.keys() == fresh.keys()
    assert torch.equal(out["g_a.0.weight"], src["g_a.0.weight"]) and torch.equal(out["Gain"], src["Gain"])
    assert torch.equal(out["h_s.4.weight"], fresh["h_s.4.weight"])   # (M, N, 3, 3) here, (2M, 3M/2, 3, 3) in the source
    with pytest.raises(ValueError):   # without the destination's fresh state it is no derivation
        derive("mbt2018-mean-vbr", "bmshj2018-hyperprior-vbr", src)


def test_transplant_starts_cheng2020_attn_close_to_the_anchor():
    """Every anchor tensor lands in the attention model; the new attention blocks start near identity."""
    from napari_microcomp.models.registry import get_arch

    torch.manual_seed(0)
    anchor = get_arch("cheng2020-anchor").factory(N=16).eval()
    attn = get_arch("cheng2020-attn").factory(N=16).eval()
    out = derive("cheng2020-anchor", "cheng2020-attn", anchor.state_dict(), fresh=attn.state_dict())
    attn.load_state_dict(out)
    assert torch.equal(out["g_s.9.0.weight"], anchor.state_dict()["g_s.7.0.weight"])
    assert torch.equal(out["context_prediction.weight"], anchor.state_dict()["context_prediction.weight"])
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        ya, yb = anchor.g_a(x), attn.g_a(x)
        xa, xb = anchor.g_s(ya), attn.g_s(ya)
    assert float((ya - yb).abs().max()) < 0.1 * float(ya.abs().max())
    assert float((xa - xb).abs().max()) < 0.1 * float(xa.abs().max())
