"""Small pieces shared by the dock widgets: messages, layouts, layer pickers, result layers.

Only napari's public API is used (``napari.layers``, ``napari.utils.notifications``).
"""
import weakref
from typing import Any, Dict, List, Optional

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QComboBox, QFrame, QLabel, QListWidget, QListWidgetItem, QScrollArea, QSizePolicy,
                            QVBoxLayout, QWidget)

from ..errors import MicrocompError, out_of_memory_message


def error_message(exc: BaseException) -> str:
    """The text shown to the user: the project's own message, or the type and text of a bug."""
    if isinstance(exc, MicrocompError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return out_of_memory_message(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def report_error(exc: BaseException, status: Optional[QLabel] = None, what: str = "") -> str:
    """Show ``exc`` as a napari error notification (and in ``status``); return the message."""
    msg = (f"{what}: " if what else "") + error_message(exc)
    if status is not None:
        status.setText(msg)
        status.setStyleSheet(ERROR_STYLE)
    show_error(msg)
    return msg


def report_notes(notes, status: Optional[QLabel] = None) -> str:
    """Show each note of a result as a napari warning (they are too long for a status line, which gets a hint
    and the notes as its tooltip); return the hint to append to the status text."""
    for n in notes or ():
        show_warning(f"napari-microcomp: {n}")
    if status is not None:
        status.setToolTip("\n".join(notes or ()))
    return " (see the note)" if notes else ""


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """The layout to fill for a dock widget whose content scrolls instead of demanding height.

    napari stacks plugin docks; without this the three docks needed 1,658–1,690 px of height and
    pushed the window past a 1,280×800 screen. The content is laid out at its natural size inside
    a frameless QScrollArea, so each dock can shrink to a few rows and scroll.
    """
    inner = QWidget()
    scroll = QScrollArea()
    scroll.setWidget(inner)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    widget.setMinimumHeight(120)
    widget._scroll_inner = inner
    return QVBoxLayout(inner)


def fit_width(widget: QWidget) -> None:
    """After the content is built: as wide as the content needs (no horizontal scrolling)."""
    inner = getattr(widget, "_scroll_inner", None)
    if inner is not None:
        widget.setMinimumWidth(min(inner.minimumSizeHint().width() + 16, 420))


def tabify_with_siblings(widget: QWidget) -> None:
    """Put ``widget``'s dock into the same tab group as the other microcomp docks already open.

    Called from the widgets' first showEvent: opened from the Plugins menu, napari stacks docks
    vertically (the three needed 1,658 px); as tabs they share the height of one.
    """
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    dock = widget.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    main = dock.parent() if dock is not None else None
    if not isinstance(main, QMainWindow):
        return
    for other in main.findChildren(QDockWidget):
        if other is dock or not other.isVisible() or main.dockWidgetArea(other) != main.dockWidgetArea(dock):
            continue
        inner = other.widget()
        ours = [w for w in ([inner] + (inner.findChildren(QWidget) if inner is not None else []))
                if type(w).__module__.startswith("napari_microcomp._qt.")]
        if ours:
            main.tabifyDockWidget(other, dock)
            dock.show()
            dock.raise_()
            return


ERROR_STYLE = "color: #e05050"


def status_label() -> QLabel:
    """A dock's status line: two lines tall from the start, its width set by the dock, not its text.

    Progress rewrites it every 0.1 s. A label whose size hint follows its text re-laid out the dock
    and resized napari's canvas, a software-OpenGL redraw each time (GUI stalls of 120–230 ms); at a
    fixed size a new text only repaints the label (longest stall 44 ms, measured with 6 layers)."""
    label = QLabel("")
    label.setWordWrap(True)
    label.setMinimumHeight(2 * label.fontMetrics().lineSpacing() + 4)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    return label


def set_status(status: QLabel, text: str) -> None:
    status.setText(text)
    if status.styleSheet():  # re-styling re-polishes and re-lays out the label: only after an error
        status.setStyleSheet("")


def narrow(combo: QComboBox, chars: int = 12) -> None:
    """Let a combo box shrink below its longest entry (long layer/codec names widened the docks)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


def follow_layers(viewer, widget, method: str) -> None:
    """Call ``widget.<method>()`` whenever layers are added, removed, moved or renamed.

    The connection holds the widget weakly and ends once its Qt object is deleted (a closed dock
    widget), so the viewer never calls into a dead widget.
    """
    ref = weakref.ref(widget)
    emitters = [viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved]

    def callback(event=None):
        w = ref()
        if w is None or not alive(w):
            for emitter in emitters:
                emitter.disconnect(callback)
            return
        if event is not None and getattr(event, "type", "") == "inserted":
            layer = event.value
            layer.events.name.connect(callback)
            emitters.append(layer.events.name)
        getattr(w, method)()

    for emitter in emitters[:3]:
        emitter.connect(callback)
    for layer in viewer.layers:
        layer.events.name.connect(callback)
        emitters.append(layer.events.name)


def alive(qobject) -> bool:
    try:
        qobject.objectName()
        return True
    except RuntimeError:  # wrapped C++ object has been deleted
        return False


class LayerPicker(QComboBox):
    """A combo box listing the viewer's image layers, kept in sync with the layer list."""

    def __init__(self, viewer, optional: bool = False, none_text: str = "(none)", parent=None):
        super().__init__(parent)
        self._viewer = viewer
        self._optional = optional
        self._none_text = none_text
        narrow(self)
        follow_layers(viewer, self, "refresh")
        self.refresh()

    def refresh(self) -> None:
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        if self._optional:
            self.addItem(self._none_text)
        for layer in self._viewer.layers:
            if isinstance(layer, Image):
                self.addItem(layer.name)
        idx = self.findText(current)
        self.setCurrentIndex(idx if idx >= 0 else 0)
        self.blockSignals(False)
        self.currentIndexChanged.emit(self.currentIndex())

    def layer(self) -> Optional[Image]:
        name = self.currentText()
        if not name or (self._optional and self.currentIndex() == 0):
            return None
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def select(self, name: str) -> None:
        idx = self.findText(name)
        if idx < 0:
            raise ValueError(f"no image layer named {name!r}")
        self.setCurrentIndex(idx)


# Wrappers configured by parameters the widgets do not expose (inner codec, tile sizes): API/CLI only.


def add_or_replace_image(viewer, data: np.ndarray, name: str, like=None, activate: bool = True,
                         **kwargs) -> Image:
    """Add an image layer called ``name``, or update the data of the existing one of that name.

    ``like``: a source layer whose scale and translate the new layer copies, so it overlays it.
    ``activate=False``: a new layer is not made the active one (napari's default), so a
    :class:`~._workers.StepQueue` can do that in a later step (see :func:`activate_layer`).
    """
    if like is not None:  # the trailing axes when ``data`` is a block of a higher-dimensional layer
        kwargs.setdefault("scale", tuple(like.scale)[-np.ndim(data):])
        kwargs.setdefault("translate", tuple(like.translate)[-np.ndim(data):])
    if name in viewer.layers and isinstance(viewer.layers[name], Image):
        layer = viewer.layers[name]
        layer.data = data
        for key in ("metadata", "contrast_limits", "scale", "translate", "colormap", "visible"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        return layer
    if activate:
        return viewer.add_image(data, name=name, **kwargs)
    # napari activates an inserted layer; with the selection's events blocked and its state put back,
    # the selection (and the layer controls and list that follow it) never changes
    selection = viewer.layers.selection
    before = set(selection)
    with selection.events.blocker_all():
        layer = viewer.add_image(data, name=name, **kwargs)
        selection.clear(keep_current=True)
        selection.update(before)
    return layer


def activate_layer(viewer, layer) -> None:
    """Make ``layer`` the active (only selected) layer, if it is still in the viewer.

    Separate from adding it: napari's insert with activation costs 100-150 ms on the GUI thread
    with software OpenGL (layer visual, controls, selection); the selection's share (25-40 ms,
    switching the layer controls) then falls into its own event-loop turn."""
    if layer is not None and layer in viewer.layers:
        viewer.layers.selection.active = layer


def reconstruction_metadata(res, source_name: str, crc: int) -> Dict[str, Any]:
    """Layer metadata of a reconstruction: codec, metrics, and the stream that produced it.

    ``crc``: ``container.array_crc32(res.reconstruction)``, computed on the worker. The ``.mcz``
    writer saves that exact stream when the layer is saved unchanged.
    """
    return {"microcomp": {"source": source_name, "codec": res.config, "metrics": dict(res.metrics),
                          "target": res.target, "stream": res.data,
                          "dtype": res.reconstruction.dtype.name, "data_crc32": crc}}


def is_reconstruction(layer) -> bool:
    """True for layers this plugin made from a source layer (reconstructions, errors, predictions)."""
    return "source" in (layer.metadata.get("microcomp") or {})


def display_label(codec) -> str:
    """``codec.label`` with long native parameters rounded for layer names and messages
    (``jpegxl distance=7.58616745257458`` -> ``jpegxl distance=7.586``)."""
    import re

    return re.sub(r"-?\d+\.\d{4,}(?:e-?\d+)?", lambda m: f"{float(m.group()):.4g}", codec.label)


def fmt(value: Any, digits: int = 3) -> str:
    """Format a metric for display (inf for lossless PSNR, blanks for missing values)."""
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        if np.isinf(value):
            return "∞"
        if np.isnan(value):
            return "–"
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


class LayerChecklist(QListWidget):
    """The viewer's image layers (reconstructions left out) with check boxes; follows the layer list.

    One click: while nothing is ticked, the active layer (else the first) is ticked.
    """

    def __init__(self, viewer, max_height: int = 72, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.setMaximumHeight(max_height)
        follow_layers(viewer, self, "refresh")
        self.refresh()

    def refresh(self) -> None:
        checked = set(self.checked())
        self.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and not is_reconstruction(layer):
                item = QListWidgetItem(layer.name)
                item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(Qt.CheckState.Checked if layer.name in checked else Qt.CheckState.Unchecked)
                self.addItem(item)
        if not checked and self.count():
            active = self.viewer.layers.selection.active
            names = [self.item(i).text() for i in range(self.count())]
            pick = active.name if active is not None and active.name in names else names[0]
            self.item(names.index(pick)).setCheckState(Qt.CheckState.Checked)

    def checked(self) -> List[str]:
        return [self.item(i).text() for i in range(self.count())
                if self.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, names) -> None:
        for i in range(self.count()):
            item = self.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)
