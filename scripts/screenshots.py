"""Take the user guide's screenshots: each dock widget run end to end on the real sample data.

Run headless with::

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshots.py [--out docs/images]

The plugin is opened the way a user opens it (npe2: Plugins menu entries and File > Open Sample),
so napari-microcomp must be importable (``pip install -e .``). Each shot is a fresh 1280×800
viewer with all four docks open (they share one tab group); the script clicks the shown dock's
Run button, waits for the worker to finish and saves the whole window. Nothing is imported before
napari's OpenGL context: the plugin's triton guard is what keeps that order from crashing.
"""
import argparse
import sys
import time
from pathlib import Path

import napari
from qtpy.QtCore import QEventLoop, Qt, QTimer

PLUGIN = "napari-microcomp"
SIZE = (1280, 800)
DOCKS = ("Compress", "Label-free prediction", "Benchmark", "Advise")


def wait_for(signal, click, timeout_s: float = 900) -> float:
    """Click, then run the Qt event loop until ``signal`` fires; return the seconds it took."""
    loop = QEventLoop()
    fired = []
    signal.connect(lambda *_: (fired.append(1), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    t0 = time.perf_counter()
    click()
    if not fired:
        loop.exec()
    if not fired:
        raise TimeoutError(f"no {signal} within {timeout_s} s")
    return time.perf_counter() - t0


def settle(viewer, ms: int = 400) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def new_viewer(title: str):
    viewer = napari.Viewer(title=title)
    viewer.window.resize(*SIZE)
    return viewer


def open_docks(viewer, shown: str):
    """Open the docks as a user would (Plugins menu); raise ``shown``; return its widget."""
    docks = {name: viewer.window.add_plugin_dock_widget(PLUGIN, name) for name in DOCKS}
    settle(viewer, 200)
    dock, widget = docks[shown]
    dock.raise_()
    return widget


def shoot(viewer, path: Path) -> None:
    from PIL import Image

    settle(viewer)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    # a 256-colour palette keeps the docs light (noisy microscopy makes true-colour PNGs large)
    Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path}")


def compress(out: Path) -> None:
    viewer = new_viewer("napari-microcomp: Compress")
    viewer.open_sample(PLUGIN, "isl_phase_dapi")
    viewer.layers["ISL DAPI"].visible = False
    viewer.dims.set_current_step(0, 6)
    w = open_docks(viewer, "Compress")
    w.layer_picker.select("ISL phase contrast")
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(2)
    took = wait_for(w.run_finished, w.run_button.click)
    print(f"compress: {w.status.text()} ({took:.1f} s)")
    from napari_microcomp._qt._compare import side_by_side_steps

    recon, error = w.layers_added
    error.contrast_limits = (0, float(error.data.max()) / 4 or 1)
    for step in side_by_side_steps(viewer, [recon, error], f"{recon.name}   |   absolute error"):
        step()
    shoot(viewer, out / "compress-widget.png")
    viewer.close()


def labelfree(out: Path) -> None:
    from napari_microcomp.labelfree import available_models

    models = available_models()
    if not models:
        print("label-free: no shipped model weights; screenshot skipped", file=sys.stderr)
        return
    viewer = new_viewer("napari-microcomp: Label-free prediction")
    viewer.open_sample(PLUGIN, "isl_phase_dapi")
    viewer.dims.set_current_step(0, 6)
    w = open_docks(viewer, "Label-free prediction")
    w.image_picker.select("ISL phase contrast")
    w.target_picker.select("ISL DAPI")
    prefer = [m for m in models if m.startswith("unet2d")] or models
    w.model.setCurrentText(prefer[0])
    w.codec_combo.select("jpeg2k")
    w.quality.setValue(1)
    took = wait_for(w.run_finished, w.run_button.click)
    print(f"label-free: {w.status.text()} ({took:.1f} s)")
    for layer in viewer.layers:  # the widget shows its comparison side by side, titled
        layer.visible = layer in w.layers_added
    viewer.reset_view()
    shoot(viewer, out / "labelfree-widget.png")
    viewer.close()


def benchmark(out: Path) -> None:
    viewer = new_viewer("napari-microcomp: Benchmark")
    viewer.open_sample(PLUGIN, "hipsc_nuclei")
    viewer.dims.set_current_step(0, 30)
    w = open_docks(viewer, "Benchmark")
    assert w.selected_layer_names() == ["hiPSC nuclei"]  # pre-ticked: one click
    w.current_slice.setChecked(True)
    learned = [n for n in ("mbt2018-mean", "bmshj2018-hyperprior", "bmshj2018-factorized")
               if n in w.codecs.all_names()][:1]
    w.codecs.set_checked(["jpeg2k", "htj2k", "jpegxl", "jpegxr"] + learned)
    w.set_qualities(range(1, 9))
    took = wait_for(w.run_finished, w.run_button.click)
    print(f"benchmark: {w.status.text()} ({took:.1f} s)")
    w.table.sortByColumn(w.table.column_of("bpp"), Qt.SortOrder.AscendingOrder)
    # show a strongly compressed JPEG XL row: its artefacts are visible in the viewer
    pick = [r for r in range(w.table.rowCount()) if w.rows[w.table.row_index(r)]["label"] == "jpegxl q2"]
    wait_for(w.reconstruction_shown, lambda: w.show_row(pick[0]))
    viewer.reset_view()
    shoot(viewer, out / "benchmark-widget.png")
    w.results.setCurrentIndex(1)  # the RD plot tab
    settle(viewer, 300)
    while w.plot.busy:  # the RD plot renders on a worker thread
        settle(viewer, 100)
    shoot(viewer, out / "benchmark-rd-plot.png")
    w.plot.save(out / "benchmark-rd-plot-export.png")  # what "Export PNG" writes
    print(f"wrote {out / 'benchmark-rd-plot-export.png'}")
    viewer.close()


def advise(out: Path) -> None:
    viewer = new_viewer("napari-microcomp: Advise")
    viewer.open_sample(PLUGIN, "skimage_cell")
    w = open_docks(viewer, "Advise")
    assert len(w.selected_layer_names()) == 1  # the active layer is pre-ticked, SSIM >= 0.94 preset
    w.set_tolerance(ssim=0.98, max_error=12)
    took = wait_for(w.run_finished, w.run_button.click)
    print(f"advise: {w.status.text()}; {w.answer.text()} ({took:.1f} s)")
    n = len(viewer.layers)
    w.apply_button.click()
    while len(viewer.layers) == n:  # the winner's reconstruction arrives from the worker
        settle(viewer, 100)
    viewer.layers[-1].visible = True
    viewer.layers[0].visible = False
    viewer.reset_view()
    from qtpy.QtWidgets import QScrollArea

    bar = w.findChild(QScrollArea).verticalScrollBar()   # the answer, table and plot: the dock's lower part
    settle(viewer, 200)
    bar.setValue(bar.maximum())
    shoot(viewer, out / "advise-widget.png")
    viewer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "images"))
    parser.add_argument("--only", choices=("compress", "labelfree", "benchmark", "advise"), action="append")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shots = {"compress": compress, "labelfree": labelfree, "benchmark": benchmark, "advise": advise}
    for name in args.only or shots:
        shots[name](out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
