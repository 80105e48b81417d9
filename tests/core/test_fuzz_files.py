"""The input-file fuzzer (``tests/fuzz_files.py``), in a child process so that a crash or hang is a finding, not
the end of the test run. CI runs MICROCOMP_FILE_FUZZ_CASES cases (default 2,000, ~30 s); the long form:

    MICROCOMP_FILE_FUZZ_CASES=30000 pytest tests/core/test_fuzz_files.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("MICROCOMP_FILE_FUZZ_CASES", "2000"))


# small real vendor files of the shared data, used as seeds too where it is present (read in place, never copied)
REAL = ("fluorescence/DAPI_GFP.czi", "fluorescence/LLS7_small.czi", "fluorescence/CH1_16bit.tif",
        "arcadia_brightfield_fluorescence/example-zstack.nd2")


def test_damaged_input_files_are_read_or_refused_in_one_line(tmp_path):
    from napari_microcomp.samples import shared_data_dir

    prog, rep = tmp_path / "progress", tmp_path / "report.json"
    shared = shared_data_dir()
    extra = [str(shared / f) for f in REAL if shared is not None and (shared / f).is_file()]
    cmd = [sys.executable, str(HERE / "fuzz_files.py"), "--cases", str(CASES), "--seed", "20261206",
           "--progress", str(prog), "--report", str(rep), "--extra", *extra]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + CASES * 0.5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzzer hung at case {prog.read_text().strip() if prog.exists() else '?'}")
    last = prog.read_text().strip() if prog.exists() else "?"
    assert r.returncode == 0, f"fuzzer died (rc {r.returncode}) at case {last}: {r.stderr[-2000:]}"
    report = json.loads(rep.read_text())
    assert report["failures"] == [], report["failures"][:20]
    assert sum(report["outcomes"].values()) == CASES and min(report["outcomes"].values()) > CASES // 10
    assert report["worst_seconds"] <= 10.0, report["worst_case"]
    assert report["rss_growth_mb"] <= 1024, report
