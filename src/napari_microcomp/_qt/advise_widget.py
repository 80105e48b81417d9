"""Advise dock: "how hard can I compress?" for the ticked layers, within the user's tolerance.

Runs :func:`napari_microcomp.advise.iter_advise` on a thread worker (progress per trial, cancel
between trials), shows the ranked table and an RD plot with the tolerance line; *Apply* adds the
winner's reconstruction of every ticked layer beside it, *Save…* writes the winner's ``.mcz`` streams,
*Report…* writes the JSON + Markdown + PNG report. Source layers are never modified.
"""
from pathlib import Path
from typing import List

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                            QProgressBar, QPushButton, QTableWidget, QTableWidgetItem)

from ..advise import TOLERANCES, Tolerance, default_codecs
from .. import jobs
from ..errors import InputError
from ._common import (LayerChecklist, add_or_replace_image, fit_width, report_error, report_notes, scrolling_layout,
                      set_status, status_label)
from ._layer_data import layer_array, refuse_reason
from ._dock import DockWidget, add_labelfree_models, spin_box
from ._codecs import CodecChecklist
from ._workers import start_worker

# tolerance -> (default value, default on, min, max, step, decimals)
SPIN = {"psnr": (40.0, False, 10.0, 120.0, 0.5, 1), "ssim": (0.94, True, 0.5, 1.0, 0.005, 4),
        "ms_ssim": (0.98, False, 0.5, 1.0, 0.005, 4), "max_error": (100.0, False, 0.0, 1e9, 10.0, 2),
        "r_drop": (0.02, False, 0.0, 1.0, 0.005, 3), "bpp": (1.0, False, 0.001, 64.0, 0.1, 3)}
COLUMNS = ("#", "codec", "setting", "meets", "CR", "bpp")


class AdviseWidget(DockWidget):
    """Tolerances in, the highest compression per codec out; apply or save the best."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.advice = None
        self._layer_names: List[str] = []
        self._arrays: List[np.ndarray] = []

        self.layer_list = LayerChecklist(napari_viewer, max_height=80)
        grid = self._tolerance_grid()
        self.model = QComboBox()
        add_labelfree_models(self.model)
        self.codecs = CodecChecklist(checked=default_codecs())
        self.codecs.setMaximumHeight(110)
        self.codecs.setToolTip("classical and lossless codecs are ticked; tick learned codecs to include them "
                               "(slower: only their trained levels are searched)")
        self.trials = spin_box(2, 30, 10, "encodes per codec: the quality levels first, then bisection between them")
        self.run_button = QPushButton("Advise")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = status_label()
        self.answer = QLabel("")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(120)
        self.plot = QLabel()
        self.plot.setMinimumHeight(0)
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setToolTip("add the best setting's reconstruction of every ticked layer beside it")
        self.save_button = QPushButton("Save .mcz…")
        self.report_button = QPushButton("Report…")
        for b in (self.apply_button, self.save_button, self.report_button):
            b.setEnabled(False)

        self._lay_out(grid)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.apply_button.clicked.connect(self.apply_best)
        self.save_button.clicked.connect(self._save_dialog)
        self.report_button.clicked.connect(self._report_dialog)

    def _tolerance_grid(self) -> QGridLayout:
        grid = QGridLayout()
        self.tol_boxes, self.tol_spins = {}, {}
        for i, (key, (val, on, lo, hi, step, dec)) in enumerate(SPIN.items()):
            label, floor, _ = TOLERANCES[key]
            box = QCheckBox(f"{label} {'≥' if floor else '≤'}")
            box.setChecked(on)
            spin = QDoubleSpinBox()
            spin.setDecimals(dec)
            spin.setRange(lo, hi)
            spin.setSingleStep(step)
            spin.setValue(val)
            spin.setEnabled(on)
            box.toggled.connect(spin.setEnabled)
            self.tol_boxes[key], self.tol_spins[key] = box, spin
            grid.addWidget(box, i, 0)   # one column: two needed a 440-490 px wide dock
            grid.addWidget(spin, i, 1)
        self.tol_boxes["max_error"].setToolTip("largest absolute error allowed, in the image's own units")
        self.tol_boxes["r_drop"].setToolTip("1 − Pearson r between the label-free prediction from the "
                                            "reconstruction and from the original (choose the model below)")
        return grid

    def _lay_out(self, grid: QGridLayout) -> None:
        lay = scrolling_layout(self)   # with the other docks as tabs, the window must still fit 1280x800
        lay.addWidget(QLabel("image layers (the worst one counts)"))
        lay.addWidget(self.layer_list)
        lay.addWidget(QLabel("tolerance (every ticked condition, on every image)"))
        lay.addLayout(grid)
        row = QHBoxLayout()
        row.addWidget(QLabel("label-free model"))
        row.addWidget(self.model, 1)
        lay.addLayout(row)
        lay.addWidget(self.codecs)
        row = QHBoxLayout()
        row.addWidget(QLabel("trials per codec"))
        row.addWidget(self.trials)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.answer)
        lay.addWidget(self.table)
        lay.addWidget(self.plot)
        row = QHBoxLayout()
        for b in (self.apply_button, self.save_button, self.report_button):
            row.addWidget(b)
        lay.addLayout(row)
        fit_width(self)


    # -- inputs ------------------------------------------------------------------------------
    def selected_layer_names(self) -> List[str]:
        return self.layer_list.checked()

    def select_layers(self, names) -> None:
        self.layer_list.set_checked(names)

    def set_tolerance(self, **values) -> None:
        for key in SPIN:
            on = values.get(key) is not None
            self.tol_boxes[key].setChecked(on)
            if on:
                self.tol_spins[key].setValue(float(values[key]))

    def tolerance(self) -> Tolerance:
        return Tolerance(**{k: self.tol_spins[k].value() for k in SPIN if self.tol_boxes[k].isChecked()})

    # -- run ---------------------------------------------------------------------------------
    def _clear(self) -> None:
        self.advice = None
        self.answer.setText("")
        self.table.setRowCount(0)
        self.plot.clear()
        for b in (self.apply_button, self.save_button, self.report_button):
            b.setEnabled(False)

    def run(self) -> None:
        self._clear()
        names = self.selected_layer_names()
        layers = [self.viewer.layers[n] for n in names]
        reason = next((r for r in map(refuse_reason, layers) if r), None)
        if not layers:
            reason = "tick at least one image layer"
        elif not self.codecs.checked():
            reason = "tick at least one codec"
        try:
            tol = None if reason else self.tolerance()
        except InputError as exc:
            reason = str(exc)
        if reason is None and tol.r_drop is not None and not self.model.currentText():
            reason = "the label-free r-drop tolerance needs a label-free model; none is installed"
        if reason:
            report_error(InputError(reason), self.status)
            self.run_finished.emit()
            return
        self._layer_names = names
        self._arrays = [np.asarray(layer_array(layer)) for layer in layers]
        self.progress.setRange(0, len(self.codecs.checked()))
        self.progress.setValue(0)
        set_status(self.status, "advising…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        model = self.model.currentText() if tol.r_drop is not None else None
        self.worker = start_worker(jobs.advise, self._arrays, tol, self.codecs.checked(), model,
                                   self.trials.value(), names, desc="advise", on_yield=self._on_progress,
                                   on_return=self._show, on_error=self._on_error, on_finish=self._finished)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            set_status(self.status, "cancelled")

    def _on_progress(self, ev) -> None:
        self.progress.setRange(0, max(ev.total, 1))
        self.progress.setValue(ev.done)
        self.progress.setFormat(f"%v/%m codecs · {ev.message}")

    def _on_error(self, exc) -> None:
        self._clear()
        report_error(exc, self.status, "advise")

    def _finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None
        self.run_finished.emit()

    def _show(self, advice) -> None:
        self.advice = advice
        set_status(self.status, f"done: {len(advice.rows)} codecs" + report_notes(advice.notes, self.status))
        self.answer.setText(f"<b>{advice.summary()}</b><br>within {advice.tolerance.describe()}")
        keys = [k for k, _ in advice.tolerance.items() if k != "bpp"]
        cols = list(COLUMNS) + [f"worst {TOLERANCES[k][0]}" for k in keys]
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(len(advice.rows))
        for i, r in enumerate(advice.rows):
            vals = [str(i + 1), r.codec, r.setting, "yes" if r.met else "no", f"{r.compression_ratio:.2f}",
                    f"{r.bpp:.4f}"] + [f"{r.worst.get(k, float('nan')):.4g}" for k in keys]
            for j, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if not r.met:
                    item.setForeground(Qt.GlobalColor.gray)
                if r.note:   # e.g. refused, or stopped by the codec's own limit rather than the tolerance
                    item.setToolTip(r.note)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self._draw_plot()
        has_winner = advice.winner is not None
        self.apply_button.setEnabled(has_winner)
        self.save_button.setEnabled(has_winner)
        self.report_button.setEnabled(True)

    def _draw_plot(self) -> None:
        import io

        from qtpy.QtGui import QPixmap

        from ..advise_report import figure

        width = max(self.width() - 36, 320)   # inside the scroll area, beside its vertical bar
        fig = figure(self.advice, size=(width / 100, 2.8))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        pix = QPixmap()
        pix.loadFromData(buf.getvalue())
        self.plot.setPixmap(pix)

    # -- apply / save / report ------------------------------------------------------------------
    def apply_best(self) -> None:
        if self.advice is None or self.advice.winner is None:
            return
        w = self.advice.winner
        set_status(self.status, f"applying {w.codec} {w.setting}…")
        self.apply_button.setEnabled(False)
        start_worker(jobs.apply, w.config, self._arrays, desc="apply", on_return=self._add_layers,
                     on_error=lambda e: report_error(e, self.status, "apply"),
                     on_finish=lambda: self.apply_button.setEnabled(self.advice is not None))

    def _add_layers(self, results) -> None:
        w = self.advice.winner
        for name, (data, rec) in zip(self._layer_names, results):
            like = self.viewer.layers[name] if name in self.viewer.layers else None
            add_or_replace_image(self.viewer, rec, f"{name} [advice: {w.codec} {w.setting}]", like=like,
                                 metadata={"microcomp": {"codec": w.config, "source": name,
                                                         "compressed_bytes": len(data)}})
        set_status(self.status, f"added {len(results)} reconstruction(s): {w.codec} {w.setting}")

    def save_streams(self, folder) -> List[Path]:
        """Write the winner's stream of every advised layer into ``folder`` (atomic, never overwriting)."""
        from ..codecs import codec_from_config
        from ..io_write import atomic_write_bytes

        codec = codec_from_config(self.advice.winner.config)
        out = []
        for name, a in zip(self._layer_names, self._arrays):
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "layer"
            p = Path(folder) / f"{safe}.mcz"
            k = 1
            while p.exists():
                p, k = Path(folder) / f"{safe}-{k}.mcz", k + 1
            atomic_write_bytes(p, codec.encode(a))
            out.append(p)
        return out

    def write_report(self, path) -> List[Path]:
        from ..advise_report import export_json, export_markdown, export_plot

        base = Path(path).with_suffix("")
        return [export_json(self.advice, base.with_suffix(".json")),
                export_markdown(self.advice, base.with_suffix(".md")), export_plot(self.advice, base.with_suffix(".png"))]

    def _save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the best setting's .mcz files into")
        if folder:
            try:
                paths = self.save_streams(folder)
                set_status(self.status, f"wrote {', '.join(p.name for p in paths)}")
            except Exception as exc:   # unwritable folder, full disk: say so, keep the GUI alive
                report_error(exc, self.status, "save")

    def _report_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Write the advice report", "advice.md", "Markdown (*.md)")
        if path:
            try:
                paths = self.write_report(path)
                set_status(self.status, f"wrote {', '.join(p.name for p in paths)}")
            except Exception as exc:
                report_error(exc, self.status, "report")
