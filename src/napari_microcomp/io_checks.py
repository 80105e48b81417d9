"""Checks every reader shares: declared sizes against the decode budget, plane selection, pixel sizes, and the
capture of what tifffile and aicsimageio log (a truncated TIFF refused)."""
import contextlib
import logging
import math
import os
import threading
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from .errors import InputError

MAX_CHANNELS = 10**4   # channels a file may declare: each becomes a name (and a napari layer)


def real_path(p) -> Path:
    """``p`` with ``~`` and every link resolved, as far as they go (Path.resolve raised RuntimeError on a link
    loop, a traceback where a user named a broken file)."""
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def broken_link(p: Path) -> bool:
    """A link whose target is missing or a loop (``exists`` is False for it, as for a path that is not there)."""
    return p.is_symlink() and not p.exists()


def check_declared(name: str, shape, dtype) -> None:
    """Refuse a file whose header declares more pixels than the decode budget, before reading it: a
    60000² TIFF of a few hundred bytes would otherwise take gigabytes (or the machine) to find out."""
    from .container import ENV_BUDGET, decode_budget

    nbytes = float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize
    budget = decode_budget()
    if nbytes > budget:
        tiled = "; `microcomp compress-tiled` codes it tile by tile" \
            if name.lower().endswith((".npy", ".tif", ".tiff", ".zarr")) else ""
        raise InputError(f"{name} declares a {np.dtype(dtype).name} image of shape {tuple(int(s) for s in shape)} "
                         f"({nbytes / 2**30:.3g} GiB), above the decode budget of {budget / 2**30:.3g} GiB; "
                         f"raise ${ENV_BUDGET} if it is genuine{tiled}")


def pick(p: Path, flag: str, value: Optional[int], n: int, what: str) -> int:
    """The index ``--flag value`` selects among ``n`` (default 0; negative counts from the end, as in Python)."""
    v = 0 if value is None else int(value)
    if not -n <= v < n:
        raise InputError(f"--{flag} {v} is out of range: {p.name} has {n} {what}")
    return v % n


def pixel_size(v) -> Optional[float]:
    """A file's physical pixel size as a float, or None where it records none usable (absent, 0, negative,
    NaN, inf: a crafted or broken header; inf as a layer scale breaks napari's view, NaN a stream's meta)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def default_notes(name: str, scenes: int, names: Sequence[str], timepoints: int, scene=None, channel=None,
                  timepoint=None) -> List[str]:
    """What a reader says it picked by default: scene, channel and time point 0 of several."""
    notes = []
    if scene is None and scenes > 1:
        notes.append(f"{name} holds {scenes} scenes (image series); using scene 0 (choose with --scene)")
    if channel is None and len(names) > 1:
        notes.append(f"{name} has {len(names)} channels {list(names)}; using channel 0 (choose with --channel)")
    if timepoint is None and timepoints > 1:
        notes.append(f"{name} has {timepoints} time points; using time point 0 (choose with --timepoint)")
    return notes


def photometric_notes(name: str, page) -> List[str]:
    """What a TIFF page's photometric interpretation means for the values coded (they are coded as stored)."""
    kind = getattr(getattr(page, "photometric", None), "name", "")
    if kind == "PALETTE":   # ImageJ saves an 8-bit image with a LUT so: the indices are the intensities
        return [f"{name} is a palette (colour map) image: its indices are coded, its colour map is not kept"]
    if kind == "MINISWHITE":
        return [f"{name} stores 0 as white (MinIsWhite): the values are coded as stored, and a decoded TIFF stores "
                "0 as black, so viewers show it inverted"]
    return []


# a length unit -> µm: NGFF's names, OME's symbols (default "µm"), ImageJ's "micron" or "\u00B5m" (escaped)
_UNITS_UM = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "angstrom": 1e-4, "meter": 1e6,
             "centimeter": 1e4, "picometer": 1e-6, "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0,
             "microns": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def um_per(unit) -> Optional[float]:
    """Micrometres per ``unit`` (a name or symbol, any case), or None where it is not a known length unit."""
    return _UNITS_UM.get(unit.strip().lower()) if isinstance(unit, str) else None


def tiff_pixel_size(tf) -> Optional[List[Optional[float]]]:
    """(z, y, x) in µm that the open TiffFile ``tf`` records: OME-XML's PhysicalSize*, else ImageJ's unit with the
    X/YResolution tags (and its z spacing), else X/YResolution in pixels per centimetre; None where it records none
    (pixels per inch is a print resolution, not a pixel size)."""
    if tf.is_ome:
        return _ome_pixel_size(tf.ome_metadata)
    if tf.is_stk:
        return _stk_pixel_size(tf.stk_metadata or {})
    page = tf.pages[0]
    ij = tf.imagej_metadata or {}
    scale = um_per(ij.get("unit"))
    z = None
    if scale is not None:
        z = _num(ij.get("spacing"))
    elif getattr(page.tags.get(296), "value", None) == 3:   # ResolutionUnit: centimetre
        scale = 1e4
    if scale is None:
        return None

    def per_pixel(code):
        value = getattr(page.tags.get(code), "value", None)
        try:
            num, den = value
            return pixel_size(scale * den / num) if num else None
        except (TypeError, ValueError):
            return None
    return [pixel_size(z * scale) if z is not None else None, per_pixel(283), per_pixel(282)]


def _stk_pixel_size(meta) -> Optional[List[Optional[float]]]:
    """MetaMorph's calibration (UIC1/UIC4: X/YCalibration per pixel in CalibrationUnits, used where
    SpatialCalibration is on) and, where every plane records the same one, the z distance (µm) of its UIC2Tag."""
    scale = um_per(meta.get("CalibrationUnits") or "um")
    if not meta.get("SpatialCalibration") or scale is None:
        return None
    z = np.asarray(meta.get("ZDistance", []), dtype=float).ravel()
    step = float(z[0]) if z.size > 1 and np.all(z == z[0]) else None
    y, x = (_num(meta.get(k)) for k in ("YCalibration", "XCalibration"))
    return [pixel_size(step), pixel_size(y * scale) if y is not None else None,
            pixel_size(x * scale) if x is not None else None]


def _ome_pixel_size(xml) -> Optional[List[Optional[float]]]:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except (ET.ParseError, TypeError, ValueError):
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    out = []
    for a in "ZYX":
        v, f = _num(pixels.get(f"PhysicalSize{a}")), um_per(pixels.get(f"PhysicalSize{a}Unit", "µm"))
        out.append(pixel_size(v * f) if v is not None and f else None)
    return out if any(out) else None


def _num(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# what tifffile logs (and then reads past) when a file's page list or a tag points beyond its end: a truncated
# multi-page TIFF would otherwise come back as its first page(s), without its OME metadata, as if whole
_TIFF_DAMAGE = ("corrupted tag list", "invalid offset to page", "invalid page offset", "invalid offset to first page",
                "invalid value offset", "invalid next page")


class _Damage(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.found: List[str] = []
        self.thread = threading.get_ident()   # another thread's file is not this one's damage

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.thread == self.thread and any(k in msg for k in _TIFF_DAMAGE):
            self.found.append(msg)


@contextlib.contextmanager
def quiet_readers(path=None):
    """aicsimageio warns about plain TIFFs without a pixel-size unit (the size stays unknown, None in meta);
    it and tifffile log what they tried on a damaged file, where the caller raises one clear error. A file
    tifffile reports as truncated (see ``_TIFF_DAMAGE``) is refused here rather than read in part."""
    logs = [logging.getLogger(n) for n in ("aicsimageio.aics_image", "tifffile")]
    saved = [(log.level, log.propagate) for log in logs]
    damage = _Damage()
    logs[0].setLevel(logging.CRITICAL)
    logs[1].setLevel(logging.WARNING)
    logs[1].propagate = False   # collected by ``damage``, not printed
    logs[1].addHandler(damage)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Could not parse tiff pixel size")
            yield
    finally:
        logs[1].removeHandler(damage)
        for log, (level, propagate) in zip(logs, saved):
            log.setLevel(level)
            log.propagate = propagate
    if damage.found:
        name = Path(path).name if path is not None else "the file"
        raise InputError(f"{name} is damaged or truncated (tifffile: {damage.found[0][:160]}); refusing to read "
                         "part of it as if it were whole")
