"""Shared test helpers (a module, not conftest, so every test folder can import it)."""
import numpy as np


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
