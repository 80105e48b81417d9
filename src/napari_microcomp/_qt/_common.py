"""Small pieces shared by the dock widgets: layer pickers, codec pickers, workers, messages.

Only napari's public API is used (``napari.layers``, ``napari.qt.threading``,
``napari.utils.notifications``, ``napari.utils.progress``).
"""
import inspect
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Qt, QTimer
from qtpy.QtGui import QStandardItemModel
from qtpy.QtWidgets import (QComboBox, QFrame, QLabel, QListWidget, QListWidgetItem, QScrollArea, QSlider,
                            QVBoxLayout, QWidget)

from .._progress import Cancelled, Progress, reporting
from ..errors import MicrocompError
from . import avoid_triton_crash

FAMILIES = (("classical", "Classical"), ("lossless", "Lossless"), ("learned", "Learned"),
            ("volumetric", "3D (volumetric)"))


def error_message(exc: BaseException) -> str:
    """The text shown to the user: the project's own message, or the type and text of a bug."""
    if isinstance(exc, MicrocompError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def report_error(exc: BaseException, status: Optional[QLabel] = None, what: str = "") -> str:
    """Show ``exc`` as a napari error notification (and in ``status``); return the message."""
    msg = (f"{what}: " if what else "") + error_message(exc)
    if status is not None:
        status.setText(msg)
        status.setStyleSheet("color: #e05050")
    show_error(msg)
    return msg


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


def set_status(status: QLabel, text: str) -> None:
    status.setText(text)
    status.setStyleSheet("")


def narrow(combo: QComboBox, chars: int = 12) -> None:
    """Let a combo box shrink below its longest entry (long layer/codec names widened the docks)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


def refuse_reason(layer) -> Optional[str]:
    """Why ``layer`` cannot be compressed, in words for the user; None when it can.

    Only cheap attribute checks run here (on the GUI thread); the core's ``check_image``
    makes the complete check (NaN/Inf, pixel type, size) on the worker.
    """
    if layer is None:
        return "select an image layer first"
    if not isinstance(layer, Image):
        return f"layer {layer.name!r} is a {type(layer).__name__} layer, not an image"
    if layer.rgb:
        return (f"layer {layer.name!r} is RGB; microcomp compresses single-channel images "
                "(split the channels first: right-click > Split RGB)")
    if layer.multiscale:
        return f"layer {layer.name!r} is multiscale; open a single resolution level"
    if layer.ndim < 2:
        return f"layer {layer.name!r} is {layer.ndim}D; microcomp needs a 2D or 3D image"
    if 0 in layer.data.shape:
        return f"layer {layer.name!r} is empty (shape {tuple(layer.data.shape)})"
    return None


def leading_index(layer, viewer, keep: int = 3) -> tuple:
    """The viewer's current position in ``layer``'s axes before its last ``keep`` ones."""
    n = layer.ndim - keep
    if n <= 0:
        return ()
    point = layer.world_to_data(viewer.dims.point)
    return tuple(min(max(int(round(point[i])), 0), layer.data.shape[i] - 1) for i in range(n))


def current_block(layer, viewer):
    """(data, name) to process: the layer, or for 4D+ layers (time-lapse z-stacks, ...) the 3D
    block shown in the viewer (pick the time point with the viewer's slider), named after it."""
    idx = leading_index(layer, viewer)
    if not idx:
        return layer.data, layer.name
    axes = str((layer.metadata.get("microcomp") or {}).get("axes", ""))
    labels = axes[:len(idx)].lower() if len(axes) == layer.ndim else "i" * len(idx)
    return layer.data[idx], f"{layer.name} " + " ".join(f"{a}{i}" for a, i in zip(labels, idx))


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
HIDDEN_CODECS = ("tiled",)


def grouped_codecs() -> List[tuple]:
    """[(family title, [codec names])] for every family with at least one available codec.

    Learned and volumetric codecs are listed only when some quality has weights (shipped or in
    ``$MICROCOMP_WEIGHTS``).
    """
    avoid_triton_crash()
    from .. import benchmark  # noqa: F401  (registers the study's tiled-TIFF codec)
    from ..codecs import available_codecs, codec_class

    groups = []
    for family, title in FAMILIES:
        try:
            names = [n for n in available_codecs(family)
                     if n not in HIDDEN_CODECS and weight_qualities(codec_class(n)) != {}]
        except MicrocompError:
            names = []
        if names:
            groups.append((title, names))
    return groups


def weight_qualities(cls) -> Optional[Dict[int, str]]:
    """quality -> "shipped"/"user" for a codec built on model weights; None for other codecs."""
    check = getattr(cls, "weights_available", None)  # learned 2D and 3D codecs (codecs.learned.WeightLevels)
    return dict(check()) if check is not None else None


def weights_hint(name: str) -> str:
    """'' for codecs without weights, else which qualities have weights, e.g. 'weights: q2 q4'."""
    from ..codecs import codec_class

    qualities = weight_qualities(codec_class(name))
    if qualities is None:
        return ""
    return "weights: " + (" ".join(f"q{q}" for q in sorted(qualities)) if qualities else "none")


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


class Step(Progress):
    """A fine-grained step (tile, slice, wavefront) reported from inside the core by a checkpoint."""


CANCELLED = "<cancelled>"  # what a worker returns when the user cancelled it at a checkpoint
STEP_INTERVAL_S = 0.1      # fine steps reach the GUI at most this often


def _worker_body(func: Callable, holder: list, *args, **kwargs):
    """The worker's generator: runs ``func`` (function or Progress generator) with checkpoints on.

    Every :func:`~napari_microcomp._progress.checkpoint` in the core (between tiles, slices,
    wavefronts, label-free tile batches) checks whether Cancel was pressed (then the work stops
    there: :class:`~napari_microcomp._progress.Cancelled`) and, at most every 0.1 s, sends a
    :class:`Step` to the GUI through the worker's ``yielded`` signal (thread-safe).
    """
    last = [0.0]
    if False:  # pragma: no cover  (a generator function even when ``func`` is a plain function)
        yield

    def report(stage: str, done: int, total: int, message: str) -> None:
        worker = holder[0]
        if worker.abort_requested:
            raise Cancelled()
        now = time.perf_counter()
        if now - last[0] >= STEP_INTERVAL_S:
            last[0] = now
            worker.yielded.emit(Step(stage, done, total, message))

    # The reporter is set only while the work runs, never across a ``yield``: napari may abort
    # between two yields and never resume the generator, and its pool thread would keep a stale
    # reporter that cancels the next, unrelated work on that thread.
    try:
        with reporting(report):
            out = func(*args, **kwargs)
        if not inspect.isgenerator(out):
            return out
        gen = out
        while True:
            with reporting(report):
                try:
                    event = next(gen)
                except StopIteration as stop:
                    return stop.value
            yield event
    except Cancelled:
        return CANCELLED


def start_worker(func: Callable, *args, desc: str = "", on_yield: Optional[Callable] = None,
                 on_return: Optional[Callable] = None, on_error: Optional[Callable] = None,
                 on_finish: Optional[Callable] = None, on_cancel: Optional[Callable] = None, **kwargs):
    """Run ``func(*args, **kwargs)`` (a function or a Progress generator) on a napari thread worker.

    The worker is always a generator worker, so ``worker.quit()`` works for plain functions too:
    it takes effect at the next core checkpoint (between tiles/slices) or yield. A generator's
    :class:`~napari_microcomp._progress.Progress` events and the core's :class:`Step` events
    reach ``on_yield``; Progress events also drive a napari progress bar (activity dock).
    ``on_cancel`` runs when the work stopped because of Cancel; ``on_finish`` runs after success,
    error and cancel alike, so buttons are always re-enabled there.
    """
    avoid_triton_crash()
    holder: list = []

    def returned(value):  # napari emits it only when no abort was requested
        if value is not CANCELLED and on_return:
            on_return(value)

    def finished():
        if on_cancel and worker.abort_requested:
            on_cancel()  # stopped at a checkpoint or between two yields
        if on_finish:
            on_finish()

    connect: Dict[str, Any] = {"errored": on_error or (lambda exc: report_error(exc)), "returned": returned}
    worker = create_worker(_worker_body, func, holder, *args, _start_thread=False, _connect=connect, **kwargs)
    holder.append(worker)
    pbar = progress(total=0, desc=desc or getattr(func, "__name__", "working"))

    def _yielded(event):
        if on_yield:  # first: updating the napari progress bar may process pending events
            on_yield(event)
        if isinstance(event, Step):
            return
        total, done = getattr(event, "total", None), getattr(event, "done", None)
        if total is not None and done is not None:
            if pbar.total != total:
                pbar.total = total
            if done > pbar.n:
                pbar.update(done - pbar.n)

    worker.yielded.connect(_yielded)
    worker.finished.connect(pbar.close)
    worker.finished.connect(finished)
    worker.start()
    return worker


class Eta:
    """Elapsed time and a remaining-time estimate from a fraction done, as short text."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def text(self, fraction: Optional[float] = None) -> str:
        e = self.elapsed()
        out = f"{e:.0f} s"
        if fraction is not None and 0.02 < fraction < 1 and e > 1:
            out += f", about {e * (1 - fraction) / fraction:.0f} s left"
        return out


def step_text(event) -> str:
    """'encode tile 3/16' style text of a Step/Progress event."""
    msg = getattr(event, "message", "") or ""
    if msg:
        return f"{event.stage}: {msg}"
    if not event.total:
        return event.stage
    n = event.done + 1 if isinstance(event, Step) else event.done  # a step: the item being worked on
    return f"{event.stage} {min(n, event.total)}/{event.total}"


STEP_GAP_MS = 15  # between two steps: time for Qt to paint and to handle input


class StepQueue(QObject):
    """GUI work split into steps, one per event-loop turn (adding a layer, linking, layout).

    Adding a napari layer builds its vispy visuals on the GUI thread (60–200 ms each on a busy
    machine with software OpenGL); done one after the other in one callback, the label-free
    results froze the viewer for 1–3 s. Between two steps Qt paints and handles input.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._steps: list = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STEP_GAP_MS)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        return bool(self._steps)

    def add(self, *steps: Callable) -> None:
        self._steps.extend(steps)
        if not self._timer.isActive():
            self._timer.start()

    def _next(self) -> None:
        if not self._steps:
            return
        step = self._steps.pop(0)
        try:
            step()
        finally:
            if self._steps:
                self._timer.start()


def side_by_side(viewer, layers: Sequence, title: str = "") -> None:
    """Place ``layers`` left to right (by translating them along X), hide earlier comparisons,
    fit the view, and show ``title`` as the canvas text overlay. No grid mode: napari's grid
    takes every visible layer and building its views blocked the GUI for ~0.7 s."""
    current = {id(layer) for layer in layers}
    for layer in viewer.layers:  # only the current comparison is shown
        if id(layer) not in current and (layer.metadata.get("microcomp") or {}).get("comparison"):
            layer.visible = False
    x0 = None
    for i, layer in enumerate(layers):
        ext = layer.extent.world
        width = float(ext[1][-1] - ext[0][-1])
        translate = list(layer.translate)
        if x0 is None:
            x0 = translate[-1]
        translate[-1] = x0 + i * width * 1.04
        layer.translate = translate
        layer.visible = True
        layer.metadata.setdefault("microcomp", {})["comparison"] = True
    if title:
        viewer.text_overlay.text = title
        viewer.text_overlay.font_size = 9
        viewer.text_overlay.position = "top_left"
        viewer.text_overlay.visible = True
    viewer.reset_view()


def clear_results(viewer) -> int:
    """Remove every layer this plugin made (reconstructions, errors, predictions); the count."""
    made = [layer for layer in list(viewer.layers) if is_reconstruction(layer)]
    for layer in made:
        viewer.layers.remove(layer)
    if made:
        viewer.text_overlay.visible = False
    return len(made)


def add_or_replace_image(viewer, data: np.ndarray, name: str, like=None, **kwargs) -> Image:
    """Add an image layer called ``name``, or update the data of the existing one of that name.

    ``like``: a source layer whose scale and translate the new layer copies, so it overlays it.
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
    return viewer.add_image(data, name=name, **kwargs)


def reconstruction_metadata(res, source_name: str, crc: int) -> Dict[str, Any]:
    """Layer metadata of a reconstruction: codec, metrics, and the stream that produced it.

    ``crc``: ``container.array_crc32(res.reconstruction)``, computed on the worker. The ``.mcz``
    writer saves that exact stream when the layer is saved unchanged.
    """
    return {"microcomp": {"source": source_name, "codec": res.config, "metrics": dict(res.metrics),
                          "target": res.target, "stream": res.data,
                          "dtype": res.reconstruction.dtype.name, "data_crc32": crc}}


def compress_with_crc(image, codec, **kwargs):
    """``api.compress_array`` plus the CRC32 of the reconstruction (worker side)."""
    from ..api import compress_array
    from ..container import array_crc32

    res = compress_array(image, codec, **kwargs)
    return res, array_crc32(res.reconstruction)


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
