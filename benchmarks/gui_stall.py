"""GUI stalls while the dock widgets work (issue 12): a 10 ms QTimer heartbeat on the GUI thread.

Runs, in one real napari viewer (under ``xvfb-run -a`` on a headless machine), with real data
(the ISL phase-contrast stack and DAPI image):

* Compress: a 13x1024x1024 phase stack with JPEG 2000 q4, and one 1024² slice with a learned codec;
* Label-free: the shipped 2D U-Net on one slice, compress-now with JPEG XL q4, with ground truth;
* Benchmark: 2 slices x {jpeg2k, jpegxl} x q{2, 6}, then a run on the whole stack cancelled
  inside its first row (cancel latency).

For each run it prints the longest gap between heartbeats (the longest GUI stall), the 99th
percentile, the run's duration and (where measured) the cancel latency. Not a timed test:
numbers depend on the machine and its load. Usage::

    xvfb-run -a python benchmarks/gui_stall.py [--quick] [--json out.json]
"""
import argparse
import json
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs (a 512² crop)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_microcomp import samples
    from napari_microcomp._qt.benchmark_widget import BenchmarkWidget
    from napari_microcomp._qt.compress_widget import CompressWidget
    from napari_microcomp._qt.labelfree_widget import LabelFreeWidget

    phase, dapi = samples.isl_phase_stack(), samples.isl_dapi()
    if args.quick:
        phase, dapi = np.ascontiguousarray(phase[:, 256:768, 256:768]), np.ascontiguousarray(dapi[256:768, 256:768])
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1280, 800)
    viewer.add_image(phase, name="phase")
    viewer.add_image(dapi, name="dapi", visible=False)
    viewer.add_image(np.ascontiguousarray(phase[6]), name="phase z6")
    compress, labelfree, bench = CompressWidget(viewer), LabelFreeWidget(viewer), BenchmarkWidget(viewer)
    for w, name in ((compress, "Compress"), (labelfree, "Label-free"), (bench, "Benchmark")):
        viewer.window.add_dock_widget(w, name=name, area="right", tabify=True)
    app = QApplication.instance()
    ticks, notes = [], []
    current = [None]

    def tick():
        ticks.append(time.perf_counter())
        notes.append(current[0].status.text()[:70] if current[0] is not None else "")

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    results = []

    def wait(pred, timeout=900):
        t_end = time.perf_counter() + timeout
        while not pred():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() > t_end:
                raise TimeoutError("run did not finish")

    def measure(label, widget, setup, cancel_after_step=False):
        setup()
        done = []
        widget.run_finished.connect(lambda: done.append(time.perf_counter()))
        for _ in range(20):
            app.processEvents()
        current[0] = widget
        ticks.clear()
        notes.clear()
        t0 = time.perf_counter()
        widget.run_button.click()
        cancel_latency = None
        if cancel_after_step:
            # inside the first row: at its first slice event, or after 1.5 s where none is shown
            wait(lambda: "slice" in widget.status.text() or time.perf_counter() - t0 > 1.5 or done)
            tc = time.perf_counter()
            widget.cancel_button.click()
            wait(lambda: done)
            cancel_latency = done[0] - tc
        wait(lambda: done)
        t_end = done[0]
        for _ in range(50):  # results are added after run_finished too: keep measuring 0.5 s
            app.processEvents()
            time.sleep(0.01)
        kept = [i for i, t in enumerate(ticks) if t >= t0]
        gaps = np.diff([ticks[i] for i in kept])
        row = {"run": label, "seconds": round(t_end - t0, 2),
               "longest_stall_ms": round(1000 * float(gaps.max()), 1) if len(gaps) else None,
               "p99_stall_ms": round(1000 * float(np.percentile(gaps, 99)), 1) if len(gaps) else None,
               "status": widget.status.text()[:90]}
        if len(gaps):
            worst = int(np.argmax(gaps))
            row["longest_stall_at_s"] = round(ticks[kept[worst]] - t0, 2)
            row["status_before_longest_stall"] = notes[kept[worst]]
        if cancel_latency is not None:
            row["cancel_latency_ms"] = round(1000 * cancel_latency, 0)
        results.append(row)
        print(json.dumps(row), flush=True)
        widget.run_finished.disconnect()

    def compress_stack():
        compress.layer_picker.select("phase")
        compress.codec_combo.select("jpeg2k")
        compress.quality.setValue(4)

    def compress_learned():
        compress.layer_picker.select("phase z6")
        compress.codec_combo.select("bmshj2018-hyperprior")
        compress.quality.setValue(4)

    def predict():
        labelfree.image_picker.select("phase z6")
        labelfree.target_picker.select("dapi")
        labelfree.model.setCurrentText("unet2d-isl-dapi")
        labelfree.codec_combo.select("jpegxl")

    def bench_small():
        bench.select_layers(["phase z6"])
        bench.codecs.set_checked(["jpeg2k", "jpegxl"])
        bench.set_qualities([2, 6])

    def bench_cancel():
        bench.select_layers(["phase"])
        bench.codecs.set_checked(["jpeg2k"])
        bench.set_qualities([8])

    measure("compress 13-slice stack, jpeg2k q4", compress, compress_stack)
    measure("compress 1 slice, bmshj2018-hyperprior q4", compress, compress_learned)
    measure("label-free unet2d-isl-dapi, jpegxl q4, with ground truth", labelfree, predict)
    measure("benchmark 1 image x 2 codecs x 2 qualities", bench, bench_small)
    measure("benchmark whole stack, cancelled in row 1", bench, bench_cancel, cancel_after_step=True)

    # napari's own floor, no plugin code: one new (hidden) image layer, and one status-text change
    for _ in range(30):
        app.processEvents()
        time.sleep(0.01)
    for label, action in (("napari alone: add a hidden 512x512 image layer",
                           lambda: viewer.add_image(np.zeros((512, 512), np.float32), name="floor", visible=False)),
                          ("Qt alone: change one label's text", lambda: compress.status.setText("floor check"))):
        ticks.clear()
        t0 = time.perf_counter()
        QTimer.singleShot(20, action)
        while time.perf_counter() - t0 < 1.0:
            app.processEvents()
            time.sleep(0.002)
        gaps = np.diff(ticks)
        row = {"run": label, "longest_stall_ms": round(1000 * float(gaps.max()), 1)}
        results.append(row)
        print(json.dumps(row), flush=True)
    timer.stop()
    worst = max(r["longest_stall_ms"] or 0 for r in results)
    print(f"longest GUI stall over all runs: {worst:.0f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "longest_stall_ms": worst, "quick": args.quick}, f, indent=1)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
