"""The Compress widget driven as a user: pick a layer, a codec, a quality or a target, click Run."""
import numpy as np
import pytest

from napari_microcomp.api import compress_array
from napari_microcomp._qt._common import fmt
from napari_microcomp._qt.compress_widget import CompressWidget

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


def _run(qtbot, widget):
    with qtbot.waitSignal(widget.run_finished, timeout=TIMEOUT):
        widget.run_button.click()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def _run_with(qtbot, viewer, codec, quality):
    """A new widget on ``viewer``, run with ``codec`` at ``quality``."""
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select(codec)
    w.quality.setValue(quality)
    _run(qtbot, w)
    return w


def test_quality_run_adds_reconstruction_and_error(make_napari_viewer, qtbot, cell):
    viewer = make_napari_viewer()
    src = viewer.add_image(cell, name="cell", scale=(0.5, 0.5), translate=(3, 4))
    viewer.add_labels(np.zeros(cell.shape, np.uint8), name="seg")
    before = cell.copy()
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    assert [w.layer_picker.itemText(i) for i in range(w.layer_picker.count())] == ["cell"]  # no labels
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(3)
    _run(qtbot, w)

    expected = compress_array(cell, "jpeg2k", quality=3)
    recon, err = viewer.layers["cell [jpeg2k q3]"], viewer.layers["cell [jpeg2k q3] |error|"]
    np.testing.assert_array_equal(recon.data, expected.reconstruction)
    np.testing.assert_array_equal(err.data, np.abs(expected.reconstruction.astype(np.float32)
                                                   - cell.astype(np.float32)))
    assert tuple(recon.scale) == tuple(src.scale) == tuple(err.scale)
    assert tuple(recon.translate) == tuple(src.translate)
    assert w.metric_labels["psnr"].text() == fmt(expected.metrics["psnr"], 4)
    assert w.metric_labels["compression_ratio"].text() == fmt(expected.metrics["compression_ratio"], 4)
    assert w.metric_labels["mean_error"].text() == fmt(expected.metrics["mean_error"], 4)   # the signed shift
    assert recon.metadata["microcomp"]["codec"] == expected.config
    assert recon.metadata["microcomp"]["stream"] == expected.data
    np.testing.assert_array_equal(src.data, before)  # the source is never modified
    assert src.data is cell

    # same settings again: same layers updated, no new ones; new quality: two more layers
    n = len(viewer.layers)
    _run(qtbot, w)
    assert len(viewer.layers) == n
    w.quality.setValue(7)
    _run(qtbot, w)
    assert len(viewer.layers) == n + 2 and "cell [jpeg2k q7]" in viewer.layers
    assert viewer.layers["cell [jpeg2k q7]"].metadata["microcomp"]["metrics"]["psnr"] > \
        recon.metadata["microcomp"]["metrics"]["psnr"]


def test_target_run_on_3d(make_napari_viewer, qtbot, nuclei_crop):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei", scale=(0.29, 0.26, 0.26))
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpegxl")
    w.by_target.setChecked(True)
    w.target_metric.setCurrentText("PSNR (dB)")
    w.target_value.setValue(45.0)
    assert w.target() == "psnr=45"
    _run(qtbot, w)
    assert w.result is not None and w.result.target is not None
    recon = [layer for layer in viewer.layers if layer.name.startswith("nuclei [jpegxl")][0]
    assert recon.data.shape == nuclei_crop.shape and recon.data.dtype == nuclei_crop.dtype
    assert tuple(recon.scale) == (0.29, 0.26, 0.26)
    assert w.result.metrics["psnr"] >= 45.0 or not w.result.target["met"]
    np.testing.assert_array_equal(recon.data, w.result.reconstruction)


@pytest.mark.parametrize("kind", ["rgb", "labels only"])
def test_bad_layers_are_refused(make_napari_viewer, qtbot, errors_shown, kind):
    viewer = make_napari_viewer()
    if kind == "rgb":   # real colour: the channels differ
        viewer.add_image(np.dstack([np.full((32, 32), v, np.uint8) for v in (10, 20, 30)]), name="bad", rgb=True)
        word = "RGB"
    else:  # a labels layer is never offered: there is nothing to compress
        viewer.add_labels(np.zeros((32, 32), np.uint8), name="bad")
        word = "select an image layer"
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    n = len(viewer.layers)
    w.run_button.click()
    assert w.worker is None and w.run_button.isEnabled()
    assert word in w.status.text()
    assert any(word in m for m in errors_shown())
    assert len(viewer.layers) == n


def test_grey_image_saved_as_rgb_is_coded_as_its_one_channel(make_napari_viewer, qtbot, cell):
    """napari opens a grey PNG/JPEG saved as RGB(A) as an RGB layer: equal channels are one image, said."""
    viewer = make_napari_viewer()
    rgba = np.dstack([cell, cell, cell, np.full(cell.shape, 255, np.uint8)])
    src = viewer.add_image(rgba, name="grey", rgb=True)
    _run_with(qtbot, viewer, "jpeg2k", 3)
    recon = viewer.layers["grey [jpeg2k q3]"]
    np.testing.assert_array_equal(recon.data, compress_array(cell, "jpeg2k", quality=3).reconstruction)
    assert recon.data.shape == cell.shape and not recon.rgb
    np.testing.assert_array_equal(src.data[..., 0], cell)   # the source layer is untouched


def test_a_boolean_mask_layer_is_coded_as_uint8(make_napari_viewer, qtbot, cell, infos_shown):
    viewer = make_napari_viewer()
    src = viewer.add_image(cell > 100, name="mask")
    _run_with(qtbot, viewer, "zstd", 4)
    np.testing.assert_array_equal(viewer.layers["mask [zstd lossless]"].data, (cell > 100).astype(np.uint8))
    assert any("1-bit" in m for m in infos_shown()) and src.data.dtype == bool


@pytest.mark.parametrize("kind, word", [("nan", "NaN"), ("tiny", "too small")])
def test_core_refusal_is_shown_and_button_reenabled(make_napari_viewer, qtbot, errors_shown, cell,
                                                    kind, word):
    """Checks only the core can make (NaN, size) arrive from the worker as a notification."""
    viewer = make_napari_viewer()
    if kind == "nan":
        img = cell.astype(np.float32)
        img[5, 5] = np.nan
    else:
        img = cell[:4, :4].copy()
    viewer.add_image(img, name=kind)
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    _run(qtbot, w)
    assert word in w.status.text()
    assert any(word in m for m in errors_shown())
    assert len(viewer.layers) == 1


@pytest.mark.parametrize("exc, shown", [
    ("codec", "exploded on purpose"),
    ("memory", "out of memory (Unable to allocate 26.8 GiB"),   # and the way round it, not "unexpected"
])
def test_codec_that_raises(make_napari_viewer, qtbot, errors_shown, cell, monkeypatch, exc, shown):
    from napari_microcomp.codecs.classical import JPEG2000
    from napari_microcomp.errors import CodecError

    def broken(self, *a, **k):
        if exc == "memory":
            raise MemoryError("Unable to allocate 26.8 GiB for an array with shape (60000, 60000)")
        raise CodecError("jpeg2k exploded on purpose")

    monkeypatch.setenv("MICROCOMP_GUI_WORKER", "thread")  # the patched codec exists in this process only
    monkeypatch.setattr(JPEG2000, "_encode_2d", broken)
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    _run(qtbot, w)
    assert shown in w.status.text()
    assert any(shown in m for m in errors_shown())
    if exc == "memory":
        assert "compress-tiled" in w.status.text()
    assert len(viewer.layers) == 1


def test_learned_codec_with_user_weights(make_napari_viewer, qtbot, cell, user_codec_weights, errors_shown):
    """Learned codecs appear only with weights; the reconstruction equals the core API's."""
    from napari_microcomp._qt._codecs import weight_qualities
    from napari_microcomp.codecs import codec_class

    arch = user_codec_weights
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    listed = [w.codec_combo.itemData(i) for i in range(w.codec_combo.count()) if w.codec_combo.itemData(i)]
    assert arch in listed
    for name in listed:  # every listed model-based codec has weights for some quality
        assert weight_qualities(codec_class(name)) != {}
    w.codec_combo.select(arch)
    assert "weights: " in w.codec_info.text() and "q4" in w.codec_info.text()
    w.quality.setValue(4)
    _run(qtbot, w)
    expected = compress_array(cell, arch, quality=4)
    np.testing.assert_array_equal(viewer.layers[f"cell [{arch} q4]"].data, expected.reconstruction)
    assert w.metric_labels["bpp"].text() == fmt(expected.metrics["bpp"], 4)

    missing = [q for q in range(1, 9) if q not in weight_qualities(codec_class(arch))]
    for q in missing:  # issue 12 point 3: a level without weights cannot be picked
        w.quality.setValue(q)
        assert w.quality.value() in weight_qualities(codec_class(arch))
    assert w.quality.levels() == sorted(weight_qualities(codec_class(arch)))


def test_shipped_volumetric_codec_on_a_stack(make_napari_viewer, qtbot, nuclei_crop):
    from napari_microcomp._qt._codecs import weight_qualities
    from napari_microcomp.codecs import codec_class

    have = weight_qualities(codec_class("mbt2018-mean-vbr3d")) or {}
    if not have:
        pytest.skip("no shipped mbt2018-mean-vbr3d weights")
    q = sorted(have)[0]
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    items = [w.codec_combo.itemText(i) for i in range(w.codec_combo.count())]
    assert items.index("— 3D (volumetric) —") < items.index("mbt2018-mean-vbr3d")  # grouped under its family
    w.codec_combo.select("mbt2018-mean-vbr3d")
    # the 3D model picks weights by modality too; it has no latent refinement
    assert w.weights.isEnabled() and not w.refine.isEnabled() and w.learned_params() == {"weights": "auto"}
    w.quality.setValue(q)
    _run(qtbot, w)
    expected = compress_array(nuclei_crop, "mbt2018-mean-vbr3d", quality=q)
    np.testing.assert_array_equal(viewer.layers[f"nuclei [mbt2018-mean-vbr3d q{q}]"].data, expected.reconstruction)


def test_cancel_discards_the_running_compression(make_napari_viewer, qtbot, isl_images):
    phase, _ = isl_images
    viewer = make_napari_viewer()
    viewer.add_image(phase, name="phase")  # 13 x 1024 x 1024: seconds of work
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    w.run_button.click()
    worker = w.worker
    assert worker is not None and w.cancel_button.isEnabled() and not w.run_button.isEnabled()
    with qtbot.waitSignal(w.run_finished, timeout=5_000):
        w.cancel_button.click()
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()
    assert "cancelled" in w.status.text()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=TIMEOUT)
    qtbot.wait(200)  # let any queued signal of the finished worker arrive
    assert [layer.name for layer in viewer.layers] == ["phase"] and w.result is None


def test_learned_weights_choice_and_refine_reach_the_stream(make_napari_viewer, qtbot, cell, user_codec_weights):
    arch = user_codec_weights
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpegxl")
    assert not w.weights.isEnabled() and not w.refine.isEnabled() and w.learned_params() == {}
    w.codec_combo.select(arch)
    assert w.weights.isEnabled() and w.refine.isEnabled()
    w.weights.setCurrentText("transmitted")
    w.refine.setValue(2)
    w.quality.setValue(4)
    _run(qtbot, w)
    cfg = w.result.config
    assert cfg["refine"] == 2 and cfg["weights"] == "transmitted"
    assert f"cell [{arch} q4]" in viewer.layers


def test_quality_slider_stops_only_on_levels_with_weights(make_napari_viewer, qtbot, cell):
    """Issue 12 point 3: mbt2018-mean q3 / cheng2020 q4 cannot be chosen when no weights exist."""
    from qtpy.QtCore import Qt

    from napari_microcomp._qt._codecs import quality_levels

    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    assert w.quality.levels() == list(range(1, 9))
    fixed = next((n for n in ("mbt2018", "cheng2020-anchor", "mbt2018-mean")
                  if w.codec_combo.findData(n) >= 0 and quality_levels(n) != list(range(1, 9))), None)
    if fixed is None:
        pytest.skip("no fixed-rate learned codec with partial weights here")
    levels = quality_levels(fixed)
    w.codec_combo.select(fixed)
    assert w.quality.levels() == levels and w.quality.value() in levels
    assert "only" in w.quality.toolTip() and "can only choose among" in w.by_target.toolTip()
    seen = set()
    w.quality.setValue(levels[0])
    for _ in range(8):  # keyboard: Right walks through the served levels only
        qtbot.keyClick(w.quality, Qt.Key.Key_Right)
        seen.add(w.quality.value())
    assert seen <= set(levels) and levels[-1] in seen
    for q in range(1, 9):
        w.quality.setValue(q)
        assert w.quality.value() in levels
    w.codec_combo.select("jpeg2k")  # back to a classical codec: every level again
    assert w.quality.levels() == list(range(1, 9))


def test_4d_layer_compresses_the_time_point_shown(make_napari_viewer, qtbot, nuclei_crop):
    """Issue 12 point 4: a (T, Z, Y, X) layer is processed at the viewer's time point."""
    stack = np.stack([nuclei_crop[:4], nuclei_crop[4:8], nuclei_crop[8:12]])  # T=3, Z=4
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="movie", scale=(1, 0.29, 0.26, 0.26),
                             metadata={"microcomp": {"axes": "TZYX"}})
    viewer.dims.set_point(0, 2)
    _run_with(qtbot, viewer, "jpeg2k", 5)
    recon = viewer.layers["movie t2 [jpeg2k q5]"]
    np.testing.assert_array_equal(recon.data, compress_array(stack[2], "jpeg2k", quality=5).reconstruction)
    assert tuple(recon.scale) == tuple(layer.scale)[1:]


def test_runs_in_napari_when_the_worker_process_cannot_start(make_napari_viewer, qtbot, cell, monkeypatch):
    import sys

    from napari_microcomp import _jobhost

    _jobhost.stop_idle()
    monkeypatch.setattr(_jobhost, "_start_failed", [])
    monkeypatch.setattr(sys, "executable", "/bin/false")
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(3)
    _run(qtbot, w)       # the warning reaches napari through the thread worker's `warned` signal
    assert _jobhost._start_failed and not _jobhost.use_process()
    qtbot.waitUntil(lambda: "cell [jpeg2k q3]" in viewer.layers, timeout=TIMEOUT)
    np.testing.assert_array_equal(viewer.layers["cell [jpeg2k q3]"].data,
                                  compress_array(cell, "jpeg2k", quality=3).reconstruction)


def test_a_quiet_add_leaves_the_selection_and_updates_an_existing_layer(make_napari_viewer):
    """Result layers are added without napari's activation (its share of the GUI stall happens in a
    later step); the viewer's selection and the layer controls it drives stay consistent."""
    from napari_microcomp._qt._common import activate_layer, add_or_replace_image

    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((8, 8), np.float32), name="a")
    b = add_or_replace_image(viewer, np.ones((8, 8), np.float32), "b", activate=False)
    assert viewer.layers.selection.active is a and set(viewer.layers.selection) == {a}
    assert viewer.window._qt_viewer.controls.widgets[a] is viewer.window._qt_viewer.controls.currentWidget()
    again = add_or_replace_image(viewer, np.full((8, 8), 2, np.float32), "b", activate=False, visible=False)
    assert again is b and float(b.data.max()) == 2 and not b.visible and len(viewer.layers) == 2
    activate_layer(viewer, b)
    assert viewer.layers.selection.active is b
    assert viewer.window._qt_viewer.controls.widgets[b] is viewer.window._qt_viewer.controls.currentWidget()


def test_vbr_fine_level_reaches_the_stream(make_napari_viewer, qtbot, cell):
    """The variable-rate models take fractional levels; the slider and the level box follow each other."""
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    assert w.fine_level.isHidden() and not w.fine_levels()
    w.codec_combo.select("mbt2018-mean-vbr")
    assert not w.fine_level.isHidden()
    w.quality.setValue(6)
    assert w.fine_level.value() == 6.0 and "level" not in w.learned_params()
    w.fine_level.setValue(3.25)
    assert w.quality.value() == 3 and w.learned_params()["level"] == 3.25
    _run(qtbot, w)
    cfg = w.result.config
    assert float(cfg["level"]) == 3.25
    expected = compress_array(cell, "mbt2018-mean-vbr", level=3.25, weights="auto")
    np.testing.assert_array_equal(w.result.reconstruction, expected.reconstruction)
    names = [layer.name for layer in viewer.layers]
    assert any("3.25" in n for n in names), names
    w.by_target.setChecked(True)      # rate control searches the level itself
    assert "level" not in w.learned_params()


def test_weights_of_another_modality_are_a_warning_and_a_status_hint(make_napari_viewer, qtbot):
    """bmshj2018-factorized ships transmitted-light weights only; a fluorescence-like layer gets a note."""
    from napari.utils.notifications import notification_manager

    rng = np.random.default_rng(1)
    dark = rng.poisson(20, (96, 96)).astype(np.uint16)
    dark[30:50, 40:60] += 3000
    viewer = make_napari_viewer()
    viewer.add_image(dark, name="dark")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    start = len(notification_manager.records)
    w.codec_combo.select("bmshj2018-factorized")
    w.quality.setValue(4)
    _run(qtbot, w)
    warned = [str(n.message) for n in notification_manager.records[start:]]
    assert any("looks like fluorescence" in m for m in warned), warned
    assert "(see the note)" in w.status.text() and "transmitted weights" in w.status.toolTip()


def test_a_multiscale_layer_codes_its_full_resolution_level(make_napari_viewer, qtbot, cell):
    viewer = make_napari_viewer()
    viewer.add_image([cell, cell[::2, ::2], cell[::4, ::4]], name="pyramid", multiscale=True)
    w = _run_with(qtbot, viewer, "jpeg2k", 3)
    recon = viewer.layers["pyramid [jpeg2k q3]"]
    np.testing.assert_array_equal(recon.data, compress_array(cell, "jpeg2k", quality=3).reconstruction)
    assert w.result is not None


def test_a_lazy_layer_larger_than_the_budget_is_refused_before_reading(make_napari_viewer, qtbot, monkeypatch):
    import dask.array as da

    from napari_microcomp._qt._layer_data import refuse_reason

    viewer = make_napari_viewer()
    big = da.zeros((4, 30000, 30000), dtype=np.uint16, chunks=(1, 4096, 4096))
    layer = viewer.add_image([big, big[:, ::4, ::4]], name="scan", multiscale=True)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "1G")
    assert "above the memory budget of 1.0 GiB" in refuse_reason(layer)
    monkeypatch.setenv("MICROCOMP_DECODE_BUDGET", "100G")
    assert refuse_reason(layer) is None
