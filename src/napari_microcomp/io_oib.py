"""Olympus OIB files (FluoView) and their folder form, OIF (``x.oif`` beside ``x.oif.files/``): an OIB's compound
file checked by ``cfb_check``; the settings and the plane TIFFs (``s_C001Z001T001.tif``, one per plane) read by
oiffile, each plane as napari shows it (the shared plane Reader of ``io_planes``). One scene, axes (T, C, Z, Y, X);
x-y pixel size from the reference image parameters, the z step from the Z axis's ``Interval`` (in its ``UnitName``).
"""
import re
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .io_checks import MAX_CHANNELS, check_declared, pixel_size, um_per

_INDEX = re.compile(r"([A-Z])(\d+)")
_MAX_SETTINGS = 64 * 2**20


def _fail(p: Path, what: str) -> InputError:
    return InputError(f"{p.name} is not a readable Olympus {p.suffix[1:].upper()} file: {what}")


class OibImage:
    """An OIB file's image: shape (T, C, Z, Y, X), dtype, channel names, pixel sizes (z, y, x) in µm."""

    def __init__(self, p: Path):
        from oiffile import OifFile

        from .cfb_check import check_cfb

        if p.suffix.lower() == ".oib":
            check_cfb(p)
        elif p.stat().st_size > _MAX_SETTINGS:   # oiffile reads the settings whole
            raise _fail(p, f"{p.stat().st_size} bytes of settings")
        self.path, self.name = p, p.stem
        self._lock = threading.Lock()   # napari reads planes from threads; the file is one handle
        self._of = OifFile(str(p))   # open while the image is: napari reads its planes as they are shown
        try:
            self.files, (n_t, n_c, n_z) = _plane_grid(p, list(self._of.glob("*.tif")))
            if n_c > MAX_CHANNELS:
                raise _fail(p, f"{n_c} channels")
            first = self._tiff(self.files[(0, 0, 0)])
            self.dtype = first.dtype
            self.shape = (n_t, n_c, n_z) + first.shape
            check_declared(p.name, self.shape, self.dtype)
        except BaseException:
            self._of.close()
            raise
        main = self._of.mainfile
        ref = main.get("Reference Image Parameter", {})
        self.sizes = [_z_step(main) if n_z > 1 else None] + [_size(ref.get(f"{a}ConvertValue"), ref.get(f"{a}Unit"))
                                                             for a in ("Height", "Width")]
        dyes = [str(main.get(f"Channel {c + 1} Parameters", {}).get("DyeName", "")).strip() for c in range(n_c)]
        self.names = dyes if all(dyes) and len(set(dyes)) == n_c else [f"C{c}" for c in range(n_c)]

    def __del__(self):
        of = getattr(self, "_of", None)
        if of is not None:
            of.close()

    def _tiff(self, name: str) -> np.ndarray:
        import tifffile

        from .tiff_check import check_tiff
        with self._lock:
            fh = self._of.open_file(name)   # OIF: a file of the folder, which tifffile leaves open
        with fh, tifffile.TiffFile(fh, name=name) as tf:
            check_tiff(tf, f"{self.path.name} ({name})")
            a = tf.asarray()
        if a.ndim != 2:
            raise _fail(self.path, f"plane {name} is {a.shape}, not a grey (Y, X) image")
        return a

    def plane(self, f, t: int, c: int, z: int) -> np.ndarray:
        """The (Y, X) plane of channel ``c`` at (``t``, ``z``) (``f``, the file opened by the Reader, is not used:
        the compound file's streams are read through oiffile)."""
        a = self._tiff(self.files[(t, c, z)])
        if a.shape != self.shape[3:] or a.dtype != self.dtype:
            raise _fail(self.path, f"plane {self.files[(t, c, z)]} is {a.dtype} {a.shape}, the first "
                                   f"{self.dtype} {self.shape[3:]}")
        return a


def _plane_grid(p: Path, names: List[str]) -> Tuple[Dict[Tuple[int, int, int], str], Tuple[int, int, int]]:
    """{(t, c, z): file name} and (T, C, Z) from the plane TIFFs' names: the largest set of names with the same
    letters (as oiffile's first series; e.g. not thumbnails), which must fill its grid."""
    groups: Dict[str, List[str]] = {}
    for n in names:
        base = n.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        groups.setdefault("".join(ch for ch in base if ch.isalpha()), []).append(n)
    if not groups:
        raise _fail(p, "it holds no image planes")
    files: Dict[Tuple[int, int, int], str] = {}
    for n in max(groups.values(), key=len):
        idx = {a: int(v) - 1 for a, v in _INDEX.findall(n.rsplit("/", 1)[-1])}
        other = sorted(set(idx) - set("CZT"))
        if other:   # e.g. L (a λ scan) or P (positions)
            raise _fail(p, f"its planes ({n.rsplit('/', 1)[-1]}) have a {'/'.join(other)} axis; only channels, z "
                           "and time are read")
        key = (idx.get("T", 0), idx.get("C", 0), idx.get("Z", 0))
        if min(key) < 0 or key in files:
            raise _fail(p, f"plane names {files.get(key)!r} and {n!r} (damaged)")
        files[key] = n
    grid = tuple(max(k[i] for k in files) + 1 for i in range(3))
    if len(files) != grid[0] * grid[1] * grid[2]:
        raise _fail(p, f"{grid[0] * grid[1] * grid[2] - len(files)} of its {grid[0]} × {grid[1]} × {grid[2]} "
                       "(time × channel × z) planes are missing")
    return files, grid


def _z_step(main) -> Optional[float]:
    """The z step in µm: the ``Interval`` of the axis whose ``AxisCode`` is Z, in its ``UnitName`` (FluoView: nm)."""
    for i in range(8):
        axis = main.get(f"Axis {i} Parameters Common")
        if isinstance(axis, dict) and axis.get("AxisCode") == "Z":
            try:
                return _size(abs(float(axis.get("Interval"))), axis.get("UnitName"))
            except (TypeError, ValueError):
                return None
    return None


def _size(value, unit):
    per = um_per(str(unit)) if unit is not None else None
    try:   # 9 digits: 350 nm is 0.35 µm, not 0.35000000000000003
        return pixel_size(float(f"{float(value) * per:.9g}")) if per is not None else None
    except (TypeError, ValueError):
        return None


def open_oib(p: Path):
    """The OIB or OIF file ``p`` as an AICSImage: one scene, (T, C, Z, Y, X), x-y pixel size in µm."""
    from aicsimageio import AICSImage

    from .io_planes import PlaneScenes

    return AICSImage([OibImage(p)], reader=PlaneScenes)
