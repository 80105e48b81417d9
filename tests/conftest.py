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


def smooth_image(shape, dtype=np.uint16, seed=0, bits=16):
    """A microscopy-like test image: blurred blobs + noise, using ``bits`` of the range."""
    from scipy.ndimage import gaussian_filter

    r = np.random.default_rng(seed)
    base = gaussian_filter(r.random(shape), sigma=3) + 0.05 * r.random(shape)
    base = (base - base.min()) / (base.max() - base.min())
    if np.dtype(dtype).kind == "f":
        return (base * 1000.0 - 200.0).astype(dtype)
    top = min(2 ** bits - 1, np.iinfo(dtype).max)
    return np.round(base * top).astype(dtype)
