"""Writing decoded images: (OME-)TIFF or NPY, atomically, keeping pixel sizes where known."""
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .errors import InputError
from .io import atomic_target

_OME_DTYPES = ("bool", "int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64",
               "complex64", "complex128")


def write_image(path, array: np.ndarray, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write a 2D/3D array as (OME-)TIFF or NPY atomically, keeping pixel sizes when known."""
    import tifffile

    p = Path(path)
    if p.suffix.lower() == ".npy":
        with atomic_target(p, suffix=".npy") as tmp:
            np.save(tmp, array)
        return
    if p.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"output must be .tif/.tiff/.ome.tif or .npy, got {p.name}")
    md: Dict[str, Any] = {"axes": "ZYX" if array.ndim == 3 else "YX"}
    ps = (metadata or {}).get("pixel_size")
    if ps and ps[-1]:
        md["PhysicalSizeX"], md["PhysicalSizeY"] = float(ps[-1]), float(ps[-2] or ps[-1])
        if array.ndim == 3 and ps[0]:
            md["PhysicalSizeZ"] = float(ps[0])
    if array.dtype.name in _OME_DTYPES:
        with atomic_target(p, suffix=".part.ome.tif") as tmp:
            tifffile.imwrite(tmp, array, ome=True, metadata=md, photometric="minisblack")
        return
    # OME-XML has no float16/int64/uint64: a plain TIFF keeps the pixels exact, the pixel size goes to the
    # resolution tags (pixels per cm) rather than being dropped
    res = {}
    if "PhysicalSizeX" in md:
        res = {"resolution": (1e4 / md["PhysicalSizeX"], 1e4 / md["PhysicalSizeY"]), "resolutionunit": "CENTIMETER"}
    with atomic_target(p, suffix=".part.tif") as tmp:
        tifffile.imwrite(tmp, array, photometric="minisblack", metadata={"axes": md["axes"]}, **res)
