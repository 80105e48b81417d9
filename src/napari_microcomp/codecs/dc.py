"""From a learned decoder's normalised output to pixels: the inverse normalisation, and per-tile intensity offsets
(the mean error each tile's decoder output leaves, removed)."""
from typing import List

import numpy as np

from .. import container
from ..errors import StreamError


def to_dtype(xhat: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> np.ndarray:
    """Invert the [0, 1] normalisation exactly the same way at encode and decode."""
    v = xhat.astype(np.float64) * (hi - lo) + lo
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return np.clip(np.rint(v), 0, np.iinfo(dtype).max).astype(dtype)
    return v.astype(dtype)


DC_SCALE = 1 << 16   # a tile's intensity offset, in 1/65536 of its slice's range


def dc_offset(orig: np.ndarray, rec: np.ndarray, lo: float, hi: float, dtype) -> int:
    """The tile's mean error as an offset (in 1/``DC_SCALE`` of the range) for the decoder to add, if that lowers
    the tile's MSE, else 0. Learned decoders shift intensities (a dark background by up to 1.4 % of the range with
    the transmitted weights on fluorescence); one number per tile in the header removes it."""
    if not hi > lo:
        return 0
    o = orig.astype(np.float64)
    base = to_dtype(rec, lo, hi, dtype).astype(np.float64)
    q = int(np.clip(np.rint(np.mean(o - base) / (hi - lo) * DC_SCALE), -DC_SCALE, DC_SCALE))
    if q == 0:
        return 0
    new = to_dtype(with_dc(rec, q), lo, hi, dtype).astype(np.float64)
    return q if np.mean((o - new) ** 2) < np.mean((o - base) ** 2) else 0


def with_dc(rec: np.ndarray, q: int) -> np.ndarray:
    """``rec`` (normalised, float32) plus the offset ``q``: the same float32 arithmetic at encode and decode."""
    return rec + np.float32(q / DC_SCALE) if q else rec


def dc_offsets(header: container.Header, n_tiles: int, codec_id: str) -> List[int]:
    """The per-tile offsets a stream records (none: zeros, as streams before them), checked."""
    dc = header.meta.get("dc")
    if dc is None:
        return [0] * n_tiles
    if not isinstance(dc, list) or len(dc) != n_tiles or any(
            isinstance(v, bool) or not isinstance(v, int) or abs(v) > DC_SCALE for v in dc):
        raise StreamError(f"{codec_id}: the stream's tile offsets do not fit its {n_tiles} tiles; damaged or "
                          "crafted stream")
    return dc

