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
from typing import Dict, List, Union

import numpy as np

from ._validate import used_bits
from .errors import InputError

DataRange = Union[str, float, int]


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


def mse(original, reconstruction) -> float:
    x, y = _pair(original, reconstruction)
    d = x.astype(np.float64) - y.astype(np.float64)
    return float(np.mean(d * d))


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
    from skimage.metrics import structural_similarity

    x, y = _pair(original, reconstruction)
    r = data_range(original, data_range_mode)
    small = min(x.shape)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    if small < 11:  # the 11-wide Gaussian window must fit; z-stacks thinner than that go slice-wise
        if x.ndim == 3 and min(x.shape[1:]) >= 11:
            return float(np.mean([structural_similarity(a.astype(np.float64), b.astype(np.float64),
                                                        data_range=r, **kwargs) for a, b in zip(x, y)]))
        return float("nan")   # undefined below the window size, like MS-SSIM below 161 px
    return float(structural_similarity(x.astype(np.float64), y.astype(np.float64), data_range=r, **kwargs))


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
            ta = torch.from_numpy((a.astype(np.float32) - lo) / r)[None, None]
            tb = torch.from_numpy((b.astype(np.float32) - lo) / r)[None, None]
            vals.append(float(_ms_ssim(ta, tb, data_range=1.0, size_average=True)))
    return float(np.mean(vals))


def pearson(original, reconstruction) -> float:
    x, y = _pair(original, reconstruction)
    a = x.astype(np.float64).ravel()
    b = y.astype(np.float64).ravel()
    a -= a.mean()
    b -= b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den == 0:
        return 1.0 if np.array_equal(x, y) else float("nan")
    return float((a * b).sum() / den)


def compression_ratio(original, stream_bytes: int) -> float:
    """Raw array bytes / whole container bytes (header included)."""
    if not stream_bytes or stream_bytes <= 0:
        raise InputError(f"a stream of {stream_bytes!r} bytes has no compression ratio")
    return float(np.asarray(original).nbytes) / float(stream_bytes)


def bpp(original, stream_bytes: int) -> float:
    """Bits per pixel (2D) or per voxel (3D) of the whole container."""
    if np.asarray(original).size == 0:
        raise InputError("empty image: bits per pixel are undefined")
    return 8.0 * float(stream_bytes) / float(np.asarray(original).size)


def all_metrics(original, reconstruction, stream_bytes: int = None,
                data_range_mode: DataRange = "image", with_ms_ssim: bool = True) -> Dict[str, float]:
    """Every reconstruction metric in one dict (the benchmark's phase-1 columns)."""
    out = {"mse": mse(original, reconstruction),
           "psnr": psnr(original, reconstruction, data_range_mode),
           "ssim": ssim(original, reconstruction, data_range_mode),
           "ms_ssim": ms_ssim(original, reconstruction, data_range_mode) if with_ms_ssim else float("nan"),
           "pearson_r": pearson(original, reconstruction),
           "data_range": data_range(original, data_range_mode)}
    if stream_bytes is not None:
        out["compressed_bytes"] = int(stream_bytes)
        out["compression_ratio"] = compression_ratio(original, stream_bytes)
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
