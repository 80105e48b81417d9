"""The Label-free widget driven as a user: pick layers and a model, compress or pick a layer, Predict."""
import numpy as np
import pytest

from napari_microcomp._qt._common import fmt
from napari_microcomp._qt.labelfree_widget import LabelFreeWidget
from napari_microcomp.api import compress_array
from napari_microcomp.labelfree import compare, load_model

pytestmark = pytest.mark.gui
TIMEOUT = 120_000


def _widget(viewer, qtbot, model_path):
    w = LabelFreeWidget(viewer)
    qtbot.addWidget(w)
    w.model.setEditText(str(model_path))
    return w


def _run(qtbot, w):
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def test_compress_now_with_ground_truth_on_current_slice(make_napari_viewer, qtbot, isl_crops, tiny_model_file):
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    src = viewer.add_image(phase, name="phase")
    viewer.add_image(dapi, name="dapi")
    viewer.dims.set_current_step(0, 5)
    w = _widget(viewer, qtbot, tiny_model_file)
    w.image_picker.select("phase")
    w.target_picker.select("dapi")
    w.codec_combo.select("jpegxl")
    w.quality.setValue(2)
    _run(qtbot, w)
    # a run describes the model it used (a user's file: what its metadata says)
    assert w.model.toolTip().startswith(f"{tiny_model_file}: unet from one 2D image")

    comp = compress_array(phase[5], "jpegxl", quality=2)
    expected = compare(load_model(str(tiny_model_file)), phase[5], dapi, reconstruction=comp.reconstruction,
                       return_arrays=True)
    arrays = expected.pop("arrays")
    names = [layer.name for layer in viewer.layers]
    assert "phase z5 [jpegxl q2]" in names
    np.testing.assert_array_equal(viewer.layers["phase z5 [jpegxl q2]"].data, comp.reconstruction)
    pred_o = viewer.layers["tiny-unet: from phase z5"]
    pred_r = viewer.layers["tiny-unet: from phase z5 [jpegxl q2]"]
    gt = viewer.layers["tiny-unet: ground truth (normalized)"]
    np.testing.assert_allclose(pred_o.data, arrays["original"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred_r.data, arrays["reconstruction"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(gt.data, arrays["target"])
    for r, key in enumerate(("orig", "rec", "rec_vs_orig")):
        assert w.table.item(r, 0).text() == fmt(expected[f"ssim_{key}"], 3)
        assert w.table.item(r, 2).text() == fmt(expected[f"pearson_{key}"], 3)
    assert "jpegxl q2" in w.compression_label.text()
    # side by side (no grid mode: only this comparison, left to right, titled), contrast linked
    assert not viewer.grid.enabled
    assert pred_o.translate[-1] < pred_r.translate[-1] < gt.translate[-1]
    assert pred_o.visible and pred_r.visible and gt.visible
    assert viewer.text_overlay.visible and "ground truth" in viewer.text_overlay.text
    pred_o.contrast_limits = (0.1, 0.7)
    assert tuple(pred_r.contrast_limits) == (0.1, 0.7) == tuple(gt.contrast_limits)
    assert src.data is phase and tuple(pred_o.scale) == tuple(src.scale[-2:])
    assert viewer.layers.selection.active is pred_r  # selected once, after all layers were added
    assert not src.visible and not viewer.layers["dapi"].visible  # the comparison alone
    w.clear()
    assert [layer.name for layer in viewer.layers] == ["phase", "dapi"] and src.visible
    assert viewer.layers["dapi"].visible and src.data is phase


def test_existing_reconstruction_layer_without_ground_truth(make_napari_viewer, qtbot, isl_crops, tiny_model_file):
    from napari_microcomp import metrics

    image = isl_crops[0][6]
    recon = compress_array(image, "jpeg2k", quality=1).reconstruction
    viewer = make_napari_viewer()
    viewer.add_image(image, name="phase6")
    viewer.add_image(recon, name="phase6 rec")
    w = _widget(viewer, qtbot, tiny_model_file)
    w.image_picker.select("phase6")
    w.by_layer.setChecked(True)
    w.recon_picker.select("phase6 rec")
    w.side_by_side.setChecked(False)
    _run(qtbot, w)
    model = load_model(str(tiny_model_file))
    p_o, p_r = model.predict(image), model.predict(recon)
    np.testing.assert_allclose(viewer.layers["tiny-unet: from phase6 rec"].data, p_r, atol=1e-6)
    r = metrics.pearson(p_o, p_r)
    assert w.table.item(2, 2).text() == fmt(r, 3)
    assert w.table.item(0, 0).text() == "–"  # no ground truth, no score against it
    assert not viewer.grid.enabled


def test_missing_model_and_shape_mismatch_are_reported(make_napari_viewer, qtbot, isl_crops, errors_shown,
                                                       tmp_path):
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase[0], name="phase0")
    viewer.add_image(dapi[:100], name="small")
    w = _widget(viewer, qtbot, tmp_path / "nope.pt")
    w.image_picker.select("phase0")
    _run(qtbot, w)
    assert "not found" in w.status.text() and any("not found" in m for m in errors_shown())
    w.by_layer.setChecked(True)
    w.recon_picker.select("small")
    w.run_button.click()
    assert "differ in shape" in w.status.text() and w.worker is None
    assert len(viewer.layers) == 2


def test_shipped_zstack_model_takes_the_whole_stack(make_napari_viewer, qtbot, isl_crops):
    from napari_microcomp.labelfree import available_models

    if "unet-zstack-isl-dapi" not in available_models():
        pytest.skip("shipped z-stack label-free weights not installed")
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase, name="phase")
    viewer.add_image(dapi, name="dapi")
    w = LabelFreeWidget(viewer)
    qtbot.addWidget(w)
    assert "trained on" not in w.model.toolTip()          # opening reads no weights file (no torch import)
    assert w.model.findText("unet-zstack-isl-dapi") >= 0  # shipped models are offered
    w.model.setCurrentText("unet-zstack-isl-dapi")
    # the tooltip says where the chosen model was trained and validated; a path being typed drops it
    assert w.model.toolTip().startswith("unet-zstack-isl-dapi: unet from a 13-slice z-stack; trained on")
    assert "unvalidated" in w.model.toolTip()
    w.model.setEditText("/no/such/mod")
    assert "trained on" not in w.model.toolTip()
    w.model.setCurrentText("unet-zstack-isl-dapi")
    w.image_picker.select("phase")
    w.target_picker.select("dapi")
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(3)
    _run(qtbot, w)
    comp = compress_array(phase, "jpeg2k", quality=3)  # the whole 13-slice stack is compressed
    np.testing.assert_array_equal(viewer.layers["phase [jpeg2k q3]"].data, comp.reconstruction)
    expected = compare("unet-zstack-isl-dapi", phase, dapi, reconstruction=comp.reconstruction)
    assert w.table.item(0, 2).text() == fmt(expected["pearson_orig"], 3)
    assert w.table.item(1, 2).text() == fmt(expected["pearson_rec"], 3)
    assert viewer.layers["unet-zstack-isl-dapi: from phase"].data.shape == dapi.shape


def test_test_time_augmentation_switch(make_napari_viewer, qtbot, isl_crops, tiny_model_file):
    """Issue 15, point 4: TTA from the widget gives the API's 8-view predictions, recorded on the layers."""
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase[5], name="phase")
    viewer.add_image(dapi, name="dapi")
    w = _widget(viewer, qtbot, tiny_model_file)
    w.image_picker.select("phase")
    w.target_picker.select("dapi")
    w.codec_combo.select("jpegxl")
    w.quality.setValue(2)
    w.tta.setChecked(True)
    _run(qtbot, w)

    comp = compress_array(phase[5], "jpegxl", quality=2)
    model = load_model(str(tiny_model_file))
    with_tta = compare(model, phase[5], dapi, reconstruction=comp.reconstruction, return_arrays=True, tta=True)
    plain = compare(model, phase[5], dapi, reconstruction=comp.reconstruction, return_arrays=True)
    pred = viewer.layers["tiny-unet: from phase"]
    np.testing.assert_allclose(pred.data, with_tta["arrays"]["original"], rtol=0, atol=1e-6)
    assert not np.allclose(pred.data, plain["arrays"]["original"], atol=1e-6)
    assert pred.metadata["microcomp"]["tta"] is True
    assert w.table.item(0, 2).text() == fmt(with_tta["pearson_orig"], 3)
