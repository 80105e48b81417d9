"""Codec pickers shared by the dock widgets: grouped codec lists, the quality slider that stops only on
the levels a codec can serve, weight hints."""
from typing import Dict, List, Optional, Sequence

from qtpy.QtCore import Qt
from qtpy.QtGui import QStandardItemModel
from qtpy.QtWidgets import QComboBox, QListWidget, QListWidgetItem, QSlider

from ..errors import MicrocompError
from ..weights.locate import PROVISIONAL_NOTE
from . import avoid_triton_crash
from ._common import narrow


FAMILIES = (("classical", "Classical"), ("lossless", "Lossless"), ("learned", "Learned"),
            ("volumetric", "3D (volumetric)"))


def grouped_codecs() -> List[tuple]:
    """[(family title, [codec names])] for every family with at least one available codec.

    Learned and volumetric codecs are listed only when some quality has weights (shipped or in
    ``$MICROCOMP_WEIGHTS``).
    """
    avoid_triton_crash()
    from ..codecs import available_codecs, codec_class

    groups = []
    for family, title in FAMILIES:
        try:
            names = [n for n in available_codecs(family) if weight_qualities(codec_class(n)) != {}]
        except MicrocompError:
            names = []
        if names:
            groups.append((title, names))
    return groups


def weight_qualities(cls) -> Optional[Dict[int, str]]:
    """quality -> "shipped"/"provisional"/"user" for a codec built on model weights; None for other codecs."""
    check = getattr(cls, "weights_available", None)  # learned 2D and 3D codecs (codecs.weight_levels.WeightLevels)
    return dict(check()) if check is not None else None


def weights_hint(name: str) -> str:
    """'' for codecs without weights, else which qualities have weights, e.g. 'weights: q2 q4'."""
    from ..codecs import codec_class

    qualities = weight_qualities(codec_class(name))
    if qualities is None:
        return ""
    text = "weights: " + (" ".join(f"q{q}" for q in sorted(qualities)) if qualities else "none")
    return text + (f" ({PROVISIONAL_NOTE})" if "provisional" in qualities.values() else "")


def quality_levels(name: Optional[str]) -> List[int]:
    """The quality levels ``name`` can serve: its weight levels for model-based codecs, else 1…8."""
    from ..codecs import QUALITIES, codec_class

    if not name:
        return list(QUALITIES)
    return list(codec_class(name).served_qualities())  # a codec fact: its weight levels, else 1..8


class QualitySlider(QSlider):
    """Quality 1…8 that only stops on the levels the current codec can serve.

    A fixed-rate learned codec has weights for some levels only (e.g. q2 q4 q6 q8): moving the
    slider (mouse, keys or ``setValue``) jumps to the next served level in that direction.
    """

    def __init__(self, value: int = 4, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self._levels: List[int] = list(range(1, 9))
        self.setRange(1, 8)
        self.setPageStep(1)
        self.setTickPosition(QSlider.TickPosition.TicksBelow)
        self._last = value
        self.setValue(value)
        self.valueChanged.connect(self._snap)

    def levels(self) -> List[int]:
        return list(self._levels)

    def set_levels(self, levels: Sequence[int]) -> None:
        self._levels = sorted(levels) or list(range(1, 9))
        self.blockSignals(True)
        self.setRange(self._levels[0], self._levels[-1])
        self.blockSignals(False)
        v = self._last
        if v not in self._levels:
            v = min(self._levels, key=lambda q: (abs(q - v), -q))
        self._last = v
        QSlider.setValue(self, v)
        self.valueChanged.emit(v)

    def setValue(self, value: int) -> None:  # noqa: N802 (Qt name)
        QSlider.setValue(self, int(value))
        self._snap(self.value())

    def _snap(self, v: int) -> None:
        if v in self._levels:
            self._last = v
            return
        up = [q for q in self._levels if q > v]
        down = [q for q in self._levels if q < v]
        if v > self._last:
            target = up[0] if up else down[-1]
        else:
            target = down[-1] if down else up[0]
        self._last = target
        QSlider.setValue(self, target)


class CodecCombo(QComboBox):
    """A codec dropdown grouped by family; the headers are disabled entries."""

    def __init__(self, parent=None):
        super().__init__(parent)
        narrow(self)
        model: QStandardItemModel = self.model()
        for title, names in grouped_codecs():
            self.addItem(f"— {title} —")
            model.item(self.count() - 1).setEnabled(False)
            for name in names:
                self.addItem(name, name)
        for i in range(self.count()):
            if self.itemData(i):
                self.setCurrentIndex(i)
                break

    def codec_name(self) -> Optional[str]:
        return self.currentData()

    def select(self, name: str) -> None:
        idx = self.findData(name)
        if idx < 0:
            raise ValueError(f"codec {name!r} is not available")
        self.setCurrentIndex(idx)


class CodecChecklist(QListWidget):
    """Checkable codec list grouped by family (benchmark widget)."""

    def __init__(self, checked: Sequence[str] = (), parent=None):
        super().__init__(parent)
        for title, names in grouped_codecs():
            header = QListWidgetItem(title)
            header.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(header)
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(Qt.CheckState.Checked if name in checked else Qt.CheckState.Unchecked)
                item.setData(Qt.ItemDataRole.UserRole, name)
                self.addItem(item)

    def checked(self) -> List[str]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())
                if self.item(i).data(Qt.ItemDataRole.UserRole)
                and self.item(i).checkState() == Qt.CheckState.Checked]

    def all_names(self) -> List[str]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())
                if self.item(i).data(Qt.ItemDataRole.UserRole)]

    def set_checked(self, names: Sequence[str]) -> None:
        for i in range(self.count()):
            name = self.item(i).data(Qt.ItemDataRole.UserRole)
            if name:
                self.item(i).setCheckState(Qt.CheckState.Checked if name in names
                                           else Qt.CheckState.Unchecked)
