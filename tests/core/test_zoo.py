"""The architecture registry (models.registry) and the weights module: compact weight files, lookup order,
caching, and the CompressAI-format URL source (served offline from a local HTTP server)."""
import functools
import hashlib
import http.server
import io
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp.errors import MicrocompError, WeightsNotFoundError  # noqa: E402
from napari_microcomp.models import registry  # noqa: E402
from napari_microcomp import weights as wt  # noqa: E402
from napari_microcomp.weights import locate  # noqa: E402

NINE = ["bmshj2018-factorized", "bmshj2018-factorized-relu", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
        "cheng2020-anchor", "cheng2020-attn", "bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr"]


def test_table_and_register_arch():
    assert set(NINE) <= set(registry.list_archs(ndim=2))
    spec = registry.get_arch("mbt2018-mean")
    assert spec.lmbda(1) == 0.0018 and spec.lmbda(8) == 0.18 and spec.ndim == 2
    assert spec.weights_filename(4) == "mbt2018-mean-q4.pt"
    assert registry.get_arch("mbt2018-mean-vbr").weights_filename(4) == "mbt2018-mean-vbr.pt"
    assert registry.compressai_url("mbt2018-mean", 8).startswith("https://")
    with pytest.raises(MicrocompError, match="unknown architecture"):
        registry.get_arch("nope")
    with pytest.raises(MicrocompError, match="8 lambdas"):
        registry.register_arch(registry.ArchSpec(name="bad", factory=lambda: None, lambdas=(0.1,)))
    for name in NINE:   # every factory builds a 1-channel model
        m = registry.build_model(name, 1, N=8, M=8) if not name.startswith("cheng") else registry.build_model(name, 1, N=8)
        with torch.no_grad():
            out = m(torch.rand(1, 1, 64, 64))
        assert out["x_hat"].shape == (1, 1, 64, 64)


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    model = registry.build_model("mbt2018-mean", 2, N=8, M=8)
    path = wt.export_weights(model, "mbt2018-mean", tmp_path / "mbt2018-mean-q2.pt", 2, {"N": 8, "M": 8},
                              {"steps": 0, "note": ("tuple", "becomes", "list")})
    return model, path


def test_export_is_fp16_json_meta_and_loads_cached(tiny):
    model, path = tiny
    d = torch.load(path, weights_only=True)    # plain tensors + JSON types only
    floats = [v for k, v in d["state_dict"].items()
              if v.is_floating_point() and not k.endswith(("scale_table", ".bound"))]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert not any(k.startswith("gaussian_conditional._quantized_cdf") for k in d["state_dict"])
    assert d["meta"]["note"] == ["tuple", "becomes", "list"] and d["widths"] == {"N": 8, "M": 8}
    wt.clear_cache()
    lm = wt.load_weights(path)
    assert wt.load_weights(path) is lm and lm.arch == "mbt2018-mean" and len(lm.weights_id) == 16
    # the rebuilt Gaussian tables equal what update() computes; parameters are the fp16-rounded ones
    ref = registry.build_model("mbt2018-mean", 2, N=8, M=8)
    ref.update(force=True)
    assert torch.equal(lm.model.gaussian_conditional._quantized_cdf, ref.gaussian_conditional._quantized_cdf)
    w = model.g_a[0].weight.detach()
    assert torch.equal(lm.model.g_a[0].weight, w.half().float())
    with pytest.raises(WeightsNotFoundError, match="quality 2"):
        wt.load_weights(path, "mbt2018-mean", 5)
    with pytest.raises(WeightsNotFoundError, match="not 'mbt2018'"):
        wt.load_weights(path, "mbt2018")


def test_not_a_weight_file(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, p)
    with pytest.raises(WeightsNotFoundError, match="not a napari-microcomp weight file"):
        wt.load_weights(p)


def test_lookup_order_user_folder_first(tiny, tmp_path, monkeypatch, capsys):
    _, path = tiny
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir()
    user.mkdir()
    (shipped / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(locate, "SHIPPED_DIR", shipped)
    monkeypatch.delenv(wt.ENV_WEIGHTS, raising=False)
    assert wt.find_weights("mbt2018-mean", 2) == shipped / path.name
    # a shipped general file is provisional (no RD gate passed it); a modality folder's file is gated
    assert wt.available_qualities("mbt2018-mean") == {2: "provisional"}
    from napari_microcomp.cli import main
    assert main(["codecs"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mbt2018-mean "))
    assert "weights: q2" in row and locate.PROVISIONAL_NOTE in row
    (shipped / "transmitted").mkdir()
    (shipped / "transmitted" / path.name).write_bytes(path.read_bytes())
    assert wt.available_qualities("mbt2018-mean") == {2: "shipped"}
    (user / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv(wt.ENV_WEIGHTS, str(user))
    assert wt.find_weights("mbt2018-mean", 2) == user / path.name
    assert wt.find_weights("mbt2018-mean", 3) is None
    with pytest.raises(WeightsNotFoundError, match="train-codec"):
        wt.get_model("mbt2018-mean", 3)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    hits = 0

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).hits += 1
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_weights_rgb_state_dict_offline(server, tmp_path, monkeypatch):
    from compressai.zoo.image import model_architectures

    from napari_microcomp.codecs import decode, get_codec

    root, base = server
    torch.manual_seed(0)
    rgb = model_architectures["bmshj2018-hyperprior"](8, 8)   # CompressAI's own RGB model class
    rgb.update(force=True)
    buf = io.BytesIO()
    torch.save(rgb.state_dict(), buf)
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    name = f"bmshj2018-hyperprior-test-{digest[:8]}.pth.tar"
    (root / name).write_bytes(buf.getvalue())
    monkeypatch.setenv(wt.ENV_CACHE, str(tmp_path / "cache"))
    wt.clear_cache()
    _Quiet.hits = 0

    img = (np.random.default_rng(0).random((70, 90)) * 4000).astype(np.uint16)
    codec = get_codec("bmshj2018-hyperprior", quality=3, weights=f"{base}/{name}#sha256={digest}")
    out = decode(codec.encode(img))                      # gray replicated to 3 channels, output averaged
    assert out.shape == img.shape and out.dtype == np.uint16
    assert codec.load().channels == 3
    assert (tmp_path / "cache" / "weights" / name).is_file() and _Quiet.hits == 1
    wt.clear_cache()
    codec.load()                                          # from the cache: no second download
    assert _Quiet.hits == 1

    bad = f"bmshj2018-hyperprior-test-{'0' * 8}.pth.tar"
    (root / bad).write_bytes(buf.getvalue())
    with pytest.raises(WeightsNotFoundError, match="could not download"):
        wt.load_url("bmshj2018-hyperprior", f"{base}/{bad}#sha256={'0' * 64}")
    with pytest.raises(WeightsNotFoundError, match="SHA-256"):     # no hash known in advance: refused
        wt.load_url("bmshj2018-hyperprior", f"{base}/plain.pth")
    with pytest.raises(WeightsNotFoundError, match="SHA-256"):     # a prefix in the name is not enough
        wt.load_url("bmshj2018-hyperprior", f"{base}/{name}")


def test_compressai_source_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(wt.ENV_CACHE, str(tmp_path))
    import pooch
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    wt.clear_cache()
    with pytest.raises(WeightsNotFoundError, match="offline"):
        wt.get_model("bmshj2018-factorized", 1, "compressai")
    with pytest.raises(WeightsNotFoundError, match="no pretrained"):
        wt.get_model("cheng2020-anchor", 8, "compressai")
