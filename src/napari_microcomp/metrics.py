"""Reconstruction metrics for 2D and 3D images.

Data range (the peak in PSNR and the L in SSIM) is an explicit choice, see :func:`data_range`:

* ``"image"`` (default): ``max - min`` of the ORIGINAL image. Never inflated by unused headroom
  of the container type (a 12-bit image in uint16 is not scored against 65535), never taken from
  the reconstruction, and identical for every codec compared on the same image.
* ``"dtype"``: the full range of the original's type (255, 65535; float: image range).
* ``"bits"``: 2**used_bits - 1 for integer data (e.g. 4095 for 12-bit content).
* a number: used as is.

Images are compared as they are: no per-image z-scoring (it hides gain and offset errors).
"""
from typing import Dict, List, Optional, Union

import numpy as np

from . import strips
from ._validate import used_bits
from .errors import InputError

DataRange = Union[str, float, int]

# Above this many pixels per plane, SSIM, MS-SSIM, MSE and Pearson r are computed in strips of rows (exact: each
# strip carries the halo its window needs). SSIM's temporaries are ~120 bytes per pixel: a 12000² uint16 image
# took 18.6 GB to score whole. Smaller images take the direct path, so their numbers do not change.
STRIP_PX = 1 << 21
_RADIUS = 5          # SSIM's Gaussian window (σ 1.5, truncated at 3.5 σ): 11 wide


def _pair(original, reconstruction):
    x = np.asarray(original)
    y = np.asarray(reconstruction)
    if x.shape != y.shape:
        raise InputError(f"shapes differ: original {x.shape} vs reconstruction {y.shape}")
    if x.size == 0:
        raise InputError("empty image")
    return x, y


def data_range(original, mode: DataRange = "image") -> float:
    """The peak value used by PSNR and SSIM; see the module docstring."""
    x = np.asarray(original)
    if mode is None:
        mode = "image"
    if not isinstance(mode, str):
        try:
            r = float(mode)
        except (TypeError, ValueError):
            raise InputError(f"unknown data_range {mode!r}; use 'image', 'dtype', 'bits' or a number") from None
        if not np.isfinite(r) or r <= 0:   # silently using 1.0 made a uint16 PSNR meaningless
            raise InputError(f"data_range must be a positive number, got {mode!r}")
        return r
    elif mode == "image":
        r = float(x.max()) - float(x.min())
    elif mode == "dtype":
        r = float(np.iinfo(x.dtype).max) if x.dtype.kind in "iu" else float(x.max()) - float(x.min())
    elif mode == "bits":
        r = float(2 ** used_bits(x) - 1) if x.dtype.kind in "iu" else float(x.max()) - float(x.min())
    else:
        raise InputError(f"unknown data_range {mode!r}; use 'image', 'dtype', 'bits' or a number")
    return r if r > 0 else 1.0


def _strip_rows(a: np.ndarray) -> int:
    """Rows (axis -2) per strip; 0: the image is small enough to score whole."""
    return 0 if a.size <= STRIP_PX else max(1, STRIP_PX // (a.size // a.shape[-2]))


def _rows(x: np.ndarray):
    return strips.rows(x, STRIP_PX)


def mse(original, reconstruction) -> float:
    x, y = _pair(original, reconstruction)
    if x.size > STRIP_PX:
        total = 0.0
        for a, b in zip(_rows(x), _rows(y)):
            d = a.astype(np.float64) - b.astype(np.float64)
            total += float(np.dot(d.ravel(), d.ravel()))
        return total / x.size
    d = x.astype(np.float64) - y.astype(np.float64)
    return float(np.mean(d * d))


def mean_error(original, reconstruction) -> float:
    """Mean of reconstruction − original, in data units: a shift of every intensity, which PSNR and SSIM do
    not sign and Pearson r cannot see, but which moves every background-subtracted measurement."""
    x, y = _pair(original, reconstruction)
    total = 0.0
    for a, b in (zip(_rows(x), _rows(y)) if x.size > STRIP_PX else ((x, y),)):
        total += float(np.sum(b.astype(np.float64) - a.astype(np.float64)))
    return total / x.size


def psnr(original, reconstruction, data_range_mode: DataRange = "image") -> float:
    """PSNR in dB; ``inf`` for an exact reconstruction."""
    m = mse(original, reconstruction)
    if m == 0:
        return float("inf")
    r = data_range(original, data_range_mode)
    return float(10.0 * np.log10(r * r / m))


def ssim(original, reconstruction, data_range_mode: DataRange = "image") -> float:
    """SSIM (scikit-image, Gaussian window σ=1.5 as in Wang et al.); 3D inputs use a 3D window,
    stacks with fewer than 11 slices the mean of 2D SSIMs; NaN for images under 11 px in Y or X."""
    x, y = _pair(original, reconstruction)
    r = data_range(original, data_range_mode)
    small = min(x.shape)
    if small < 11:  # the 11-wide Gaussian window must fit; z-stacks thinner than that go slice-wise
        if x.ndim == 3 and min(x.shape[1:]) >= 11:
            return float(np.mean([_ssim(a, b, r) for a, b in zip(x, y)]))
        return float("nan")   # undefined below the window size, like MS-SSIM below 161 px
    return _ssim(x, y, r)


def _ssim(x: np.ndarray, y: np.ndarray, r: float) -> float:
    """scikit-image's SSIM; a big image in strips of rows, each with the window's radius as halo, whose maps are
    cut to the rows they own and to the border crop scikit-image applies (so the mean is the same)."""
    from skimage.metrics import structural_similarity

    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=r)
    rows = _strip_rows(x)
    ny = x.shape[-2]
    if not rows or ny <= 2 * _RADIUS + rows:
        return float(structural_similarity(x.astype(np.float64), y.astype(np.float64), **kwargs))
    inner = (slice(_RADIUS, -_RADIUS),) * (x.ndim - 2)   # the crop of the other axes (Z, and X below)
    total, count = 0.0, 0
    for a in range(_RADIUS, ny - _RADIUS, rows):           # owned rows [a, b) of the cropped interior
        b = min(a + rows, ny - _RADIUS)
        xs, ys = (v[..., a - _RADIUS:b + _RADIUS, :].astype(np.float64) for v in (x, y))
        _, smap = structural_similarity(xs, ys, full=True, **kwargs)
        own = smap[inner + (slice(_RADIUS, _RADIUS + b - a), slice(_RADIUS, -_RADIUS))]
        total += float(own.sum(dtype=np.float64))
        count += own.size
    return total / count


def ms_ssim(original, reconstruction, data_range_mode: DataRange = "image") -> float:
    """MS-SSIM (pytorch-msssim, 5 scales). NaN when the image is too small for 5 scales (< 161 px);
    3D inputs: mean over slices."""
    x, y = _pair(original, reconstruction)
    if min(x.shape[-2:]) < 161:
        return float("nan")
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    r = data_range(original, data_range_mode)
    lo = float(np.min(x))
    xs = x.reshape((-1,) + x.shape[-2:])
    ys = y.reshape((-1,) + y.shape[-2:])
    vals = []
    with torch.no_grad():
        for a, b in zip(xs, ys):
            ta, tb = (torch.from_numpy(_unit(v, lo, r))[None, None] for v in (a, b))
            if a.size > STRIP_PX and _has_ssim_parts():
                vals.append(_ms_ssim_strips(ta, tb))
            else:
                vals.append(float(_ms_ssim(ta, tb, data_range=1.0, size_average=True)))
    return float(np.mean(vals))


def _has_ssim_parts() -> bool:
    """pytorch-msssim's per-scale function (private; 1.0 has it): without it big planes are scored whole."""
    try:
        from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim  # noqa: F401
    except ImportError:
        return False
    return True


def _unit(v: np.ndarray, lo: float, r: float) -> np.ndarray:
    """(v - lo) / r in float32, in one buffer (no float temporaries of a big plane)."""
    out = v.astype(np.float32)
    out -= np.float32(lo)
    out /= np.float32(r)
    return out


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)   # pytorch-msssim's defaults, as ms_ssim() uses them


def _ms_ssim_strips(x, y) -> float:
    """pytorch-msssim's MS-SSIM of one big plane: each scale's SSIM/CS maps ('valid' 11-tap filtering) computed in
    strips of rows that overlap by 10, so their valid rows tile the plane's; the same downsampling between scales."""
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    win = _fspecial_gauss_1d(2 * _RADIUS + 1, 1.5).repeat(1, 1, 1, 1)
    parts = []
    for level in range(len(_MS_WEIGHTS)):
        ny = x.shape[-2]
        rows = max(1, STRIP_PX // x.shape[-1])
        sums = torch.zeros(2, dtype=torch.float64)
        for a in range(0, ny - 2 * _RADIUS, rows):          # valid output rows [a, a + n)
            n = min(rows, ny - 2 * _RADIUS - a)
            s, cs = _ssim(x[..., a:a + n + 2 * _RADIUS, :], y[..., a:a + n + 2 * _RADIUS, :], data_range=1.0,
                          win=win, size_average=False)
            sums += torch.stack([s.double().sum(), cs.double().sum()]) * n
        s, cs = sums / (ny - 2 * _RADIUS)
        if level < len(_MS_WEIGHTS) - 1:
            parts.append(torch.relu(cs))
            pad = [d % 2 for d in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=pad), F.avg_pool2d(y, kernel_size=2, padding=pad)
    parts.append(torch.relu(s))
    return float(torch.prod(torch.stack(parts) ** torch.tensor(_MS_WEIGHTS, dtype=torch.float64)))


def pearson(original, reconstruction) -> float:
    x, y = _pair(original, reconstruction)
    if x.size > STRIP_PX:
        n = x.size
        mx = sum(float(a.sum(dtype=np.float64)) for a in _rows(x)) / n
        my = sum(float(b.sum(dtype=np.float64)) for b in _rows(y)) / n
        sxx = sxy = syy = 0.0
        for a, b in zip(_rows(x), _rows(y)):
            a, b = a.astype(np.float64).ravel() - mx, b.astype(np.float64).ravel() - my
            sxx, sxy, syy = sxx + float(a @ a), sxy + float(a @ b), syy + float(b @ b)
        den = np.sqrt(sxx * syy)
        if den == 0:
            return 1.0 if np.array_equal(x, y) else float("nan")
        return float(sxy / den)
    a = x.astype(np.float64).ravel()
    b = y.astype(np.float64).ravel()
    a -= a.mean()
    b -= b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den == 0:
        return 1.0 if np.array_equal(x, y) else float("nan")
    return float((a * b).sum() / den)


def compression_ratio(original, stream_bytes: int, raw_bytes: Optional[int] = None) -> float:
    """Raw array bytes / whole container bytes (header included). ``raw_bytes``: the caller's array's, where
    ``original`` is its coded copy (float16 is coded as float32, int32 as uint16)."""
    if not stream_bytes or stream_bytes <= 0:
        raise InputError(f"a stream of {stream_bytes!r} bytes has no compression ratio")
    raw = np.asarray(original).nbytes if raw_bytes is None else raw_bytes
    return float(raw) / float(stream_bytes)


def bpp(original, stream_bytes: int) -> float:
    """Bits per pixel (2D) or per voxel (3D) of the whole container."""
    if np.asarray(original).size == 0:
        raise InputError("empty image: bits per pixel are undefined")
    return 8.0 * float(stream_bytes) / float(np.asarray(original).size)


def all_metrics(original, reconstruction, stream_bytes: int = None,
                data_range_mode: DataRange = "image", with_ms_ssim: bool = True,
                raw_bytes: Optional[int] = None) -> Dict[str, float]:
    """Every reconstruction metric in one dict (the benchmark's phase-1 columns)."""
    out = {"mse": mse(original, reconstruction),
           "psnr": psnr(original, reconstruction, data_range_mode),
           "ssim": ssim(original, reconstruction, data_range_mode),
           "ms_ssim": ms_ssim(original, reconstruction, data_range_mode) if with_ms_ssim else float("nan"),
           "pearson_r": pearson(original, reconstruction),
           "mean_error": mean_error(original, reconstruction),
           "data_range": data_range(original, data_range_mode)}
    if stream_bytes is not None:
        out["compressed_bytes"] = int(stream_bytes)
        out["compression_ratio"] = compression_ratio(original, stream_bytes, raw_bytes)
        out["bpp"] = bpp(original, stream_bytes)
    return out


def per_slice(original, reconstruction, data_range_mode: DataRange = "image") -> Dict[str, List[float]]:
    """PSNR/SSIM/Pearson per z-slice of a 3D pair, with the VOLUME's data range for every slice."""
    x, y = _pair(original, reconstruction)
    if x.ndim != 3:
        raise InputError(f"per_slice needs 3D input, got shape {x.shape}")
    r = data_range(x, data_range_mode)
    return {"psnr": [psnr(a, b, r) for a, b in zip(x, y)],
            "ssim": [ssim(a, b, r) for a, b in zip(x, y)],
            "pearson_r": [pearson(a, b) for a, b in zip(x, y)]}
