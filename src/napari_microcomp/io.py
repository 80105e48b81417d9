"""Reading images: TIFF/OME-TIFF, MetaMorph STK, PNG, JPEG, NPY, OME-Zarr (``io_zarr``), Zeiss LSM (``io_lsm``),
Leica LIF (``io_lif``), DeltaVision DV (``io_dv``), Olympus OIB/OIF (``io_oib``), and CZI/ND2 through aicsimageio
(writing: ``io_write``).

The core returns plain numpy arrays plus a small metadata dict (``pixel_size`` in µm as
(z, y, x) where known, ``source`` path, ``channel_names``).
"""
import importlib.util
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ._validate import MASK_NOTE, grey_samples, mask_as_uint8
from .errors import InputError, MicrocompError
from .io_checks import (broken_link, check_declared, default_notes, photometric_notes, pick, pixel_size,
                        quiet_readers, tiff_pixel_size)
from .io_zarr import is_zarr, read_zarr

# files of scenes and channels, read through an AICSImage (OME-TIFF too, told by its name)
_SCENE_FILES = (".czi", ".nd2", ".lsm", ".lif", ".dv", ".oib", ".oif")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".npy", ".stk", ".jpg", ".jpeg") + _SCENE_FILES
VENDOR_SUFFIXES = _SCENE_FILES + (".ome.tif", ".ome.tiff")
_TIFFS = (".tif", ".tiff", ".stk")   # read by tifffile's series (MetaMorph STK: planes after the one page)


def _squeeze_to_zyx(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    squeezed = np.squeeze(a)
    return squeezed if squeezed.ndim >= 2 else a


def is_folder(path) -> bool:
    """A directory of images, as opposed to a zarr store (a directory that is one image)."""
    return Path(path).is_dir() and not is_zarr(path)


def regular_file(path) -> Path:
    """``path`` as a Path if it is a readable regular file, else a clear InputError."""
    p = Path(path)
    if p.is_file():
        return p
    if is_zarr(p):
        raise InputError(f"{p} is a zarr store, expected a file")
    if p.is_dir():
        raise InputError(f"{p} is a directory, expected a file")
    if p.exists():   # a FIFO or device would block or stream forever
        raise InputError(f"{p} is not a regular file (a pipe, socket or device); save it to a file first")
    if broken_link(p):
        raise InputError(f"{p} is a broken link (its target is missing or a loop)")
    raise InputError(f"file not found: {p}")


def image_source(path) -> Path:
    """``path`` as a Path if it is an image: a regular file or a zarr store (a directory that is one image)."""
    return Path(path) if is_zarr(path) else regular_file(path)


def image_files(paths: Iterable) -> List[Path]:
    """Files (and zarr stores) as given, folders expanded (recursively, sorted) into the images they hold."""
    out: List[Path] = []
    for p in map(Path, paths):
        if is_folder(p):
            from .tiff_check import one_per_ome_set
            out += one_per_ome_set(sorted(_images_in(p)))
        else:
            out.append(image_source(p))
    if not out:
        raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}, .zarr) in {', '.join(map(str, paths))}")
    return out


def _images_in(folder: Path) -> Iterator[Path]:
    for f in folder.iterdir():
        if is_zarr(f):
            yield f   # one image: its chunk files are not walked
        elif f.name.lower().endswith(".oif.files") and f.with_name(f.name[:-6]).is_file():
            continue   # an OIF's planes: read through its .oif
        elif f.is_dir() and not f.is_symlink():   # as rglob: a linked folder could loop back
            if not f.name.startswith("."):   # .git, .venv, .ipynb_checkpoints: not the user's images
                yield from _images_in(f)
        elif (f.is_file() or broken_link(f)) and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            yield f   # a broken link too: reading it says so, where skipping it would say nothing

FILE_KINDS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".npy": "NPY",
              ".czi": "CZI", ".nd2": "ND2", ".lsm": "Zeiss LSM", ".lif": "Leica LIF", ".dv": "DeltaVision",
              ".oib": "Olympus OIB", ".oif": "Olympus OIF", ".stk": "MetaMorph STK", ".zarr": "zarr"}
# for help texts: every kind read (OME-TIFF is a TIFF)
READ_FORMATS = ", ".join(dict.fromkeys(k for k in FILE_KINDS.values() if k != "zarr")) + " files, OME-Zarr/zarr stores"
_PIL_DTYPES = {"I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}
_READERS = {".czi": "aicspylibczi", ".nd2": "nd2"}   # the package aicsimageio needs for that format


def unreadable(path, exc: BaseException) -> InputError:
    """The error for a file a third-party reader failed on (they raise anything on a corrupt file)."""
    p = Path(path)
    suffix = p.suffix.lower()
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    reader = _READERS.get(suffix)
    if reader and "Install extra format dependency" in str(exc) and importlib.util.find_spec(reader):
        # aicsimageio says "install the reader" for any file its reader refused; here it is installed
        detail = f"{type(exc).__name__}: {reader} is installed and could not open it"
    if type(exc).__name__ == "DecompressionBombError":   # Pillow's guard: the file is fine, just declared huge
        return InputError(f"could not read {p.name}: {lines[0][:200].rstrip('.') if lines else 'too many pixels'}; "
                          "Pillow refuses such PNG/JPEG files; if it is genuine, convert it to TIFF")
    return InputError(f"could not read {p.name}: not a readable {FILE_KINDS.get(suffix, suffix)} file (damaged, "
                      f"truncated or another format; {detail})")


def _has_samples(a: np.ndarray) -> bool:
    # a trailing RGB(A) / grey+alpha axis, as PNG, RGB TIFF and such NPY files hold it
    return a.ndim == 3 and 2 <= a.shape[-1] <= 4 and min(a.shape[:2]) > 4


def _grey_if_equal(p: Path, a: np.ndarray, meta: Dict[str, Any]) -> np.ndarray:
    """A grey image stored as RGB(A) or grey+alpha (:func:`grey_samples`) as its one channel, said in a note;
    anything else unchanged."""
    first = grey_samples(a) if _has_samples(a) else None
    if first is None:
        return a
    how = "equal colour samples" + (", a constant alpha" if a.shape[-1] in (2, 4) else "")
    meta.setdefault("notes", []).append(f"{p.name} holds a grey image as {a.shape[-1]} samples per pixel ({how}); "
                                        "reading it as one channel")
    return np.ascontiguousarray(first)


def _select_sample(p: Path, a: np.ndarray, channel: Optional[int], meta: Dict[str, Any]) -> np.ndarray:
    """``--channel`` on a plain array picks a sample of its trailing RGB(A) axis; without one it has 1 channel
    (a grey image stored as equal colour samples is read as that channel)."""
    if channel is None:
        return _grey_if_equal(p, a, meta)
    if _has_samples(a):
        c = pick(p, "channel", channel, a.shape[-1], "channel(s) (samples of its last axis)")
        meta["channel"] = c
        return a[..., c]
    meta["channel"] = pick(p, "channel", channel, 1, "channel(s)")
    return a


def read_image(path, channel: Optional[int] = None, scene: Optional[int] = None,
               timepoint: Optional[int] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Read one single-channel 2D or 3D image from ``path``.

    TIFF/PNG/NPY are read directly; CZI, ND2, LSM, LIF, DV, OIB/OIF and multi-dimensional files go through aicsimageio,
    where ``channel``, ``scene`` and ``timepoint`` select the plane set (default: first of each;
    negative indices count from the end). Colour samples (RGB) count as channels: ``channel`` picks one.
    A zarr store (OME-Zarr ≤ 0.4 or a plain array) is read by :func:`napari_microcomp.io_zarr.read_zarr`.
    A boolean (1-bit) mask is read as uint8 0/1, said in ``meta["notes"]``.
    """
    arr, meta = _read_image(path, channel, scene, timepoint)
    as_uint8 = mask_as_uint8(arr)
    if as_uint8 is None:
        return arr, meta
    meta.setdefault("notes", []).append(f"{Path(path).name} {MASK_NOTE}")
    return as_uint8, meta


def _read_image(path, channel, scene, timepoint) -> Tuple[np.ndarray, Dict[str, Any]]:
    if is_zarr(path):
        try:
            return read_zarr(path, channel, scene, timepoint)
        except MicrocompError:
            raise
        except Exception as exc:  # e.g. a permission error deep in the store
            raise unreadable(path, exc) from exc
    p = regular_file(path)
    suffix = p.suffix.lower()
    meta: Dict[str, Any] = {"source": str(p)}
    try:
        if suffix == ".npy":
            mapped = np.load(p, allow_pickle=False, mmap_mode="r")  # the header only, nothing read yet
            check_declared(p.name, mapped.shape, mapped.dtype)
            return np.array(_select_sample(p, _squeeze_to_zyx(mapped), channel, meta)), meta
        if suffix in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio
            from PIL import Image
            with Image.open(p) as im:   # the header: Pillow's bomb guard (179 Mpx) is far above a small budget
                frames = getattr(im, "n_frames", 1)   # an animated PNG reads as a stack: every frame counts
                check_declared(p.name, (frames,) * (frames > 1) + im.size[::-1] + (len(im.getbands()),),
                                _PIL_DTYPES.get(im.mode, np.uint8))
                if im.mode == "CMYK":   # as ink: its first sample is inverted cyan, not an intensity
                    meta["notes"] = [f"{p.name} is a CMYK image; converted to RGB as viewers show it"]
                    return _select_sample(p, np.asarray(im.convert("RGB")), channel, meta), meta
            return _select_sample(p, np.asarray(iio.imread(p)), channel, meta), meta
        if suffix in _TIFFS:
            import tifffile

            from .tiff_check import check_tiff
            with quiet_readers(p), tifffile.TiffFile(p) as tf:
                check_tiff(tf, p.name)
                said = photometric_notes(p.name, tf.pages.first)
                if said:
                    meta["notes"] = said
                series = tf.series[0]
                # channels or time points (ImageJ hyperstacks, shaped TIFFs too) are not z: aicsimageio picks
                if (channel, scene, timepoint) == (None, None, None) and \
                        not any(n > 1 and a not in "YXZQSI" for a, n in zip(series.axes, series.shape)):
                    check_declared(p.name, series.shape, series.dtype)
                    arr = series.asarray()
                    if len(tf.series) > 1:
                        meta["notes"] = default_notes(p.name, len(tf.series), [], 1) + said
                    size = tiff_pixel_size(tf)
                    if size is not None:
                        meta["pixel_size"] = size
                    at = series.axes.find("S")
                    if at >= 0 and series.shape[at] in (2, 3, 4) and (at == arr.ndim - 1 or not tf.is_shaped):
                        # colour samples, interleaved or planar (S, Y, X), not z planes; except in a file tifffile
                        # wrote (its "shape" is the array it was given): it tags a (3, Y, X) stack as planar RGB
                        arr = np.moveaxis(arr, at, -1)
                        return _select_sample(p, _squeeze_to_zyx(arr), channel, meta), meta
                    return _squeeze_to_zyx(arr), meta
        if suffix in _SCENE_FILES + _TIFFS:
            return _read_aics(p, channel, scene, timepoint, meta, checked=suffix in _TIFFS)
    except MicrocompError:
        raise
    except Exception as exc:  # third-party readers raise anything on a corrupt file
        raise unreadable(p, exc) from exc
    raise InputError(f"unsupported file type {suffix!r}; supported: {', '.join(IMAGE_SUFFIXES)}")


def channel_count(path, scene: Optional[int] = None, timepoint: Optional[int] = None) -> Tuple[int, List[str]]:
    """(number of channels, their names) of an image file, as ``read_image``'s ``channel`` counts them: a
    file's channels (× colour samples), or the samples of a plain RGB(A) array; 1 for a grey image.
    CZI/ND2/LIF/DV/OIB/OIF are counted from their metadata: their pixels are read once, per channel, afterwards."""
    p = Path(path)
    if p.suffix.lower() in _SCENE_FILES and p.suffix.lower() != ".lsm" and p.is_file():
        try:
            img = open_aics(p)
            if scene is not None:
                img.set_scene(pick(p, "scene", scene, len(img.scenes), "scene(s)"))
            names = [str(n) for n in plane_names(img)]
        except MicrocompError:
            raise
        except Exception as exc:  # third-party readers raise anything on a corrupt file
            raise unreadable(p, exc) from exc
        return len(names), names
    a, meta = read_image(path, None, scene, timepoint)
    names = [str(n) for n in meta.get("channel_names") or []]
    if names:
        return len(names), names
    return (a.shape[-1], []) if _has_samples(a) else (1, [])


def samples_of(img) -> int:
    """The number of colour samples (aicsimageio's ``S`` axis: RGB) per channel of ``img``."""
    return int(dict(zip(img.dims.order, img.shape)).get("S", 1))


def plane_names(img) -> List[str]:
    """One name per channel × sample of ``img``, in that order (RGB samples are listed like channels)."""
    names = [str(c) for c in img.channel_names] or [f"C{i}" for i in range(img.dims.C)]
    n_s = samples_of(img)
    return names if n_s == 1 else [f"{c} sample {s}" for c in names for s in range(n_s)]


def check_tiff_file(p: Path) -> None:
    """:func:`napari_microcomp.tiff_check.check_tiff` on the file ``p`` (opened for it, logs captured)."""
    import tifffile

    from .tiff_check import check_tiff
    with quiet_readers(p), tifffile.TiffFile(p) as tf:
        check_tiff(tf, p.name)


def open_aics(path, checked: bool = False):
    """An ``AICSImage`` of ``path`` with its dimensions parsed (aicsimageio parses lazily, so a file it cannot
    read fails here). A CZI whose metadata aicsimageio cannot parse (e.g. no Scaling/X, as some ZEN exports)
    but whose pixels aicspylibczi reads is opened from those pixels, physical pixel size unknown."""
    from aicsimageio import AICSImage

    p = Path(path)
    if p.suffix.lower() == ".czi":
        from .czi_check import check_czi
        check_czi(p)
    if p.suffix.lower() == ".lsm":
        from .io_lsm import open_lsm
        return open_lsm(p)
    if p.suffix.lower() == ".lif":
        from .io_lif import open_lif
        return open_lif(p)
    if p.suffix.lower() == ".dv":
        from .io_dv import open_dv
        return open_dv(p)
    if p.suffix.lower() in (".oib", ".oif"):
        from .io_oib import open_oib
        return open_oib(p)
    if p.suffix.lower() in _TIFFS and not checked:   # read_image has checked it already
        check_tiff_file(p)
    try:
        with quiet_readers(p):
            img = AICSImage(str(p), **_tiff_reader(p))
            _ = img.dims  # parsed now (lazily it would fail later, outside this fallback)
        return img
    except ImportError:
        raise
    except Exception as exc:
        fallback = _czi_pixels(p) if p.suffix.lower() == ".czi" else None
        if fallback is None:
            raise
        warnings.warn(f"{p.name}: aicsimageio could not parse its metadata ({type(exc).__name__}: {exc}); "
                      "read the pixels with aicspylibczi, physical pixel size unknown", stacklevel=2)
        return fallback


def _tiff_reader(p: Path) -> Dict[str, Any]:
    """aicsimageio's reader for a MetaMorph STK: its own choice would be Bio-Formats (Java)."""
    if p.suffix.lower() != ".stk":
        return {}
    from aicsimageio.readers import TiffReader
    return {"reader": TiffReader}


_CZI_DTYPES = {"gray8": np.uint8, "gray16": np.uint16, "gray32float": np.float32}


def _czi_pixels(p: Path):
    """``p`` read whole with aicspylibczi as an in-memory AICSImage (one scene per CZI scene), or None where
    aicspylibczi cannot read it either or it holds what this simple path does not handle (mosaic, RGB, ...)."""
    try:
        from aicsimageio import AICSImage
        from aicspylibczi import CziFile

        czi = CziFile(str(p))
        size = dict(zip(czi.dims, czi.size))
        dtype = _CZI_DTYPES.get(czi.pixel_type)
        if dtype is None or czi.is_mosaic() or any(n > 1 for d, n in size.items() if d not in "STCZYX"):
            return None
    except Exception:
        return None
    check_declared(p.name, czi.size, dtype)  # outside the try: a budget refusal is the user's answer
    try:
        scenes = []
        for s in range(size.get("S", 1)):
            a, dims = czi.read_image(**({"S": s} if "S" in size else {}))
            order = [d for d, _ in dims]
            a = a.reshape([n for d, n in dims if d in "TCZYX"])  # drop the singleton others (S, B, ...)
            order = [d for d in order if d in "TCZYX"]
            for d in "TCZYX":
                if d not in order:
                    a, order = a[np.newaxis], [d] + order
            scenes.append(np.transpose(a, [order.index(d) for d in "TCZYX"]))
        names = _czi_channel_names(czi.meta, scenes[0].shape[1])
        return AICSImage(scenes if len(scenes) > 1 else scenes[0], dim_order="TCZYX",
                         channel_names=[names] * len(scenes) if len(scenes) > 1 else names)
    except Exception:
        return None


def _czi_channel_names(meta, n: int) -> List[str]:
    for where in ("./Metadata/Information/Image/Dimensions/Channels/Channel",
                  "./Metadata/DisplaySetting/Channels/Channel"):
        names = [e.get("Name") for e in meta.findall(where)]
        if len(names) == n and all(names):
            return names
    return [f"Channel:{i}" for i in range(n)]


def _read_aics(p: Path, channel, scene, timepoint, meta, checked: bool = False):
    img = open_aics(p, checked)
    if scene is not None:
        img.set_scene(pick(p, "scene", scene, len(img.scenes), "scene(s)"))
    dims = img.dims
    n_s = samples_of(img)
    names = plane_names(img)
    c = pick(p, "channel", channel, len(names), f"channel(s) {names}")
    t = pick(p, "timepoint", timepoint, dims.T, "time point(s)")
    check_declared(p.name, (dims.Z, dims.Y, dims.X), img.dtype)
    select = {"C": c // n_s, "T": t, **({"S": c % n_s} if n_s > 1 else {})}
    arr = np.asarray(img.get_image_data("ZYX", **select))
    if arr.shape[0] == 1:
        arr = arr[0]
    notes = meta.get("notes", []) + default_notes(p.name, len(img.scenes), names, dims.T, scene, channel, timepoint)
    if notes:
        meta["notes"] = notes
    with quiet_readers():
        ps = img.physical_pixel_sizes
    sizes = [pixel_size(v) for v in (ps.Z, ps.Y, ps.X)]
    if p.suffix.lower() in _TIFFS:   # aicsimageio reads OME's (kept, per scene); otherwise resolution without a unit
        import tifffile
        with quiet_readers(p), tifffile.TiffFile(p) as tf:
            if not tf.is_ome:
                sizes = tiff_pixel_size(tf) or [None, None, None]
    meta.update(pixel_size=sizes, channel_names=names, channel=c, scene=img.current_scene, timepoint=t)
    return arr, meta
