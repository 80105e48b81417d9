"""Zeiss LSM files (LSM 510-880 confocals), read with tifffile's pages and laid out here from CZ_LSMINFO.

tifffile 2023.2 (the newest aicsimageio 4 accepts) orders a multichannel stack as C, Z although every page
holds the channels of one plane: its series would interleave channels and planes. aicsimageio reads LSM only
through Bio-Formats (Java). So the planes are read page by page into an in-memory AICSImage, as a CZI that
aicsimageio cannot parse is (``io._czi_pixels``), and every reader path (CLI, API, napari) sees the same."""
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .errors import InputError
from .io_checks import MAX_CHANNELS, check_declared, pixel_size, quiet_readers
from .tiff_check import check_segments

# CZ_LSMINFO ScanType -> the axes the image pages run over (each page holds one plane's channels); line, point
# and spline scans (x-z planes, x-t lines) are not images this tool codes
_PAGE_AXES = {0: "Z", 3: "T", 6: "TZ"}
_SCAN_NAMES = {1: "a z-scan (x-z plane)", 2: "a line scan", 4: "a time series of x-z scans", 5: "a mean-of-ROIs "
               "series", 7: "a spline scan", 8: "a spline plane (x-z)", 9: "a time series of spline planes",
               10: "a point scan"}


def open_lsm(p: Path):
    """:func:`lsm_image` of the file ``p`` (tifffile's logs captured, a truncated file refused)."""
    import tifffile

    with quiet_readers(p), tifffile.TiffFile(p) as tf:
        return lsm_image(p, tf)


def lsm_image(p: Path, tf):
    """The LSM file ``p``, open as the TiffFile ``tf``, as an in-memory AICSImage (T, C, Z, Y, X; pixel sizes
    in µm); a clear InputError for what is damaged or is not an x-y image, stack or time series."""
    from aicsimageio import AICSImage
    from aicsimageio.types import PhysicalPixelSizes

    info = _info(p, tf)
    scan = int(info["ScanType"])
    axes = _PAGE_AXES.get(scan)
    if axes is None:
        raise InputError(f"{p.name} holds {_SCAN_NAMES.get(scan, f'an LSM scan of type {scan}')}, not an x-y "
                         "image, stack or time series; only those are read")
    if int(info.get("DimensionP", 0) or 0) > 1 or int(info.get("DimensionM", 0) or 0) > 1:
        raise InputError(f"{p.name} holds several positions or mosaic tiles; export each as its own file "
                         "(e.g. OME-TIFF) to read it here")
    pages = _image_pages(tf)
    check_segments(tf, pages, p.name)   # not tf.series: tifffile's LSM series fails on a file without thumbnails
    n_t = max(int(info["DimensionTime"]), 1) if "T" in axes else 1
    n_z = max(int(info["DimensionZ"]), 1) if "Z" in axes else 1
    if n_t * n_z != len(pages):
        raise InputError(f"{p.name} declares {n_t} time point(s) × {n_z} plane(s) but holds {len(pages)} image "
                         "page(s); the file is truncated or its metadata damaged, refusing to read it")
    key = pages[0].keyframe
    n_c = int(key.samplesperpixel)
    contig = n_c > 1 and int(key.planarconfig) == 1   # RGB: samples last; LSM channels are planar (first)
    if not 1 <= n_c <= MAX_CHANNELS:
        raise InputError(f"{p.name}: its pages hold {n_c} samples per pixel; the file is damaged")
    y, x = int(key.imagelength), int(key.imagewidth)
    check_declared(p.name, (n_t, n_c, n_z, y, x), key.dtype)
    out = np.empty((n_t, n_c, n_z, y, x), key.dtype)
    for i, page in enumerate(pages):
        plane = page.asarray()
        plane = np.moveaxis(plane.reshape(y, x, n_c), -1, 0) if contig else plane.reshape(n_c, y, x)
        out[i // n_z, :, i % n_z] = plane
    sizes = [pixel_size(float(f"{info.get(f'VoxelSize{a}', 0) * 1e6:.9g}")) for a in "ZYX"]   # metres in the file
    return AICSImage(out, dim_order="TCZYX", channel_names=_names(info, n_c, int(key.photometric) == 2),
                     physical_pixel_sizes=PhysicalPixelSizes(*sizes))


def _info(p: Path, tf) -> Dict[str, Any]:
    info = tf.lsm_metadata
    need = ("ScanType", "DimensionZ", "DimensionTime")
    if not isinstance(info, dict) or any(k not in info for k in need):
        raise InputError(f"{p.name}: its LSM information block (CZ_LSMINFO) is missing or damaged; "
                         "refusing to guess the order of its planes")
    return info


def _image_pages(tf) -> List[Any]:
    """The full-size pages: LSM writers follow each with a thumbnail (a reduced-resolution page)."""
    pages = list(tf.pages)
    thumbs = len(pages) > 1 and bool(getattr(pages[1], "is_reduced", False))
    return pages[::2] if thumbs else pages


def _names(info: Dict[str, Any], n: int, rgb: bool) -> List[str]:
    if rgb and n in (3, 4):
        return ["red", "green", "blue", "alpha"][:n]
    colors = info.get("ChannelColors")
    names = colors.get("ColorNames") if isinstance(colors, dict) else None
    if isinstance(names, (list, tuple)) and len(names) == n and all(isinstance(s, str) and s for s in names) \
            and len(set(names)) == n:
        return list(names)
    return [f"Ch{i}" for i in range(n)]
