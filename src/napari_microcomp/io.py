"""Reading and writing images: TIFF/OME-TIFF, PNG, NPY, and CZI/ND2 through aicsimageio.

The core returns plain numpy arrays plus a small metadata dict (``pixel_size`` in µm as
(z, y, x) where known, ``source`` path, ``channel_names``).
"""
import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from .errors import InputError, MicrocompError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".npy", ".czi", ".nd2", ".jpg", ".jpeg")


def _squeeze_to_zyx(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    squeezed = np.squeeze(a)
    return squeezed if squeezed.ndim >= 2 else a


def _check_declared(name: str, shape, dtype) -> None:
    """Refuse a file whose header declares more pixels than the decode budget, before reading it: a
    60000² TIFF of a few hundred bytes would otherwise take gigabytes (or the machine) to find out."""
    from .container import ENV_BUDGET, decode_budget

    nbytes = float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize
    budget = decode_budget()
    if nbytes > budget:
        raise InputError(f"{name} declares a {np.dtype(dtype).name} image of shape {tuple(int(s) for s in shape)} "
                         f"({nbytes / 2**30:.1f} GiB), above the decode budget of {budget / 2**30:.1f} GiB; "
                         f"raise ${ENV_BUDGET} if it is genuine")


_KIND = {".czi": "CZI", ".nd2": "ND2", ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG",
         ".jpeg": "JPEG", ".npy": "NPY"}


def read_image(path, channel: Optional[int] = None, scene: Optional[int] = None,
               timepoint: Optional[int] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Read one single-channel 2D or 3D image from ``path``.

    TIFF/PNG/NPY are read directly; CZI, ND2 and multi-dimensional files go through aicsimageio,
    where ``channel``, ``scene`` and ``timepoint`` select the plane set (default: first of each).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a directory, expected an image file")
    suffix = p.suffix.lower()
    meta: Dict[str, Any] = {"source": str(p)}
    try:
        if suffix == ".npy":
            mapped = np.load(p, allow_pickle=False, mmap_mode="r")  # the header only, nothing read yet
            _check_declared(p.name, mapped.shape, mapped.dtype)
            return _squeeze_to_zyx(np.array(mapped)), meta
        if suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio
            return np.asarray(iio.imread(p)), meta
        if suffix in (".tif", ".tiff") and channel is None and scene is None and timepoint is None:
            import tifffile
            with tifffile.TiffFile(p) as tf:
                series = tf.series[0]
                _check_declared(p.name, series.shape, series.dtype)
                if len(series.axes.replace("Y", "").replace("X", "").replace("Z", "").replace("Q", "")
                       .replace("S", "")) == 0 or not tf.is_ome:
                    arr = series.asarray()
                    if series.axes.endswith("S") and arr.shape[-1] in (3, 4):
                        return arr, meta
                    return _squeeze_to_zyx(arr), meta
        if suffix in (".czi", ".nd2", ".tif", ".tiff"):
            return _read_aics(p, channel, scene, timepoint, meta)
    except MicrocompError:
        raise
    except Exception as exc:  # third-party readers raise anything on a corrupt file
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise InputError(f"could not read {p.name}: not a readable {_KIND.get(suffix, suffix)} file (damaged, "
                         f"truncated or another format; {detail})") from exc
    raise InputError(f"unsupported file type {suffix!r}; supported: {', '.join(IMAGE_SUFFIXES)}")


def _read_aics(p: Path, channel, scene, timepoint, meta):
    from aicsimageio import AICSImage

    img = AICSImage(str(p))
    if scene is not None:
        if scene >= len(img.scenes):
            raise InputError(f"{p.name} has {len(img.scenes)} scene(s); --scene {scene} is out of range")
        img.set_scene(scene)
    dims = img.dims
    c = 0 if channel is None else channel
    if c >= dims.C:
        raise InputError(f"{p.name} has {dims.C} channel(s) {img.channel_names}; --channel {c} is out of range")
    t = 0 if timepoint is None else timepoint
    if t >= dims.T:
        raise InputError(f"{p.name} has {dims.T} time point(s); --timepoint {t} is out of range")
    _check_declared(p.name, (dims.Z, dims.Y, dims.X), img.dtype)
    arr = np.asarray(img.get_image_data("ZYX", C=c, T=t))
    if arr.shape[0] == 1:
        arr = arr[0]
    ps = img.physical_pixel_sizes
    meta.update(pixel_size=[ps.Z, ps.Y, ps.X], channel_names=list(img.channel_names),
                channel=c, scene=img.current_scene, timepoint=t)
    return arr, meta


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
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


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
    with atomic_target(p, suffix=".part.ome.tif") as tmp:
        tifffile.imwrite(tmp, array, ome=True, metadata=md, photometric="minisblack")
