"""The structure-aware stream fuzzer (issue 11), in a child process so that a crash or hang is a finding,
not the end of the test run. CI runs MICROCOMP_FUZZ_CASES cases (default 3,000); the slow run uses ≥ 50,000:

    MICROCOMP_FUZZ_CASES=50000 pytest tests/core/test_fuzz.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("compressai")
pytestmark = pytest.mark.slow   # ~1 min for 3,000 cases

HERE = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("MICROCOMP_FUZZ_CASES", "3000"))


def test_fuzzed_streams_decode_exactly_or_are_refused(tmp_path):
    prog, rep = tmp_path / "progress", tmp_path / "report.json"
    cmd = [sys.executable, str(HERE / "fuzz_streams.py"), "--cases", str(CASES), "--seed", "20261201",
           "--progress", str(prog), "--report", str(rep)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + CASES * 0.5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzzer hung at case {prog.read_text().strip() if prog.exists() else '?'}")
    last = prog.read_text().strip() if prog.exists() else "?"
    assert r.returncode == 0, f"fuzzer died (rc {r.returncode}) at case {last}: {r.stderr[-2000:]}"
    report = json.loads(rep.read_text())
    assert report["failures"] == [], report["failures"][:20]
    assert sum(report["outcomes"].values()) == CASES
    assert report["worst_seconds"] <= 5.0, report["worst_case"]
    assert report["rss_growth_mb"] <= 1024, report
