"""Rate control: compress to a target PSNR, SSIM, bpp or compression ratio.

Every codec's setting is put on one monotone axis ``t`` in [0, 1] (0 = smallest stream, 1 = best
quality): the native parameter for classical codecs (log or linear), the levels that have weights
for learned codecs. :func:`search` finds the edge of a feasible region on that axis: first among the
quality levels 1..8 (so the answer is never worse than the best level), then by bisection between
the two levels that bracket the edge. :func:`compress_to_target` and the advisor
(:mod:`napari_microcomp.advise`) both use it.
"""
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from . import container, metrics
from ._progress import Progress, result_of
from ._validate import as_coded
from .codecs import QUALITIES, Codec, codec_class
from .errors import CodecError, WeightsNotFoundError

TARGETS = ("psnr", "ssim", "bpp", "cr")


@dataclass
class Axis:
    """One codec's settings on a monotone axis t ∈ [0, 1] (0 = smallest stream, 1 = best quality)."""

    cls: Any
    param: Optional[str]                  # native parameter, or None: discrete quality levels
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    up: bool = True                       # a larger native value means better quality
    levels: Tuple[int, ...] = ()          # discrete axis: the levels, lowest quality first

    @property
    def discrete(self) -> bool:
        return self.param is None

    def _f(self, v: float) -> float:
        return math.log(v) if self.log else float(v)

    def value(self, t: float) -> float:
        u = t if self.up else 1.0 - t
        a, b = self._f(self.lo), self._f(self.hi)
        x = a + u * (b - a)
        return float(math.exp(x)) if self.log else float(x)

    def t_of(self, v: float) -> float:
        a, b = self._f(self.lo), self._f(self.hi)
        u = (self._f(min(max(v, self.lo), self.hi)) - a) / (b - a)
        return u if self.up else 1.0 - u

    def kwargs(self, t: float) -> Dict[str, Any]:
        if self.discrete:
            return {"quality": self.levels[int(round(t * (len(self.levels) - 1)))] if len(self.levels) > 1
                    else self.levels[0]}
        v = self.value(t)
        return {self.param: int(round(v)) if getattr(self.cls, "native_integer", False) else _sig(v)}

    def seeds(self, span: float) -> List[float]:
        """Points of the axis to try first: its ends and the codec's quality levels, lowest quality first."""
        if self.discrete:
            n = len(self.levels)
            return [k / (n - 1) for k in range(n)] if n > 1 else [0.0]
        table = getattr(self.cls, "quality_table", {}) or {}
        rel = getattr(self.cls, "relative_native", False)
        pts = {0.0, 1.0}
        for q in QUALITIES:
            v = table.get(q)
            if isinstance(v, (int, float)) and v > 0:
                pts.add(round(self.t_of(v * span if rel else v), 9))
        return sorted(pts)


def axis_for(codec_name: str, arrays: Sequence[np.ndarray]) -> Axis:
    """The search axis of ``codec_name`` for these images (error-bounded codecs scale with their range)."""
    cls = codec_class(codec_name)
    rng = cls.search_range
    if rng is None and getattr(cls, "relative_native", False):  # error-bounded codecs (lerc, jpegls)
        span = image_span(arrays)
        top = min(span * 0.25, float(getattr(cls, "native_max", math.inf)))
        rng = (min(max(span * 1e-5, 1e-6), top / 2), top, True, False)
    levels = tuple(cls.served_qualities())
    if not levels:   # learned codecs without weights here
        raise WeightsNotFoundError(f"{codec_name}: no quality level has weights installed here")
    if rng is None or cls.native_param is None:
        return Axis(cls, None, levels=levels)
    lo, hi, log, up = rng
    return Axis(cls, cls.native_param, lo, hi, log, up)


def image_span(arrays: Sequence[np.ndarray]) -> float:
    return max(float(np.max(a)) - float(np.min(a)) for a in arrays) or 1.0


def _sig(v: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits: reported settings are the ones actually used."""
    return float(f"{v:.{digits}g}")


def iter_search(axis: Axis, probe: Callable[[Dict[str, Any]], Tuple[bool, Any]], want: str = "lowest",
                max_trials: int = 14, span: float = 1.0, size: Callable[[Any], int] = lambda r: 0,
                label: str = "") -> Generator[Progress, None, Tuple[Optional[Any], Optional[Any], int]]:
    """Find the edge of the feasible region on ``axis`` (a progress generator, one event per trial).

    ``probe(kwargs) -> (ok, result)``; ``want="lowest"``: feasibility grows with quality (quality
    targets), find the lowest-quality feasible setting; ``"highest"``: feasibility shrinks with quality
    (size targets), find the best-quality feasible one. Among feasible results the smallest stream
    (``lowest``) or the largest (``highest``) by ``size`` wins, so a non-monotone codec is never reported
    worse than a point it visited. Returns ``(best, last_probe_result, trials)``.
    """
    seeds = axis.seeds(span)
    order = seeds if want == "lowest" else seeds[::-1]   # the feasible end last
    trials, best, last = 0, None, None
    cache: Dict[float, Tuple[bool, Any]] = {}

    def run(t: float) -> bool:
        nonlocal trials, best, last
        kw = axis.kwargs(t)
        key = repr(sorted(kw.items()))
        if key not in cache:
            trials += 1
            try:
                cache[key] = probe(kw)
            except CodecError:   # a setting the codec refuses (e.g. htj2k's wrap guard) counts as a miss
                cache[key] = (False, None)
            ok, res = cache[key]
            if res is not None:
                last = res
            if ok and (best is None or (size(res) < size(best) if want == "lowest" else size(res) > size(best))):
                best = res
        return cache[key][0]

    def step(t: float):
        ok = run(t)
        return ok, Progress("search", min(trials, max_trials), max_trials, label)

    ok, ev = step(order[-1])   # the feasible end first: if it fails, nothing on the axis does
    yield ev
    if not ok:
        return None, last, trials
    bad, good = -1, len(order) - 1   # binary search over the seeds (feasibility assumed monotone)
    while good - bad > 1 and trials < max_trials:
        mid = (bad + good) // 2
        ok, ev = step(order[mid])
        yield ev
        bad, good = (bad, mid) if ok else (mid, good)
    if not axis.discrete and bad >= 0:   # bisection between the two seeds that bracket the edge
        tb, tg = order[bad], order[good]
        while trials < max_trials and abs(tg - tb) > 1e-4:
            mid = (tb + tg) / 2
            ok, ev = step(mid)
            yield ev
            tb, tg = (tb, mid) if ok else (mid, tg)
    return best, last, trials


def search(*args, **kwargs):
    """:func:`iter_search` run to the end."""
    return result_of(iter_search(*args, **kwargs))


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
    if key == "ssim" and value > 1:
        raise CodecError(f"an SSIM target is at most 1 (identical images), got {value:g}")
    return key, value


def _measure(key: str, original, data: bytes, recon, source=None) -> float:
    if key == "psnr":
        return metrics.psnr(original, recon)
    if key == "ssim":
        return metrics.ssim(original, recon)
    if key == "bpp":
        return metrics.bpp(original, len(data))
    # the ratio of the caller's array (float16, int32, … are coded in another type)
    return metrics.compression_ratio(original if source is None else source, len(data))


def _meets(key: str, achieved: float, value: float) -> bool:
    # quality targets are floors, size targets are ceilings (bpp) or floors (cr)
    return achieved <= value if key == "bpp" else achieved >= value


def compress_to_target(array, codec_name: str, target: str, iterations: int = 14,
                       make: Optional[Callable[..., Codec]] = None, meta: Optional[dict] = None,
                       source=None) -> RateResult:
    """Find the setting of ``codec_name`` meeting ``target`` with the smallest stream (quality targets)
    or the best quality (size targets). Fixed-rate learned codecs search the levels that have weights,
    variable-rate ones their continuous level. ``source``: the caller's array when ``array`` is its
    checked copy (streams then record and restore the caller's pixel type)."""
    from .codecs import decode

    key, value = parse_target(target)
    cls = codec_class(codec_name)
    make = make or (lambda **kw: cls(**kw))
    axis = axis_for(codec_name, [array])
    quality_target = key in ("psnr", "ssim")

    def probe(kw):
        c = make(**kw)
        d = c.encode(array if source is None else source, meta=meta)
        r = decode(d)
        t = (c, d, r, _measure(key, array, d, as_coded(r, container.read_header(d)[0].meta), source))
        return _meets(key, t[3], value), t

    best, last, trials = search(axis, probe, "lowest" if quality_target else "highest", max_trials=iterations,
                                span=image_span([array]), size=lambda t: len(t[1]))
    chosen = best or last
    if chosen is None:
        raise CodecError(f"{codec_name} refused every setting it was tried at on this image")
    c, d, r, achieved = chosen
    return RateResult(codec=c, data=d, reconstruction=r, achieved=achieved, target=key, value=value,
                      met=best is not None, trials=trials)
