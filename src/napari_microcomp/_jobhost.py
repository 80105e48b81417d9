"""Jobs of the dock widgets in a separate worker process (started once, kept warm, reused).

Run on a thread inside napari, a job shares the GIL with the viewer: numpy calls that hold it and
garbage collections over torch's and napari's objects froze the GUI for 100–400 ms at a time. In a
worker process they cannot, Cancel can always take effect (the process is killed if it does not stop
at its next checkpoint), and a codec that crashes on a hostile file takes down the worker, not napari.

A job is a picklable function of :mod:`napari_microcomp.jobs` with picklable arguments; it may be a
progress generator. :func:`iter_remote` runs it and relays its events; the child reports the core's
:func:`~napari_microcomp._progress.checkpoint` steps at most every ``STEP_INTERVAL_S`` and stops at
the next one after a cancel. ``$MICROCOMP_*`` variables travel with every job (weights folders).
"""
import atexit
import inspect
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Generator, List, Optional

from ._progress import Cancelled, reporting
from .errors import MicrocompError

ENV_MODE = "MICROCOMP_GUI_WORKER"   # "process" (default) or "thread"
STEP_INTERVAL_S = 0.1
KILL_AFTER_S = 1.0                  # a cancelled job that has not stopped by then is killed
POLL_S = 0.05
MAX_IDLE = 2                        # warm processes kept between jobs (a run and the RD plot)


class WorkerCrashed(MicrocompError):
    """The worker process died while running a job (a crash in native code, or killed)."""


class WorkerStartError(MicrocompError):
    """The worker process could not be started (an unusual install); the caller runs the job itself."""


class NotSendable(MicrocompError):
    """The job or its arguments do not pickle (e.g. a lazily loaded layer); nothing ran."""


class RemoteError(RuntimeError):
    """An error raised in the worker process that could not be sent back as itself."""


_start_failed: List[str] = []   # why a worker could not start; then jobs run in the caller's process


def use_process() -> bool:
    """Worker processes on POSIX (cancel is a signal) unless ``$MICROCOMP_GUI_WORKER=thread`` or a worker
    could not be started in this session."""
    return (os.name == "posix" and not _start_failed
            and os.environ.get(ENV_MODE, "process").strip().lower() != "thread")


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("MICROCOMP_")}


# --------------------------------------------------------------------------- child side
def _portable(exc: BaseException) -> BaseException:
    tb = traceback.format_exc()
    try:
        out = pickle.loads(pickle.dumps(exc))
    except Exception:
        out = RemoteError(f"{type(exc).__name__}: {exc}")
    out.remote_traceback = tb
    return out


class _Flag:
    """Set by SIGUSR1 from the parent: cancel the running job at its next checkpoint."""
    value = False

    @classmethod
    def is_set(cls) -> bool:
        return cls.value


def _on_cancel_signal(signum, frame) -> None:
    _Flag.value = True


def _run(conn, cancel, func: Callable, args: tuple, kwargs: dict) -> tuple:
    last = [0.0]

    def report(stage: str, done: int, total: int, message: str) -> None:
        if cancel.is_set():
            raise Cancelled()
        now = time.perf_counter()
        if now - last[0] >= STEP_INTERVAL_S:
            last[0] = now
            conn.send(("step", (stage, done, total, message)))

    try:
        with reporting(report):
            out = func(*args, **kwargs)
            if inspect.isgenerator(out):
                gen, out = out, None
                while True:
                    try:
                        event = next(gen)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    if cancel.is_set():
                        raise Cancelled()
                    conn.send(("event", event))
        return ("return", out)
    except Cancelled:
        return ("cancelled", None)
    except Exception as exc:
        return ("error", _portable(exc))


def main(fd: int) -> None:
    """The worker process (``python -c``, so the parent's ``__main__`` is never re-run): jobs from
    the socket ``fd`` until it closes."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in napari's terminal is napari's
    signal.signal(signal.SIGUSR1, _on_cancel_signal)
    conn = Connection(fd)
    try:
        from . import codecs, jobs  # noqa: F401  (warm up while the user sets up the first run)
    except Exception:
        pass
    try:
        conn.send(("ready", os.getpid()))
    except OSError:  # napari quit while this worker was starting
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        _Flag.value = False  # a signal meant for the previous job has been handled by now (PEP 475)
        func, args, kwargs, env = msg
        for k in [k for k in os.environ if k.startswith("MICROCOMP_") and k not in env]:
            del os.environ[k]
        os.environ.update(env)
        reply = _run(conn, _Flag, func, args, kwargs)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("error", _portable(exc)))


# --------------------------------------------------------------------------- parent side
class Host:
    """One worker process and its socket."""

    def __init__(self):
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        code = "import sys; from napari_microcomp._jobhost import main; main(int(sys.argv[1]))"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until the worker has imported the package; WorkerStartError if it died or hung."""
        if self.ready:
            return
        t_end = time.monotonic() + timeout
        try:
            while not _stopping.is_set() and time.monotonic() < t_end:
                if self.conn.poll(POLL_S):
                    kind, _ = self.conn.recv()
                    self.ready = kind == "ready"
                    break
        except (EOFError, OSError):
            pass
        if _stopping.is_set():
            self.close(kill=True)
            raise Cancelled()
        if not self.ready:
            try:
                self.proc.wait(2)   # a worker that closed its socket is exiting: read its real exit code
            except subprocess.TimeoutExpired:
                pass
            code = self.exitcode
            self.close(kill=True)
            why = f"it exited with code {code}" if code is not None else f"it did not start within {timeout:.0f} s"
            _start_failed.append(why)
            raise WorkerStartError(f"could not start the microcomp worker process ({sys.executable}: {why}); "
                                   "the docks' work runs in napari's process for the rest of this session")

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exitcode(self) -> Optional[int]:
        return self.proc.poll()

    def cancel(self) -> None:
        try:
            self.proc.send_signal(signal.SIGUSR1)
        except OSError:
            pass

    def close(self, kill: bool = False) -> None:
        _busy.discard(self)
        try:
            if kill:
                self.proc.kill()
            else:
                self.conn.send(None)
        except Exception:
            pass
        self.conn.close()
        try:
            self.proc.wait(2 if not kill else 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


_lock = threading.Lock()
_idle: List[Host] = []
_busy: set = set()                 # hosts running a job (killed at exit)
_stopping = threading.Event()      # set at exit: jobs end as cancelled, nothing new starts


def _acquire() -> Host:
    with _lock:
        if _stopping.is_set():
            raise Cancelled()
        while _idle:
            host = _idle.pop()
            if host.alive():
                _busy.add(host)
                return host
        host = Host()
        _busy.add(host)
        return host


def _release(host: Host) -> None:
    with _lock:
        _busy.discard(host)
        if host.alive() and len(_idle) < MAX_IDLE and not _stopping.is_set():
            _idle.append(host)
            return
    host.close()


def prestart() -> None:
    """Start a worker process in the background, so the first job does not wait for it."""
    if not use_process():
        return

    def start():
        with _lock:
            if _idle or _stopping.is_set():
                return
            host = Host()
            _busy.add(host)
        _release(host)

    threading.Thread(target=start, daemon=True, name="microcomp-prestart").start()


def stop_idle() -> None:
    """Stop the idle worker processes (the next job starts a new one)."""
    with _lock:
        hosts, _idle[:] = list(_idle), []
    for host in hosts:
        host.close()


def shutdown() -> None:
    """At exit: stop the idle worker processes and kill the busy ones (their relaying threads end
    with :class:`Cancelled` instead of touching Qt objects that are being torn down)."""
    _stopping.set()
    stop_idle()
    with _lock:
        busy = list(_busy)
    for host in busy:
        try:
            host.proc.kill()
        except OSError:
            pass


atexit.register(shutdown)


def _drain(host: Host) -> None:
    """After the caller stopped listening: let the job stop at its next checkpoint, then reuse the process."""
    host.cancel()
    t_end = time.monotonic() + KILL_AFTER_S
    try:
        while time.monotonic() < t_end:
            if host.conn.poll(POLL_S):
                kind, _ = host.conn.recv()
                if kind in ("return", "error", "cancelled"):
                    _release(host)
                    return
            elif not host.alive():
                break
    except (EOFError, OSError):
        pass
    host.close(kill=True)


def iter_remote(func: Callable, *args: Any, should_cancel: Callable[[], bool] = lambda: False,
                on_step: Optional[Callable[[str, int, int, str], None]] = None,
                **kwargs: Any) -> Generator[Any, None, Any]:
    """Run ``func(*args, **kwargs)`` in a worker process: yields its events, returns its result.

    Raises what the job raised, :class:`~napari_microcomp._progress.Cancelled` once
    ``should_cancel()`` was true, :class:`WorkerCrashed` if the process died, and
    ``pickle.PicklingError``/``TypeError`` (before anything ran) if the job cannot be sent.
    """
    host = _acquire()
    done = False
    try:
        try:
            host.wait_ready()
        except WorkerStartError:
            done = True
            raise
        try:
            host.conn.send((func, args, kwargs, _env()))
        except Exception as exc:  # pickling fails before any byte is written
            done = True
            _release(host)
            raise NotSendable(f"{getattr(func, '__name__', func)!s} cannot be sent to the worker: {exc}") from exc
        cancel_at = None
        while True:
            if cancel_at is None and should_cancel():
                host.cancel()
                cancel_at = time.monotonic()
            elif cancel_at is not None and time.monotonic() - cancel_at > KILL_AFTER_S:
                done = True
                host.close(kill=True)
                raise Cancelled()
            try:
                if not host.conn.poll(POLL_S):
                    if host.alive():
                        continue
                    raise EOFError
                kind, payload = host.conn.recv()
            except (EOFError, OSError):
                done = True
                if _stopping.is_set():
                    host.close(kill=True)
                    raise Cancelled() from None
                try:
                    host.proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
                code = host.exitcode
                host.close(kill=True)
                if cancel_at is not None and code == -signal.SIGUSR1:
                    raise Cancelled() from None  # cancelled before the worker had set up its handler
                name = getattr(func, "__name__", "the job")
                why = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
                raise WorkerCrashed(f"the worker process stopped ({why}) while running {name}; napari is "
                                    "unaffected and the next run starts a new worker. If it happens again "
                                    "with this input, please report it.") from None
            if kind == "step":
                if on_step is not None:
                    on_step(*payload)
            elif kind == "event":
                yield payload
            else:
                done = True
                _release(host)
                if kind == "return":
                    return payload
                if kind == "cancelled":
                    raise Cancelled()
                raise payload
    finally:
        if not done:  # abandoned mid-job (the caller stopped iterating)
            threading.Thread(target=_drain, args=(host,), daemon=True, name="microcomp-drain").start()
