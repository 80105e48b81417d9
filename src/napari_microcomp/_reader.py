"""npe2 reader: opens microcomp compressed files (``.mcz``) and vendor microscopy files as image layers.

Vendor files (Zeiss CZI and LSM, Nikon ND2, OME-TIFF, Leica LIF, DeltaVision DV, Olympus OIB) are read with
aicsimageio (LSM by ``io_lsm``, as an in-memory AICSImage; LIF, DV and OIB by ``io_lif`` / ``io_dv`` / ``io_oib``,
plane by plane): one layer per channel (napari's ``channel_axis``), named after the channel (and per colour sample
of RGB files: "… sample 0", "… sample 1", …), with the physical pixel sizes as layer scale; singleton T/Z axes
are dropped, so a layer is (T, Z, Y, X), (T, Y, X), (Z, Y, X) or (Y, X). Every scene is opened (up to
``MAX_SCENES``, and ``MAX_CHANNEL_LAYERS`` channels each, said in a warning). The axes are kept in
``layer.metadata["microcomp"]["axes"]``; the widgets process the time point shown in the viewer for 4D layers. A
CZI whose metadata aicsimageio cannot parse is read with aicspylibczi (:func:`napari_microcomp.io.open_aics`).

Files are recognised by their magic bytes (``b"\\x89MCZ"``), not only their extension. The
stream is decoded with :func:`napari_microcomp.codecs.decode`, which checks every payload and,
where the codec recorded one, the checksum of the reconstruction: a damaged file raises a
``StreamError`` with a message for the user instead of showing wrong pixels.
"""
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .container import is_stream
from .io import VENDOR_SUFFIXES
from .io_zarr import is_zarr

PathLike = Union[str, Path]
LayerData = Tuple[Any, Dict[str, Any], str]


def _is_mcz(path: PathLike) -> bool:
    return Path(path).is_file() and is_stream(path)


EAGER_BYTES = 512 * 2**20  # larger files are opened lazily (dask)
MAX_SCENES = 16
MAX_CHANNEL_LAYERS = 256   # each channel is a napari layer (~0.1 s to add): a file may declare thousands


def _capped(p: Path, n: int, cap: int, what: str, option: str) -> int:
    """``min(n, cap)``, with a warning (napari shows it) where the file holds more."""
    if n > cap:
        warnings.warn(f"{p.name} holds {n:,} {what}; opened the first {cap} (the CLI reads any other with "
                      f"{option})", stacklevel=3)
    return min(n, cap)


def _is_vendor(path: PathLike) -> bool:
    name = Path(path).name.lower()
    return Path(path).is_file() and name.endswith(VENDOR_SUFFIXES)


def napari_get_reader(path: Union[PathLike, Sequence[PathLike]]) -> Optional[Callable]:
    """:func:`read_mcz` when every path is a microcomp stream, :func:`read_microscopy` when every path is a
    CZI/LSM/ND2/LIF/DV/OIB/OME-TIFF file, :func:`read_zarr_layers` when every path is a zarr store, else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        return None
    if all(_is_mcz(p) for p in paths):
        return read_mcz
    if all(_is_vendor(p) for p in paths):
        return read_microscopy
    if all(is_zarr(p) for p in paths):
        return read_zarr_layers
    return None


def _size(v) -> float:
    from .io import pixel_size

    return pixel_size(v) or 1.0  # aicsimageio reports None or 0.0 where the file has no size


def read_microscopy(path: Union[PathLike, Sequence[PathLike]]) -> List[LayerData]:
    """Open CZI/LSM/ND2/LIF/DV/OIB/OME-TIFF files: one layer per channel and scene, with pixel sizes as scale."""
    from .errors import InputError
    from .io import open_aics

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: List[LayerData] = []
    for p in paths:
        p = Path(p)
        try:
            img = open_aics(p)
            scenes = list(img.scenes)[:_capped(p, len(img.scenes), MAX_SCENES, "scenes", "--scene")]
            for scene in scenes:
                img.set_scene(scene)
                layers.append(_scene_layer(img, p, scene if len(scenes) > 1 else None))
        except InputError:   # already says what is wrong with the file
            raise
        except ImportError as exc:
            raise InputError(f"cannot open {p.name}: {exc} (for .czi files install "
                             "aicspylibczi; for .nd2, nd2)") from exc
        except Exception as exc:  # vendor readers raise anything on files they do not understand
            raise InputError(f"cannot open {p.name}: {type(exc).__name__}: {exc}") from exc
    return layers


def read_zarr_layers(path: Union[PathLike, Sequence[PathLike]]) -> List[LayerData]:
    """Open OME-Zarr (0.4/0.5) / zarr stores like vendor files: one layer per channel and scene (up to
    ``MAX_SCENES``), axes (T, Z, Y, X) with singletons dropped, NGFF pixel sizes as scale. A zarr array of
    microcomp streams (``compress --zarr``) opens lazily, each chunk decoded and checked when shown."""
    from .io_zarr import read_zarr_all, zarr_compressor

    layers: List[LayerData] = []
    for p in map(Path, [path] if isinstance(path, (str, Path)) else path):
        if zarr_compressor(p) == "microcomp":   # written by compress --zarr
            from .zarr_codecs import open_zarr

            layers.append((open_zarr(p), {"name": p.stem, "metadata": {"microcomp": {"file": str(p)}}}, "image"))
            continue
        scene, n = 0, 1
        while scene < min(n, MAX_SCENES):
            arr, axes, meta = read_zarr_all(p, scene, lazy_above=EAGER_BYTES)
            if scene == 0:
                n = _capped(p, meta["n_scenes"], MAX_SCENES, "scenes", "--scene")
            for note in meta["notes"]:
                warnings.warn(note, stacklevel=2)
            order = [axes.index(a) for a in "tczyx" if a in axes]   # numpy or dask alike from here
            arr, axes = arr.transpose(order), "".join(axes[i] for i in order)
            if "c" not in axes:
                arr, axes = arr[None], "c" + axes
            first = [axes.index("c")] + [i for i, a in enumerate(axes) if a != "c"]
            arr, axes = arr.transpose(first), "c" + axes.replace("c", "")
            drop = tuple(0 if a in "tz" and arr.shape[i] == 1 else slice(None) for i, a in enumerate(axes))
            arr = arr[drop]
            layer_axes = "".join(a for a, d in zip(axes, drop) if a != "c" and not isinstance(d, int)).upper()
            z, y, x = (v or 1.0 for v in meta["pixel_size"])
            scale = [{"T": 1.0, "Z": z, "Y": y, "X": x}[a] for a in layer_axes]
            stem = p.name[: -len(".zarr")] if p.name.lower().endswith(".zarr") else p.name
            stem = stem[: -len(".ome")] if stem.lower().endswith(".ome") else stem
            prefix = stem + (f" [{scene}]" if n > 1 else "")
            k = _capped(p, len(meta["channel_names"]), MAX_CHANNEL_LAYERS, "channels", "--channel")
            arr, names = arr[:k], meta["channel_names"][:k]
            md = [{"microcomp": {"file": str(p), "axes": layer_axes, "channel": c, "scene": scene,
                                 "pixel_size_um": scale}} for c in names]
            if len(names) == 1:
                layers.append((arr[0], {"name": f"{prefix} {names[0]}", "scale": scale, "metadata": md[0]}, "image"))
            else:
                layers.append((arr, {"name": [f"{prefix} {c}" for c in names], "scale": scale, "metadata": md,
                                     "channel_axis": 0}, "image"))
            scene += 1
    return layers


def _scene_layer(img, p: Path, scene: Optional[str]) -> LayerData:
    from .io import plane_names, samples_of

    dims = img.dims
    keep = [ax for ax in "TZ" if getattr(dims, ax) > 1]
    axes = "".join(keep) + "YX"
    n_s = samples_of(img)
    stack = "C" + ("S" if n_s > 1 else "")   # RGB samples become layers like channels: none is dropped
    t = "T" if keep[:1] == ["T"] else ""
    order = t + stack + axes[len(t):]
    nbytes = int(np.prod(img.shape)) * np.dtype(img.dtype).itemsize
    data = img.get_image_data(order) if nbytes <= EAGER_BYTES else img.get_image_dask_data(order)
    at = len(t)
    data = data.reshape(data.shape[:at] + (-1,) + data.shape[at + len(stack):])  # (C, S) -> one axis
    ps = img.physical_pixel_sizes
    sizes = {"T": 1.0, "Z": _size(ps.Z), "Y": _size(ps.Y), "X": _size(ps.X)}
    k = _capped(p, data.shape[at], MAX_CHANNEL_LAYERS, "channels" + (f" in scene {scene}" if scene else ""),
                "--channel")
    data, names = data[(slice(None),) * at + (slice(0, k),)], plane_names(img)[:k]
    prefix = p.stem + (f" [{scene}]" if scene else "")
    meta = [{"microcomp": {"file": str(p), "axes": axes, "channel": c, "scene": img.current_scene,
                           "pixel_size_um": [sizes[a] for a in axes]}} for c in names]
    scale = [sizes[a] for a in axes]
    if len(names) == 1:
        return (data[(slice(None),) * at + (0,)], {"name": f"{prefix} {names[0]}", "scale": scale,
                                                   "metadata": meta[0]}, "image")
    return (data, {"name": [f"{prefix} {c}" for c in names], "scale": scale, "metadata": meta,
                   "channel_axis": at}, "image")


def _display_vector(meta: Dict[str, Any], key: str, ndim: int, positive: bool) -> Optional[List[float]]:
    """``meta[key]`` as ``ndim`` finite floats (> 0 if ``positive``), else None with a warning.

    Display metadata only: the pixels decoded and passed their checksums, so a crafted or foreign value
    here is ignored (the layer opens unscaled) rather than refusing the file.
    """
    value = meta.get(key)
    ok = isinstance(value, (list, tuple)) and len(value) == ndim and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        for v in value)
    if not ok:
        warnings.warn(f"ignoring the stream's {key} {value!r}: expected {ndim} finite"
                      f"{' positive' if positive else ''} numbers", stacklevel=3)
        return None
    return [float(v) for v in value]


def _layer_kwargs(header: Dict[str, Any], ndim: int, default_name: str) -> Dict[str, Any]:
    meta = dict(header.get("meta") or {})
    name = meta.get("name")
    names, c = meta.get("channel_names"), meta.get("channel")
    if isinstance(names, list) and len(names) > 1 and isinstance(c, int) and not isinstance(c, bool) \
            and 0 <= c < len(names):   # one channel of a multi-channel file: say which
        default_name = f"{default_name} {str(names[c])[:40]}"
    kwargs: Dict[str, Any] = {"name": name if isinstance(name, str) and name else default_name}
    ps = meta.get("pixel_size")
    if meta.get("scale") is None and isinstance(ps, (list, tuple)) and len(ps) >= ndim:
        meta["scale"] = [s if s is not None and s != 0 else 1.0 for s in ps[-ndim:]]  # None/0: not recorded
    for key, positive in (("scale", True), ("translate", False)):
        if meta.get(key) is not None:
            vec = _display_vector(meta, key, ndim, positive)
            if vec is not None:
                kwargs[key] = vec
    kwargs["metadata"] = {"microcomp": {"header": header}}
    return kwargs


def read_mcz(path: Union[PathLike, Sequence[PathLike]]) -> List[LayerData]:
    """Decode one or more ``.mcz`` files into napari image layer data."""
    from .codecs import decode
    from .codecs.registry import info

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: List[LayerData] = []
    for p in paths:
        data = Path(p).read_bytes()
        header = info(data)
        array = decode(data)
        layers.append((array, _layer_kwargs(header, array.ndim, Path(p).stem), "image"))
    return layers
