"""Running core generators off the GUI thread: napari thread workers with fine-grained progress (the core's
checkpoints), cancel, ETA text, and a queue that adds result layers one per event-loop turn."""
import atexit
import inspect
import time
from typing import Any, Callable, Dict, Optional

from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QObject, QThreadPool, QTimer

from .. import _jobhost
from .._progress import Cancelled, Progress, reporting
from . import avoid_triton_crash
from ._common import add_or_replace_image, report_error


class Step(Progress):
    """A fine-grained step (tile, slice, wavefront) reported from inside the core by a checkpoint."""


CANCELLED = "<cancelled>"  # what a worker returns when the user cancelled it at a checkpoint


STEP_INTERVAL_S = 0.1      # fine steps reach the GUI at most this often
EXIT_WAIT_MS = 5000        # at exit, how long running workers get to stop

_running: set = set()      # started, not yet finished


def _stop_at_exit() -> None:
    """Stop the running workers before Python tears down their Qt signal objects: a worker thread
    that emits on a deleted object raises inside Qt, and PyQt aborts the process (seen closing
    napari while an RD plot was being rendered)."""
    for worker in list(_running):
        try:
            worker.quit()
        except RuntimeError:
            pass
    _jobhost.shutdown()  # relaying threads end with Cancelled at once
    if _running:
        QThreadPool.globalInstance().waitForDone(EXIT_WAIT_MS)


atexit.register(_stop_at_exit)  # after _jobhost's own handler was registered: runs before it


def _worker_body(func: Callable, holder: list, *args, **kwargs):
    """The worker's generator: runs ``func`` (function or Progress generator) with checkpoints on.

    By default the work runs in a worker process (:mod:`napari_microcomp._jobhost`) and this
    thread only relays it; with ``$MICROCOMP_GUI_WORKER=thread``, or for work that cannot be sent
    to a process, it runs here. Either way every core
    :func:`~napari_microcomp._progress.checkpoint` (between tiles, slices, wavefronts, label-free
    tile batches) stops the work once Cancel was pressed, and at most every 0.1 s sends a
    :class:`Step` to the GUI through the worker's ``yielded`` signal (thread-safe).
    """
    def emit_step(stage: str, done: int, total: int, message: str) -> None:
        holder[0].yielded.emit(Step(stage, done, total, message))

    if _jobhost.use_process() and _sendable(func, args, kwargs):
        try:
            return (yield from _jobhost.iter_remote(func, *args, should_cancel=lambda: holder[0].abort_requested,
                                                    on_step=emit_step, **kwargs))
        except Cancelled:
            return CANCELLED
        except _jobhost.NotSendable:  # e.g. a lazily loaded layer that does not pickle: run it here
            pass
        except _jobhost.WorkerStartError as exc:  # raised before the job ran: run it here instead
            import warnings

            warnings.warn(str(exc), RuntimeWarning, stacklevel=1)
    return (yield from _in_thread(func, holder, emit_step, *args, **kwargs))


def _sendable(func: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether the work can go to a worker process: a module-level function of the package (its
    arguments are checked when they are sent; those that do not pickle run here)."""
    return getattr(func, "__module__", "").startswith("napari_microcomp.") and "<" not in func.__qualname__


def _in_thread(func: Callable, holder: list, emit_step: Callable, *args, **kwargs):
    last = [0.0]
    if False:  # pragma: no cover  (a generator function even when ``func`` is a plain function)
        yield

    def report(stage: str, done: int, total: int, message: str) -> None:
        if holder[0].abort_requested:
            raise Cancelled()
        now = time.perf_counter()
        if now - last[0] >= STEP_INTERVAL_S:
            last[0] = now
            emit_step(stage, done, total, message)

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
                 on_finish: Optional[Callable] = None, on_cancel: Optional[Callable] = None,
                 activity: bool = True, **kwargs):
    """Run ``func(*args, **kwargs)`` (a function or a Progress generator) on a napari thread worker.

    The worker is always a generator worker, so ``worker.quit()`` works for plain functions too:
    it takes effect at the next core checkpoint (between tiles/slices) or yield. A generator's
    :class:`~napari_microcomp._progress.Progress` events and the core's :class:`Step` events
    reach ``on_yield``; Progress events also drive a napari progress bar (activity dock).
    ``on_cancel`` runs when the work stopped because of Cancel; ``on_finish`` runs after success,
    error and cancel alike, so buttons are always re-enabled there. ``activity=False``: no entry in
    napari's activity dock (background chores such as re-rendering a plot).
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
    pbar = progress(total=0, desc=desc or getattr(func, "__name__", "working")) if activity else None

    def _yielded(event):
        if on_yield:  # first: updating the napari progress bar may process pending events
            on_yield(event)
        if isinstance(event, Step) or pbar is None:
            return
        total, done = getattr(event, "total", None), getattr(event, "done", None)
        if total is not None and done is not None:
            if pbar.total != total:
                pbar.total = total
            if done > pbar.n:
                pbar.update(done - pbar.n)

    worker.yielded.connect(_yielded)
    if pbar is not None:
        worker.finished.connect(pbar.close)
    worker.finished.connect(finished)
    worker.finished.connect(lambda: _running.discard(worker))
    _running.add(worker)
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
PAINT_GAP_MS = 5   # from the end of a layer insert to the repaint it needs


class StepQueue(QObject):
    """GUI work split into steps, one per event-loop turn (adding a layer, linking, layout).

    Adding a napari layer builds its vispy visuals on the GUI thread (60–200 ms each on a busy
    machine with software OpenGL); done one after the other in one callback, the label-free
    results froze the viewer for 1–3 s. Between two steps Qt paints and handles input.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._steps: list = []   # (callable, paint later)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STEP_GAP_MS)
        self._timer.timeout.connect(self._next)

    @property
    def busy(self) -> bool:
        return bool(self._steps)

    def add(self, *steps: Callable) -> None:
        """Light steps (a title, a link, showing a layer): Qt repaints what they changed."""
        self._queue([(step, False) for step in steps])

    def add_layer(self, *steps: Callable) -> None:
        """Steps that add a napari layer (65–110 ms): the window paints in the next turn, so the new
        layer and the repaint it causes are two stalls, not one. Only for these: re-enabling a
        window's updates repaints all of it (35–45 ms more than a light step's partial repaint)."""
        self._queue([(step, True) for step in steps])

    def add_image(self, viewer, data, name: str, into: list, show: bool = True, **kwargs) -> None:
        """Two steps: add (or update) image layer ``name`` hidden and not active, appending it to
        ``into``; then show it (unless ``show=False``: a later step does). The new layer's controls
        and its first canvas draw (shader, texture) then fall into different turns."""
        self.add_layer(lambda: into.append(add_or_replace_image(viewer, data, name, visible=False, activate=False,
                                                                **kwargs)))
        if show:
            self.add(lambda: setattr(into[-1], "visible", True))

    def _queue(self, items: list) -> None:
        self._steps.extend(items)
        if not self._timer.isActive():
            self._timer.start()

    def _next(self) -> None:
        if not self._steps:
            return
        step, paint_later = self._steps.pop(0)
        parent = self.parent()
        window = parent.window() if parent is not None and hasattr(parent, "window") else None
        paused = paint_later and window is not None and window.updatesEnabled()
        if paused:
            window.setUpdatesEnabled(False)
        try:
            step()
        finally:
            if paused:  # the repaint gets a turn of its own, and the next step waits for it
                QTimer.singleShot(PAINT_GAP_MS, lambda: self._repaint(window))
            elif self._steps:
                self._timer.start()

    def _repaint(self, window) -> None:
        # Re-enabling updates posts the repaint; the next step is due STEP_GAP_MS after this, so the
        # repaint and the next step fall in different turns (timers due earlier, input, run between).
        _enable_updates(window)
        if self._steps:
            self._timer.start()


def _enable_updates(window) -> None:
    try:
        window.setUpdatesEnabled(True)
    except RuntimeError:  # the window was closed in between
        pass


def progress_status(widget, what: str) -> Callable:
    """An ``on_yield`` showing ``what: step · ETA`` in ``widget.status`` while its run is the current one.

    Set ``handler.worker`` to the worker it serves (a cancelled run's late steps then change nothing)."""
    from ._common import set_status

    eta = Eta()

    def handler(event) -> None:
        if widget.worker is handler.worker and widget.cancel_button.isEnabled():
            frac = event.done / event.total if event.total else None
            set_status(widget.status, f"{what}: {step_text(event)} · {eta.text(frac)}")

    handler.worker, handler.eta = None, eta
    return handler
