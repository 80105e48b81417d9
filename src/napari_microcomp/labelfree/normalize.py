"""Per-image percentile normalization: the one scheme shared by training, inference and scoring.

``(a - p_low) / (p_high - p_low)`` with the percentiles of the WHOLE image (a z-stack: of the
whole stack, so slices keep their relative brightness). Per-image percentiles remove gain and
offset differences between microscopes and bit depths; they are stored with the weights
(``meta["normalization"]``) so inference uses exactly what training used.
"""
from typing import Any, Dict, Tuple

import numpy as np

from ..errors import InputError

DEFAULT_SCHEME: Dict[str, Any] = {"scheme": "percentile", "low": 1.0, "high": 99.0}


def percentile_scheme(low: float = 1.0, high: float = 99.0) -> Dict[str, Any]:
    if not 0.0 <= low < high <= 100.0:
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    return {"scheme": "percentile", "low": float(low), "high": float(high)}


def bounds(a: np.ndarray, scheme: Dict[str, Any]) -> Tuple[float, float]:
    """``(offset, scale)`` that :func:`normalize` applies to ``a``."""
    if scheme.get("scheme") != "percentile":
        raise InputError(f"unknown normalization scheme {scheme.get('scheme')!r}")
    lo, hi = np.percentile(np.asarray(a, dtype=np.float32), [scheme["low"], scheme["high"]])
    scale = float(hi - lo)
    if not np.isfinite(scale) or scale <= 0:
        # A flat image (or one with >98 % identical pixels): keep the offset, do not blow up.
        scale = float(np.ptp(a)) or 1.0
    return float(lo), scale


def normalize(a: np.ndarray, scheme: Dict[str, Any]) -> np.ndarray:
    """A new float32 array in normalized units (``a`` is not modified)."""
    lo, scale = bounds(a, scheme)
    return ((np.asarray(a, dtype=np.float32) - np.float32(lo)) / np.float32(scale)).astype(np.float32, copy=False)
