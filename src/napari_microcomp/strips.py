"""Whole-image arithmetic a few megapixels at a time: a float64 temporary of a 30000² image is 7 GB, of a strip
16 MB. Only for elementwise work, so the result equals the whole-image computation bit for bit."""
from typing import Callable, Iterator, Optional

import numpy as np

STRIP_PX = 1 << 21


def rows(x: np.ndarray, strip_px: int = STRIP_PX) -> Iterator[np.ndarray]:
    """``x`` as (rows, X) blocks of at most ``strip_px`` pixels (views, no copy of the image)."""
    flat = x.reshape(-1, x.shape[-1])
    step = max(1, strip_px // max(1, x.shape[-1]))
    for a in range(0, flat.shape[0], step):
        yield flat[a:a + step]


def map_rows(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], dtype,
             strip_px: Optional[int] = None) -> np.ndarray:
    """``fn(x).astype(dtype)`` for an elementwise ``fn``, computed strip by strip into one output array."""
    strip_px = strip_px or STRIP_PX
    out = np.empty(x.shape, dtype)
    if x.size <= strip_px:
        out[...] = fn(x)
        return out
    for src, dst in zip(rows(x, strip_px), rows(out, strip_px)):
        dst[...] = fn(src)
    return out
