"""Growing a model's latent width keeps what it computes (models/widen.py), and `train-codec --init
--widths M=…` uses it."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp.models.registry import get_arch  # noqa: E402
from napari_microcomp.models.widen import grown, widen_state  # noqa: E402


def _pair(arch, **wider):
    torch.manual_seed(0)
    spec = get_arch(arch)
    small = spec.factory(N=8, M=12).eval()
    big = spec.factory(**{"N": 8, "M": 12, **wider}).eval()
    big.load_state_dict(widen_state(small.state_dict(), big))
    return small, big


@pytest.mark.parametrize("arch", ["mbt2018-mean-vbr", "mbt2018-mean", "bmshj2018-hyperprior",
                                  "bmshj2018-factorized"])
def test_wider_model_reconstructs_exactly_as_before(arch):
    small, big = _pair(arch, M=24)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        a, b = small(x)["x_hat"], big(x)["x_hat"]
        assert torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(small.g_s(small.g_a(x)), big.g_s(big.g_a(x)), atol=1e-5)
        assert big.g_a(x).shape[1] == 24
    # the new latents are live (fresh weights produce them), only silent downstream
    assert float(big.g_a[-1].weight.detach()[12:].abs().sum()) > 0
    assert float(big.g_s[0].weight.detach()[12:].abs().sum()) == 0


def test_vbr_rate_levels_and_hyperprior_halves_stay_in_place():
    small, big = _pair("mbt2018-mean-vbr", M=24)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        for s in (0, 4, 7):
            assert torch.allclose(small(x, stage=2, s=s)["x_hat"], big(x, stage=2, s=s)["x_hat"], atol=1e-5)
        z = small.h_a(small.g_a(x))
        ps, pb = small.h_s(z), big.h_s(z)
        # scales then means: the old channels' scales and means are unchanged in their new places
        assert torch.allclose(ps[:, :12], pb[:, :12], atol=1e-5) and torch.allclose(ps[:, 12:], pb[:, 24:36], atol=1e-5)


def test_widths_may_only_grow():
    assert list(grown({"N": 8, "M": 12}, {"M": 24})) == ["M"]
    assert list(grown({"N": 8, "M": 12}, {})) == []
    with pytest.raises(ValueError, match="only grow"):
        grown({"N": 8, "M": 12}, {"M": 8})
    small = get_arch("mbt2018-mean").factory(N=8, M=24)
    big = get_arch("mbt2018-mean").factory(N=8, M=12)
    with pytest.raises(ValueError, match="shrink"):
        widen_state(small.state_dict(), big)


def test_train_codec_grows_init_weights(shared_data, tmp_path):
    import imageio.v3 as iio
    import tifffile

    from napari_microcomp.cli import main

    img = iio.imread(shared_data / "isl_phase_to_fluorescence" / "depth_computation-MAXPROJECT_channel-DAPI_CONFOCAL.png")
    tifffile.imwrite(tmp_path / "dapi.tif", img[:128, :128])
    args = ["--arch", "mbt2018-mean-vbr", "--data", str(tmp_path / "dapi.tif"), "--steps", "1", "--patch", "64",
            "--batch", "2", "--threads", "1"]
    small, big = tmp_path / "small.pt", tmp_path / "big.pt"
    assert main(["train-codec", *args, "--widths", "N=8,M=12", "--out", str(small)]) == 0
    assert main(["train-codec", *args, "--init", str(small), "--widths", "M=24", "--out", str(big)]) == 0
    meta = torch.load(big, weights_only=True)["meta"]
    assert meta["widths"] == {"N": 8, "M": 24} and meta["init"] == str(small)
    assert main(["train-codec", *args, "--init", str(big), "--widths", "M=12", "--out", str(small),
                 "--overwrite"]) == 2
