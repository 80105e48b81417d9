"""Slices of a stack far outside the others' intensity range, mapped with a range of their own.

Lossy quality is relative to the value range the codec sees. One saturated frame in a fluorescence stack
stretched the stack-wide range and the other slices paid for it: JPEG 2000 q4 46.3 -> 10.2 dB on them,
mbt2018-mean-vbr3d 31.0 -> -4.7 dB (``benchmarks/bad_frame.py``). Two kinds of slice keep their own range:
- a constant slice (a blank or fully saturated frame) in a stack with content: it is then coded exactly at
  almost no cost (the 3D model paid 3 bits per voxel for the jump to a saturated plane);
- a slice that, together with the typical range of the non-constant slices (the median of their minima to
  the median of their maxima), spans more than ``REACH`` times that range, when at most a quarter of them
  (at least one) do. Brightness that is the stack's nature (several in-focus planes of a z-stack, a
  time-lapse bleaching fourfold) keeps one range as before.
The other slices share the range of the rest. The header records the exceptions as
``norm["slices"] = [[index, {norm keys of that slice}], ...]``.
"""
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .errors import StreamError

REACH = 8.0
MIN_SLICES = 3


class Ranges(NamedTuple):
    """How a stack's values are mapped: one shared range, and the slices that keep their own."""
    lo: float
    hi: float
    own: Dict[int, Tuple[float, float]]      # slice index: (min, max)
    typical: Tuple[float, float]             # median min and max of the slices that share (lo, hi)


def one_range(a: np.ndarray) -> Ranges:
    """Every slice (or the 2D image) in one range."""
    lo, hi = float(a.min()), float(a.max())
    return Ranges(lo, hi, {}, (lo, hi))


def split(a: np.ndarray) -> Ranges:
    """The ranges of ``a``, from one pass over its slices (see the module docstring for the rule)."""
    if a.ndim != 3 or len(a) < 2:
        return one_range(a)
    lo = a.min(axis=(1, 2)).astype(np.float64)
    hi = a.max(axis=(1, 2)).astype(np.float64)
    flat = hi == lo
    own = np.flatnonzero(flat)
    var = np.flatnonzero(~flat)
    if not len(var):
        own = own[:0]
    elif len(var) >= MIN_SLICES:
        typ_lo, typ_hi = float(np.median(lo[var])), float(np.median(hi[var]))
        reach = np.maximum(hi[var], typ_hi) - np.minimum(lo[var], typ_lo)
        odd = var[reach > REACH * (typ_hi - typ_lo)]
        if len(odd) <= max(1, len(var) // 4):
            own = np.union1d(own, odd)
    keep = np.setdiff1d(np.arange(len(a)), own)
    return Ranges(float(lo[keep].min()), float(hi[keep].max()),
                  {int(i): (float(lo[i]), float(hi[i])) for i in own},
                  (float(np.median(lo[keep])), float(np.median(hi[keep]))))


def aberrant(a: np.ndarray) -> Dict[int, Tuple[float, float]]:
    """{slice index: (min, max)} of the slices of a (Z, Y, X) stack that keep their own range; empty otherwise."""
    return split(a).own


def aligned(r: Ranges) -> Dict[int, Dict[str, float]]:
    """``minmax`` ranges for the slices of a stack coded as one volume that keep their own. A non-constant one gets
    a range that puts its content where a typical slice's content lies in the shared [0, 1] mapping, so a 3D model
    sees no jump in brightness (a 12x flash frame in a fluorescence stack: 2.57 -> 0.29 bits per voxel; 0.26
    without it); the range still holds all of the slice's values."""
    lo, hi = r.lo, r.hi
    u0, u1 = (0.0, 1.0) if not hi > lo else ((r.typical[0] - lo) / (hi - lo), (r.typical[1] - lo) / (hi - lo))
    out = {}
    for i, (s_lo, s_hi) in r.own.items():
        if s_hi > s_lo and u1 > u0:
            span = (s_hi - s_lo) / (u1 - u0)
            s_lo = s_lo - u0 * span
            s_hi = s_lo + span
        out[i] = {"lo": s_lo, "hi": s_hi}
    return out


def record(norm: Dict[str, Any], own: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    """``norm`` with the per-slice overrides ``own`` recorded (unchanged when there are none)."""
    return dict(norm, slices=[[i, own[i]] for i in sorted(own)]) if own else norm


def per_slice(norm: Dict[str, Any], n: int, codec_id: str) -> List[Dict[str, Any]]:
    """The norm each of ``n`` slices was coded with; a damaged override list is refused."""
    entries = norm.get("slices")
    base = {k: v for k, v in norm.items() if k != "slices"}
    out = [base] * n
    if entries is None:
        return out
    if not isinstance(entries, list) or len(entries) > n:
        raise StreamError(f"{codec_id}: damaged per-slice ranges in the header")
    seen = set()
    for e in entries:
        ok = (isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and not isinstance(e[0], bool)
              and 0 <= e[0] < n and e[0] not in seen and isinstance(e[1], dict) and "slices" not in e[1]
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                      for v in e[1].values()))
        if not ok:
            raise StreamError(f"{codec_id}: damaged per-slice range {str(e)[:80]!r} in the header")
        seen.add(e[0])
        out[e[0]] = {**base, **e[1]}
    return out


def norm_bounds(norm: Dict[str, Any], codec_id: str) -> "tuple[float, float]":
    """The (lo, hi) intensity range a learned stream records, refused unless finite and ordered (an edited
    1e308 or NaN would turn every pixel into inf/NaN before the checksum could say so)."""
    try:
        lo, hi = float(norm["lo"]), float(norm["hi"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamError(f"{codec_id}: header lacks its intensity range ({exc})") from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and hi >= lo and np.isfinite(hi - lo)):
        raise StreamError(f"{codec_id}: damaged intensity range in the header (lo={lo!r}, hi={hi!r})")
    return lo, hi


def bounds_per_slice(norm: Dict[str, Any], n: int, codec_id: str) -> Tuple[np.ndarray, np.ndarray]:
    """Learned codecs' ``minmax`` norm as per-slice (lo, hi) arrays of length ``n``, each pair checked."""
    pairs = [norm_bounds(s, codec_id) for s in per_slice(norm, n, codec_id)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def _listed(idx: List[int]) -> str:
    return ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")


def note(norm: Dict[str, Any], a: np.ndarray) -> Optional[str]:
    """What the user should know when the stream of stack ``a`` gave slices their own range (API/CLI, napari,
    benchmark row). Uniform slices (blank planes of a padded stack) are told apart from bright or dark ones: only
    the latter look like a bad frame."""
    entries = norm.get("slices") if isinstance(norm, dict) else None
    if not entries:
        return None
    idx = [int(e[0]) for e in entries]
    flat = [i for i in idx if a[i].min() == a[i].max()]
    odd = [i for i in idx if i not in flat]
    parts = []
    if flat:
        one = len(flat) == 1
        parts.append(f"{'slice' if one else 'slices'} {_listed(flat)} {'is' if one else 'are'} uniform (blank or "
                     f"saturated) and {'was' if one else 'were'} coded on a range of {'its' if one else 'their'} own "
                     "for almost nothing")
    if odd:
        one = len(odd) == 1
        parts.append(f"{'slice' if one else 'slices'} {_listed(odd)} {'is' if one else 'are'} far brighter or darker "
                     f"than the others (a bad frame?); {'it was' if one else 'each was'} coded with a value range of "
                     "its own so that the other slices keep their quality")
    return "; ".join(parts)
