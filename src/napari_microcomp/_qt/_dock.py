"""The skeleton every microcomp dock shares: viewer, worker, run/cancel state, tab placement, small inputs."""
import gc

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QSpinBox, QWidget

from .. import _jobhost
from ._common import tabify_with_siblings


class DockWidget(QWidget):
    """What every microcomp dock shares: its viewer, one worker at a time, ``run_finished``, and joining
    the other microcomp docks as a tab when first shown."""

    run_finished = Signal()  # after success, error and cancel alike

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker = None
        self._tabified = False
        _jobhost.prestart()  # the worker process imports torch and the codecs while the user sets up

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        if not self._tabified:
            self._tabified = True
            tabify_with_siblings(self)
            # Building a dock imports torch and the codecs: hundreds of thousands of new objects that
            # a full garbage collection would otherwise scan later, in the middle of a run (0.1-0.4 s
            # frozen). Collect now, while the user waits for the dock anyway.
            gc.collect()

    def _busy(self, busy: bool) -> None:
        """Run/Cancel buttons for a run starting (True) or ended (False, also ends the worker)."""
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.worker = None
            self.run_finished.emit()


def spin_box(lo: int, hi: int, value: int, tip: str, step: int = 1, off_text: str = "") -> QSpinBox:
    """An integer spin box; ``off_text`` is shown for its minimum (e.g. "off")."""
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    if off_text:
        box.setSpecialValueText(off_text)
    box.setToolTip(tip)
    return box


def add_labelfree_models(combo: QComboBox) -> None:
    """List the installed label-free models in ``combo`` (a tooltip says why when there are none)."""
    try:
        from ..labelfree import available_models

        combo.addItems(available_models())
    except Exception as exc:   # the label-free part missing: the rest of the dock still works
        combo.setToolTip(f"label-free models unavailable: {exc}")
