"""Benchmark dock widget: image layers x codecs x qualities -> live table, RD plot, exports.

Runs :func:`napari_microcomp.benchmark.iter_benchmark` on a napari thread worker; each finished
row arrives as a Progress payload and is added to a sortable table and the rate–distortion plot.
Cancel stops after the row being computed (the rows so far stay). Clicking a row recomputes that
configuration from the row's codec config (``api.compress_array``, on a worker) and shows its
reconstruction in the viewer, named like the Compress widget's layers.
"""
from typing import Any, Dict, List, Optional

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                            QProgressBar, QPushButton, QTabWidget, QVBoxLayout, QWidget)

from .. import jobs
from ..errors import InputError
from ._common import (LayerChecklist, LayerPicker, add_or_replace_image, display_label, fit_width, fmt, narrow,
                      reconstruction_metadata, report_error, report_notes, scrolling_layout, set_status, status_label)
from ._layer_data import current_block, layer_array, leading_index, refuse_reason
from ._dock import DockWidget, add_labelfree_models
from ._codecs import CodecChecklist, weight_qualities
from ._workers import Eta, Step, step_text, start_worker
from ..benchmark.plots import METRIC_LABELS, plot_metrics
from ._results import RDPlot, ResultsTable

DEFAULT_CODECS = ("jpeg2k", "jpegxl", "jpegxr")


class BenchmarkWidget(DockWidget):
    """Benchmark codecs on image layers, with a live table, an RD plot and exports."""

    reconstruction_shown = Signal(object)  # the layer added or updated by clicking a row

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.rows: List[Dict[str, Any]] = []
        self.images: Dict[str, np.ndarray] = {}
        self.sources: Dict[str, Any] = {}
        self._failed: set = set()
        self._noted: set = set()
        self._total, self._inner, self._eta = 0, 0.0, Eta()

        self.layer_list = LayerChecklist(napari_viewer)
        self.all_times = QCheckBox("4D: every time point")
        self.all_times.setToolTip("time-lapse z-stacks (e.g. from CZI files): one image per time point instead "
                                  "of the time point shown in the viewer")
        self.current_slice = QCheckBox("3D: only the z-slice shown")
        self.current_slice.setToolTip("3D layers: benchmark only the z-slice shown in the viewer")
        self.codecs = CodecChecklist(DEFAULT_CODECS)
        self.codecs.setMaximumHeight(110)
        self.quality_boxes = [QCheckBox(str(q)) for q in range(1, 9)]
        for box in self.quality_boxes:
            box.setChecked(box.text() in ("2", "4", "6", "8"))
        self.model = QComboBox()
        self.model.setEditable(True)
        narrow(self.model)
        self.model.setToolTip("a shipped label-free model or the path of a .pt file; empty: phase 1 only")
        self.model.addItem("")
        add_labelfree_models(self.model)
        self.ground_truth = LayerPicker(napari_viewer, optional=True)
        self.run_button, self.cancel_button = QPushButton("Run benchmark"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = status_label()
        self.table = ResultsTable()
        self.table.cellClicked.connect(self.show_row)
        self.metric = QComboBox()
        self.metric.setToolTip("the metrics these results have values for")
        self._set_metrics(["psnr"])
        self.metric.currentIndexChanged.connect(lambda _: self.redraw())
        self.all_columns = QCheckBox("all columns")
        self.all_columns.setToolTip("key columns first; tick to show timings and the other metrics too")
        self.all_columns.toggled.connect(self.table.show_all_columns)
        self.plot = RDPlot()
        self.export_buttons = {kind: QPushButton(kind) for kind in ("CSV", "JSON", "Markdown", "PNG")}
        for kind, button in self.export_buttons.items():
            button.clicked.connect(lambda _=False, k=kind: self._export_clicked(k))
            button.setEnabled(False)

        self._lay_out()
        self.redraw()  # empty axes at once; also loads matplotlib before the first run
        fit_width(self)

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("image layers", self.layer_list)
        form.addRow("", self.current_slice)
        form.addRow("", self.all_times)
        form.addRow("codecs", self.codecs)
        qualities = QGridLayout()  # 2 rows of 4: the dock stays narrow
        for i, box in enumerate(self.quality_boxes):
            qualities.addWidget(box, i // 4, i % 4)
        form.addRow("qualities", qualities)
        form.addRow("label-free model", self.model)
        form.addRow("ground truth", self.ground_truth)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        exports = QHBoxLayout()
        exports.addWidget(QLabel("export"))
        for button in self.export_buttons.values():
            button.setMinimumWidth(10)  # napari's style asks 80 px each: the dock stays narrow
            exports.addWidget(button)
        # results: table and plot share one area as tabs (half the height of stacking them)
        self.results = QTabWidget()
        table_page = QWidget()
        table_layout = QVBoxLayout(table_page)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table)
        table_layout.addWidget(self.all_columns)
        plot_page = QWidget()
        plot_layout = QVBoxLayout(plot_page)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        plot_bar = QHBoxLayout()
        plot_bar.addWidget(QLabel("metric vs bpp"))
        plot_bar.addWidget(self.metric, stretch=1)
        plot_layout.addLayout(plot_bar)
        plot_layout.addWidget(self.plot, stretch=1)
        self.results.addTab(table_page, "Table")
        self.results.addTab(plot_page, "RD plot")
        self.results.setMinimumHeight(260)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.results, stretch=1)
        layout.addLayout(exports)


    # -- inputs ------------------------------------------------------------------------------
    def selected_layer_names(self) -> List[str]:
        return self.layer_list.checked()

    def select_layers(self, names) -> None:
        self.layer_list.set_checked(names)

    def qualities(self) -> List[int]:
        return [int(b.text()) for b in self.quality_boxes if b.isChecked()]

    def set_qualities(self, levels) -> None:
        for box in self.quality_boxes:
            box.setChecked(int(box.text()) in levels)

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> None:
        layers = [self.viewer.layers[n] for n in self.selected_layer_names()]
        reasons = [refuse_reason(layer) for layer in layers]
        reason = next((r for r in reasons if r), None)
        if not layers:
            reason = "tick at least one image layer"
        elif not self.codecs.checked():
            reason = "tick at least one codec"
        elif not self.qualities():
            reason = "tick at least one quality level"
        elif not self.codec_specs():
            reason = "the ticked learned codecs have no weights for the ticked qualities"
        if reason:
            report_error(InputError(reason), self.status)
            return
        gt = self.ground_truth.layer()
        model = self.model.currentText().strip()
        self.rows, self.images, self._failed, self._noted = [], {}, set(), set()
        per_layer = [(layer, self._entries(layer)) for layer in layers]
        entries = [e for _, es in per_layer for e in es]
        self.sources = {layer.name: layer for layer in layers}
        self.sources.update({name: layer for layer, es in per_layer for name, _, _ in es})
        self.table.setRowCount(0)
        self.redraw()
        from ..benchmark.engine import expand_codecs

        self._total = len(entries) * len(expand_codecs(self.codec_specs(), self.qualities()))
        self._inner = 0.0
        self._eta = Eta()
        self.progress.setMaximum(max(self._total, 1) * 100)  # a new run: a new scale, from 0
        self.progress.setValue(0)
        self.progress.setFormat(f"0 / {self._total} rows")
        self._busy(True)
        set_status(self.status, f"preparing {len(entries)} image(s)…")
        self.worker = worker = start_worker(
            jobs.benchmark, entries,
            None if gt is None else layer_array(gt), model, self.codec_specs(), self.qualities(),
            desc="benchmark", on_yield=self._on_event,
            on_return=lambda rows: set_status(self.status, f"done: {len(rows)} rows in {self._eta.text()}"),
            on_error=lambda exc: report_error(exc, self.status, "benchmark failed"),
            on_cancel=lambda: set_status(self.status, f"cancelled after {len(self.rows)} rows "
                                                      f"({self._eta.text()})"),
            on_finish=lambda: self.worker is worker and self._busy(False))

    def codec_specs(self) -> List[Any]:
        """Ticked codecs for the engine: names, and for model-based codecs one config per ticked
        quality that has weights (qualities without weights are skipped, not run as errors)."""
        from ..codecs import codec_class

        specs: List[Any] = []
        for name in self.codecs.checked():
            have = weight_qualities(codec_class(name))
            if have is None:
                specs.append(name)
            else:
                specs += [{"id": name, "quality": q, "lossless": False} for q in self.qualities() if q in have]
        return specs

    def _entries(self, layer) -> List[tuple]:
        """[(name, data, z)] for the engine. 4D+ layers give the block shown in the viewer, or with
        *every time point* one image per block (``… t0``, ``… t1``, …); z is the slice shown when
        only that slice is benchmarked."""
        z = None
        if self.current_slice.isChecked() and layer.ndim >= 3:
            z = leading_index(layer, self.viewer, keep=2)[-1]
        if layer.ndim > 3 and self.all_times.isChecked():
            axes = str((layer.metadata.get("microcomp") or {}).get("axes", ""))
            labels = axes[:layer.ndim - 3].lower() if len(axes) == layer.ndim else "i" * (layer.ndim - 3)
            data = layer_array(layer)
            return [(f"{layer.name} " + " ".join(f"{a}{i}" for a, i in zip(labels, idx)), data[idx], z)
                    for idx in np.ndindex(*data.shape[:layer.ndim - 3])]
        data, name = current_block(layer, self.viewer)
        return [(name, data, z if np.ndim(data) == 3 else None)]

    def cancel(self) -> None:
        """Stop at the next tile/slice of the row being computed; the finished rows stay."""
        if self.worker is not None:
            self.worker.quit()
            self.cancel_button.setEnabled(False)
            set_status(self.status, "cancelling…")

    def _busy(self, busy: bool) -> None:
        for button in self.export_buttons.values():
            button.setEnabled(not busy and bool(self.rows))
        if not busy:
            self.table.resizeColumnsToContents()
        super()._busy(busy)

    def _on_event(self, event) -> None:
        if isinstance(event, dict):  # the prepared images, kept to show reconstructions later
            self.images = event["images"]
            return
        cancelling = self.worker is None or not self.cancel_button.isEnabled()
        if isinstance(event, Step):  # a tile/slice inside the current row
            if cancelling:
                return  # late steps must not overwrite "cancelling…"
            if event.stage == "row":  # a row starts (its done/total count rows, not steps)
                self._inner = 0.0
            elif event.total:
                self._inner = max(self._inner, 0.9 * event.done / event.total)
            self._show_progress(step_text(event))
            return
        if event.stage == "row" and event.payload is not None:
            self._inner = 0.0
            self._add_row(event.payload)
        self._total = max(event.total, 1)
        if not cancelling:
            self._show_progress(event.message)

    def _show_progress(self, detail: str) -> None:
        """Bar and status: rows done (plus the current row's share), counts, elapsed and ETA."""
        done = len(self.rows) + self._inner
        total = max(self._total, 1)
        self.progress.setMaximum(total * 100)
        self.progress.setValue(int(done * 100))
        self.progress.setFormat(f"{len(self.rows)} / {total} rows")
        current = min(len(self.rows) + 1, total)
        set_status(self.status, f"row {current}/{total} · {detail} · {self._eta.text(done / total)}")

    def _add_row(self, row: Dict[str, Any]) -> None:
        self.rows.append(row)
        if row.get("status") != "ok" and row.get("codec") not in self._failed:
            self._failed.add(row.get("codec"))  # one notification per failing codec
            report_error(InputError(f"{row.get('label')} on {row.get('image')}: {row.get('error')}"))
        note = (row.get("image"), row.get("note"))
        if row.get("note") and note not in self._noted:   # once per image and note, as the Markdown lists them
            self._noted.add(note)
            report_notes([f"{note[0]}: {note[1]}"])
        self.table.add_row(row, len(self.rows) - 1)
        have = plot_metrics(self.rows)
        if have != [self.metric.itemData(i) for i in range(self.metric.count())]:
            self._set_metrics(have or ["psnr"])
        self.redraw()

    def redraw(self) -> None:
        """Redraw the RD plot with the chosen metric."""
        self.plot.draw(self.rows, self.metric.currentData() or "psnr", per_image=len(self.sources) > 1)

    def _set_metrics(self, keys) -> None:
        """Offer exactly ``keys`` (metrics with values in the results), keeping the choice if possible."""
        current = self.metric.currentData() or "psnr"
        self.metric.blockSignals(True)
        self.metric.clear()
        for key in keys:
            self.metric.addItem(METRIC_LABELS.get(key, key), key)
        idx = self.metric.findData(current)
        self.metric.setCurrentIndex(idx if idx >= 0 else 0)
        self.metric.blockSignals(False)

    # -- exports -----------------------------------------------------------------------------
    def _export_clicked(self, kind: str) -> None:
        suffix = {"CSV": ".csv", "JSON": ".json", "Markdown": ".md", "PNG": ".png"}[kind]
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind}", f"benchmark{suffix}",
                                              f"{kind} (*{suffix})")
        if path:
            self.export(kind, path)

    def export(self, kind: str, path: str) -> Optional[str]:
        """Write the rows (CSV, JSON, Markdown) or the plot (PNG) to ``path``."""
        from ..benchmark import export_csv, export_json, export_markdown

        try:
            if kind == "PNG":
                self.plot.save(path)
            else:
                {"CSV": export_csv, "JSON": export_json, "Markdown": export_markdown}[kind](self.rows, path)
        except Exception as exc:
            report_error(exc, self.status, f"export to {path} failed")
            return None
        set_status(self.status, f"wrote {path}")
        return path

    # -- click a row -> reconstruction ---------------------------------------------------------
    def show_row(self, table_row: int, _column: int = 0) -> None:
        row = self.rows[self.table.row_index(table_row)]
        image = self.images.get(row["image"])
        if row.get("status") != "ok" or image is None:
            report_error(InputError(f"no reconstruction for this row ({row.get('error') or 'image gone'})"),
                         self.status)
            return
        set_status(self.status, f"reconstructing {row['label']} on {row['image']}…")
        start_worker(jobs.reconstruct, image, row["config"], desc=f"show {row['label']}",
                     on_return=lambda out: self._show_reconstruction(*out, row),
                     on_error=lambda exc: report_error(exc, self.status, "reconstruction failed"))

    def _show_reconstruction(self, res, crc, row) -> None:
        source = self.sources.get(row["image"]) or self.sources.get(row["image"].rsplit(" z", 1)[0])
        name = f"{row['image']} [{display_label(res.codec)}]"
        kwargs = {}
        if source is not None and source.ndim == res.reconstruction.ndim:
            kwargs = {"like": source, "contrast_limits": tuple(source.contrast_limits)}
        elif source is not None:  # a z-slice of a 3D layer: keep its (Y, X) geometry
            kwargs = {"scale": tuple(source.scale[-2:]), "translate": tuple(source.translate[-2:])}
        layer = add_or_replace_image(self.viewer, res.reconstruction, name,
                                     metadata=reconstruction_metadata(res, row["image"], crc), **kwargs)
        set_status(self.status, f"showing {name}: PSNR {fmt(res.metrics.get('psnr'), 4)} dB")
        self.reconstruction_shown.emit(layer)

