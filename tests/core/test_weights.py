"""The weights module: every shipped weight file (codecs and label-free models) loads through it; one
cache for both; the export format."""
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import weights  # noqa: E402
from napari_microcomp.weights import locate  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "napari_microcomp" / "weights"
CODEC_FILES = sorted((SHIPPED / "codecs").rglob("*.pt")) + sorted((locate.ARCHIVE_DIR / locate.RETIRED).glob("*.pt"))
LABELFREE_FILES = sorted((SHIPPED / "labelfree").glob("*.pt"))


def test_there_are_shipped_files():
    assert locate.SHIPPED_DIR == SHIPPED / "codecs" and locate.LABELFREE_DIR == SHIPPED / "labelfree"
    assert len(CODEC_FILES) >= 20 and len(LABELFREE_FILES) >= 4
    assert set(weights.available_models()) == set(weights.known_models())


@pytest.mark.parametrize("path", CODEC_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_codec_file_loads(path):
    lm = weights.load_weights(path)
    retired = path.parent.name == locate.RETIRED
    # a retired file is decode-only and stands for the file it replaced (the fingerprint in its name)
    want = path.name.split(".")[-2] if retired else weights.file_id(path)
    assert lm.arch and lm.weights_id == want and not lm.model.training
    assert bool(lm.meta.get("decoder_only")) == retired
    assert weights.load_weights(path) is lm


def test_retired_copy_decodes_old_streams_and_refuses_to_encode(tmp_path, monkeypatch):
    import numpy as np

    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.errors import WeightsNotFoundError
    from napari_microcomp.models.registry import build_model, model_widths
    from napari_microcomp.weights.export import retire

    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    user = tmp_path / "user"
    path = weights.export_weights(m, "mbt2018-mean-vbr", user / "mbt2018-mean-vbr.pt", None, model_widths(m), {})
    img = (np.random.default_rng(0).random((64, 80)) * 4000).astype(np.uint16)
    data = get_codec("mbt2018-mean-vbr", quality=5, weights=str(path)).encode(img)
    expected = decode(data)
    old_id = weights.file_id(path)
    copy = retire(path, user / locate.RETIRED)
    assert copy.name == f"mbt2018-mean-vbr.{old_id}.pt" and copy.stat().st_size < path.stat().st_size
    path.unlink()                       # the refresh: only the decode-only copy is left
    monkeypatch.setattr(locate, "SHIPPED_DIR", tmp_path / "none")
    monkeypatch.setenv(weights.ENV_WEIGHTS, str(user))
    assert locate.find_by_id("mbt2018-mean-vbr", 5, old_id) == copy
    assert locate.find_by_id("mbt2018-mean-vbr", 5, "0" * 16) is None
    np.testing.assert_array_equal(decode(data), expected)
    with pytest.raises(WeightsNotFoundError, match="decode-only"):
        get_codec("mbt2018-mean-vbr", quality=5, weights=str(copy)).encode(img)
    with pytest.raises(ValueError, match="already"):
        retire(copy, tmp_path)


@pytest.mark.parametrize("path", LABELFREE_FILES, ids=lambda p: p.name)
def test_every_shipped_labelfree_file_loads(path):
    from napari_microcomp.labelfree import load_model

    net, meta = weights.read_labelfree(path)
    assert meta["kind"] in ("unet", "pix2pix") and meta["source"] == str(path)
    m = load_model(path)
    assert m.meta["source"] == str(path.resolve()) and load_model(str(path)) is m
    weights.clear_cache()   # one cache for codecs and label-free models
    assert load_model(path) is not m


def test_export_keeps_bounds_float32_and_loads_weights_only(tmp_path):
    from napari_microcomp.models.registry import build_model, model_widths

    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    p = weights.export_weights(m, "mbt2018-mean-vbr", tmp_path / "w.pt", None, model_widths(m), {"p": Path("x")})
    d = torch.load(p, weights_only=True)
    sd = d["state_dict"]
    assert d["format"] == weights.FORMAT and d["quality"] is None and d["meta"] == {"p": "x"}
    assert all(v.dtype == torch.float32 for k, v in sd.items() if k.endswith((".bound", "scale_table")))
    assert any(v.dtype == torch.float16 for v in sd.values())
    assert not any(k.endswith("_quantized_cdf") and k.startswith("gaussian") for k in sd)


def test_bottleneck_tables_are_stored_unpadded_and_load_exactly(tmp_path):
    from napari_microcomp.models.registry import build_model, model_widths

    m = build_model("bmshj2018-factorized", 2, N=8, M=8)
    with torch.no_grad():   # uneven channel ranges: the padded table would be mostly zeros
        m.entropy_bottleneck.matrices[0][0].sub_(3)   # a flatter first layer: a far wider density
    p = weights.export_weights(m, "bmshj2018-factorized", tmp_path / "w.pt", 2, model_widths(m), {})
    sd = torch.load(p, weights_only=True)["state_dict"]
    length = sd["entropy_bottleneck._cdf_length"]
    assert sd["entropy_bottleneck._quantized_cdf"].shape == (int(length.sum()),) and length.max() > 2 * length.min()
    eb = weights.load_weights(p).model.entropy_bottleneck
    assert eb._quantized_cdf.shape == (8, int(length.max()))
    for row, n, flat in zip(eb._quantized_cdf, length, torch.split(sd["entropy_bottleneck._quantized_cdf"],
                                                                  length.tolist())):
        assert torch.equal(row[: int(n)], flat) and not row[int(n):].any()


def _old_form(path, target):
    """``path`` as files were stored before session 23: the causal mask and every tap of the masked conv."""
    from napari_microcomp.models.registry import get_arch

    d = torch.load(path, weights_only=True)
    fresh = get_arch(d["arch"]).factory(**d["widths"]).context_prediction
    sd = dict(d["state_dict"])
    w = torch.randn(fresh.weight.shape).half()   # the masked-out taps hold whatever training left there
    w[fresh.mask.bool()] = sd["context_prediction.weight"]
    sd.update({"context_prediction.weight": w, "context_prediction.mask": fresh.mask.half()})
    torch.save(dict(d, state_dict=sd), target)
    return target


def test_context_models_store_only_the_taps_their_mask_keeps(tmp_path):
    import numpy as np

    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.models.registry import build_model, model_widths

    m = build_model("mbt2018", 4, N=8, M=8)
    p = weights.export_weights(m, "mbt2018", tmp_path / "mbt2018-q4.pt", 4, model_widths(m), {})
    sd = torch.load(p, weights_only=True)["state_dict"]
    mask = m.context_prediction.mask
    assert "context_prediction.mask" not in sd
    assert sd["context_prediction.weight"].shape == (int(mask.sum()),) and mask.sum() < mask.numel() / 2
    old = _old_form(p, tmp_path / "old.pt")
    cps = [weights.load_weights(f).model.context_prediction for f in (p, old)]
    for cp in cps:
        assert torch.equal(cp.mask, mask)
    assert torch.equal(cps[0].weight * mask, cps[1].weight * mask)
    img = (np.random.default_rng(1).random((48, 64)) * 4000).astype(np.uint16)
    streams = [get_codec("mbt2018", quality=4, weights=str(f)).encode(img) for f in (p, old)]
    np.testing.assert_array_equal(decode(streams[0]), decode(streams[1]))
    # recompact: an old file rewritten in the compact form is the same model, in fewer bytes
    new = weights.recompact(old, tmp_path / "re.pt")
    assert new.stat().st_size < old.stat().st_size
    assert torch.equal(torch.load(new, weights_only=True)["state_dict"]["context_prediction.weight"],
                       sd["context_prediction.weight"])


def test_package_import_is_lazy_and_torch_free():
    code = ("import sys, napari_microcomp.weights as w, napari_microcomp.labelfree\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert w.ENV_WEIGHTS == 'MICROCOMP_WEIGHTS' and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        weights.nope


def test_cli_retires_a_file_into_the_archive(tmp_path, monkeypatch, capsys):
    from napari_microcomp.cli import main
    from napari_microcomp.models.registry import build_model, model_widths

    m = build_model("mbt2018-mean-vbr", 4, N=8, M=8)
    path = weights.export_weights(m, "mbt2018-mean-vbr", tmp_path / "mbt2018-mean-vbr.pt", None, model_widths(m), {})
    monkeypatch.setattr(locate, "ARCHIVE_DIR", tmp_path / "archive")
    assert main(["train-zoo", "--retire", str(path)]) == 0
    copy = tmp_path / "archive" / locate.RETIRED / f"mbt2018-mean-vbr.{weights.file_id(path)}.pt"
    assert copy.is_file() and str(copy) in capsys.readouterr().out
    assert weights.load_weights(copy).meta["decoder_only"]
    (tmp_path / "junk.pt").write_bytes(b"not a weight file")
    assert main(["train-zoo", "--retire", str(tmp_path / "junk.pt")]) == 2


def test_archived_retired_files_are_found_by_fingerprint_only():
    """Retired files live in weights-archive/ (outside the package); decoders find them by the fingerprint a
    stream names, encoders never pick them."""
    archived = sorted((locate.ARCHIVE_DIR / locate.RETIRED).glob("*.pt"))
    assert archived and not list(locate.SHIPPED_DIR.rglob(f"{locate.RETIRED}/*.pt"))
    for p in archived:
        lm = weights.load_weights(p)
        q = lm.meta.get("quality") or 1
        assert locate.find_by_id(lm.arch, q, lm.weights_id) == p
        assert p not in locate.candidate_files(lm.arch, q)
