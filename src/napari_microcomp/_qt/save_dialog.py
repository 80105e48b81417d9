"""The "microcomp, choose codec…" writer's dialog: codec and quality for one save, remembered."""
from typing import Optional, Tuple

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
                            QVBoxLayout)

from ._codecs import CodecCombo, QualitySlider, quality_levels, weights_hint

SETTINGS = ("napari-microcomp", "writer")


class SaveDialog(QDialog):
    """Pick the codec and quality a layer is saved with."""

    def __init__(self, layer_name: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Save {layer_name!r} as .mcz")
        self.codec_combo = CodecCombo()
        self.quality = QualitySlider()
        value = QLabel("")
        self.quality.valueChanged.connect(lambda v: value.setText(f"q{v}"))
        self.info = QLabel("")
        self.info.setWordWrap(True)
        settings = QSettings(*SETTINGS)
        try:
            self.codec_combo.select(str(settings.value("codec", "jpegxl")))
        except ValueError:
            pass
        self.quality.setValue(int(settings.value("quality", 4)))
        self.codec_combo.currentIndexChanged.connect(self._codec_changed)
        self._codec_changed()
        value.setText(f"q{self.quality.value()}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("codec", self.codec_combo)
        form.addRow("", self.info)
        row = QHBoxLayout()
        row.addWidget(self.quality, stretch=1)
        row.addWidget(value)
        form.addRow("quality (1 = smallest … 8 = best)", row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _codec_changed(self, *_) -> None:
        from ..codecs import codec_class

        name = self.codec_combo.codec_name()
        self.quality.set_levels(quality_levels(name))
        if name:
            self.info.setText(" ".join(filter(None, [codec_class(name).description, weights_hint(name)])))

    def choice(self) -> Tuple[str, int]:
        return self.codec_combo.codec_name(), self.quality.value()

    def accept(self) -> None:
        codec, quality = self.choice()
        settings = QSettings(*SETTINGS)
        settings.setValue("codec", codec)
        settings.setValue("quality", quality)
        super().accept()


def ask_codec(layer_name: str, ndim: int = 2) -> Optional[Tuple[str, int]]:
    """(codec, quality) chosen by the user, or None when cancelled (or no Qt application)."""
    if QApplication.instance() is None:
        return None
    dialog = SaveDialog(layer_name, parent=QApplication.activeWindow())
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None
