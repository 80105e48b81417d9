"""The benchmark engine on tiny images: row content vs direct computation, phase 2, cancel, failures."""
import math

import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import metrics
from napari_microcomp._progress import result_of
from napari_microcomp.benchmark import ROW_KEYS, iter_benchmark
from napari_microcomp.benchmark.engine import expand_codecs, method_name
from napari_microcomp.codecs import Codec, codec_from_config, get_codec, registry
from napari_microcomp.errors import CodecError, InputError

CODECS = ["jpegls", "lerc"]
LEVELS = [2, 6]


@pytest.fixture(scope="module")
def image():
    return smooth_image((64, 80), np.uint16, seed=7, bits=12)


def _drain(gen):
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return events, stop.value


def test_rows_match_direct_computation(image):
    before = image.copy()
    events, rows = _drain(iter_benchmark({"blobs": image}, CODECS, qualities=LEVELS))
    np.testing.assert_array_equal(image, before)  # the source is never modified
    assert [(r["codec"], r["quality"]) for r in rows] == [(c, q) for c in CODECS for q in LEVELS]
    assert [e.payload for e in events if e.stage == "row"] == rows
    assert [e.done for e in events] == [1, 2, 3, 4] and all(e.total == 4 for e in events)
    for row in rows:
        assert tuple(row) == ROW_KEYS and row["status"] == "ok" and row["error"] is None
        codec = get_codec(row["codec"], quality=row["quality"])
        stream = codec.encode(image)
        recon = codec.decode(stream)
        assert row["config"] == codec.get_config()
        assert codec_from_config(row["config"]).encode(image) == stream  # the row re-runs exactly
        assert row["compressed_bytes"] == len(stream)
        assert row["raw_bytes"] == image.nbytes
        assert row["compression_ratio"] == pytest.approx(image.nbytes / len(stream))
        assert row["bpp"] == pytest.approx(8 * len(stream) / image.size)
        assert row["mse"] == pytest.approx(metrics.mse(image, recon))
        assert row["psnr"] == pytest.approx(metrics.psnr(image, recon))
        assert row["ssim"] == pytest.approx(metrics.ssim(image, recon))
        assert row["pearson_r"] == pytest.approx(metrics.pearson(image, recon))
        assert row["data_range"] == float(image.max()) - float(image.min())
        assert row["max_abs_error"] == np.abs(image.astype(float) - recon).max()
        assert row["mean_error"] == pytest.approx((recon.astype(float) - image).mean(), abs=1e-12)
        assert math.isnan(row["ms_ssim"])  # 64×80 is too small for 5 scales: NaN, not a made-up number
        assert row["encode_s"] > 0 and row["decode_s"] > 0
        assert all(math.isnan(row[k]) for k in ROW_KEYS if k.startswith("p2_") or k == "predict_s")
    # a higher level never gives a larger error bound for these error-bounded codecs
    for c in CODECS:
        lo, hi = (r for r in rows if r["codec"] == c)
        assert hi["max_abs_error"] <= lo["max_abs_error"] and hi["compressed_bytes"] >= lo["compressed_bytes"]


def test_phase2_metrics_match_direct_computation(image):
    def predictor(a):  # deterministic "model": smooth and rescale, like a network output
        from scipy.ndimage import uniform_filter
        return (uniform_filter(a.astype(np.float32), 5) / 100.0).astype(np.float32)

    rng = np.random.default_rng(0)
    gt = predictor(image) + rng.normal(0, 0.5, image.shape).astype(np.float32)
    other = smooth_image((64, 80), np.uint16, seed=8)
    rows = result_of(iter_benchmark([("a", image), ("b", other)], ["jpegls"], qualities=[1, 4],
                                    predictor=predictor, ground_truth={"a": gt}))
    pred_orig = predictor(image)
    peak = float(gt.max() - gt.min())  # one peak for every phase-2 score of the image
    for row in rows[:2]:
        codec = codec_from_config(row["config"])
        pred = predictor(codec.decode(codec.encode(image)))
        assert row["p2_psnr"] == pytest.approx(metrics.psnr(gt, pred))
        assert row["p2_ssim"] == pytest.approx(metrics.ssim(gt, pred))
        assert row["p2_pearson_r"] == pytest.approx(metrics.pearson(gt, pred))
        assert row["p2_ref_pearson_r"] == pytest.approx(metrics.pearson(pred_orig, pred))
        assert row["p2_ref_psnr"] == pytest.approx(metrics.psnr(pred_orig, pred, peak))
        assert row["p2_orig_pearson_r"] == pytest.approx(metrics.pearson(gt, pred_orig))
        assert row["predict_s"] > 0
    # the coarser level changes the prediction more
    assert rows[0]["p2_ref_psnr"] < rows[1]["p2_ref_psnr"]
    # "b" has no ground truth: phase 2 does not run on it
    assert all(math.isnan(r["p2_pearson_r"]) and math.isnan(r["p2_ref_psnr"]) for r in rows[2:])

    # phase 2 on chosen levels only; a lossless row is predicted again (its predict_s is a real time) and,
    # the model being deterministic, scores exactly like the original
    calls = []

    def counting(a):
        calls.append(1)
        return predictor(a)

    rows = result_of(iter_benchmark({"a": image}, ["jpegls", "zstd"], qualities=[1, 4], predictor=counting,
                                    ground_truth={"a": gt}, phase2_qualities=[4]))
    assert math.isnan(rows[0]["p2_pearson_r"]) and not math.isnan(rows[1]["p2_pearson_r"])
    lossless = rows[2]
    assert lossless["p2_pearson_r"] == lossless["p2_orig_pearson_r"] and lossless["p2_ref_psnr"] == math.inf
    assert lossless["predict_s"] > 0
    assert len(calls) == 3  # the original, jpegls q4 and zstd: not jpegls q1


def test_model_style_predictor_normalizes_the_ground_truth(image):
    class Model:
        def __call__(self, a):
            return a.astype(np.float32) / 1000.0

        def normalize_target(self, t):
            return t.astype(np.float32) / 1000.0

    gt = image.astype(np.float32) + 50.0
    row = result_of(iter_benchmark({"a": image}, ["jpegls"], qualities=[8], predictor=Model(),
                                   ground_truth={"a": gt}))[0]
    # scored in the model's units: the same numbers as comparing in raw units with a scaled peak
    assert row["p2_orig_psnr"] == pytest.approx(metrics.psnr(gt / 1000, image / 1000.0))
    assert row["p2_orig_pearson_r"] == pytest.approx(1.0)


def test_a_label_free_model_on_a_fluorescence_image_is_noted(image):
    class Model:   # normalize_target: a label-free model, which takes transmitted light
        def __call__(self, a):
            return a.astype(np.float32)

        def normalize_target(self, t):
            return t.astype(np.float32)

    rng = np.random.default_rng(0)
    fluo = (100 + rng.normal(0, 3, (64, 80))).astype(np.uint16)
    fluo[20:26, 30:36] = 4000   # one bright nucleus on a dark background
    rows = result_of(iter_benchmark({"f": fluo, "t": image}, ["jpegls"], qualities=[8], predictor=Model()))
    notes = {r["image"]: r.get("note") or "" for r in rows}
    assert "phase 2: the input looks like fluorescence" in notes["f"] and "fluorescence" not in notes["t"]
    plain = result_of(iter_benchmark({"f": fluo}, ["jpegls"], qualities=[8], predictor=np.asarray))
    assert "fluorescence" not in (plain[0].get("note") or "")   # any other predictor: nothing assumed


def test_cancel_between_rows(image):
    seen = []
    gen = iter_benchmark({"x": image}, CODECS, qualities=LEVELS, should_stop=lambda: len(seen) >= 2)
    events, rows = [], None
    try:
        while True:
            e = next(gen)
            events.append(e)
            if e.stage == "row":
                seen.append(e.payload)
    except StopIteration as stop:
        rows = stop.value
    assert len(rows) == 2 and rows == seen
    assert events[-1].stage == "cancelled" and events[-1].payload is None


class _Raises(Codec):
    codec_id = "test-raises"
    family = "classical"

    def _encode(self, a, header):
        raise RuntimeError("encoder exploded")

    def _decode(self, header, payloads):  # pragma: no cover - never reached
        raise AssertionError


def test_failing_codec_is_recorded_and_run_goes_on(image, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "test-raises", _Raises)
    rows = result_of(iter_benchmark({"x": image}, ["test-raises", "jpegls"], qualities=[3]))
    bad, good = rows
    assert bad["status"] == "error" and "encoder exploded" in bad["error"] and "RuntimeError" in bad["error"]
    assert math.isnan(bad["psnr"]) and bad["compressed_bytes"] is None and tuple(bad) == ROW_KEYS
    assert good["status"] == "ok" and good["psnr"] > 30
    # a config that cannot even be built (missing weights, bad parameter) is a row error too
    rows = result_of(iter_benchmark({"x": image}, [{"id": "jpegls", "quality": 3, "bogus": 1}]))
    assert rows[0]["status"] == "error" and "bogus" in rows[0]["error"]


def test_inputs_are_checked_before_work(image):
    with pytest.raises(CodecError, match="unknown codec"):
        result_of(iter_benchmark({"x": image}, ["jpeg-typo"]))
    with pytest.raises(InputError):
        result_of(iter_benchmark({"x": np.zeros((4, 4, 3))}, ["jpegls"]))
    with pytest.raises(InputError, match="unknown image"):
        result_of(iter_benchmark({"x": image}, ["jpegls"], predictor=np.asarray, ground_truth={"y": image}))


def test_expand_codecs_and_method_names():
    cfgs = expand_codecs(["zstd", "jpegxl", get_codec("lerc", max_error=3.0)], qualities=[1, 8])
    assert cfgs[0] == {"id": "zstd", "quality": None, "lossless": True}
    assert [c["quality"] for c in cfgs[1:3]] == [1, 8]
    assert method_name(cfgs[1]) == "jpegxl" and method_name(cfgs[3]) == "lerc(max_error=3.0)"


def test_learned_codec_row_with_tiny_random_weights(tmp_path):
    pytest.importorskip("compressai")
    from napari_microcomp.models.registry import build_model
    from napari_microcomp.weights.export import export_weights

    arch = "bmshj2018-factorized"
    path = export_weights(build_model(arch, 1, N=8, M=8), arch, tmp_path / "tiny.pt", 1,
                          {"N": 8, "M": 8}, {"note": "random init, test only"})
    img = smooth_image((64, 64), np.uint16, seed=2)
    row = result_of(iter_benchmark({"x": img}, [{"id": arch, "quality": 1, "weights": str(path)}]))[0]
    assert row["status"] == "ok", row["error"]
    assert row["family"] == "learned" and row["compressed_bytes"] > 0 and np.isfinite(row["psnr"])


def test_model_predictor_tta_option(shared_data):
    import pickle

    pytest.importorskip("torch")
    from napari_microcomp.benchmark import ModelPredictor
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.samples import isl_phase_stack

    img = np.ascontiguousarray(isl_phase_stack()[6, 400:464, 400:464])
    p = pickle.loads(pickle.dumps(ModelPredictor("unet2d-isl-dapi", tta=True)))   # travels to dask workers
    assert p.tta and "tta=True" in repr(p)
    np.testing.assert_allclose(p(img), load_model("unet2d-isl-dapi").predict(img, tta=True), atol=1e-6)
