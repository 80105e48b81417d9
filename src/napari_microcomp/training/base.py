"""The trainer base shared by the codec trainer (:mod:`.codec`) and the label-free trainer
(:mod:`napari_microcomp.labelfree.train`): the loop, the time budget, stop requests (SIGTERM/SIGINT),
progress events and checkpoints.

A trainer is a :class:`Trainer` subclass that fills in four hooks::

    setup()       -> generator of Progress: read the data, build the model, resume a checkpoint
    train_step()  -> Progress or None: draw a batch (its own sampler), one optimisation step,
                     ``self.step += 1`` when the step counts; log and checkpoint as it sees fit
    close()       -> release what setup() took (threads, prefetchers); runs even after an error
    finish()      -> generator of Progress returning the summary: last checkpoint, export

:meth:`Trainer.run` is the generator the CLI, the campaign and the GUI drain. The run ends when
``steps`` are done, when the wall-clock budget (``max_minutes``, per invocation) is spent, or when
``stop`` says so; :attr:`Trainer.stop_reason` records which (``"steps"``, ``"time"`` or the
trainer's :attr:`Trainer.stopped_name`). Checkpoints are plain dicts of tensors and Python scalars,
written atomically (:func:`save_checkpoint`) and read back with ``torch.load(weights_only=True)``
(:func:`load_checkpoint`): loading one never runs code from it.
"""
import io as _io
import math
import queue
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterator, Optional, Type, Union

from .._progress import Progress
from ..errors import InputError, MicrocompError
from ..io_write import atomic_write_bytes

StopRequest = Union[None, threading.Event, Callable[[], bool]]


def save_checkpoint(payload: Dict[str, Any], path) -> None:
    """``torch.save`` into memory, then one atomic write (a crash never leaves half a checkpoint)."""
    import torch

    buf = _io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path, map_location="cpu", error: Type[MicrocompError] = MicrocompError) -> Dict[str, Any]:
    """A checkpoint (or any dict of tensors), loaded without running code from it (``weights_only=True``)."""
    import torch

    try:
        d = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise error(f"{path} is not a readable training checkpoint ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(d, dict):
        raise error(f"{path} is not a napari-microcomp training checkpoint")
    return d


def git_revision() -> Optional[str]:
    """The source checkout's commit (recorded in exported weights), or None outside a git checkout."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def stop_on_signals(on_signal: Optional[Callable[[int], None]] = None, once: bool = True
                    ) -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the yielded event (the trainer then stops after its step: checkpoint + export).

    ``once=True``: the first signal asks for the clean stop, a second one kills as usual.
    ``on_signal(signum)`` is called on each (e.g. to log it). The previous handlers are restored on exit.
    """
    event = threading.Event()

    def handler(signum, _frame):
        event.set()
        if on_signal is not None:
            on_signal(signum)
        if once:
            signal.signal(signum, signal.SIG_DFL)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield event
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclass(kw_only=True)
class RunConfig:
    """What every training run has (codec and label-free alike): device, budget, files, seed."""

    device: str = "cpu"
    max_minutes: Optional[float] = None
    out: Optional[str] = None
    ckpt: Optional[str] = None
    resume: Optional[str] = None
    seed: int = 0


def check_positive(settings: Dict[str, Any]) -> None:
    """Refuse a setting (flag name -> value; None: not given) that is not a positive finite number, before a
    run: zero steps would export untrained weights, a negative lr or zero batch end in a torch traceback."""
    for flag, v in settings.items():
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                  and v > 0):
            raise InputError(f"{flag} must be a positive number, got {v!r}")


# settings of either trainer's config that must be positive (flag -> field); steps and budget: Trainer itself
_POSITIVE = {"--lr": "lr", "--aux-lr": "aux_lr", "--batch": "batch", "--lambda": "lmbda", "--ckpt-every": "ckpt_every",
             "--log-every": "log_every", "--spike": "spike"}


def check_settings(cfg) -> None:
    """:func:`check_positive` over the fields a training config has, its --widths, and --warmup ≥ 0."""
    settings = {flag: getattr(cfg, name, None) for flag, name in _POSITIVE.items()}
    settings.update({f"--widths {k}": v for k, v in (getattr(cfg, "widths", None) or {}).items()})
    check_positive(settings)
    if getattr(cfg, "warmup", 0) < 0:
        raise InputError(f"--warmup must be 0 or more steps, got {cfg.warmup}")


class Prefetcher:
    """Draws the next batches on a background thread (``make()``) while the device trains on the current one."""

    def __init__(self, make: Callable[[], Any], to_device: Callable[[Any], Any] = lambda x: x, depth: int = 3):
        self.make, self.to_device = make, to_device
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                x = self.make()
            except BaseException as exc:  # hand the error to the training loop instead of hanging it
                x = exc
            while not self.stop.is_set():
                try:
                    self.q.put(x, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self):
        x = self.q.get()
        if isinstance(x, BaseException):
            raise x
        return self.to_device(x)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


class Trainer:
    """The training loop with its budget, stop requests and progress; subclasses fill in the hooks."""

    #: the checkpoint's ``"format"`` value
    ckpt_format = ""
    #: whether the clock (elapsed seconds, budget) starts before :meth:`setup` (data loading) or after it
    clock_includes_setup = True
    #: :attr:`stop_reason` when ``stop`` asked the run to end
    stopped_name = "stopped"

    def __init__(self, steps: int, max_minutes: Optional[float] = None, stop: StopRequest = None):
        check_positive({"--steps": steps, "--max-minutes": max_minutes})
        self.steps = int(steps)
        self.budget = None if max_minutes is None else float(max_minutes) * 60.0
        self._stop = stop
        self.step = 0
        self.elapsed_before = 0.0     # seconds of earlier invocations (from a resumed checkpoint)
        self.stop_reason = "steps"
        self.t0 = time.monotonic()

    # -- clock and stop ---------------------------------------------------------------------------
    def run_time(self) -> float:
        """Seconds of this invocation (what the budget limits)."""
        return time.monotonic() - self.t0

    def elapsed(self) -> float:
        """Seconds of training over every invocation of the run."""
        return self.elapsed_before + self.run_time()

    def fraction(self) -> float:
        """How far the run is through its schedule: steps, or with a time budget (per invocation) time,
        whichever is further. A resumed run continues its schedule where the checkpoint left off (its
        earlier seconds count) and ends it at this invocation's deadline, so a restart after a crash does
        not send the learning rate back up."""
        f = self.step / max(self.steps, 1)
        return max(f, self.elapsed() / (self.elapsed_before + self.budget)) if self.budget else f

    def stop_requested(self) -> bool:
        s = self._stop
        if s is None:
            return False
        return s.is_set() if isinstance(s, threading.Event) else bool(s())

    def should_stop(self) -> Optional[str]:
        """Why the loop must end before the next step (``"time"``, :attr:`stopped_name`), or None."""
        if self.budget is not None and self.run_time() >= self.budget:
            return "time"
        if self.stop_requested():
            return self.stopped_name
        return None

    # -- hooks ------------------------------------------------------------------------------------
    def setup(self) -> Generator[Progress, None, None]:
        yield from ()

    def train_step(self) -> Optional[Progress]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def finish(self) -> Generator[Progress, None, Dict[str, Any]]:
        raise NotImplementedError

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> Generator[Progress, None, Dict[str, Any]]:
        """Set up, train until the steps, the budget or a stop request end it, then finish (checkpoint, export)."""
        self.t0 = time.monotonic()
        try:
            yield from self.setup()
            if not self.clock_includes_setup:
                self.t0 = time.monotonic()
            while self.step < self.steps:
                reason = self.should_stop()
                if reason is not None:
                    self.stop_reason = reason
                    break
                event = self.train_step()
                if event is not None:
                    yield event
        finally:
            self.close()
        return (yield from self.finish())
