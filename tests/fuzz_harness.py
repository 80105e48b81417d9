"""What the fuzzers share: the case loop of the child process (``fuzz_streams.py``, ``fuzz_files.py``) and
the parent's run of it (``tests/core/test_fuzz*.py``)."""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def arguments(default_cases: int, *extra) -> argparse.Namespace:
    """--cases, --seed, --progress, --report, and ``extra`` (``(flags, kwargs)`` pairs)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=default_cases)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--report", required=True)
    for flags, kw in extra:
        ap.add_argument(*flags, **kw)
    return ap.parse_args()


def run_cases(args, case, outcome: str) -> None:
    """Run ``case(k) -> (label, attempt)`` for k < ``args.cases``. ``attempt()`` returns None (the outcome named
    ``outcome``), a string (a failure) or raises; a one-line MicrocompError is "refused", anything else a
    failure. The report (outcomes, failures, slowest case, RSS growth) goes to ``args.report``."""
    from napari_microcomp.errors import MicrocompError

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {outcome: 0, "refused": 0}
    failures, worst = [], (0.0, None)
    prog = Path(args.progress)
    for k in range(args.cases):
        label, attempt = case(k)
        prog.write_text(f"{k} {label}\n")
        t = time.perf_counter()
        try:
            wrong = attempt()
            if wrong is None:
                outcomes[outcome] += 1
            else:
                failures.append({"case": k, "seed": label, "what": wrong})
        except MicrocompError as exc:
            outcomes["refused"] += 1
            if "\n" in str(exc):
                failures.append({"case": k, "seed": label, "what": f"multi-line message: {str(exc)[:200]!r}"})
        except Exception as exc:  # noqa: BLE001 - the point: anything but MicrocompError is a finding
            failures.append({"case": k, "seed": label, "what": f"{type(exc).__name__}: {str(exc)[:200]}"})
        dt = time.perf_counter() - t
        if dt > worst[0]:
            worst = (dt, f"{k} {label}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(args.report).write_text(json.dumps({
        "cases": args.cases, "outcomes": outcomes, "failures": failures, "worst_seconds": worst[0],
        "worst_case": worst[1], "peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - rss0) / 1024}, indent=1))


def run_fuzzer(script: Path, cases: int, seed: int, tmp: Path, per_case_s: float, *extra: str) -> dict:
    """Run a fuzzer script in a child process; a crash or a hang names the case it was on. Returns its report."""
    import pytest

    prog, rep = tmp / "progress", tmp / "report.json"
    cmd = [sys.executable, str(script), "--cases", str(cases), "--seed", str(seed), "--progress", str(prog),
           "--report", str(rep), *extra]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + cases * per_case_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzzer hung at case {prog.read_text().strip() if prog.exists() else '?'}")
    last = prog.read_text().strip() if prog.exists() else "?"
    assert r.returncode == 0, f"fuzzer died (rc {r.returncode}) at case {last}: {r.stderr[-2000:]}"
    report = json.loads(rep.read_text())
    assert report["failures"] == [], report["failures"][:20]
    assert sum(report["outcomes"].values()) == cases
    assert report["rss_growth_mb"] <= 1024, report
    return report
