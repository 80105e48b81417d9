"""Issue 12, point 6: the docks fit 1280x800 (as tabs, scrolling), key table columns first, a
readable RD plot (legend outside, human labels, only metrics the results have)."""
import pytest
from npe2 import PluginManifest
from pathlib import Path

import napari_microcomp
from napari_microcomp._qt._results import COLUMNS, KEY_COLUMNS
from napari_microcomp.benchmark.plots import plot_metrics, rd_figure as render_rd

MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"


@pytest.fixture
def plugin(npe2pm):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    return npe2pm


def test_four_docks_fit_1280x800_as_tabs(make_napari_viewer, plugin, qtbot, cell):
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer(show=True)
    viewer.add_image(cell, name="a layer with a rather long name, as vendor files have")
    window = viewer.window._qt_window
    window.resize(1280, 800)
    widgets = [viewer.window.add_plugin_dock_widget("napari-microcomp", name)[1]
               for name in ("Compress", "Label-free prediction", "Benchmark", "Advise")]
    qtbot.wait(200)
    assert window.height() <= 800 and window.width() <= 1280   # the Advise dock alone took it to 987 px
    docks = [d for d in window.findChildren(QDockWidget) if "napari-microcomp" in d.windowTitle()]
    assert len(docks) == 4
    assert all(len(window.tabifiedDockWidgets(d)) == 3 for d in docks)  # one tab group
    for w in widgets:  # no content cut off on the right
        assert w._scroll_inner.minimumSizeHint().width() <= w.width()


def _rows(n_methods=8):
    rows = []
    for m in range(n_methods):
        for q, bpp in enumerate((0.05, 0.12, 0.3, 0.8, 2.0, 5.0)):
            rows.append({"status": "ok", "method": f"codec-{m}", "image": "cell", "bpp": bpp,
                         "psnr": 25 + 3 * q + m * 0.2, "ssim": 0.8 + 0.03 * q})
    return rows


def test_rd_plot_is_readable_with_eight_curves(tmp_path):
    rows = _rows()
    assert plot_metrics(rows) == ["psnr", "ssim"]  # nothing about phase 2 without it
    fig = render_rd(rows, "psnr", per_image=False, size=(640, 360))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "PSNR (dB)"
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # outside the axes: hides no point
    labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert labels and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no overlapping ticks
    empty = render_rd(rows, "p2_pearson_r", per_image=False)
    assert "no prediction" in " ".join(t.get_text() for t in empty.axes[0].texts)


def test_table_shows_key_columns_first_and_the_rest_on_demand(make_napari_viewer, qtbot, cell):
    from napari_microcomp._qt.benchmark_widget import BenchmarkWidget

    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    w = BenchmarkWidget(viewer)
    qtbot.addWidget(w)
    visible = [key for c, (key, _) in enumerate(COLUMNS) if not w.table.isColumnHidden(c)]
    assert visible == [k for k, _ in COLUMNS if k in KEY_COLUMNS]
    w.all_columns.setChecked(True)
    assert not any(w.table.isColumnHidden(c) for c in range(len(COLUMNS)))
    w.codecs.set_checked(["jpegxl"])
    w.set_qualities([2, 6])
    with qtbot.waitSignal(w.run_finished, timeout=120_000):
        w.run_button.click()
    offered = [w.metric.itemData(i) for i in range(w.metric.count())]
    assert "psnr" in offered and not any(k.startswith("p2_") for k in offered)
    assert w.metric.itemText(offered.index("psnr")) == "PSNR (dB)"
