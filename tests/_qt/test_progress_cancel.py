"""Issue 12, point 5: live progress with counts and elapsed/remaining time from the core's
checkpoints (tiles, slices, wavefronts, rows), and Cancel taking effect inside a row."""
import time

import numpy as np
import pytest

from napari_microcomp._progress import Cancelled, checkpoint, reporting
from napari_microcomp._qt.benchmark_widget import BenchmarkWidget
from napari_microcomp._qt.compress_widget import CompressWidget
from napari_microcomp._qt.labelfree_widget import LabelFreeWidget

TIMEOUT = 300_000


def test_checkpoint_is_silent_without_a_reporter_and_can_cancel_with_one():
    checkpoint("encode", 0, 3)  # no reporter: nothing happens
    seen = []
    with reporting(lambda *a: seen.append(a)):
        checkpoint("encode", 1, 3, "slice 2/3")
    assert seen == [("encode", 1, 3, "slice 2/3")]

    def stop(*_):
        raise Cancelled()

    from napari_microcomp.codecs import get_codec

    stack = np.zeros((4, 64, 64), np.uint16)
    with reporting(stop), pytest.raises(Cancelled):
        get_codec("jpeg2k", quality=4).encode(stack)
    assert not isinstance(Cancelled(), Exception)  # a failing-codec handler cannot swallow it


def test_compress_shows_slice_counts_and_time(make_napari_viewer, qtbot, isl_images):
    phase, _ = isl_images
    viewer = make_napari_viewer()
    viewer.add_image(phase, name="phase")
    w = CompressWidget(viewer)
    qtbot.addWidget(w)
    w.codec_combo.select("jpeg2k")
    seen = set()
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
        qtbot.waitUntil(lambda: seen.add(w.status.text()) or any("slice" in t and "/13" in t for t in seen),
                        timeout=TIMEOUT)
    shown = [t for t in seen if "slice" in t]
    assert shown and all(" s" in t for t in shown), seen  # counts and elapsed time


def test_benchmark_cancel_stops_inside_a_row_within_a_second(make_napari_viewer, qtbot, isl_images):
    """One row of a 13-slice 1024² stack takes many seconds; Cancel no longer waits for it."""
    phase, _ = isl_images
    viewer = make_napari_viewer()
    viewer.add_image(phase, name="phase")
    w = BenchmarkWidget(viewer)
    qtbot.addWidget(w)
    w.select_layers(["phase"])
    w.codecs.set_checked(["jpeg2k"])
    w.set_qualities([8])
    w.run_button.click()
    qtbot.waitUntil(lambda: "slice" in w.status.text(), timeout=TIMEOUT)  # inside the first row
    assert w.progress.maximum() == 100 and "row 1/1" in w.status.text()
    t0 = time.perf_counter()
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.cancel_button.click()
    latency = time.perf_counter() - t0
    print(f"\nbenchmark cancel latency: {latency * 1000:.0f} ms")
    assert w.rows == [] and w.status.text().startswith("cancelled after 0 rows")
    assert latency < 5  # generous on a loaded 2-core machine; gui_stall.py reports the number


def test_labelfree_cancel_clears_scores_and_adds_nothing(make_napari_viewer, qtbot, isl_images,
                                                         tiny_model_file):
    phase, dapi = isl_images
    viewer = make_napari_viewer()
    viewer.add_image(phase[6], name="phase")
    w = LabelFreeWidget(viewer)
    qtbot.addWidget(w)
    w.model.setCurrentText(str(tiny_model_file))
    w.codec_combo.select("jpeg2k")
    w.scores = {"stale": 1.0}
    n = len(viewer.layers)
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT):
        w.run_button.click()
        w.cancel_button.click()
    assert w.scores == {} and len(viewer.layers) == n
    assert "cancel" in w.status.text()


def test_no_reporter_is_left_on_the_thread_between_yields():
    """napari may abort a generator worker between two yields and never resume it: the pool
    thread must not keep the cancelled run's reporter (it would cancel the next work there)."""
    from napari_microcomp import _progress
    from napari_microcomp._progress import Progress
    from napari_microcomp._qt._workers import CANCELLED, _worker_body

    class FakeWorker:
        abort_requested = False

    seen = []

    def work():
        seen.append(_progress._reporter.get() is not None)  # set while the work runs
        yield Progress("a", 0, 2)
        checkpoint("encode", 1, 2)
        yield Progress("a", 1, 2)
        return "done"

    gen = _worker_body(work, [FakeWorker()])
    assert next(gen).done == 0 and seen == [True]
    assert _progress._reporter.get() is None  # suspended at a yield: nothing left set
    FakeWorker.abort_requested = True  # Cancel pressed: the next checkpoint stops the work
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == CANCELLED and _progress._reporter.get() is None
    plain = _worker_body(lambda: 42, [FakeWorker()])
    with pytest.raises(StopIteration) as stop:
        next(plain)
    assert stop.value.value == 42
