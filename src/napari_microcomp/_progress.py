"""Progress events shared by every long-running generator (benchmark, training, tiled inference).

Long work is a plain generator that yields :class:`Progress` and returns its result
(``StopIteration.value``). The CLI drains it with tqdm (:func:`drain`); the GUI runs
the same generator on a napari thread worker.

Finer steps happen inside plain functions that cannot yield (a codec's tiles and slices, the
wavefronts of an autoregressive decoder): they call :func:`checkpoint`. Outside
:func:`reporting` that is a no-op; inside it, the reporter set by the caller (the GUI worker)
sees the step and may raise :class:`Cancelled` to stop the work between two steps. The reporter
lives in a :class:`~contextvars.ContextVar`, so it belongs to the calling thread only and no
function signature (nor any stream) changes.
"""
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator, Optional, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    message: str = ""
    payload: Any = field(default=None, repr=False)


class Cancelled(BaseException):
    """Raised by a reporter at a :func:`checkpoint` to stop the work (the user pressed Cancel).

    A BaseException, like KeyboardInterrupt: the ``except Exception`` that turns a failing codec
    into an error row must not swallow it.
    """


Reporter = Callable[[str, int, int, str], None]
_reporter: ContextVar[Optional[Reporter]] = ContextVar("microcomp_reporter", default=None)


def checkpoint(stage: str, done: int, total: int, message: str = "") -> None:
    """A step of long work: report it to the current reporter, which may raise :class:`Cancelled`."""
    report = _reporter.get()
    if report is not None:
        report(stage, done, total, message)


@contextmanager
def reporting(report: Reporter) -> Iterator[None]:
    """Within this block (in this thread), :func:`checkpoint` calls go to ``report``."""
    token = _reporter.set(report)
    try:
        yield
    finally:
        _reporter.reset(token)


def drain(gen: Generator[Any, None, T], desc: str = "", show: bool = True) -> T:
    """Run a progress generator to completion, with a tqdm bar when ``show``; return its result."""
    bar, last = None, 0.0
    # a log file gets a line every 10 s, not one per tile (1,369 tiles wrote 1,369 lines in a second)
    every = 0.1 if sys.stderr.isatty() else 10.0
    try:
        while True:
            event = next(gen)
            if not show or not isinstance(event, Progress):
                continue
            if bar is None:
                from tqdm.auto import tqdm

                # no it/s: steps are set, not counted, so tqdm's rate read 80,000 it/s on the first jump
                bar = tqdm(total=event.total, desc=desc or event.stage, leave=False,
                           bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
            bar.total = event.total
            bar.n = event.done
            if event.message:
                bar.set_postfix_str(event.message[:60], refresh=False)
            if time.monotonic() - last >= every:
                bar.refresh()
                last = time.monotonic()
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()


def result_of(gen: Generator[Any, None, T]) -> T:
    """Run a progress generator silently and return its result."""
    return drain(gen, show=False)


__all__ = ["Cancelled", "Progress", "checkpoint", "drain", "reporting", "result_of", "Optional"]
