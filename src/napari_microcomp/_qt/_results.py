"""The benchmark widget's result views: a sortable rows table and a rate–distortion plot."""
import math
from typing import Any, Dict, List, Optional, Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QTableWidget, QTableWidgetItem

from ._common import alive, fmt

COLUMNS = (("image", "image"), ("label", "codec"), ("status", "status"), ("compression_ratio", "CR"),
           ("bpp", "bpp"), ("psnr", "PSNR"), ("ssim", "SSIM"), ("ms_ssim", "MS-SSIM"),
           ("pearson_r", "r"), ("encode_s", "enc s"), ("decode_s", "dec s"),
           ("p2_pearson_r", "pred r vs GT"), ("p2_ref_pearson_r", "pred r vs orig"))
PLOT_METRICS = ("psnr", "ssim", "ms_ssim", "pearson_r", "p2_pearson_r", "p2_ssim", "p2_ref_pearson_r")
METRIC_LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "pearson_r": "Pearson r",
                 "p2_pearson_r": "prediction: Pearson r vs ground truth",
                 "p2_ssim": "prediction: SSIM vs ground truth",
                 "p2_ref_pearson_r": "prediction: Pearson r vs prediction from original"}
# shown by default; the rest (timings, MS-SSIM, …) with "all columns"
KEY_COLUMNS = ("image", "label", "status", "compression_ratio", "bpp", "psnr", "ssim", "p2_pearson_r")


def plot_metrics(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The plottable metrics that have at least one finite value in ``rows`` (in PLOT_METRICS order)."""
    ok = [r for r in rows if r.get("status") == "ok" and finite(r.get("bpp"))]
    return [m for m in PLOT_METRICS if any(finite(r.get(m)) for r in ok)]
ROW_INDEX = Qt.ItemDataRole.UserRole
EXPORT_SIZE = (720, 420)  # pixels at 100 dpi of an exported RD plot


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _NumberItem(QTableWidgetItem):
    """A cell that shows a formatted number and sorts by its value, NaN last in either order."""

    def __init__(self, value: Any):
        super().__init__(fmt(value, 4) if isinstance(value, float) else str(value))
        self.value = float(value)

    def __lt__(self, other):
        a, b = self.value, getattr(other, "value", math.nan)
        if math.isnan(a) or math.isnan(b):
            table = self.tableWidget()
            descending = table is not None and \
                table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
            # Qt sorts descending by ``b < a``: NaN must then compare as the smallest value
            return math.isnan(a) and not math.isnan(b) if descending else math.isnan(b) and not math.isnan(a)
        return a < b


class ResultsTable(QTableWidget):
    """Benchmark rows, one line each; header clicks sort; each cell knows its row's index."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([title for _, title in COLUMNS])
        self.setSortingEnabled(True)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.verticalHeader().setDefaultSectionSize(22)
        for key, title in COLUMNS:
            self.horizontalHeaderItem(self.column_of(key)).setToolTip(METRIC_LABELS.get(key, title))
        self.show_all_columns(False)

    def show_all_columns(self, show: bool) -> None:
        """Key columns only (codec, CR, bpp, PSNR, SSIM, prediction r), or every column."""
        for c, (key, _) in enumerate(COLUMNS):
            self.setColumnHidden(c, not show and key not in KEY_COLUMNS)

    def add_row(self, row: Dict[str, Any], index: int) -> None:
        self.setSortingEnabled(False)  # Qt's advice: no sorting while inserting
        r = self.rowCount()
        self.insertRow(r)
        for c, (key, _) in enumerate(COLUMNS):
            value = row.get(key)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            item = _NumberItem(value) if is_number else QTableWidgetItem("–" if value is None else str(value))
            item.setData(ROW_INDEX, index)
            if key == "status" and value != "ok":
                item.setToolTip(str(row.get("error")))
            self.setItem(r, c, item)
        self.setSortingEnabled(True)

    def row_index(self, table_row: int) -> int:
        """Index in the rows list of the row shown at ``table_row`` (whatever the sort order)."""
        return int(self.item(table_row, 0).data(ROW_INDEX))

    def column_of(self, key: str) -> int:
        return [k for k, _ in COLUMNS].index(key)


def render_rd(rows: Sequence[Dict[str, Any]], metric: str, per_image: bool, size=(400, 300), dpi: int = 100):
    """A new Agg figure: ``metric`` vs bpp, one curve per method (and image when ``per_image``).

    Pure function of its arguments (no shared state), so it can run on a worker thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    curves: Dict[str, List] = {}
    for row in rows:
        x, y = row.get("bpp"), row.get(metric)
        if row.get("status") == "ok" and finite(x) and finite(y):
            key = f"{row['method']} ({row['image']})" if per_image else row["method"]
            curves.setdefault(key, []).append((x, y))
    w, h = size  # margins in pixels: room for tick labels, axis titles and (when wide) the legend
    legend_right = bool(curves) and w >= 480
    right = (w - 170) / w if legend_right else 1 - 14 / w
    legend_rows = (len(curves) + 1) // 2 if curves and not legend_right else 0
    bottom = (50 + (14 * legend_rows + 10 if legend_rows else 0)) / h  # ticks + title (+ legend below)
    fig.subplots_adjust(left=62 / w, right=right, bottom=min(bottom, 0.6), top=1 - 12 / h)
    ax = fig.add_subplot()
    for key, points in curves.items():
        points.sort()
        ax.plot(*zip(*points), marker="o", markersize=3, label=key)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3, which="both")
    if curves:
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.set_xscale("log")  # bpp spans decades (0.01 .. 16)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        formatter = ScalarFormatter()
        formatter.set_scientific(False)
        ax.xaxis.set_major_formatter(formatter)
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlapped the major ones
        ax.tick_params(axis="both", labelsize=8)
        if legend_right:
            ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                      frameon=False)
        else:
            fig.legend(fontsize="x-small", loc="lower center", bbox_to_anchor=(0.5, 2 / h), ncol=2,
                       frameon=False)  # below the axis title, in figure pixels
    else:
        ax.text(0.5, 0.5, f"no {METRIC_LABELS.get(metric, metric)} values yet" if not rows
                else f"these results have no {METRIC_LABELS.get(metric, metric)} values",
                ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    fig.canvas.draw()
    return fig


class RDPlot(QLabel):
    """The rate–distortion plot, rendered by matplotlib (Agg) on a worker thread.

    A draw costs 30–60 ms of CPU on an idle core and several times that on a busy machine; done
    on the GUI thread it froze the viewer after every benchmark row. Requests are coalesced: at
    most one render runs at a time, and the newest request wins.
    """

    rendered = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(220)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # the layout sizes the label, never the rendered pixmap (no resize/re-render feedback loop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.figure = None  # the last rendered matplotlib Figure (PNG export saves it)
        self._request = None
        self._last = None
        self._worker = None

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._request is not None

    def draw(self, rows: Sequence[Dict[str, Any]], metric: str, per_image: bool) -> None:
        """Render soon; calls made while a render runs are merged into one."""
        size = (max(self.width(), 320), max(self.height(), 220))
        self._request = self._last = (list(rows), metric, per_image, size)
        if self._worker is None:
            self._start()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._last is not None and self._last[3] != (max(self.width(), 320), max(self.height(), 220)):
            self.draw(*self._last[:3])  # re-render at the new size

    def _start(self) -> None:
        from napari.qt.threading import create_worker

        request, self._request = self._request, None
        self._worker = create_worker(render_rd, *request, _start_thread=True,
                                     _connect={"returned": self._show, "errored": self._failed})
        self._worker.finished.connect(self._finished)

    def _show(self, fig) -> None:
        if not alive(self):  # the dock was closed while rendering
            return
        w, h = (int(v) for v in fig.canvas.get_width_height())
        image = QImage(bytes(fig.canvas.buffer_rgba()), w, h, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(image))
        self.figure = fig

    def _failed(self, exc) -> None:
        self.setText(f"plot failed: {type(exc).__name__}: {exc}")

    def _finished(self) -> None:
        if not alive(self):
            return
        self._worker = None
        if self._request is not None:
            self._start()
        else:
            self.rendered.emit()

    def save(self, path, dpi: Optional[int] = 150, size=EXPORT_SIZE) -> None:
        """Save the plot of the latest request at ``size`` pixels (at 100 dpi) whatever the dock's
        size: an export from a narrow dock was cramped; at 720x420 the legend sits outside, right."""
        if self._last is None:
            raise ValueError("nothing plotted yet")
        rows, metric, per_image, _ = self._last
        render_rd(rows, metric, per_image, size=size).savefig(path, dpi=dpi)
