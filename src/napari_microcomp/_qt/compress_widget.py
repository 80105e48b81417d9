"""Compress dock widget: one image layer, one codec, one quality (or a target) -> reconstruction.

The widget only collects parameters and calls :func:`napari_microcomp.api.compress_array` on a
napari thread worker. It adds two layers named after the source, codec and quality,
``"<src> [<codec> q<k>]"`` (the reconstruction, with the source's contrast limits) and
``"<src> [<codec> q<k>] |error|"`` (absolute error, float32); running again with the same
settings updates those layers in place, other settings add new ones. The source is never touched.
"""
from typing import Optional

from qtpy.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                            QPushButton, QRadioButton)

from .. import jobs
from ..errors import InputError
from ._common import (LayerPicker, activate_layer, display_label, fit_width, fmt, reconstruction_metadata,
                      report_error, report_notes, scrolling_layout, set_status, status_label)
from ._layer_data import current_block, refuse_reason
from ._compare import clear_results
from ._dock import DockWidget, spin_box
from ._codecs import CodecCombo, QualitySlider, quality_levels, weights_hint
from ._workers import StepQueue, progress_status, start_worker

TARGETS = {"PSNR (dB)": ("psnr", 40.0, 10.0, 100.0, 0.5), "SSIM": ("ssim", 0.95, 0.5, 0.9999, 0.01),
           "bpp": ("bpp", 0.5, 0.01, 16.0, 0.05), "compression ratio": ("cr", 20.0, 1.1, 1000.0, 1.0)}
SHOWN = (("compression_ratio", "CR"), ("bpp", "bpp"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM"),
         ("ms_ssim", "MS-SSIM"), ("pearson_r", "Pearson r"), ("mean_error", "mean error"))


class CompressWidget(DockWidget):
    """Compress the selected image layer and show the reconstruction, its error and its metrics."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.result = None
        self.layers_added = []

        self.layer_picker = LayerPicker(napari_viewer)
        self.codec_combo = CodecCombo()
        self.codec_info = QLabel("")
        self.codec_info.setWordWrap(True)
        self.weights = QComboBox()
        self.weights.addItems(["auto", "transmitted", "fluorescence"])
        self.weights.setToolTip("learned codecs: weights trained on transmitted light (bright-field, phase, DIC) "
                                "or on fluorescence; auto picks by the image's intensity distribution")
        self.refine = spin_box(0, 2000, 0, "refine (slower): optimise this image's latents for N steps before "
                               "coding; smaller or better streams, the same decoder", step=50, off_text="off")
        self.quality = QualitySlider(4)
        quality_label = QLabel("4")
        self.quality.valueChanged.connect(lambda v: quality_label.setText(str(v)))
        # variable-rate models also take any level in between (interpolated latent gain)
        self.fine_level = QDoubleSpinBox()
        self.fine_level.setRange(1.0, 8.0)
        self.fine_level.setDecimals(2)
        self.fine_level.setSingleStep(0.25)
        self.fine_level.setValue(4.0)
        self.fine_level.setToolTip("variable-rate model: any level 1–8; a fraction interpolates between the "
                                   "trained levels (the gain used is recorded in the stream)")
        self.quality.valueChanged.connect(self._slider_moved)
        self.fine_level.valueChanged.connect(self._fine_moved)
        self.codec_combo.currentIndexChanged.connect(self._codec_changed)
        self.by_quality = QRadioButton("quality")
        self.by_quality.setToolTip("1 = smallest file … 8 = best quality, the same scale for every codec")
        self.by_target = QRadioButton("or reach")
        self.by_target.setToolTip("rate control: the codec parameter is searched to reach this value")
        self.by_quality.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.by_quality)
        group.addButton(self.by_target)
        self.target_metric = QComboBox()
        self.target_metric.addItems(list(TARGETS))
        self.target_value = QDoubleSpinBox()
        self.target_value.setMinimumWidth(130)
        self.target_metric.currentTextChanged.connect(self._target_changed)
        self._target_changed(self.target_metric.currentText())
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.steps = StepQueue(self)
        self.clear_button = QPushButton("Clear results")
        self.clear_button.setToolTip("remove the reconstructions, error maps and predictions of earlier runs")
        self.clear_button.clicked.connect(self.clear)
        self.status = status_label()
        self.metric_labels = {key: QLabel("–") for key, _ in SHOWN + (("time", ""),)}
        self.metric_labels["mean_error"].setToolTip(
            "mean of reconstruction − original, in the image's units: a shift of every intensity (PSNR and SSIM "
            "do not show its sign, Pearson r not at all)")

        self._lay_out(quality_label)
        fit_width(self)


    def _lay_out(self, quality_label: QLabel) -> None:
        self._quality_label = quality_label
        form = QFormLayout()
        form.addRow("image layer", self.layer_picker)
        form.addRow("codec", self.codec_combo)
        form.addRow("", self.codec_info)
        row = QHBoxLayout()
        row.addWidget(self.weights, stretch=1)
        row.addWidget(QLabel("refine (slower)"))
        row.addWidget(self.refine)
        form.addRow("learned weights", row)
        self._form, self._learned_row = form, row
        self._codec_changed()  # show the learned-weights row only for learned codecs
        row = QHBoxLayout()
        row.addWidget(self.quality, stretch=1)
        row.addWidget(quality_label)
        row.addWidget(self.fine_level)
        self._show_fine_level()
        form.addRow(self.by_quality, row)
        row = QHBoxLayout()
        row.addWidget(self.target_metric, stretch=1)
        row.addWidget(self.target_value)
        form.addRow(self.by_target, row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)
        results = QGridLayout()  # two columns of metrics: half the height of one form
        shown = list(SHOWN) + [("time", "enc / dec (s)")]
        for i, (key, title) in enumerate(shown):
            r, c = divmod(i, 2)
            results.addWidget(QLabel(title), r, 2 * c)
            results.addWidget(self.metric_labels[key], r, 2 * c + 1)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addLayout(results)
        layout.addStretch()

    def _codec_changed(self, *_) -> None:
        from ..codecs import codec_class

        name = self.codec_combo.codec_name()
        if name:
            cls = codec_class(name)
            self.codec_info.setText(" ".join(filter(None, [cls.description, weights_hint(name)])))
            levels = quality_levels(name)
            self.quality.set_levels(levels)
            if levels != list(range(1, 9)):
                served = "q" + " q".join(map(str, levels))
                self.quality.setToolTip(f"{name} has weights for {served} only; the slider stops there")
                self.by_target.setToolTip(f"rate control: {name} can only choose among {served}; a target "
                                          "between them is met by the nearest level that reaches it, or not "
                                          "at all (then pick a VBR model or a classical codec)")
            else:
                self.quality.setToolTip("1 = smallest file … 8 = best quality, the same scale for every codec")
                self.by_target.setToolTip("rate control: the codec parameter is searched to reach this value")
            learned = cls.family in ("learned", "volumetric")   # both pick weights by modality
            self.weights.setEnabled(learned)
            self.refine.setEnabled(learned and "refine" in cls.extra_params())
            if hasattr(self, "_form"):
                self._form.setRowVisible(self._learned_row, learned)
                self._show_fine_level()

    def fine_levels(self) -> bool:
        """Whether the current codec takes fractional rate levels (the VBR models' ``level``)."""
        from ..codecs import codec_class

        name = self.codec_combo.codec_name()
        cls = codec_class(name) if name else None
        return cls is not None and cls.family == "learned" and getattr(cls, "native_param", None) == "level"

    def _show_fine_level(self) -> None:
        fine = self.fine_levels()
        self.fine_level.setVisible(fine)
        self._quality_label.setVisible(not fine)

    def _slider_moved(self, v: int) -> None:
        if round(self.fine_level.value()) != v:
            self.fine_level.blockSignals(True)
            self.fine_level.setValue(float(v))
            self.fine_level.blockSignals(False)

    def _fine_moved(self, v: float) -> None:
        self.quality.blockSignals(True)
        self.quality.setValue(int(round(v)))
        self.quality.blockSignals(False)

    def _target_changed(self, text: str) -> None:
        _, default, lo, hi, step = TARGETS[text]
        self.target_value.setDecimals(4 if step < 0.05 else 2 if step < 0.5 else 1)
        self.target_value.setRange(lo, hi)
        self.target_value.setSingleStep(step)
        self.target_value.setValue(default)

    def learned_params(self) -> dict:
        """Weights choice, refinement steps and a fractional rate level, for learned codecs only."""
        if not self.weights.isEnabled():
            return {}
        params = {"weights": self.weights.currentText()}
        if self.refine.isEnabled() and self.refine.value() > 0:
            params["refine"] = self.refine.value()
        level = self.fine_level.value()
        if not self.target() and self.fine_levels() and level != round(level):
            params["level"] = level
        return params

    def target(self) -> Optional[str]:
        if not self.by_target.isChecked():
            return None
        return f"{TARGETS[self.target_metric.currentText()][0]}={self.target_value.value():g}"

    # -- actions -----------------------------------------------------------------------------
    def run(self) -> None:
        layer = self.layer_picker.layer()
        reason = refuse_reason(layer)
        codec = self.codec_combo.codec_name()
        if reason is None and not codec:
            reason = "no codec is available"
        if reason:
            report_error(InputError(reason), self.status)
            return
        target = self.target()
        quality = None if target else self.quality.value()
        self._busy(True)
        self.result = None
        data, src_name = current_block(layer, self.viewer)
        self._clear_metrics()
        what = f"compressing {src_name!r} with {codec}"
        set_status(self.status, what + "…")
        on_yield = progress_status(self, what)
        self.worker = on_yield.worker = start_worker(
            jobs.compress, data, codec, quality, target, self.learned_params(), desc=f"compress {src_name}",
            on_yield=on_yield,
            on_return=lambda out: self._show(*out, layer, src_name),
            on_error=lambda exc: (self._clear_metrics(),
                                  report_error(exc, self.status, f"compressing {src_name!r} failed")),
            on_finish=lambda: self.worker is on_yield.worker and self.steps.add(lambda: self._busy(False)))

    def cancel(self) -> None:
        """Stop the running compression at its next tile/slice; nothing is added."""
        if self.worker is not None:
            worker = self.worker
            worker.returned.disconnect()
            worker.errored.disconnect()
            worker.quit()
            set_status(self.status, "cancelled; nothing was added")
            self._clear_metrics()
            self._busy(False)

    def clear(self) -> None:
        """Remove the result layers of earlier runs and blank the metrics."""
        n = clear_results(self.viewer)
        self._clear_metrics()
        self.layers_added = []
        set_status(self.status, f"removed {n} result layer(s)")

    def _clear_metrics(self) -> None:
        """Blank the metrics of a previous run (stale numbers must not stay next to a new error)."""
        for label in self.metric_labels.values():
            label.setText("–")

    def _show(self, res, crc, error, source, src_name: str) -> None:
        self.result = res
        m = res.metrics
        for key, _ in SHOWN:
            self.metric_labels[key].setText(fmt(m.get(key), 4))
        self.metric_labels["time"].setText(f"{res.encode_seconds:.2f} / {res.decode_seconds:.2f}")
        name = f"{src_name} [{display_label(res.codec)}]"
        meta = reconstruction_metadata(res, source.name, crc)
        added = []
        self.steps.add_image(self.viewer, res.reconstruction, name, added, like=source,
                             contrast_limits=tuple(source.contrast_limits), colormap=source.colormap.name,
                             metadata=meta)
        self.steps.add_image(self.viewer, error, name + " |error|", added, like=source, colormap="magma",
                             contrast_limits=(0.0, float(error.max()) or 1.0),
                             metadata={"microcomp": {"source": source.name, "codec": res.config}})
        self.steps.add(lambda: activate_layer(self.viewer, added[0] if added else None),
                       lambda: setattr(self, "layers_added", list(added)))
        note = ""
        if res.target:
            note = f" (target {res.target['target']}: {'met' if res.target.get('met') else 'NOT met'})"
        note += report_notes(getattr(res, "notes", None), self.status)
        set_status(self.status, f"{display_label(res.codec)}: {len(res.data):,} bytes{note}")
