"""The benchmark widget's result views: a sortable rows table and a rate–distortion plot."""
import io
import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QTableWidget, QTableWidgetItem

from ..benchmark.plots import METRIC_LABELS, rd_figure
from ._common import alive, fmt

# the codec and its numbers first: in a 370 px dock they are what fits without scrolling
COLUMNS = (("label", "codec"), ("compression_ratio", "CR"), ("bpp", "bpp"), ("psnr", "PSNR"), ("ssim", "SSIM"),
           ("p2_pearson_r", "pred r vs GT"), ("image", "image"), ("status", "status"), ("ms_ssim", "MS-SSIM"),
           ("pearson_r", "r"), ("encode_s", "enc s"), ("decode_s", "dec s"), ("p2_ref_pearson_r", "pred r vs orig"))
# shown by default; the rest (timings, MS-SSIM, …) with "all columns"
KEY_COLUMNS = ("label", "compression_ratio", "bpp", "psnr", "ssim", "p2_pearson_r", "image", "status")
WIDE_COLUMNS = {"label": 130, "image": 120, "p2_pearson_r": 84}   # px; numbers get NUMBER_WIDTH
NUMBER_WIDTH = 58
ROW_INDEX = Qt.ItemDataRole.UserRole
EXPORT_SIZE = (720, 420)  # pixels at 100 dpi of an exported RD plot


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
        # rows stay in run order until a header is clicked (Qt's default sorts by column 0, descending)
        self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.verticalHeader().setDefaultSectionSize(22)
        for key, title in COLUMNS:
            self.horizontalHeaderItem(self.column_of(key)).setToolTip(METRIC_LABELS.get(key, title))
            self.setColumnWidth(self.column_of(key), WIDE_COLUMNS.get(key, NUMBER_WIDTH))
        self.show_all_columns(False)

    def show_all_columns(self, show: bool) -> None:
        """Key columns only (codec, CR, bpp, PSNR, SSIM, prediction r, image, status), or every column."""
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
            if key == "status" and (value != "ok" or row.get("note")):
                item.setToolTip(str(row.get("error") if value != "ok" else row.get("note")))
                if value == "ok":
                    item.setText("ok (note)")
            self.setItem(r, c, item)
        self.setSortingEnabled(True)

    def row_index(self, table_row: int) -> int:
        """Index in the rows list of the row shown at ``table_row`` (whatever the sort order)."""
        return int(self.item(table_row, 0).data(ROW_INDEX))

    def column_of(self, key: str) -> int:
        return [k for k, _ in COLUMNS].index(key)


class RDPlot(QLabel):
    """The rate–distortion plot, rendered by matplotlib (Agg) in the docks' worker process.

    A draw costs 30–60 ms of CPU on an idle core and several times that on a busy machine, and
    allocates enough objects to trigger full garbage collections in napari's process; done on the GUI
    thread it froze the viewer after every benchmark row. Requests are coalesced: at most one render
    runs at a time, and the newest request wins.
    """

    rendered = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(220)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # the layout sizes the label, never the rendered pixmap (no resize/re-render feedback loop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.labels: list = []  # the curve labels of the last render
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
        if not rows and self._worker is None:  # nothing to plot: no worker (a dock just opened)
            self._request, self.labels = None, []
            self.clear()
            self.setText("no results yet")
            self.rendered.emit()
        elif self._worker is None:
            self._start()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._last is not None and self._last[3] != (max(self.width(), 320), max(self.height(), 220)):
            self.draw(*self._last[:3])  # re-render at the new size

    def _start(self) -> None:
        from .. import jobs
        from ._workers import start_worker

        request, self._request = self._request, None
        self._worker = start_worker(jobs.rd_image, *request, desc="RD plot", activity=False, on_return=self._show,
                                    on_error=self._failed, on_finish=self._finished)

    def _show(self, out) -> None:
        if not alive(self):  # the dock was closed while rendering
            return
        rgba, self.labels = out
        h, w = rgba.shape[:2]
        image = QImage(rgba.tobytes(), w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.setPixmap(QPixmap.fromImage(image))

    def _failed(self, exc) -> None:
        if alive(self):
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
        from ..io_write import atomic_write_bytes
        rows, metric, per_image, _ = self._last
        buf = io.BytesIO()   # rendered first: a failing save leaves the old file, never half a new one
        rd_figure(rows, metric, per_image, size=size).savefig(buf, format=Path(path).suffix[1:].lower() or "png",
                                                              dpi=dpi)
        atomic_write_bytes(path, buf.getvalue())
