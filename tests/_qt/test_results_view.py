"""Issue 12, points 5, 6 and 8: results added without long GUI blocks, a labelled comparison of
only the current run, "Clear results", stale numbers cleared, readable layer names."""
import numpy as np

from napari_microcomp._qt.compress_widget import CompressWidget
from napari_microcomp._qt.labelfree_widget import LabelFreeWidget

TIMEOUT = 300_000


def _run(qtbot, w):
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()


def test_second_comparison_hides_the_first_and_clear_removes_results(make_napari_viewer, qtbot, isl_crops,
                                                                      tiny_model_file):
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase[6], name="phase")
    viewer.add_image(dapi, name="dapi")
    w = LabelFreeWidget(viewer)
    qtbot.addWidget(w)
    w.model.setCurrentText(str(tiny_model_file))
    w.image_picker.select("phase")
    w.target_picker.select("dapi")
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(2)
    _run(qtbot, w)
    first = list(w.layers_added)
    w.quality.setValue(6)
    _run(qtbot, w)
    second = list(w.layers_added)
    assert [layer.name for layer in second[:2]] != [layer.name for layer in first[:2]]
    shown = {layer.name for layer in viewer.layers if layer.visible and "tiny-unet" in layer.name}
    assert shown == {layer.name for layer in second}  # only the current comparison
    assert viewer.text_overlay.text == "prediction from: original  |  reconstruction  |  ground truth"
    w.clear_button.click()
    assert [layer.name for layer in viewer.layers] == ["phase", "dapi"]
    assert w.table.item(0, 0) is None or w.table.item(0, 0).text() in ("", "–")


def test_compress_clear_and_stale_metrics(make_napari_viewer, qtbot, cell, errors_shown):
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    viewer.add_image(cell[:4, :4].copy(), name="tiny")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    _run(qtbot, w)
    assert w.metric_labels["psnr"].text() != "–"
    w.layer_picker.select("tiny")
    _run(qtbot, w)  # fails in the core (too small): the old numbers must not stay
    assert all(label.text() == "–" for label in w.metric_labels.values())
    assert "'tiny'" in w.status.text()
    w.clear_button.click()
    assert [layer.name for layer in viewer.layers] == ["cell", "tiny"]


def test_ground_truth_errors_name_the_input(make_napari_viewer, qtbot, isl_crops, tiny_model_file, errors_shown):
    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase[6], name="phase")
    viewer.add_image(dapi[:4, :4].copy(), name="tiny gt")
    viewer.add_image(np.stack([dapi, dapi]), name="gt stack")
    w = LabelFreeWidget(viewer)
    qtbot.addWidget(w)
    w.model.setCurrentText(str(tiny_model_file))
    w.image_picker.select("phase")
    w.target_picker.select("tiny gt")
    w.run_button.click()
    assert "ground truth 'tiny gt' (4, 4) does not match" in w.status.text() and w.worker is None
    assert "too small" not in w.status.text()
    w.target_picker.select("gt stack")
    w.run_button.click()
    assert "ground truth 'gt stack' is 3D" in w.status.text()


def test_benchmark_is_one_click_and_target_names_are_rounded(make_napari_viewer, qtbot, cell):
    from napari_microcomp._qt._common import display_label
    from napari_microcomp._qt.benchmark_widget import BenchmarkWidget
    from napari_microcomp.codecs import get_codec

    viewer = make_napari_viewer()
    viewer.add_image(cell[:200, :200].copy(), name="other")
    viewer.add_image(cell, name="cell")  # the active layer
    w = BenchmarkWidget(viewer)
    qtbot.addWidget(w)
    assert w.selected_layer_names() == ["cell"]
    assert set(w.codecs.checked()) >= {"jpeg2k", "jpegxl"} and w.qualities()
    w.set_qualities([4])
    _run(qtbot, w)  # one click: no "tick at least one image layer"
    assert w.rows and all(r["status"] == "ok" for r in w.rows)
    assert display_label(get_codec("jpegxl", distance=7.58616745257458)) == "jpegxl distance=7.586"


def test_benchmark_4d_layer_current_or_every_time_point(make_napari_viewer, qtbot, nuclei_crop):
    """Issue 12 point 4: a (T, Z, Y, X) layer: the time point shown, or every time point."""
    from napari_microcomp._qt.benchmark_widget import BenchmarkWidget

    movie = np.stack([nuclei_crop[:4], nuclei_crop[4:8], nuclei_crop[8:12]])
    viewer = make_napari_viewer()
    viewer.add_image(movie, name="movie", metadata={"microcomp": {"axes": "TZYX"}})
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    w = BenchmarkWidget(viewer)
    qtbot.addWidget(w)
    w.codecs.set_checked(["jpegxl"])
    w.set_qualities([4])
    _run(qtbot, w)
    assert [r["image"] for r in w.rows] == ["movie t1"]
    w.all_times.setChecked(True)
    w.current_slice.setChecked(True)  # and only the z-slice shown, in each
    _run(qtbot, w)
    assert [r["image"] for r in w.rows] == ["movie t0 z2", "movie t1 z2", "movie t2 z2"]
    assert all(r["status"] == "ok" for r in w.rows)


def test_a_new_title_appears_word_by_word_and_a_seen_one_at_once(make_napari_viewer):
    """vispy rasterises each new character at its first draw: a new title is split into steps."""
    from napari_microcomp._qt._compare import NEW_GLYPHS_PER_STEP, title_steps

    viewer = make_napari_viewer()
    title = "left to right: prediction from original | reconstruction | ground truth"
    steps = title_steps(viewer, title)
    assert len(steps) > 1
    texts = []
    for step in steps:
        step()
        texts.append(viewer.text_overlay.text)
    assert texts[-1] == title and viewer.text_overlay.visible
    assert all(title.startswith(t) for t in texts)
    seen = set()
    for t in texts:  # each step adds few new characters (a word may carry a few more)
        assert len(set(t) - seen) <= NEW_GLYPHS_PER_STEP + max(len(w) for w in title.split())
        seen |= set(t)
    assert len(title_steps(viewer, title)) == 1
