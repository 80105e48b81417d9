"""The Benchmark widget driven as a user: tick layers, codecs, qualities; Run; sort; export; click."""
import json
import math
import time

import numpy as np
import pytest
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QFileDialog

from napari_microcomp._progress import drain
from napari_microcomp._qt._results import COLUMNS
from napari_microcomp._qt.benchmark_widget import BenchmarkWidget
from napari_microcomp.api import compress_array
from napari_microcomp.benchmark import comparable, iter_benchmark, load_csv, load_json

pytestmark = pytest.mark.gui
TIMEOUT = 120_000


def _widget(viewer, qtbot, layers, codecs, qualities):
    w = BenchmarkWidget(viewer)
    qtbot.addWidget(w)
    w.select_layers(layers)
    w.codecs.set_checked(codecs)
    w.set_qualities(qualities)
    return w


def _run(qtbot, w):
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def _curves(qtbot, w):
    """Labels of the curves in the RD plot, once its background render has caught up."""
    qtbot.waitUntil(lambda: not w.plot.busy, timeout=TIMEOUT)
    return set(w.plot.labels)


def _column(w, key):
    c = [k for k, _ in COLUMNS].index(key)
    return c, [w.table.item(r, c).text() for r in range(w.table.rowCount())]


def test_run_table_sort_export_and_click(make_napari_viewer, qtbot, cell, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = _widget(viewer, qtbot, ["cell"], ["jpeg2k", "jpegxl"], [2, 6])
    _run(qtbot, w)

    expected = drain(iter_benchmark({"cell": cell}, ["jpeg2k", "jpegxl"], qualities=[2, 6]), show=False)
    assert _same(w.rows, expected)
    assert w.table.rowCount() == 4
    assert all(r["status"] == "ok" for r in w.rows)
    assert w.status.text().startswith("done: 4 rows in ")

    # sort by PSNR, descending, as a header click does; the table follows the numbers
    c, _ = _column(w, "psnr")
    w.table.sortByColumn(c, Qt.SortOrder.DescendingOrder)
    shown = [w.rows[w.table.row_index(r)]["psnr"] for r in range(4)]
    assert shown == sorted((r["psnr"] for r in w.rows), reverse=True)

    # the RD plot has one curve per codec
    assert _curves(qtbot, w) == {"jpeg2k", "jpegxl"}

    # export buttons, with the file dialog answered
    written = {}
    for kind, suffix in (("CSV", ".csv"), ("JSON", ".json"), ("Markdown", ".md"), ("PNG", ".png")):
        path = tmp_path / f"bench{suffix}"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, p=path, **k: (str(p), ""))
        w.export_buttons[kind].click()
        assert path.is_file() and path.stat().st_size > 0
        written[kind] = path
    assert _same(load_csv(written["CSV"]), load_csv(_roundtrip_csv(expected, tmp_path)))
    assert len(load_json(written["JSON"])) == 4
    assert "jpegxl q6" in written["Markdown"].read_text()
    assert written["PNG"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = tmp_path / "old.xyz"   # a plot that cannot be written leaves the file there as it was
    kept.write_bytes(b"keep")
    assert w.export("PNG", str(kept)) is None and kept.read_bytes() == b"keep" and "failed" in w.status.text()
    assert json.loads(written["JSON"].read_text())["rows"][0]["image"] == "cell"

    # click the best row: its reconstruction appears, equal to the core API's
    with qtbot.waitSignal(w.reconstruction_shown, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton,
                         pos=w.table.visualItemRect(w.table.item(0, c)).center())
    layer = blocker.args[0]
    best = max(w.rows, key=lambda r: r["psnr"])
    assert layer.name == f"cell [{best['label']}]"
    np.testing.assert_array_equal(layer.data, compress_array(cell, best["codec"],
                                                             quality=best["quality"]).reconstruction)
    assert layer.metadata["microcomp"]["codec"] == best["config"]


def _same(rows_a, rows_b) -> bool:
    """Rows equal apart from timings (NaN equals NaN)."""
    def key(rows):
        return [json.dumps(comparable(r), sort_keys=True, default=str) for r in rows]
    return key(rows_a) == key(rows_b)


def _roundtrip_csv(rows, tmp_path):
    from napari_microcomp.benchmark import export_csv
    return export_csv(rows, tmp_path / "reference.csv")


def test_cancel_mid_benchmark(make_napari_viewer, qtbot, nuclei_crop):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei")
    w = _widget(viewer, qtbot, ["nuclei"], ["jpeg2k", "jpegxl", "jpegxr", "htj2k"], list(range(1, 9)))
    total = 4 * 8
    w.run_button.click()
    qtbot.waitUntil(lambda: len(w.rows) >= 1, timeout=TIMEOUT)
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.cancel_button.click()
    assert 1 <= len(w.rows) < total
    assert w.table.rowCount() == len(w.rows)
    assert w.status.text().startswith("cancelled after")
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()
    assert w.export_buttons["CSV"].isEnabled()
    # and it runs again after a cancel
    w.codecs.set_checked(["jpegxl"])
    w.set_qualities([4])
    _run(qtbot, w)
    assert len(w.rows) == 1 and w.rows[0]["status"] == "ok"


def test_codec_that_raises(make_napari_viewer, qtbot, cell, errors_shown, monkeypatch):
    from napari_microcomp.codecs.classical import JPEG2000

    def broken(self, *a, **k):
        raise RuntimeError("jpeg2k exploded on purpose")

    monkeypatch.setenv("MICROCOMP_GUI_WORKER", "thread")  # the patched codec exists in this process only
    monkeypatch.setattr(JPEG2000, "_encode_2d", broken)
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = _widget(viewer, qtbot, ["cell"], ["jpeg2k", "jpegxl"], [3, 5])
    _run(qtbot, w)
    status = {r["label"]: r["status"] for r in w.rows}
    assert status == {"jpeg2k q3": "error", "jpeg2k q5": "error", "jpegxl q3": "ok", "jpegxl q5": "ok"}
    assert sum("exploded on purpose" in m for m in errors_shown()) == 1  # once per failing codec
    _, shown = _column(w, "status")
    assert shown.count("error") == 2
    # sorting by PSNR keeps the error rows (no PSNR) at the bottom in both orders
    c, _ = _column(w, "psnr")
    for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
        w.table.sortByColumn(c, order)
        assert _column(w, "status")[1] == ["ok", "ok", "error", "error"]
    # the error rows stay out of the plot
    assert _curves(qtbot, w) == {"jpegxl"}


def test_learned_codec_runs_only_qualities_with_weights(make_napari_viewer, qtbot, cell, user_codec_weights):
    from napari_microcomp._qt._codecs import weight_qualities
    from napari_microcomp.codecs import codec_class

    arch = user_codec_weights
    have = weight_qualities(codec_class(arch))
    viewer = make_napari_viewer()
    viewer.add_image(cell[:256, :256].copy(), name="cell")
    w = _widget(viewer, qtbot, ["cell"], ["jpegxl", arch], [1, 4])
    _run(qtbot, w)
    labels = sorted(r["label"] for r in w.rows)
    assert labels == sorted(["jpegxl q1", "jpegxl q4"] + [f"{arch} q{q}" for q in (1, 4) if q in have])
    assert all(r["status"] == "ok" for r in w.rows)


def test_phase_two_with_model_and_ground_truth(make_napari_viewer, qtbot, isl_crops, tiny_model_file):
    from napari_microcomp.benchmark import ModelPredictor

    phase, dapi = isl_crops
    viewer = make_napari_viewer()
    viewer.add_image(phase, name="phase")
    viewer.add_image(dapi, name="dapi")
    viewer.dims.set_current_step(0, 4)
    w = _widget(viewer, qtbot, ["phase"], ["jpegxl"], [2, 6])
    w.current_slice.setChecked(True)
    w.model.setEditText(str(tiny_model_file))
    w.ground_truth.select("dapi")
    _run(qtbot, w)
    expected = drain(iter_benchmark({"phase z4": phase[4]}, ["jpegxl"], qualities=[2, 6],
                                    predictor=ModelPredictor(str(tiny_model_file)),
                                    ground_truth={"phase z4": dapi}), show=False)
    assert _same(w.rows, expected)
    assert all(math.isfinite(r["p2_pearson_r"]) and math.isfinite(r["p2_ref_pearson_r"]) for r in w.rows)
    _, shown = _column(w, "p2_pearson_r")
    assert shown == [f"{r['p2_pearson_r']:.4g}" for r in w.rows]


def test_bad_inputs_are_refused(make_napari_viewer, qtbot, cell, errors_shown):
    viewer = make_napari_viewer()
    viewer.add_image(np.dstack([np.full((32, 32), v, np.uint8) for v in (10, 20, 30)]), name="4d", rgb=True)
    viewer.add_image(cell, name="cell")
    w = _widget(viewer, qtbot, [], ["jpegxl"], [4])
    w.run_button.click()
    assert "tick at least one image layer" in w.status.text()
    w.select_layers(["4d", "cell"])
    w.run_button.click()
    assert "'4d' is RGB" in w.status.text() and w.worker is None
    w.select_layers(["cell"])
    w.set_qualities([])
    w.run_button.click()
    assert "quality" in w.status.text()
    assert len(errors_shown()) == 3 and w.run_button.isEnabled()


def test_gui_stays_responsive_during_benchmark(make_napari_viewer, qtbot, nuclei_crop, record_property):
    """A QTimer heartbeat on the GUI thread while a benchmark runs; the worst stall is recorded."""
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei")
    w = _widget(viewer, qtbot, ["nuclei"], ["jpeg2k", "jpegxl"], [2, 4, 6, 8])
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        _run(qtbot, w)
    finally:
        timer.stop()
    gaps = np.diff(ticks)
    worst_ms = 1000 * float(gaps.max())
    record_property("worst_gui_stall_ms", worst_ms)
    print(f"\nGUI heartbeat during benchmark: {len(ticks)} ticks, worst stall {worst_ms:.1f} ms, "
          f"p99 {1000 * float(np.percentile(gaps, 99)):.1f} ms, rows {len(w.rows)}")
    assert len(w.rows) == 8 and len(ticks) > 10
    assert worst_ms < 1000, f"the GUI froze for {worst_ms:.0f} ms"
    assert not math.isnan(worst_ms)


def test_a_rows_note_is_shown_once_per_image_and_on_its_status_cell(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    mask = np.zeros((96, 96), np.uint8)
    mask[20:60, 30:80] = 255
    viewer = make_napari_viewer()
    viewer.add_image(mask, name="mask")
    w = _widget(viewer, qtbot, ["mask"], ["jpeg2k"], [2, 6])
    start = len(notification_manager.records)
    _run(qtbot, w)
    shown = [str(n.message) for n in notification_manager.records[start:] if "label image" in str(n.message)]
    assert len(shown) == 1 and shown[0].startswith("napari-microcomp: mask: the image looks like a label image")
    assert _column(w, "status")[1] == ["ok (note)", "ok (note)"]
