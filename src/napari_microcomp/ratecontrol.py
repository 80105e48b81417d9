"""Rate control: compress to a target PSNR, SSIM, bpp or compression ratio.

Searches the codec's native parameter (bisection over a monotone range; for learned codecs,
which have only the eight trained levels, over quality 1..8) and returns the best setting
that meets the target, with the value actually achieved.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from . import metrics
from .codecs import Codec, codec_class
from .errors import CodecError

TARGETS = ("psnr", "ssim", "bpp", "cr")
# (low, high, log-scale, larger-is-better-quality) per native parameter
_NATIVE_RANGES: Dict[str, Tuple[float, float, bool, bool]] = {
    "jpeg2k": (20.0, 100.0, False, True),
    "htj2k": (1e-5, 0.5, True, False),
    "jpegxr": (0.005, 0.99, True, True),
    "jpegxl": (0.05, 25.0, True, False),
}


@dataclass
class RateResult:
    codec: Codec
    data: bytes
    reconstruction: np.ndarray
    achieved: float
    target: str
    value: float
    met: bool
    trials: int


def parse_target(text: str) -> Tuple[str, float]:
    """Parse ``"psnr=40"``, ``"ssim=0.95"``, ``"bpp=0.5"`` or ``"cr=20"``."""
    try:
        key, val = text.split("=", 1)
        key = key.strip().lower()
        value = float(val)
    except ValueError:
        raise CodecError(f"target must look like psnr=40, ssim=0.95, bpp=0.5 or cr=20; got {text!r}") from None
    if key not in TARGETS:
        raise CodecError(f"unknown target {key!r}; use one of {', '.join(TARGETS)}")
    if not np.isfinite(value) or value <= 0:
        raise CodecError(f"target value must be a positive number, got {val!r}")
    return key, value


def _measure(key: str, original, data: bytes, recon) -> float:
    if key == "psnr":
        return metrics.psnr(original, recon)
    if key == "ssim":
        return metrics.ssim(original, recon)
    if key == "bpp":
        return metrics.bpp(original, len(data))
    return metrics.compression_ratio(original, len(data))


def _meets(key: str, achieved: float, value: float) -> bool:
    # quality targets are floors, size targets are ceilings (bpp) or floors (cr)
    return achieved <= value if key == "bpp" else achieved >= value


def compress_to_target(array, codec_name: str, target: str, iterations: int = 14,
                       make: Optional[Callable[..., Codec]] = None, meta: Optional[dict] = None) -> RateResult:
    """Find the setting of ``codec_name`` meeting ``target`` with the smallest stream (quality targets)
    or the best quality (size targets)."""
    from .codecs import decode

    key, value = parse_target(target)
    cls = codec_class(codec_name)
    make = make or (lambda **kw: cls(**kw))
    trials = 0
    best: Optional[Tuple[Codec, bytes, np.ndarray, float]] = None

    def trial(**kw):
        nonlocal trials
        trials += 1
        c = make(**kw)
        d = c.encode(array, meta=meta)
        r = decode(d)
        return c, d, r, _measure(key, array, d, r)

    def better(cand, cur):
        # quality targets: the smallest stream that meets it; size targets: the largest that fits
        if cur is None:
            return True
        return len(cand[1]) < len(cur[1]) if key in ("psnr", "ssim") else len(cand[1]) > len(cur[1])

    rng = _NATIVE_RANGES.get(codec_name)
    if rng is None and getattr(cls, "relative_native", False):  # error-bounded codecs (lerc, jpegls)
        span = float(np.max(array)) - float(np.min(array)) or 1.0
        rng = (max(span * 1e-5, 1e-6), span * 0.25, True, False)
    if rng is None or cls.native_param is None:
        for q in range(1, 9):  # discrete: the trained / tabulated levels
            t = trial(quality=q)
            if _meets(key, t[3], value) and better(t, best):
                best = t
        fallback = trial(quality=8 if key in ("psnr", "ssim") else 1) if best is None else None
    else:
        lo, hi, log, up = rng
        f = (lambda v: np.log(v)) if log else (lambda v: v)
        g = (lambda u: float(np.exp(u))) if log else (lambda u: float(u))
        a, b = f(lo), f(hi)
        fallback = None
        for _ in range(iterations):
            mid = (a + b) / 2
            try:
                t = trial(**{cls.native_param: g(mid)})
                ok = _meets(key, t[3], value)
            except CodecError:  # a setting the codec refuses (e.g. htj2k's wrap guard) counts as a miss
                t, ok = None, False
            if ok and better(t, best):
                best = t
            # move toward smaller files when the target is met (quality) / better quality when met (size)
            towards_quality = (not ok) if (key in ("psnr", "ssim") or t is None) else ok
            if towards_quality == up:
                a = mid
            else:
                b = mid
        if best is None:
            fallback = trial(**{cls.native_param: hi if up == (key in ("psnr", "ssim")) else lo})
    chosen = best or fallback
    c, d, r, achieved = chosen
    return RateResult(codec=c, data=d, reconstruction=r, achieved=achieved, target=key, value=value,
                      met=best is not None, trials=trials)

