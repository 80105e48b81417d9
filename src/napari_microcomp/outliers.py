"""Sparse extreme pixels (hot pixels, a burnt-in 65535) coded exactly beside the image.

Every lossy codec's quality is relative to the image's value range, so a handful of pixels far outside the
rest stretch it and the codec spends nothing on the content: five hot pixels at 65535 in a 12-bit image cost
JPEG 2000 q3 37 dB of PSNR on every other pixel and mbt2018-mean-vbr 24 dB (``benchmarks/outliers.py``).
When at most 1 in 10,000 pixels (at least 16) lie beyond the bulk of the values (its 1-in-10,000 quantiles
widened by half their span on each side) and that span is under a quarter of the full range, they are
replaced by their neighbourhood's median before coding and stored exactly in a payload of their own; the
stream's header records how many (``meta["outliers"]``), and the reconstruction checksum covers them.
"""
import contextvars
import struct
import zlib
from typing import Optional, Tuple

import numpy as np

from .errors import StreamError

FRACTION = 1e-4      # at most this share of the pixels ...
MIN_COUNT = 16       # ... or this many, whichever is more
SHRINK = 0.25        # ... and only if the rest spans under this share of the full range
SAMPLE = 1 << 22     # above this many pixels the bounds come from a strided sample (the count stays exact)

Exceptions = Tuple[np.ndarray, np.ndarray]   # flat indices (int64, increasing), their values
# the exceptions of the stream being encoded, for the codecs' reconstruction checksums
CURRENT: "contextvars.ContextVar[Optional[Exceptions]]" = contextvars.ContextVar("microcomp_outliers", default=None)


def find(a: np.ndarray) -> Optional[Tuple[np.ndarray, float, float]]:
    """The flat indices of ``a``'s extreme sparse pixels and the range of the others, or None."""
    n = a.size
    k = max(MIN_COUNT, int(n * FRACTION))
    if n < 64 * k:
        return None
    lo, hi = a.min(), a.max()
    if not hi > lo:
        return None
    flat = a.reshape(-1)
    sample = flat[:: max(1, n // SAMPLE)]
    ks = max(1, int(k * sample.size / n)) if sample.size < n else k
    part = np.partition(sample, [ks, sample.size - ks - 1])
    rlo, rhi = float(part[ks]), float(part[sample.size - ks - 1])
    # only what lies well beyond the bulk: the bulk's own tails stay in the image (they are content)
    margin = (rhi - rlo) / 2
    if rhi - rlo + 2 * margin >= SHRINK * (float(hi) - float(lo)):
        return None
    rlo, rhi = rlo - margin, rhi + margin
    out = (flat < rlo) | (flat > rhi)
    count = int(np.count_nonzero(out))
    if not 0 < count <= 2 * k:   # a sample's bounds may let more through than the exact ones would
        return None
    return (np.flatnonzero(out).astype(np.int64), float(np.min(flat, where=~out, initial=hi)),
            float(np.max(flat, where=~out, initial=lo)))


def split(a: np.ndarray) -> Tuple[np.ndarray, Optional[Exceptions]]:
    """``a`` with its extreme sparse pixels replaced, and those pixels; or ``a`` itself and None."""
    f = find(a)
    if f is None:
        return a, None
    idx, lo, hi = f
    vals = a.reshape(-1)[idx].copy()
    filled = np.clip(a, np.asarray(lo).astype(a.dtype), np.asarray(hi).astype(a.dtype))
    _fill(filled, idx)
    return filled, (idx, vals)


def _fill(img: np.ndarray, idx: np.ndarray) -> None:
    """Each listed pixel becomes its 3×3 in-plane neighbourhood's median: a spike at the clip bound would
    cost bits and ring into its neighbours."""
    planes = img.reshape(-1, *img.shape[-2:])
    for z, y, x in zip(*np.unravel_index(idx, planes.shape)):
        planes[z, y, x] = np.median(planes[z, max(0, y - 1):y + 2, max(0, x - 1):x + 2])


def apply(rec: np.ndarray, exc: Optional[Exceptions]) -> np.ndarray:
    """``rec`` with the exceptions written back (a copy; ``rec`` is not changed)."""
    if exc is None:
        return rec
    out = np.array(rec, copy=True)
    out.reshape(-1)[exc[0]] = exc[1]
    return out


def with_current(rec: np.ndarray) -> np.ndarray:
    """The reconstruction as the decoder will return it: the exceptions of the stream being encoded written
    back (the checksum must cover them, so that a decoder that ignores them refuses)."""
    return apply(rec, CURRENT.get())


def pack(exc: Exceptions) -> bytes:
    idx, vals = exc
    deltas = np.diff(idx, prepend=0).astype("<u8")
    body = deltas.tobytes() + vals.astype(vals.dtype.newbyteorder("<")).tobytes()
    return zlib.compress(struct.pack("<I", len(idx)) + body, 9)


def unpack(blob: bytes, count, shape, dtype) -> Exceptions:
    """The exceptions of a stream, checked against its header (count, shape, pixel type)."""
    dt = np.dtype(dtype).newbyteorder("<")
    size = int(np.prod(shape))
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= size:
        raise StreamError(f"the stream's outlier count {count!r} is invalid for shape {list(shape)}")
    want = 4 + count * (8 + dt.itemsize)
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob, want + 1)
    except zlib.error as exc:
        raise StreamError(f"the outlier payload is damaged ({exc})") from exc
    if len(raw) != want or not d.eof or d.unconsumed_tail or d.unused_data or struct.unpack_from("<I", raw)[0] != count:
        raise StreamError("the outlier payload does not match its header")
    deltas = np.frombuffer(raw, "<u8", count, 4)
    if count > 1 and not (deltas[1:] > 0).all():
        raise StreamError("the outlier payload's positions are not increasing")
    idx = np.cumsum(deltas, dtype=np.uint64) if (deltas < size).all() else None   # bounded: no wrap-around
    if idx is None or int(idx[-1]) >= size:
        raise StreamError("the outlier payload points outside the image")
    return idx.astype(np.int64), np.frombuffer(raw, dt, count, 4 + 8 * count).astype(np.dtype(dtype))


def note(count: Optional[int]) -> Optional[str]:
    """What the user should know when a stream holds outliers (CLI ``note:``, napari warning, benchmark row)."""
    if not count:
        return None
    return (f"{count} pixel(s) lie far outside the rest of the values (hot pixels?); they were coded exactly beside "
            "the image so that they do not stretch its range; PSNR/SSIM use the full range (theirs included), "
            "which flatters every codec alike: pass a data range (e.g. 'bits') to score the content")
