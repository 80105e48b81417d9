"""The GUI's worker process (napari_microcomp._jobhost): results, errors, progress, cancel, crashes."""
import os
import time

import numpy as np
import pytest

from napari_microcomp import _jobhost, jobs
from napari_microcomp._progress import Cancelled
from napari_microcomp.errors import InputError


def run(func, *args, **kwargs):
    gen = _jobhost.iter_remote(func, *args, **kwargs)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value, events


def test_runs_in_another_process_and_reuses_it():
    pid, _ = run(os.getpid)
    assert pid != os.getpid()
    assert run(os.getpid)[0] == pid          # kept warm between jobs


def test_errors_come_back_as_themselves_with_the_remote_traceback():
    with pytest.raises(InputError, match="NaN") as info:
        run(jobs.compress, np.full((8, 8), np.nan, np.float32), "jpeg2k", 4, None)
    assert "Traceback" in info.value.remote_traceback


def test_results_events_and_steps_are_relayed(isl_crop):
    steps = []
    (res, crc, error), _ = run(jobs.compress, isl_crop, "jpeg2k", 4, None, on_step=lambda *s: steps.append(s))
    assert res.reconstruction.shape == isl_crop.shape and error.dtype == np.float32
    assert steps and steps[0][0]                                     # at least the first slice's step

    rows, events = run(jobs.benchmark, [("crop", isl_crop, 0)], None, "", ["jpeg2k"], [2, 6])
    assert isinstance(events[0], dict) and list(events[0]["images"]) == ["crop z0"]
    assert [r["quality"] for r in rows] == [2, 6]


def test_cancel_stops_a_job_that_never_checks_within_a_second_and_a_new_job_runs():
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        run(time.sleep, 60, should_cancel=lambda: time.monotonic() - t0 > 0.3)
    assert time.monotonic() - t0 < 0.3 + _jobhost.KILL_AFTER_S + 1.0
    assert run(int, "7")[0] == 7


def test_a_crash_in_the_worker_is_an_error_not_a_dead_viewer():
    with pytest.raises(_jobhost.WorkerCrashed, match="SIGABRT"):
        run(os.abort)
    assert run(int, "3")[0] == 3              # a fresh worker takes the next job


def test_microcomp_environment_travels_with_every_job(monkeypatch):
    monkeypatch.setenv("MICROCOMP_TEST_VALUE", "first")
    assert run(os.getenv, "MICROCOMP_TEST_VALUE")[0] == "first"
    monkeypatch.delenv("MICROCOMP_TEST_VALUE")
    assert run(os.getenv, "MICROCOMP_TEST_VALUE")[0] is None


def test_an_unsendable_job_fails_before_anything_runs():
    with pytest.raises(Exception):
        run(lambda: 1)
    assert run(int, "5")[0] == 5


@pytest.fixture(scope="module")
def isl_crop():
    from napari_microcomp import samples

    try:
        phase = samples.isl_phase_stack()
    except Exception as exc:  # offline and no $MICROCOMP_DATA
        pytest.skip(f"ISL sample unavailable: {exc}")
    return np.ascontiguousarray(phase[:3, 300:428, 300:428])


def test_the_worker_never_reruns_the_users_script(tmp_path):
    """A napari script without ``if __name__ == "__main__"`` must not run again in the worker."""
    import subprocess
    import sys

    log = tmp_path / "runs.txt"
    script = tmp_path / "user_script.py"
    script.write_text(
        "import os\n"
        f"open({str(log)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "from napari_microcomp import _jobhost\n"
        "gen = _jobhost.iter_remote(os.getpid)\n"
        "try:\n    next(gen)\nexcept StopIteration as stop:\n    print(stop.value)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(log.read_text().split()) == 1
    assert int(out.stdout.strip()) != int(log.read_text())


def test_a_worker_that_cannot_start_says_so_and_later_jobs_stay_in_process(monkeypatch):
    import sys

    _jobhost.stop_idle()                                  # no warm worker to reuse
    monkeypatch.setattr(_jobhost, "_start_failed", [])
    monkeypatch.setattr(sys, "executable", "/bin/false")  # e.g. a frozen app whose executable is not python
    with pytest.raises(_jobhost.WorkerStartError, match="exited with code 1"):
        run(os.getpid)
    assert not _jobhost.use_process()


SHUTDOWN = """
import threading, time
from napari_microcomp import _jobhost
from napari_microcomp._progress import Cancelled

out = []
def relay():
    try:
        list(_jobhost.iter_remote(time.sleep, 60))
        out.append("returned")
    except Cancelled:
        out.append("cancelled")
t = threading.Thread(target=relay)
t.start()
time.sleep(3)                      # the job is running in the worker
t0 = time.monotonic()
_jobhost.shutdown()
t.join(10)
print(out, round(time.monotonic() - t0, 1))
try:
    _jobhost.iter_remote(time.sleep, 1).send(None)
except Cancelled:
    print("nothing new starts")
"""


def test_shutdown_ends_a_running_job_as_cancelled_at_once(tmp_path):
    """At napari's exit the relaying thread must end promptly, never touch a dead worker again."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "shutdown.py"
    script.write_text(SHUTDOWN)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    listed, seconds = out.stdout.splitlines()[0].rsplit(" ", 1)
    assert listed == "['cancelled']" and float(seconds) < 2
    assert "nothing new starts" in out.stdout
