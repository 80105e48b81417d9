"""Label-free dock widget: predicted fluorescence from the original and from a reconstruction.

Pick the transmitted-light layer (phase contrast / bright field), optionally the ground-truth
fluorescence layer, a model, and where the reconstruction comes from: compress now with a codec
and quality (``api.compress_array``) or an existing layer (e.g. one the Compress widget made).
The worker runs :func:`napari_microcomp.labelfree.iter_compare` (or, without ground truth, the
model's ``iter_predict`` twice) and the widget adds the two predictions (and the normalized
ground truth) with linked contrast, side by side with a title (only the current comparison is
shown), plus a table of their scores. Layers are added one per event-loop turn, so the viewer
keeps painting; "Clear results" removes the layers of earlier runs and shows the hidden ones again.
2D models use the z-slice shown in the viewer; z-stack models take the whole stack.
"""
from typing import Any, Dict, Optional

from napari.experimental import link_layers
from qtpy.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                            QRadioButton, QTableWidget, QTableWidgetItem)

from .. import jobs
from ..errors import InputError
from ._common import (LayerPicker, activate_layer, display_label, fit_width, fmt, narrow, reconstruction_metadata,
                      report_error, report_notes, scrolling_layout, set_status, status_label)
from ._layer_data import current_block, layer_shape, leading_index, refuse_reason
from ._compare import clear_results, hide_all_but, prewarm_title, side_by_side_steps
from ._dock import DockWidget, add_labelfree_models
from ._codecs import CodecCombo, QualitySlider, quality_levels
from ._workers import StepQueue, progress_status, start_worker

ROWS = (("orig", "original vs ground truth"), ("rec", "reconstruction vs ground truth"),
        ("rec_vs_orig", "reconstruction vs original"))
MODEL_TIP = "a shipped label-free model, or type the path of a .pt weights file"
COLS = (("ssim", "SSIM"), ("psnr", "PSNR"), ("pearson", "r"))   # r: Pearson (header tooltip); fits the dock


class LabelFreeWidget(DockWidget):
    """Predict fluorescence from an image and from its reconstruction; compare them."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.scores: Dict[str, Any] = {}
        self.layers_added = []

        self.image_picker = LayerPicker(napari_viewer)
        self.target_picker = LayerPicker(napari_viewer, optional=True, none_text="(none: no ground truth)")
        self.model = QComboBox()
        self.model.setEditable(True)
        narrow(self.model)
        self.model.setToolTip(MODEL_TIP)
        self._add_models()
        # described after a run (the worker has loaded it), or on a change once torch is loaded: reading a
        # .pt imports torch, which must not stall the GUI thread when the dock opens or a name is picked
        self.model.currentTextChanged.connect(self._describe_model)
        self.by_codec = QRadioButton("compress now")
        self.by_codec.setToolTip("the reconstruction: compress the image now with this codec and quality")
        self.by_layer = QRadioButton("or use layer")
        self.by_layer.setToolTip("the reconstruction: an existing layer (e.g. one the Compress dock made)")
        self.by_codec.setChecked(True)
        self.codec_combo = CodecCombo()
        self.quality = QualitySlider(4)
        quality_label = QLabel("q4")
        self.quality.valueChanged.connect(lambda v: quality_label.setText(f"q{v}"))
        self.codec_combo.currentIndexChanged.connect(
            lambda *_: self.quality.set_levels(quality_levels(self.codec_combo.codec_name())))
        self.quality.set_levels(quality_levels(self.codec_combo.codec_name()))
        self.recon_picker = LayerPicker(napari_viewer)
        self.tta = QCheckBox("test-time augmentation (8x)")
        self.tta.setToolTip("average the predictions of the 8 rotations/flips of the image: smoother, usually "
                            "a higher Pearson r against the ground truth, at 8x the prediction time")
        self.side_by_side = QCheckBox("side by side, titled")
        self.side_by_side.setToolTip("show only this comparison, left to right, with a title on the canvas")
        self.side_by_side.setChecked(True)
        self.steps = StepQueue(self)
        self.clear_button = QPushButton("Clear results")
        self.clear_button.setToolTip("remove the reconstructions and predictions of earlier runs, and show "
                                     "again the layers the side-by-side view hid")
        self.clear_button.clicked.connect(self.clear)
        self.run_button, self.cancel_button = QPushButton("Predict"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = status_label()
        self.table = QTableWidget(len(ROWS), len(COLS))
        self.table.setHorizontalHeaderLabels([t for _, t in COLS])
        self.table.horizontalHeaderItem(2).setToolTip("Pearson correlation coefficient")
        self.table.setVerticalHeaderLabels([t for _, t in ROWS])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(110)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.compression_label = QLabel("")

        form = QFormLayout()
        form.addRow("transmitted light", self.image_picker)
        form.addRow("ground truth", self.target_picker)
        form.addRow("model", self.model)
        form.addRow(self.by_codec, self.codec_combo)  # the reconstruction: compress now ...
        row = QHBoxLayout()
        row.addWidget(self.quality, stretch=1)
        row.addWidget(quality_label)
        form.addRow("   quality", row)
        form.addRow(self.by_layer, self.recon_picker)  # ... or an existing layer
        form.addRow("", self.tta)
        form.addRow("", self.side_by_side)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.compression_label)
        layout.addWidget(self.table)
        layout.addStretch()
        fit_width(self)
        self.steps.add(lambda: prewarm_title(self.viewer))

    def _add_models(self) -> None:
        add_labelfree_models(self.model)
        if not self.model.count():
            self.model.setPlaceholderText("no shipped model: type the path of a .pt file")

    def _describe_model(self, name: str) -> None:
        """The tooltip says what the chosen model was trained on and where it was validated."""
        import sys
        from pathlib import Path

        known = name.strip() and (self.model.findText(name) >= 0 or name.endswith(".pt") and Path(name).is_file())
        if not known or "torch" not in sys.modules:   # a path being typed, or torch not loaded yet: the plain tip
            if self.model.count():   # (with none shipped, the tooltip says why)
                self.model.setToolTip(MODEL_TIP)
            return
        try:
            from ..labelfree import load_model

            tip = f"{name}: {load_model(name).provenance}"
        except Exception as exc:   # a damaged file: said, not raised
            tip = f"{name}: {exc}"
        self.model.setToolTip(f"{tip}\n\n{MODEL_TIP}")

    def _target_reason(self, image, target) -> Optional[str]:
        """Why the ground truth cannot be compared with the image's prediction, naming both."""
        img_yx = layer_shape(image)[-2:]
        t_shape = layer_shape(target)
        if target.ndim != 2 and target.ndim != image.ndim:
            return (f"the ground truth {target.name!r} is {target.ndim}D {t_shape}; pick a 2D fluorescence "
                    f"image (or a layer shaped like the transmitted-light image {image.name!r})")
        if t_shape[-2:] != img_yx:
            return (f"the ground truth {target.name!r} {t_shape} does not match the transmitted-light image "
                    f"{image.name!r} {layer_shape(image)} in (Y, X)")
        return None

    def _z(self, layer) -> Optional[int]:
        """The z index shown in the viewer, for 3D layers (and 3D blocks of 4D layers)."""
        if layer.ndim < 3:
            return None
        return leading_index(layer, self.viewer, keep=2)[-1]

    # -- actions -----------------------------------------------------------------------------
    def run(self) -> None:
        image, target = self.image_picker.layer(), self.target_picker.layer()
        recon = self.recon_picker.layer() if self.by_layer.isChecked() else None
        model = self.model.currentText().strip()
        reason = refuse_reason(image) or (target is not None and refuse_reason(target)) or None
        if reason is None and self.by_layer.isChecked():
            reason = refuse_reason(recon)
            if reason is None and layer_shape(recon) != layer_shape(image):
                reason = (f"the reconstruction {recon.name!r} {layer_shape(recon)} and the image "
                          f"{image.name!r} {layer_shape(image)} differ in shape")
        if reason is None and target is not None:
            reason = self._target_reason(image, target)
        if reason is None and not model:
            reason = "choose a label-free model (or type the path of a .pt weights file)"
        if reason:
            report_error(InputError(reason), self.status)
            return
        self._busy(True)
        self._clear_scores()
        self._run_tta = self.tta.isChecked()
        set_status(self.status, f"predicting with {model}{' (8-view TTA)' if self._run_tta else ''}…")
        data, name = current_block(image, self.viewer)  # 4D layers: the time point shown
        on_yield = progress_status(self, name)
        self.worker = on_yield.worker = start_worker(
            jobs.predict, model, data, None if target is None else current_block(target, self.viewer)[0],
            self._z(image), None if recon is None else current_block(recon, self.viewer)[0],
            self.codec_combo.codec_name(), self.quality.value(), self.tta.isChecked(),
            desc="label-free prediction", on_yield=on_yield,
            on_return=lambda out: self._show(*out, image, recon, model, name),
            on_error=lambda exc: (self._clear_scores(),
                                  report_error(exc, self.status, f"prediction for {name!r} failed")),
            on_cancel=lambda: set_status(self.status, f"cancelled after {on_yield.eta.text()}"),
            on_finish=lambda: self.worker is on_yield.worker and self.steps.add(lambda: self._busy(False)))

    def cancel(self) -> None:
        """Stop at the next tile batch (or codec tile/slice); nothing is added."""
        if self.worker is not None:
            self.worker.quit()
            self.cancel_button.setEnabled(False)
            self._clear_scores()
            set_status(self.status, "cancelling…")

    def _clear_scores(self) -> None:
        """Blank the previous run's scores (they must not stay next to a new error or a cancel)."""
        self.scores = {}
        self.table.clearContents()
        self.compression_label.setText("")

    def _show(self, scores, arrays, compression, z, image, recon, model: str, name: str) -> None:
        """Scores at once; the layers one per event-loop turn (see :class:`StepQueue`)."""
        self.scores = scores
        self._describe_model(model)   # loaded and cached by the run
        for r, (key, _) in enumerate(ROWS):
            for c, (metric, _) in enumerate(COLS):
                self.table.setItem(r, c, QTableWidgetItem(fmt(scores.get(f"{metric}_{key}"), 3)))
        geometry = {"scale": tuple(image.scale[-2:]), "translate": tuple(image.translate[-2:])}
        layers: list = []
        together = self.side_by_side.isChecked()
        if together:  # the comparison alone: every other layer hidden first, so each later draw is cheap
            self.steps.add(lambda: hide_all_but(self.viewer, layers))
        src_name = name if z is None else f"{name} z{z}"
        rec_name = recon.name if recon is not None else src_name
        if compression is not None:  # show the reconstruction the prediction was made from
            res, crc = compression
            rec_name = f"{src_name} [{display_label(res.codec)}]"
            m = res.metrics
            self.compression_label.setText(f"{display_label(res.codec)}: CR {fmt(m['compression_ratio'], 4)}, "
                                           f"{fmt(m['bpp'], 3)} bpp, PSNR {fmt(m['psnr'], 4)} dB")
            where = geometry if z is not None else {"like": image}
            self.steps.add_image(self.viewer, res.reconstruction, rec_name, [], show=not together,
                                 contrast_limits=tuple(image.contrast_limits),
                                 metadata=reconstruction_metadata(res, src_name, crc), **where)
        short = model.rsplit("/", 1)[-1].removesuffix(".pt")
        lo, hi = arrays["limits"]
        common = dict(colormap="magma", contrast_limits=(lo, hi if hi > lo else lo + 1), **geometry)
        meta = {"microcomp": {"source": image.name, "model": model, "scores": dict(scores), "tta": self._run_tta}}
        shown = [(arrays["original"], f"{short}: from {src_name}", "original"),
                 (arrays["reconstruction"], f"{short}: from {rec_name}", "reconstruction")]
        if "target" in arrays:
            shown.append((arrays["target"], f"{short}: ground truth (normalized)", "ground truth"))
        for data, layer_name, _ in shown:  # side by side: shown once placed
            self.steps.add_image(self.viewer, data, layer_name, layers, show=not together,
                                 metadata={"microcomp": dict(meta["microcomp"])}, **common)

        def link():
            link_layers(layers, ("contrast_limits", "gamma", "colormap"))
            self.layers_added = layers

        def finish():
            activate_layer(self.viewer, layers[1] if len(layers) > 1 else None)  # from the reconstruction
            caveat = [scores["caveat"]] if scores.get("caveat") else []
            set_status(self.status, f"done: r(reconstruction vs original) = "
                                    f"{fmt(scores.get('pearson_rec_vs_orig'), 4)}{report_notes(caveat, self.status)}")
        self.steps.add(link)
        if together:
            title = "  |  ".join(t for _, _, t in shown)
            self.steps.add(*side_by_side_steps(self.viewer, layers, f"prediction from: {title}",
                                               count=len(shown)))
        self.steps.add(finish)

    def clear(self) -> None:
        """Remove the layers of earlier runs (reconstructions, predictions) and blank the scores."""
        n = clear_results(self.viewer)
        self._clear_scores()
        self.layers_added = []
        set_status(self.status, f"removed {n} result layer(s)")
