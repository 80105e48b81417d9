"""Label-free inference: tiling, the model wrapper, weights files, the zoo and compare()."""
import numpy as np
import pytest

from napari_microcomp._progress import result_of
from napari_microcomp.errors import InputError, WeightsNotFoundError
from napari_microcomp import tiling

torch = pytest.importorskip("torch")


def _identity(batch):
    return batch.copy()


@pytest.mark.parametrize("shape,tile,overlap", [((1, 100, 77), 32, 16), ((2, 33, 129), 48, 8),
                                                ((1, 9, 40, 31), 16, 8), ((1, 7, 7), 64, 16)])
def test_tiled_identity_is_exact(shape, tile, overlap):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    gen = tiling.iter_tiled(_identity, x, tile=tile, overlap=overlap, batch=3)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        out = stop.value
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-5)
    assert events[-1].done == events[-1].total >= 1


def test_plan_tiles_covers_and_rounds():
    padded, tshape, positions = tiling.plan_tiles((100, 20), 50, 10, multiple=16)
    assert tshape == (64, 32) and padded == (100, 32)
    assert positions[0] == (0, 0) and max(p[0] for p in positions) + 64 == 100


def _tiny_model(in_channels=1, zstack=False, seed=0):
    from napari_microcomp.labelfree.model import LabelFreeModel
    from napari_microcomp.models.unet import build_generator
    from napari_microcomp.labelfree.normalize import DEFAULT_SCHEME

    torch.manual_seed(seed)
    arch = {"ndim": 2, "in_channels": in_channels, "out_channels": 1, "depth": 3, "base": 8}
    meta = {"kind": "unet", "arch": arch,
            "input": {"layout": "zyx-channels" if zstack else "yx", "n_slices": in_channels},
            "normalization": {"input": DEFAULT_SCHEME, "target": DEFAULT_SCHEME}}
    return LabelFreeModel(build_generator(arch), meta)


@pytest.fixture(scope="module")
def phase_patch():
    from napari_microcomp.samples import shared_data_dir
    if shared_data_dir() is None:
        pytest.skip("shared data not available")
    from napari_microcomp.datasets import labelfree_split
    phase, dapi = labelfree_split("train", zstack=True)
    return phase[:, 300:461, 200:403], dapi[300:461, 200:403]   # odd shape 161 x 203


def _calibrate(model, image):
    """Give the random net's BatchNorm real statistics, so its output varies like a trained net's."""
    for m in model.net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.net.train()
    with torch.no_grad():
        x = model.prepare(image)[None, :, :160, :160]
        model.net(torch.from_numpy(np.ascontiguousarray(x)))
    model.net.eval()
    return model


def test_tiled_equals_untiled_for_a_local_operator():
    """Blending weights are exactly 0 where a tile's border effects live: a 5×5 filter tiles exactly."""
    from scipy.ndimage import uniform_filter

    def box(batch):
        return np.stack([uniform_filter(t, size=(1, 5, 5), mode="constant") for t in batch])

    x = np.random.default_rng(1).normal(size=(1, 96, 80)).astype(np.float32)
    whole = box(x[None])[0]
    tiled = result_of(tiling.iter_tiled(box, x, tile=32, overlap=16, batch=2))
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_close_to_untiled_on_real_image(phase_patch):
    img = phase_patch[0][6][:160, :192]     # multiples of 16: the untiled pass needs no padding
    model = _calibrate(_tiny_model(), img)
    whole = model.predict(img, tile=256)
    tiled = model.predict(img, tile=128, overlap=64, batch=3)
    naive = model.predict(img, tile=128, overlap=0)
    assert whole.shape == tiled.shape == img.shape and whole.dtype == np.float32
    scale = float(whole.std())
    assert scale > 1e-3
    err, err_naive = np.abs(whole - tiled) / scale, np.abs(whole - naive) / scale
    # Measured (random calibrated net, depth 3): blended mean 0.02 / max 0.5 std; abutting tiles 0.15 / 3.4.
    assert err.mean() < 0.05 and err.max() < 0.3 * err_naive.max(), (err.mean(), err.max(), err_naive.max())


def test_bf16_prediction_is_close_to_fp32(phase_patch):
    img = phase_patch[0][6][:160, :192]
    model = _calibrate(_tiny_model(), img)
    exact = model.predict(img)
    fast = model.predict(img, precision="bf16")
    assert np.corrcoef(exact.ravel(), fast.ravel())[0, 1] > 0.99
    with pytest.raises(InputError, match="precision"):
        model.predict(img, precision="fp8")


def test_tta_averages_the_eight_views(phase_patch):
    model = _calibrate(_tiny_model(), phase_patch[0][6][:160, :192])
    img = phase_patch[0][6][:150, :97]
    gen = model.iter_predict(img, tta=True)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        tta = stop.value
    assert tta.shape == img.shape and events[-1].done == events[-1].total == 8
    views = []
    for k in range(4):
        for flip in (False, True):
            v = np.rot90(img, k)
            p = model.predict(np.ascontiguousarray(v[:, ::-1] if flip else v))
            views.append(np.rot90(p[:, ::-1] if flip else p, -k))
    np.testing.assert_allclose(tta, np.mean(views, axis=0), atol=1e-5)


def test_odd_shapes_predict_to_the_same_shape(phase_patch):
    model = _tiny_model()
    for shape in [(161, 203), (17, 199), (9, 9)]:
        img = phase_patch[0][6][:shape[0], :shape[1]]
        pred = model.predict(img, tile=128, overlap=32)
        assert pred.shape == shape and np.isfinite(pred).all()


def test_zstack_model_takes_stacks_only(phase_patch):
    stack = phase_patch[0]
    model = _tiny_model(in_channels=stack.shape[0], zstack=True)
    pred = model.predict(stack, tile=96, overlap=32)
    assert pred.shape == stack.shape[1:]
    with pytest.raises(InputError, match="stack"):
        model.predict(stack[:5])
    with pytest.raises(InputError, match="stack"):
        model.predict(stack[0])
    with pytest.raises(InputError, match="2D"):
        _tiny_model().predict(stack)


def test_prediction_does_not_modify_input(phase_patch):
    img = phase_patch[0][6].copy()
    before = img.copy()
    _tiny_model().predict(img, tile=64, overlap=16)
    np.testing.assert_array_equal(img, before)


def test_weights_roundtrip_and_cache(tmp_path, phase_patch):
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.weights.export import export_labelfree

    model = _tiny_model(seed=3)
    path = tmp_path / "tiny.pt"
    export_labelfree(path, model.net.state_dict(), model.meta)
    loaded = load_model(path)
    assert load_model(str(path)) is loaded           # cached: built once
    img = phase_patch[0][6]
    a, b = model.predict(img), loaded.predict(img)
    assert np.abs(a - b).max() < 2e-2 * max(1.0, float(np.abs(a).max()))   # fp16 storage
    assert loaded.meta["source"] == str(path.resolve())


def test_missing_and_bad_weights_give_clear_errors(tmp_path):
    from napari_microcomp.labelfree import load_model, zoo

    with pytest.raises(WeightsNotFoundError, match="unknown label-free model"):
        load_model("no-such-model")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsNotFoundError, match="junk.pt"):
        load_model(junk)
    assert set(zoo.available_models()) <= set(zoo.known_models())


def test_provenance_says_what_a_model_was_trained_and_validated_on():
    from napari_microcomp.labelfree.model import provenance

    stack = {"layout": "zyx-channels", "n_slices": 13}
    data = [{"role": "input", "name": "stack.tif"}, {"role": "target", "name": "dapi.tif"},
            {"role": "aux-target", "name": "map2.tif"}, {"role": "aux-target", "name": "nfh.tif"}]
    val = {"best_pearson_r": 0.7845}
    main = provenance({"kind": "unet", "input": stack, "training": {"steps": 4996, "data": data, "validation": val}})
    assert main.startswith("unet from a 13-slice z-stack; trained on stack.tif → dapi.tif (4,996 steps)")
    assert "validation r 0.78" in main and "a single training field of view" in main
    # an auxiliary output: its own target, and no claim from the main target's validation
    aux = provenance({"kind": "unet", "input": stack, "training": {"data": data, "validation": val,
                                                                   "exported_output": "auxiliary target 2"}})
    assert "→ nfh.tif" in aux and "validation" not in aux
    many = provenance({"kind": "pix2pix", "input": {"layout": "yx"},
                       "training": {"data": [{"role": "input", "name": "a.tif"}, {"role": "input", "name": "b.tif"},
                                             {"role": "target", "name": "fa.tif"}, {"role": "target", "name": "fb.tif"}]}})
    assert many == "pix2pix from one 2D image; trained on a.tif, b.tif → fa.tif, fb.tif"
    # 13 focal planes of one field, each paired with the same target: listed compactly, still one field
    planes = [{"role": "input", "name": f"z{k}.tif"} for k in range(13)] + [{"role": "target", "name": "dapi.tif"}] * 13
    one_field = provenance({"kind": "unet", "input": {"layout": "yx"}, "training": {"data": planes}})
    assert one_field.startswith("unet from one 2D image; trained on z0.tif … z12.tif (13 files) → dapi.tif; "
                                "a single training field of view: predictions for other samples")
    assert provenance({"input": "?", "training": {"steps": "x", "data": 3, "validation": {"best_pearson_r": "y"}}}) \
        == provenance({}) == provenance({"input": {}}) == "model from one 2D image; training data not recorded: predictions for " \
        "other samples, microscopes or stains are unvalidated (compare with a ground truth before trusting them)"


def test_shipped_name_without_weights_file(tmp_path, monkeypatch):
    from napari_microcomp.labelfree import available_models, load_model
    from napari_microcomp.weights import locate

    monkeypatch.setattr(locate, "LABELFREE_DIR", tmp_path)
    assert available_models() == []
    with pytest.raises(WeightsNotFoundError, match="not installed.*train-labelfree"):
        load_model("unet2d-isl-dapi")


def test_shipped_2d_model_predicts_dapi_on_the_eval_split():
    from napari_microcomp.labelfree import available_models, load_model
    from napari_microcomp.metrics import pearson
    from napari_microcomp.samples import shared_data_dir

    if "unet2d-isl-dapi" not in available_models() or shared_data_dir() is None:
        pytest.skip("shipped weights or shared data not available")
    from napari_microcomp.datasets import labelfree_split
    phase, dapi = labelfree_split("eval")
    model = load_model("unet2d-isl-dapi")
    pred = model.predict(phase[:256])
    # Measured 0.78 on this crop (0.60 on the whole strip); a broken export or normalization gives ~0.
    assert pearson(model.normalize_target(dapi[:256]), pred) > 0.6


def test_compare_with_reconstruction_and_codec(phase_patch):
    from napari_microcomp.codecs import get_codec
    from napari_microcomp.labelfree import compare

    model = _tiny_model()
    img, dapi = phase_patch[0][6], phase_patch[1]
    same = compare(model, img, dapi, reconstruction=img.copy(), return_arrays=True)
    assert same["pearson_rec"] == pytest.approx(same["pearson_orig"])
    assert same["pearson_rec_vs_orig"] == pytest.approx(1.0)
    assert same["psnr_rec_vs_orig"] == float("inf")
    gt = same["arrays"]["target"]
    assert same["data_range"] == pytest.approx(float(gt.max() - gt.min()))
    row = compare(model, img, dapi, codec=get_codec("jpegxl", quality=1),
                  prediction_original=same["arrays"]["original"])
    assert row["ssim_orig"] == pytest.approx(same["ssim_orig"])
    assert row["compression_ratio"] > 1 and row["codec"]["id"] == "jpegxl"
    assert row["pearson_rec_vs_orig"] < 1.0
    with pytest.raises(InputError):
        compare(model, img, dapi[:-1])


def test_compare_without_ground_truth_scores_reconstruction_vs_original(phase_patch):
    from napari_microcomp.labelfree import compare
    from napari_microcomp.labelfree.compare import prediction_scores

    model = _tiny_model(seed=5)
    img = phase_patch[0][6]
    rec = img.copy()
    rec[::7] = rec[::7] // 2
    row = compare(model, img, None, reconstruction=rec, return_arrays=True)
    a = row["arrays"]
    assert "target" not in a and "pearson_orig" not in row and "pearson_rec" not in row
    peak = float(a["original"].max() - a["original"].min())
    assert (row["psnr_rec_vs_orig"], row["ssim_rec_vs_orig"], row["pearson_rec_vs_orig"]) == \
        prediction_scores(a["original"], a["reconstruction"], peak)


def test_predict_refuses_an_unwritable_output_name_before_predicting(tmp_path, capsys, monkeypatch):
    from napari_microcomp import labelfree
    from napari_microcomp.cli import main

    np.save(tmp_path / "img.npy", np.zeros((32, 32), np.uint16))
    monkeypatch.setattr(labelfree, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(["predict", str(tmp_path / "img.npy"), str(tmp_path / "pred.xyz")]) == 2
    assert "output must be .tif/.tiff/.ome.tif or .npy, got pred.xyz" in capsys.readouterr().err


def test_a_fluorescence_input_is_warned_about(phase_patch, tmp_path, capsys, monkeypatch):
    """The models predict fluorescence from transmitted light: fed a fluorescence image, they said nothing."""
    from napari_microcomp import labelfree
    from napari_microcomp.cli import main
    from napari_microcomp.jobs import predict
    from napari_microcomp.labelfree.model import input_caveat

    phase, _ = phase_patch
    yy, xx = np.mgrid[:161, :203]
    rng = np.random.default_rng(0)
    dapi = 100 + rng.normal(0, 5, yy.shape)   # sparse nuclei on a dark background
    for cy, cx in rng.integers(20, 140, (6, 2)):
        dapi += 3000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)
    dapi = dapi.astype(np.uint16)
    assert input_caveat(phase[6]) is None and input_caveat(phase) is None
    assert "looks like fluorescence" in input_caveat(dapi)
    model = _tiny_model()
    monkeypatch.setattr(labelfree, "load_model", lambda *a, **k: model)
    for image, warned in ((dapi, True), (phase[6], False)):
        np.save(tmp_path / "in.npy", image)
        assert main(["predict", str(tmp_path / "in.npy"), str(tmp_path / "p.npy"), "--overwrite"]) == 0
        assert ("looks like fluorescence" in capsys.readouterr().err) == warned
        scores = result_of(predict("tiny", image, None, None, image, None, 4))[0]   # the napari dock's job
        assert ("caveat" in scores) == warned
