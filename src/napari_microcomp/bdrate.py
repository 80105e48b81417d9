"""Bjøntegaard delta metrics: average rate difference (BD-rate) and quality difference (BD-PSNR).

Both curves are fitted in log-rate (natural log) and the difference is averaged over the
interval where they overlap, as in G. Bjøntegaard, VCEG-M33 (2001):

* ``method="cubic"``: a third-order polynomial (least squares through all points), the original
  VCEG-M33 method.
* ``method="pchip"`` (default): piecewise cubic Hermite interpolation, as in the JCT-VC common
  test conditions sheet (JCTVC-L1100); it cannot overshoot between points, which the cubic can.

BD-rate is in percent: negative means the test codec needs fewer bits than the anchor for the
same quality. BD-quality is in the quality's unit (dB for PSNR): positive means the test codec
is better at the same rate. Points with a non-finite rate or quality (e.g. PSNR = inf of a
lossless stream) are dropped; curves without at least two distinct points, or without an
overlapping interval, give NaN (there is no honest number to report).
"""
from typing import Sequence, Tuple

import numpy as np

from .errors import InputError

METHODS = ("pchip", "cubic")


def _clean(rate: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise InputError(f"rate and quality need the same length, got {r.size} and {q.size}")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    return np.log(r[keep]), q[keep]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral of the curve y(x) fitted to the points, over [lo, hi]."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    # PCHIP needs strictly increasing x: points sharing an x are averaged.
    ux, inverse = np.unique(x, return_inverse=True)
    uy = np.bincount(inverse, weights=y) / np.bincount(inverse)
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        return float(PchipInterpolator(ux, uy, extrapolate=False).integrate(lo, hi))
    if method == "cubic":
        poly = np.polyint(np.polyfit(x, y, min(3, ux.size - 1)))
        return float(np.polyval(poly, hi) - np.polyval(poly, lo))
    raise InputError(f"unknown BD method {method!r}; use one of {METHODS}")


def _overlap(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    return max(a.min(), b.min()), min(a.max(), b.max())


def _enough(*arrays: np.ndarray) -> bool:
    return all(np.unique(a).size >= 2 for a in arrays)


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
            rate_test: Sequence[float], quality_test: Sequence[float], method: str = "pchip") -> float:
    """Average rate difference of ``test`` vs ``anchor`` at equal quality, in percent.

    Parameters
    ----------
    rate_anchor, quality_anchor, rate_test, quality_test
        RD points (any rate unit, e.g. bpp; quality e.g. PSNR in dB or SSIM), in any order.
    method
        ``"pchip"`` (default) or ``"cubic"``; see the module docstring.

    Returns
    -------
    float
        ``(exp(mean(log R_test - log R_anchor)) - 1) * 100`` over the common quality range,
        NaN when the curves do not overlap or have fewer than two distinct points.
    """
    la, qa = _clean(rate_anchor, quality_anchor)
    lt, qt = _clean(rate_test, quality_test)
    if not _enough(qa, qt):
        return float("nan")
    lo, hi = _overlap(qa, qt)
    if not hi > lo:
        return float("nan")
    diff = (_integral(qt, lt, lo, hi, method) - _integral(qa, la, lo, hi, method)) / (hi - lo)
    return float((np.exp(diff) - 1.0) * 100.0)


def bd_quality(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
               rate_test: Sequence[float], quality_test: Sequence[float], method: str = "pchip") -> float:
    """Average quality difference of ``test`` vs ``anchor`` at equal rate (BD-PSNR for PSNR).

    Same inputs as :func:`bd_rate`; the result is in the quality's unit, NaN when undefined.
    """
    la, qa = _clean(rate_anchor, quality_anchor)
    lt, qt = _clean(rate_test, quality_test)
    if not _enough(la, lt):
        return float("nan")
    lo, hi = _overlap(la, lt)
    if not hi > lo:
        return float("nan")
    return float((_integral(lt, qt, lo, hi, method) - _integral(la, qa, lo, hi, method)) / (hi - lo))


bd_psnr = bd_quality

__all__ = ["METHODS", "bd_psnr", "bd_quality", "bd_rate"]
