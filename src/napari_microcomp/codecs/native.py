"""Errors that a native decoder reports only by printing them.

imagecodecs' HTJ2K decoder copies tiles in a Cython callback that cannot raise: on a damaged codestream
OpenJPH's error goes to ``sys.excepthook`` ("RuntimeError: ojph error") and ``sys.unraisablehook``
("Exception ignored in …" with a traceback), and decoding goes on with garbage (refused later by the
checksum). :func:`native_errors` collects both for the calling thread instead, so the decoder can refuse
the payload in one clear line.
"""
import contextlib
import sys
import threading
from typing import Iterator, List

from ..errors import StreamError

_local = threading.local()
_lock = threading.Lock()
_previous = {}


def _caught():
    return getattr(_local, "caught", None)


def _on_unraisable(u) -> None:
    caught = _caught()
    caught.append(u.exc_value) if caught is not None else _previous["unraisablehook"](u)


def _on_except(kind, value, tb) -> None:
    caught = _caught()
    caught.append(value) if caught is not None else _previous["excepthook"](kind, value, tb)


_HOOKS = {"unraisablehook": _on_unraisable, "excepthook": _on_except}


@contextlib.contextmanager
def native_errors() -> Iterator[List[BaseException]]:
    """A list that receives the exceptions native code printed instead of raising, in this thread, while inside."""
    with _lock:
        for name, hook in _HOOKS.items():
            if getattr(sys, name) is not hook:   # (again, if e.g. pytest swapped hooks since) others' go on
                _previous[name] = getattr(sys, name)
                setattr(sys, name, hook)
    outer = _caught()
    _local.caught = caught = []
    try:
        yield caught
    finally:
        _local.caught = outer


def htj2k_decode(data: bytes):
    """imagecodecs.htj2k_decode that raises StreamError where OpenJPH failed inside the tile callback."""
    import imagecodecs

    with native_errors() as errors:
        out = imagecodecs.htj2k_decode(data)
    if errors:
        raise StreamError(f"htj2k: damaged codestream (OpenJPH: {errors[0]})")
    return out
