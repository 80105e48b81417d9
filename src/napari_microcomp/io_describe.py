"""What an image file holds, without coding it: its scenes (image series), each one's axes, type, channel names
and pixel size, so that a user can pick ``--scene`` / ``--channel`` / ``--timepoint`` (``microcomp info``)."""
import json
from typing import Any, Dict, List, Optional

import numpy as np

from ._validate import looks_like_colour
from .container import decode_budget
from .errors import InputError, MicrocompError
from .io import FILE_KINDS, VENDOR_SUFFIXES, image_source, open_aics, plane_names, read_image, unreadable
from .io_checks import pixel_size, quiet_readers
from .io_zarr import is_zarr, zarr_compressor
from .io_zarr_raw import check_grid, read_json

MAX_LISTED = 50   # scenes described; a plate scan can hold thousands
HEADER_ONLY_BYTES = 256 * 2**20   # above this, a plain NPY/TIFF is described from its header, not read


def describe_image(path) -> Dict[str, Any]:
    """{"file", "kind", "scenes": [{"name", "dtype", "axes": {axis: size}, "channels", "pixel_size_um"}],
    "scene_count"} for an image file or zarr store (a damaged one raises InputError, as ``read_image``)."""
    p = image_source(path)
    suffix = p.suffix.lower()
    out: Dict[str, Any] = {"file": str(p), "kind": FILE_KINDS.get(suffix, suffix.lstrip(".").upper() or "zarr")}
    if is_zarr(p) and zarr_compressor(p) == "microcomp":
        return _stream_store(p, out)
    if p.name.lower().endswith(VENDOR_SUFFIXES) and p.is_file():
        try:
            img = open_aics(p)
            scenes: List[Dict[str, Any]] = []
            for name in list(img.scenes)[:MAX_LISTED]:
                img.set_scene(name)
                with quiet_readers():
                    ps = img.physical_pixel_sizes
                axes = {a: int(n) for a, n in zip(img.dims.order, img.shape) if n > 1 or a in "YX"}
                scenes.append({"name": str(name), "dtype": str(img.dtype), "axes": axes,
                               "channels": plane_names(img), "pixel_size_um": [pixel_size(v) for v in ps]})
            out.update(scene_count=len(img.scenes), scenes=scenes)
            return out
        except MicrocompError:
            raise
        except Exception as exc:  # third-party readers raise anything on a corrupt file
            raise unreadable(p, exc) from exc
    try:
        head = _large_plain_file(p, suffix)
    except MicrocompError:
        raise
    except Exception as exc:  # a damaged header: the reason, as read_image gives it
        raise unreadable(p, exc) from exc
    if head is not None:
        out.update(scene_count=1, scenes=[head])
        out["notes"] = [f"{p.name} is large ({_gib(head)} GiB): described from its header, not read"
                        + ("; above the decode budget, `microcomp compress-tiled` codes it tile by tile"
                           if _nbytes(head) > decode_budget() else "")]
        return out
    a, meta = read_image(p)   # what compress reads by default; its notes name the other channels and planes
    axes = dict(zip(_letters(a.shape), (int(n) for n in a.shape)))
    out.update(scene_count=1, scenes=[{"name": p.name, "dtype": str(a.dtype), "axes": axes,
                                       "channels": list(meta.get("channel_names") or []),
                                       "pixel_size_um": list(meta.get("pixel_size") or [None] * 3)}],
               notes=list(meta.get("notes") or []))
    if looks_like_colour(a.shape):
        out["notes"].append(f"{p.name} holds {a.shape[-1]} colour samples per pixel; microcomp codes one channel: "
                            "choose it with --channel N")
    return out


def _letters(shape) -> List[str]:
    """Axis names for an array as compress reads it: Z Y X, colour samples as S, and more axes than an image has
    as axis0, axis1, … (compress refuses those and asks for one channel or plane; naming them Z or S misleads)."""
    if looks_like_colour(shape):
        return ["Y", "X", "S"]
    if len(shape) <= 3:
        return list("ZYX"[-len(shape):]) if shape else []
    return [f"axis{i}" for i in range(len(shape) - 2)] + ["Y", "X"]


def _large_plain_file(p, suffix: str) -> Optional[Dict[str, Any]]:
    """A scene's description from the header of a large NPY or single-series grey TIFF (Z, Y, X), which reading
    would take long or be refused by the decode budget; None for anything else (read as compress reads it)."""
    size = None
    if suffix == ".npy":
        a = np.load(p, mmap_mode="r", allow_pickle=False)   # the header only
        shape, dtype = tuple(n for n in a.shape if n != 1), a.dtype
        samples = len(shape) == 3 and 2 <= shape[-1] <= 4 and min(shape[:2]) > 4   # RGB(A): the reader decides
        letters = "ZYX"[-len(shape):] if 2 <= len(shape) <= 3 and not samples and dtype.kind in "uif" else ""
    elif suffix in (".tif", ".tiff"):
        import tifffile

        from .io_checks import tiff_pixel_size
        from .tiff_check import check_tiff
        with quiet_readers(p), tifffile.TiffFile(p) as tf:
            check_tiff(tf, p.name)   # before its series are parsed (OME plane counts, missing files)
            series = tf.series[0]
            shape, dtype, letters = series.shape, series.dtype, series.axes
            if len(tf.series) > 1 or set(letters) - set("ZQIYX"):
                return None   # channels, samples, time or more series: the readers' choices apply
            size = tiff_pixel_size(tf)
    else:
        return None
    if not letters or float(np.prod([float(n) for n in shape])) * np.dtype(dtype).itemsize <= HEADER_ONLY_BYTES:
        return None
    axes = {("Z" if a in "QI" else a): int(n) for a, n in zip(letters, shape) if n > 1 or a in "YX"}
    return {"name": p.name, "dtype": str(np.dtype(dtype).newbyteorder("=")), "axes": axes, "channels": [],
            "pixel_size_um": list(size or [None] * 3)}


def _nbytes(scene: Dict[str, Any]) -> float:
    return float(np.prod(list(scene["axes"].values()))) * np.dtype(scene["dtype"]).itemsize


def _gib(scene: Dict[str, Any]) -> str:
    return f"{_nbytes(scene) / 2**30:.3g}"


def _stream_store(p, out: Dict[str, Any]) -> Dict[str, Any]:
    """A zarr array of microcomp streams (``compress --zarr``): its shape, type, chunks and codec, from .zarray."""
    m = read_json(p, ".zarray")
    shape, chunks = check_grid(m.get("shape"), m.get("chunks"), f"{p.name}: .zarray")
    try:
        dtype = str(np.dtype(m.get("dtype")).newbyteorder("="))
    except (TypeError, ValueError):
        raise InputError(f"{p.name}: unsupported dtype {m.get('dtype')!r} in .zarray") from None
    axes = dict(zip("TCZYX"[-len(shape):] if len(shape) <= 5 else range(len(shape)), shape))
    out.update(kind="zarr of microcomp streams", scene_count=1, chunks=chunks, codec=m.get("compressor"),
               scenes=[{"name": p.name, "dtype": dtype, "axes": axes, "channels": [], "pixel_size_um": [None] * 3}])
    return out


def format_description(d: Dict[str, Any]) -> List[str]:
    """``describe_image``'s result as the lines ``microcomp info`` prints."""
    n = d["scene_count"]
    lines = [f"file:       {d['file']} ({d['kind']} image, {n} scene{'s' if n != 1 else ''})"]
    for i, s in enumerate(d["scenes"]):
        axes = " ".join(f"{a}={k}" for a, k in s["axes"].items())
        lines.append(f"scene {i}:{' ' * max(1, 4 - len(str(i)))}{s['name']}: {s['dtype']} {axes}")
        if s["channels"]:
            lines.append(f"            channels: {', '.join(f'{c}={name}' for c, name in enumerate(s['channels']))}")
        sizes = s["pixel_size_um"]
        if any(sizes):
            lines.append("            pixel size (z, y, x): " + ", ".join("?" if v is None else f"{v:g} µm"
                                                                            for v in sizes))
    if d.get("codec"):
        lines.append(f"codec:      {json.dumps(d['codec'])}, chunks {d['chunks']}")
    if n > len(d["scenes"]):
        lines.append(f"            … and {n - len(d['scenes'])} more scene(s)")
    lines += [f"note:       {t}" for t in d.get("notes", [])]
    return lines
