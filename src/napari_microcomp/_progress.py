"""Progress events shared by every long-running generator (benchmark, training, tiled inference).

Long work is a plain generator that yields :class:`Progress` and returns its result
(``StopIteration.value``). The CLI drains it with tqdm (:func:`drain`); the GUI runs
the same generator on a napari thread worker.
"""
from dataclasses import dataclass, field
from typing import Any, Generator, Optional, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    message: str = ""
    payload: Any = field(default=None, repr=False)


def drain(gen: Generator[Any, None, T], desc: str = "", show: bool = True) -> T:
    """Run a progress generator to completion, with a tqdm bar when ``show``; return its result."""
    bar = None
    try:
        while True:
            event = next(gen)
            if not show or not isinstance(event, Progress):
                continue
            if bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=event.total, desc=desc or event.stage, leave=False)
            bar.total = event.total
            bar.n = event.done
            if event.message:
                bar.set_postfix_str(event.message[:60], refresh=False)
            bar.refresh()
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()


def result_of(gen: Generator[Any, None, T]) -> T:
    """Run a progress generator silently and return its result."""
    return drain(gen, show=False)


__all__ = ["Progress", "drain", "result_of", "Optional"]
