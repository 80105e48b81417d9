"""The Advise dock driven as a user: tick layers, set a tolerance, Advise, Apply / Save / Report."""
import json

import numpy as np
import pytest

from napari_microcomp import metrics
from napari_microcomp._qt.advise_widget import AdviseWidget
from napari_microcomp.codecs import decode

pytestmark = pytest.mark.gui
TIMEOUT = 120_000


def _widget(make_napari_viewer, qtbot, image, name="cell"):
    viewer = make_napari_viewer()
    src = viewer.add_image(image, name=name)
    w = AdviseWidget(viewer)
    qtbot.addWidget(w)
    return viewer, src, w


def _run(qtbot, w):
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def test_one_click_advice_apply_save_report(make_napari_viewer, qtbot, cell, tmp_path):
    crop = np.ascontiguousarray(cell[:256, :256])
    before = crop.copy()
    viewer, src, w = _widget(make_napari_viewer, qtbot, crop)
    assert w.selected_layer_names() == ["cell"]                  # the active layer is pre-ticked
    assert w.tolerance().ssim == pytest.approx(0.94)             # and a default tolerance is set
    w.codecs.set_checked(["jpegxl", "jpeg2k", "zstd"])
    _run(qtbot, w)
    adv = w.advice
    assert adv is not None and adv.winner is not None
    assert w.table.rowCount() == 3 and w.table.item(0, 1).text() == adv.winner.codec
    assert adv.summary() in w.answer.text() and not w.plot.pixmap().isNull()
    assert [w.table.item(i, 2).toolTip() for i in range(3)] == [r.note for r in adv.rows]
    adv.rows[1].note = "at the coarsest setting searched (level=2): the tolerance would allow more loss"
    w._show(adv)                                                  # a row's note is its tooltip
    assert w.table.item(1, 2).toolTip() == adv.rows[1].note

    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=TIMEOUT):
        w.apply_button.click()
    rec = viewer.layers[-1]
    assert rec.name == f"cell [advice: {adv.winner.codec} {adv.winner.setting}]"
    assert metrics.ssim(crop, rec.data) >= 0.94
    np.testing.assert_array_equal(src.data, before)              # the source is never modified

    paths = w.save_streams(tmp_path)
    assert [p.name for p in paths] == ["cell.mcz"]
    assert metrics.ssim(crop, decode(paths[0].read_bytes())) >= 0.94
    assert w.save_streams(tmp_path)[0].name == "cell-1.mcz"     # never overwrites
    files = w.write_report(tmp_path / "advice.md")
    assert {p.suffix for p in files} == {".json", ".md", ".png"}
    assert json.loads((tmp_path / "advice.json").read_text())["winner"]["codec"] == adv.winner.codec


def test_errors_are_named_and_clear_the_previous_result(make_napari_viewer, qtbot, cell, errors_shown):
    viewer, src, w = _widget(make_napari_viewer, qtbot, np.ascontiguousarray(cell[:64, :64]))
    w.codecs.set_checked(["zstd"])
    _run(qtbot, w)
    assert w.advice is not None
    w.select_layers([])
    w.run_button.click()
    assert w.advice is None and w.table.rowCount() == 0
    assert "tick at least one image layer" in w.status.text()
    w.select_layers(["cell"])
    w.set_tolerance()                                            # nothing ticked
    w.run_button.click()
    assert "at least one tolerance" in w.status.text()
    w.set_tolerance(ms_ssim=0.99)                                # 64 px: MS-SSIM undefined, says which image
    _run(qtbot, w)
    assert "cell" in w.status.text() and "161" in w.status.text()
    assert any("161" in m for m in errors_shown())


def test_cancel_stops_between_trials(make_napari_viewer, qtbot, cell):
    viewer, src, w = _widget(make_napari_viewer, qtbot, cell)
    w.codecs.set_checked(["jpeg2k", "jpegxl", "jpegxr", "htj2k", "lerc"])
    w.set_tolerance(psnr=45)
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
        qtbot.waitUntil(lambda: w.progress.value() >= 0 and "trial" in w.progress.format(), timeout=TIMEOUT)
        w.cancel_button.click()
    assert w.advice is None and w.status.text() == "cancelled"
