"""DeltaVision (.dv) files: the header parsed by ``mrc`` (the package aicsimageio's DVReader uses), the planes
read by offset through the same small Reader as LIF files.

Why not aicsimageio's DVReader: with the current ``mrc`` it fails on multi-channel files (its channel
coordinate has one entry for several channels), and it reads through a memory map (a file cut short while
napari shows it would kill the process). One scene, axes (T, C, Z, Y, X).
"""
from pathlib import Path
from typing import List, Optional

import numpy as np

from .errors import InputError
from .io_checks import check_declared, pixel_size

_DTYPES = (0, 1, 2, 5, 6, 7)   # DV pixel types read: u1, i2, f4, i2, u2, i4 (3, 4: complex)
_MAX_WAVES = 5   # the header has room for five wavelengths


def _fail(p: Path, what: str) -> InputError:
    return InputError(f"{p.name} is not a readable DeltaVision file: {what}")


def _header(p: Path):
    """``mrc.DVFile`` that parses the header only: it would map the pixels (a file cut short while napari shows
    it would kill the process); they are read by offset instead (:meth:`DvImage.plane`)."""
    from mrc import DVFile

    class _Header(DVFile):
        def open(self) -> None:
            pass

    return _Header(str(p))


class DvImage:
    """A DV file's one image: shape (T, C, Z, Y, X), dtype, channel names, pixel sizes (z, y, x) in µm."""

    def __init__(self, p: Path):
        self.path, self.name = p, p.stem
        dv = _header(p)
        hdr, order = dv.hdr, dv.hdr.sequence_order
        if hdr.img_seq not in (0, 1, 2):   # mrc would assume an order: the planes could come out shuffled
            raise _fail(p, f"unknown section order {hdr.img_seq} (damaged)")
        if hdr.pixel_type not in _DTYPES:
            raise _fail(p, f"pixel type {hdr.pixel_type} ({'complex' if hdr.pixel_type in (3, 4) else 'unknown'})")
        self.file_dtype = np.dtype(dv.dtype)   # in the file's byte order
        n_t, n_c, n_s = hdr.nt or 1, hdr.nc or 1, hdr.n_sections
        if min(hdr.width, hdr.height, n_t, n_c, n_s) < 1 or n_c > _MAX_WAVES or n_s % (n_t * n_c):
            raise _fail(p, f"its header declares {hdr.width} × {hdr.height} pixels, {n_s} sections, {n_c} "
                           f"wavelengths and {n_t} time points (damaged)")
        sizes = {"T": n_t, "C": n_c, "Z": n_s // (n_t * n_c)}
        self.shape = (n_t, n_c, sizes["Z"], hdr.height, hdr.width)
        self.order = [(a, sizes[a]) for a in order]   # slowest first, as the sections are stored
        self.offset = 1024 + hdr.ext_hdr_len
        self.names = _names([getattr(hdr, f"wave{i + 1}") for i in range(n_c)])
        # float32 in the file: 0.1 is stored as 0.10000000149
        self.sizes: List[Optional[float]] = [pixel_size(f"{v:.7g}") for v in (hdr.dz, hdr.dy, hdr.dx)]
        self.sizes[0] = self.sizes[0] if sizes["Z"] > 1 else None
        check_declared(p.name, self.shape, self.dtype)
        end = self.offset + n_s * hdr.height * hdr.width * self.file_dtype.itemsize
        if self.offset < 1024 or end > p.stat().st_size:
            raise InputError(f"{p.name} is truncated or damaged: its pixels need {end} bytes, the file has "
                             f"{p.stat().st_size}; refusing to read it")

    @property
    def dtype(self) -> np.dtype:
        return self.file_dtype.newbyteorder("=")

    def plane(self, f, t: int, c: int, z: int) -> np.ndarray:
        """The (Y, X) plane of channel ``c`` at (``t``, ``z``), read from the open file ``f``."""
        at = {"T": t, "C": c, "Z": z}
        section = 0
        for axis, n in self.order:
            section = section * n + at[axis]
        y, x = self.shape[3:]
        span = y * x * self.file_dtype.itemsize
        f.seek(self.offset + section * span)
        buf = f.read(span)
        if len(buf) < span:
            raise InputError(f"{self.path.name}: the file ends inside a plane (it was cut short after it was opened?)")
        return np.frombuffer(buf, self.file_dtype).reshape(y, x).astype(self.dtype)


def _names(waves: List[int]) -> List[str]:
    names = [f"{w} nm" for w in waves]
    if all(w > 0 for w in waves) and len(set(names)) == len(names):
        return names
    return [f"C{i}" for i in range(len(waves))]


def open_dv(p: Path):
    """The DV file ``p`` as an AICSImage: one scene, (T, C, Z, Y, X), pixel sizes in µm."""
    from aicsimageio import AICSImage

    from .io_planes import PlaneScenes

    return AICSImage([DvImage(p)], reader=PlaneScenes)
