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
    # float64: float32 differences overflow for data near ±3.4e38
    lo, hi = np.percentile(np.asarray(a, dtype=np.float64), [scheme["low"], scheme["high"]])
    scale = float(hi) - float(lo)
    if not np.isfinite(scale) or scale <= 0:
        # A flat image (or one with >98 % identical pixels): keep the offset, do not blow up.
        scale = float(np.max(a)) - float(np.min(a)) or 1.0
    return float(lo), scale


def normalize(a: np.ndarray, scheme: Dict[str, Any]) -> np.ndarray:
    """A new float32 array in normalized units (``a`` is not modified)."""
    lo, scale = bounds(a, scheme)
    with np.errstate(over="ignore"):   # overflow is reported below, as one clear error
        out = ((np.asarray(a, dtype=np.float64) - lo) / scale).astype(np.float32)
    if not np.isfinite(out).all():   # outliers 1e38 times the percentile range: nothing a model can use
        raise InputError("the image's values span too many orders of magnitude to normalize "
                         f"(1st–99th percentile range {scale:.3g}, extremes {float(np.min(a)):.3g}…{float(np.max(a)):.3g})")
    return out
