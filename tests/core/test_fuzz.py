"""The structure-aware stream fuzzer (issue 11), in a child process so that a crash or hang is a finding,
not the end of the test run. CI runs MICROCOMP_FUZZ_CASES cases (default 3,000); the slow run uses ≥ 50,000:

    MICROCOMP_FUZZ_CASES=50000 pytest tests/core/test_fuzz.py
"""
import os
from pathlib import Path

import pytest

from fuzz_harness import run_fuzzer

pytest.importorskip("torch")
pytest.importorskip("compressai")
pytestmark = pytest.mark.slow   # ~1 min for 3,000 cases

HERE = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("MICROCOMP_FUZZ_CASES", "3000"))


def test_fuzzed_streams_decode_exactly_or_are_refused(tmp_path):
    report = run_fuzzer(HERE / "fuzz_streams.py", CASES, 20261201, tmp_path, 0.5)
    assert report["worst_seconds"] <= 5.0, report["worst_case"]
