"""mbt2018-mean-vbr3d: 2D weights inflated into Conv3d transforms, slice-batched entropy coding."""
import numpy as np
import pytest

from helpers import smooth_image

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container  # noqa: E402
from napari_microcomp.codecs import decode, get_codec, info  # noqa: E402
from napari_microcomp.errors import StreamError  # noqa: E402
from napari_microcomp.models.arch2d import mbt2018_mean_vbr  # noqa: E402
from napari_microcomp.models.stacked3d import MeanScaleVbr3D, inflate_state, pack_strings, unpack_strings  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    """A random 2D VBR model and its inflated 3D copy (entropy tables built)."""
    torch.manual_seed(0)
    m2 = mbt2018_mean_vbr(16, 16).eval()
    m3 = MeanScaleVbr3D(16, 16, kz=3).eval()
    m3.load_state_dict(inflate_state(m2.state_dict(), 3))
    m2.update(force=True)
    m3.update(force=True)
    return m2, m3


def _vol(d=5, h=64, w=128, seed=0):
    a = smooth_image((d, h, w), np.float32, seed=seed)
    return torch.from_numpy((a - a.min()) / (a.max() - a.min()))[None, None]


def test_inflated_model_computes_the_2d_model_slice_by_slice(pair):
    m2, m3 = pair
    x = _vol()
    with torch.no_grad():
        o3 = m3(x, stage=2, s=3)
        o2 = m2(x[0].transpose(0, 1), stage=2, s=3)
    torch.testing.assert_close(o3["x_hat"][0, 0], o2["x_hat"][:, 0], atol=1e-5, rtol=0)
    for k in ("y", "z"):   # the same rate: every slice's likelihoods, as a batch
        torch.testing.assert_close(o3["likelihoods"][k], o2["likelihoods"][k], atol=1e-6, rtol=1e-5)


def test_stream_is_the_2d_streams_packed(pair):
    m2, m3 = pair
    x = _vol()
    with torch.no_grad():
        c3 = m3.compress(x, stage=2, s=5)
        c2 = m2.compress(x[0].transpose(0, 1), stage=2, s=5)
        assert c3["shape"] == [5, *c2["shape"]] == m3.latent_shape(x.shape[2:])
        for s3, s2 in zip(c3["strings"], c2["strings"]):
            assert unpack_strings(s3[0], 5) == list(s2)
        r3 = m3.decompress(c3["strings"], c3["shape"], stage=2, s=5)["x_hat"]
        r2 = m2.decompress(c2["strings"], c2["shape"], stage=2, s=5)["x_hat"]
    torch.testing.assert_close(r3[0, 0], r2[:, 0], atol=1e-5, rtol=0)


def test_off_centre_taps_make_it_volumetric(pair):
    """After inflation only the centre Z tap is non-zero; a non-zero neighbour tap mixes slices."""
    _, m3 = pair
    w = m3.g_a[0].weight
    assert w[:, :, 0].abs().max() == 0 and w[:, :, 2].abs().max() == 0 and w[:, :, 1].abs().max() > 0
    x = _vol()
    x2 = x.clone()
    x2[:, :, 0] = 0   # change slice 0 only
    with torch.no_grad():
        a, b = m3.g_a(x), m3.g_a(x2)
        assert torch.equal(a[1:], b[1:])   # slice-wise: the others do not see it
        g = MeanScaleVbr3D(16, 16, kz=3).eval()
        g.load_state_dict(m3.state_dict())
        g.g_a[0].weight.data[:, :, 0] = 0.1
        assert not torch.equal(g.g_a(x)[1], g.g_a(x2)[1])


@pytest.mark.parametrize("strings", [[], [b""], [b"a", b"", b"x" * 300], [bytes(range(256)) * 70]])
def test_pack_round_trip(strings):
    assert unpack_strings(pack_strings(strings), len(strings)) == strings


@pytest.mark.parametrize("mutate", [lambda d: d[:-1], lambda d: d + b"\0", lambda d: b"\xff" * 8])
def test_damaged_slice_table_is_refused(mutate):
    data = pack_strings([b"abc", b"de" * 100])
    with pytest.raises(ValueError):
        unpack_strings(mutate(data), 2)


def _tiny_file(tmp_path, seed=0):
    from napari_microcomp import weights as wt
    from napari_microcomp.models import registry

    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    widths = {"N": 8, "M": 8}
    model = registry.get_arch("mbt2018-mean-vbr3d").factory(**widths)
    model.Gain.data = torch.logspace(-0.5, 1.0, 8)   # random init has one gain for every level
    return str(wt.export_weights(model, "mbt2018-mean-vbr3d", tmp_path / "mbt2018-mean-vbr3d.pt", None, widths,
                                 {"test": True}))


def test_codec_round_trip_every_quality_and_block_checks(tmp_path, monkeypatch):
    from napari_microcomp.codecs.volumetric import MeanScaleVbr3DCodec

    w = _tiny_file(tmp_path)
    a = smooth_image((7, 70, 66), np.uint16)
    monkeypatch.setattr(MeanScaleVbr3DCodec, "block", (4, 64, 64))
    monkeypatch.setattr(MeanScaleVbr3DCodec, "block_halo", (1, 0, 0))
    sizes = []
    for q in (1, 8):
        data = get_codec("mbt2018-mean-vbr3d", quality=q, weights=w).encode(a)
        out = decode(data)
        assert out.shape == a.shape and out.dtype == a.dtype
        assert info(data)["check"]["crc32"] == container.array_crc32(out)
        sizes.append(len(data))
    assert sizes[0] < sizes[1]   # rate level 1 codes fewer bytes than 8
    h, payloads = container.unpack(data)
    assert len(h.meta["blocks"]) == 4 * 2 * 2 and len(payloads) == 2 * 16   # cores (2, 64, 64), no Y/X halo
    # a block whose declared latent is larger than the block is refused before rANS reads it
    bad = container.Header(**{**h.__dict__, "meta": {**h.meta, "blocks": [dict(b) for b in h.meta["blocks"]]}})
    bad.meta["blocks"][0]["latent"] = [4, 64, 64]
    with pytest.raises(StreamError, match="latent"):
        decode(container.pack(bad, payloads))
    bad.meta["blocks"][0] = dict(h.meta["blocks"][0], outer=[[0, 4], [0, 10**6], [0, 64]])
    with pytest.raises(StreamError, match="does not fit"):
        decode(container.pack(bad, payloads))


def test_volume_stream_decodes_after_its_file_is_retired(tmp_path, monkeypatch):
    from napari_microcomp import weights
    from napari_microcomp.weights import locate
    from napari_microcomp.weights.export import retire

    user = tmp_path / "user"
    user.mkdir()
    path = _tiny_file(user)
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(user))
    a = smooth_image((4, 64, 64), np.uint16)
    data = get_codec("mbt2018-mean-vbr3d", quality=3).encode(a)
    expected = decode(data)
    retire(path, user / locate.RETIRED)
    import os
    os.unlink(path)
    np.testing.assert_array_equal(decode(data), expected)


def test_weights_follow_the_volumes_modality(tmp_path, monkeypatch):
    from napari_microcomp import weights
    from napari_microcomp.modality import detect_modality
    from napari_microcomp.weights import locate

    user = tmp_path / "user"
    files = {m: _tiny_file(user / m, seed=k) for k, m in enumerate(("fluorescence", "transmitted"))}
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(user))
    rng = np.random.default_rng(0)
    dark = rng.poisson(5, (4, 64, 64)).astype(np.uint16)
    dark[:, 20:30, 20:30] += 3000                      # a few bright nuclei on a dark background
    bright = (30000 - dark.astype(np.int32) * 3).astype(np.uint16)   # transmitted light: bright background
    for vol, want in ((dark, "fluorescence"), (bright, "transmitted")):
        assert detect_modality(vol) == want
        data = get_codec("mbt2018-mean-vbr3d", quality=2).encode(vol)
        h = info(data)
        assert h["codec"]["weights"] == want and h["codec"]["weights_id"] == weights.file_id(files[want])
        assert decode(data).shape == vol.shape
    # an explicit choice wins over the detected one
    data = get_codec("mbt2018-mean-vbr3d", quality=2, weights="transmitted").encode(dark)
    assert info(data)["codec"]["weights_id"] == weights.file_id(files["transmitted"])


def test_small_volume_is_one_block_whatever_its_shape(tmp_path, monkeypatch):
    """Halos and per-block padding cost rate: a volume within a block's voxel count is coded whole."""
    from napari_microcomp.codecs.volumetric import MeanScaleVbr3DCodec

    w = _tiny_file(tmp_path)
    monkeypatch.setattr(MeanScaleVbr3DCodec, "block", (4, 64, 64))
    a = smooth_image((2, 130, 40), np.uint16)          # 10,400 voxels <= 16,384, though Y > 64
    data = get_codec("mbt2018-mean-vbr3d", quality=4, weights=w).encode(a)
    assert len(info(data)["meta"]["blocks"]) == 1
    b = smooth_image((5, 130, 40), np.uint16)          # 26,000 voxels: blocks
    assert len(info(get_codec("mbt2018-mean-vbr3d", quality=4, weights=w).encode(b))["meta"]["blocks"]) > 1


def test_auto_falls_back_to_another_modalitys_weights(tmp_path, monkeypatch):
    """Weights only for transmitted light: a fluorescence volume still codes (auto), and says which file."""
    from napari_microcomp import weights
    from napari_microcomp.weights import locate

    user = tmp_path / "user"
    path = _tiny_file(user / "transmitted")
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(user))
    dark = np.random.default_rng(0).poisson(5, (4, 64, 64)).astype(np.uint16)
    dark[:, 20:30, 20:30] += 3000
    data = get_codec("mbt2018-mean-vbr3d", quality=2).encode(dark)
    assert "weights" not in info(data)["codec"] and info(data)["codec"]["weights_id"] == weights.file_id(path)
    assert decode(data).shape == dark.shape
    with pytest.raises(Exception, match="no weights"):   # an explicit choice does not fall back
        get_codec("mbt2018-mean-vbr3d", quality=2, weights="fluorescence").encode(dark)
