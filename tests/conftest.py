import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data():
    from napari_microcomp.samples import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("real data folder not found (set MICROCOMP_DATA to the shared data folder)")
    return d


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
