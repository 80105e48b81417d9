"""Writing files atomically (the target is always the old file or the complete new one), and decoded images
as (OME-)TIFF or NPY, keeping pixel sizes where known."""
import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np

from .errors import InputError


def _user_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def temp_beside(path, suffix: str = ".part") -> Path:
    """A new temporary file beside ``path`` with the user's usual mode, named after this process.

    Temporary files of the same target left by a process that no longer runs (killed mid-write) are
    removed first, so an interrupted run never leaves 100 MB of debris for good.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    stem = f".{p.name}."
    for old in p.parent.glob(f"{glob.escape(stem)}*"):
        pid = old.name[len(stem):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{stem}{os.getpid()}.", suffix=suffix, dir=p.parent)
    os.close(fd)
    os.chmod(tmp, _user_mode())   # mkstemp makes 0600; give the file the user's usual mode
    return Path(tmp)


@contextlib.contextmanager
def atomic_target(path, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, on error it
    is removed, so ``path`` is always either the old file or the complete new one."""
    p = Path(path)
    tmp = temp_beside(p, suffix)
    try:
        yield tmp
        _fsync(tmp)   # the data on disk before the rename: after a power cut, the old file or the whole new one
        os.replace(tmp, p)
        _fsync(p.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:   # a folder some systems will not open: the rename stays atomic, only less durable
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output(path, overwrite: bool = False) -> Path:
    """Refuse to replace an existing file unless ``overwrite`` (CLI: ``--overwrite``); return the path."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; give an output file name")
    if p.exists() and not overwrite:
        raise InputError(f"{p} exists; pass --overwrite (overwrite=True) to replace it")
    return p


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the complete new one."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)   # atomic_target syncs it before the rename


_OME_DTYPES = ("bool", "int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64",
               "complex64", "complex128")


def check_image_output(path) -> Path:
    """Refuse an output name :func:`write_image` cannot write, before any work is done for it."""
    p = Path(path)
    if p.suffix.lower() not in (".npy", ".tif", ".tiff"):
        raise InputError(f"output must be .tif/.tiff/.ome.tif or .npy, got {p.name}")
    return p


def channel_name(meta: Dict[str, Any]) -> Optional[str]:
    """The name of the coded channel (``channel_names[channel]`` of a stream's metadata) as OME-XML attribute text:
    printable characters only (a file may name a channel anything), at most 200, escaped (tifffile inserts it as
    it is: "A&B" made the XML unreadable)."""
    from xml.sax.saxutils import escape

    names, c = meta.get("channel_names"), meta.get("channel")
    if not isinstance(names, list) or isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < len(names):
        return None
    text = "".join(ch for ch in str(names[c]) if ch.isprintable())[:200].strip()
    return escape(text, {'"': "&quot;"}) or None


def write_image(path, array: np.ndarray, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write a 2D/3D array as (OME-)TIFF or NPY atomically, keeping pixel sizes and the channel's name when known."""
    import tifffile

    p = check_image_output(path)
    if p.suffix.lower() == ".npy":
        with atomic_target(p, suffix=".npy") as tmp:
            np.save(tmp, array)
        return
    md: Dict[str, Any] = {"axes": "ZYX" if array.ndim == 3 else "YX"}
    ps = (metadata or {}).get("pixel_size")
    if ps and ps[-1]:
        md["PhysicalSizeX"], md["PhysicalSizeY"] = float(ps[-1]), float(ps[-2] or ps[-1])
        if array.ndim == 3 and ps[0]:
            md["PhysicalSizeZ"] = float(ps[0])
    name = channel_name(metadata or {})
    if name:
        md["Channel"] = {"Name": [name]}
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
