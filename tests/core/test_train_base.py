"""The trainer base: the loop ends on steps, budget or a stop request; close() always runs; signals set the
stop event; checkpoints round-trip through torch.load(weights_only=True); the prefetcher hands errors on."""
import os
import signal
import threading

import pytest

from napari_microcomp._progress import Progress, result_of
from napari_microcomp.errors import MicrocompError
from napari_microcomp.training.base import (Prefetcher, Trainer, load_checkpoint, save_checkpoint,
                                            stop_on_signals)


class Toy(Trainer):
    def __init__(self, steps, fail_at=None, **kw):
        super().__init__(steps, **kw)
        self.fail_at, self.closed = fail_at, False

    def setup(self):
        yield Progress("load", 1, 1, "ready")

    def train_step(self):
        if self.step == self.fail_at:
            raise RuntimeError("boom")
        self.step += 1
        return Progress("train", self.step, self.steps) if self.step % 2 == 0 else None

    def close(self):
        self.closed = True

    def finish(self):
        yield Progress("export", 1, 1)
        return {"steps": self.step, "stop": self.stop_reason}


def test_loop_ends_on_steps_budget_or_stop():
    t = Toy(5)
    events = []
    g = t.run()
    try:
        while True:
            events.append(next(g).stage)
    except StopIteration as s:
        assert s.value == {"steps": 5, "stop": "steps"}
    assert events == ["load", "train", "train", "export"] and t.closed
    assert result_of(Toy(10 ** 9, max_minutes=1e-6).run())["stop"] == "time"
    ev = threading.Event()
    ev.set()
    assert result_of(Toy(10, stop=ev).run()) == {"steps": 0, "stop": "stopped"}
    t = Toy(10, stop=lambda: True)
    t.stopped_name = "signal"
    assert result_of(t.run())["stop"] == "signal"
    assert result_of(Toy(3, max_minutes=None).run())["stop"] == "steps"


def test_close_runs_after_an_error():
    t = Toy(10, fail_at=3)
    with pytest.raises(RuntimeError, match="boom"):
        result_of(t.run())
    assert t.closed and t.step == 3


def test_signals_set_the_stop_event_then_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with stop_on_signals(seen.append, once=False) as ev:
        os.kill(os.getpid(), signal.SIGTERM)
        assert ev.wait(5) and seen == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)    # once=False: a second signal stops cleanly too
        assert seen == [signal.SIGTERM] * 2
    assert signal.getsignal(signal.SIGTERM) == before
    before_int = signal.getsignal(signal.SIGINT)
    with stop_on_signals() as ev:
        os.kill(os.getpid(), signal.SIGINT)
        assert ev.wait(5) and signal.getsignal(signal.SIGINT) == signal.SIG_DFL   # the next one kills
    assert signal.getsignal(signal.SIGINT) == before_int


def test_checkpoints_round_trip_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "c.ckpt"
    save_checkpoint({"format": "x", "w": torch.ones(3), "step": 4, "cfg": {"a": [1, None]}}, p)
    d = load_checkpoint(p)
    assert d["step"] == 4 and d["cfg"] == {"a": [1, None]} and torch.equal(d["w"], torch.ones(3))
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(MicrocompError, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "junk")


def test_prefetcher_hands_errors_to_the_loop():
    n = iter(range(3))
    pf = Prefetcher(lambda: next(n), to_device=lambda x: x * 10)
    try:
        assert [pf.next() for _ in range(3)] == [0, 10, 20]
        with pytest.raises(StopIteration):
            pf.next()
    finally:
        pf.close()


def test_a_resumed_run_continues_its_time_schedule():
    # 60 s trained before, 1 min left now: half-way at once, not back at the start (a restart after a
    # crash used to send the codec trainer's cosine learning rate back up)
    t = Toy(10 ** 9, max_minutes=1.0)
    t.elapsed_before = 60.0
    assert 0.49 < t.fraction() < 0.52
    t.step = 9 * 10 ** 8
    assert t.fraction() == 0.9
    assert Toy(10, max_minutes=None).fraction() == 0.0
