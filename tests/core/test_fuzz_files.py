"""The input-file fuzzer (``tests/fuzz_files.py``), in a child process so that a crash or hang is a finding, not
the end of the test run. CI runs MICROCOMP_FILE_FUZZ_CASES cases (default 2,000, ~30 s); the long form:

    MICROCOMP_FILE_FUZZ_CASES=30000 pytest tests/core/test_fuzz_files.py
"""
import os
from pathlib import Path

import pytest

from fuzz_harness import run_fuzzer
from helpers import jxr_czi

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("MICROCOMP_FILE_FUZZ_CASES", "2000"))


# small real vendor files of the shared data, used as seeds too where it is present (read in place, never copied)
REAL = ("fluorescence/DAPI_GFP.czi", "fluorescence/LLS7_small.czi", "fluorescence/CH1_16bit.tif",
        "arcadia_brightfield_fluorescence/example-zstack.nd2")


def test_damaged_input_files_are_read_or_refused_in_one_line(tmp_path):
    from napari_microcomp.samples import shared_data_dir

    shared = shared_data_dir()
    extra = [str(shared / f) for f in REAL if shared is not None and (shared / f).is_file()]
    if any(e.endswith("DAPI_GFP.czi") for e in extra):   # its subblocks as JPEG XR, as ZEN can save them
        jxr_czi(next(e for e in extra if e.endswith("DAPI_GFP.czi")), tmp_path / "dapi_gfp_jxr.czi")
        extra.append(str(tmp_path / "dapi_gfp_jxr.czi"))
    report = run_fuzzer(HERE / "fuzz_files.py", CASES, 20261206, tmp_path, 0.5, "--extra", *extra)
    assert min(report["outcomes"].values()) > CASES // 10 and report["worst_seconds"] <= 10.0, report
