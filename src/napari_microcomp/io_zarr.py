"""Reading one image from a zarr store: OME-Zarr (NGFF ≤ 0.4 on zarr format 2, 0.5 on format 3, bioformats2raw
layout) or a plain array.

The store is read here, chunk by chunk, rather than through the zarr library: every size it declares is
checked against the decode budget before anything is allocated, every chunk must decode to exactly its declared
size (a zlib/bz2/lzma "bomb" is stopped at that size, a blosc/zstd/lz4 header that claims more is refused),
chunk files must be regular files (a device or pipe would block or never end), and a store split into more than
a million chunks for the image read is refused rather than walked for hours. Format 3's own parts (codec
pipelines, shards) are in :mod:`napari_microcomp.io_zarr3`.
"""
import itertools
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .io_checks import MAX_CHANNELS, check_declared, default_notes, pick, pixel_size, um_per
from .io_zarr3 import array_meta_v3, is_v3
from .io_zarr_raw import CODECS, MAX_CHUNKS, check_grid, decode_bytes, read_chunk_file, read_json


def is_zarr(path) -> bool:
    """Whether ``path`` is a zarr store (a directory holding zarr metadata), i.e. one image, not a folder."""
    p = Path(path)
    return p.is_dir() and any((p / n).is_file() for n in (".zarray", ".zgroup", ".zattrs", "zarr.json"))


def _inside(root: Path, rel: str, what: str) -> Path:
    """``root/rel`` where ``rel`` is a relative path that stays inside ``root``."""
    if not isinstance(rel, str) or not rel or rel.startswith(("/", "\\")) or ".." in Path(rel).parts:
        raise InputError(f"{root.name}: {what} {rel!r} is not a path inside the store")
    return root / rel


def _image_root(store: Path, scene: Optional[int]) -> Tuple[Path, Dict[str, Any], int, int]:
    """The group (or array) holding the image ``scene`` selects, its attributes, the scene index and count."""
    attrs = _attrs(store)
    if "plate" in attrs or "well" in attrs:
        raise InputError(f"{store.name} is an HCS plate/well; pass one field's image group, e.g. "
                         f"{store.name}/A/1/0")
    if "bioformats2raw.layout" in attrs:   # one image per numbered group: the scenes
        series = sorted(int(d.name) for d in store.iterdir() if d.is_dir() and d.name.isdigit())
        if not series:
            raise InputError(f"{store.name}: a bioformats2raw layout without any image group")
        s = pick(store, "scene", scene, len(series), "scene(s)")
        root = store / str(series[s])
        return root, _attrs(root), s, len(series)
    if scene not in (None, 0, -1):
        raise InputError(f"--scene {scene} is out of range: {store.name} has 1 scene(s)")
    return store, attrs, 0, 1


def _axes(ms: Dict[str, Any], ndim: int, name: str) -> List[str]:
    """One letter per axis: t, c, z, y, x, or '?' for another kind (e.g. an angle), from NGFF 0.3/0.4 axes."""
    axes = ms.get("axes")
    if axes is None:   # NGFF ≤ 0.2: always TCZYX
        return list("tczyx")[-ndim:] if ndim <= 5 else ["?"] * ndim
    if not isinstance(axes, list) or len(axes) != ndim:
        raise InputError(f"{name}: multiscales axes {axes!r} do not match the array's {ndim} dimensions")
    out = []
    for a in axes:
        nm = a.get("name") if isinstance(a, dict) else a
        kind = a.get("type") if isinstance(a, dict) else None
        nm = str(nm).lower()
        out.append("t" if kind == "time" or nm == "t" else "c" if kind == "channel" or nm == "c"
                   else nm if nm in ("z", "y", "x") else "?")
    if out.count("y") != 1 or out.count("x") != 1 or any(out.count(k) > 1 for k in "tcz"):
        raise InputError(f"{name}: axes {[a for a in out]} need exactly one y and one x axis")
    return out


def _product(a, b) -> Optional[float]:
    pa, pb = pixel_size(a), pixel_size(b)   # a crafted "2" is a string, not a number to multiply
    return pa * pb if pa and pb else None


def _scale(ms: Dict[str, Any], dataset: Dict[str, Any], axes: List[str]) -> List[Optional[float]]:
    """Pixel size in µm along z, y, x (None where unknown: no scale, or no or an unknown unit)."""
    scale = [1.0] * len(axes)
    for trans in (dataset.get("coordinateTransformations"), ms.get("coordinateTransformations")):
        for t in trans if isinstance(trans, list) else ():
            if isinstance(t, dict) and t.get("type") == "scale" and isinstance(t.get("scale"), list) \
                    and len(t["scale"]) == len(axes):
                scale = [_product(a, b) for a, b in zip(scale, t["scale"])]
    units = [a.get("unit") if isinstance(a, dict) else None for a in ms.get("axes") or [None] * len(axes)]
    out: List[Optional[float]] = []
    for k in "zyx":
        if k not in axes:
            out.append(None)
            continue
        i = axes.index(k)
        f = um_per(units[i])
        out.append(pixel_size(scale[i] * f) if f and scale[i] else None)
    return out


def _attrs(p: Path) -> Dict[str, Any]:
    """A node's attributes: its .zattrs (format 2) or those in its zarr.json, OME-Zarr 0.5's "ome" ones lifted."""
    if not is_v3(p):
        return read_json(p, ".zattrs")
    a = read_json(p, "zarr.json").get("attributes") or {}
    if not isinstance(a, dict):
        raise InputError(f"{p / 'zarr.json'}: attributes are not a JSON object")
    return {**a, **a["ome"]} if isinstance(a.get("ome"), dict) else a


def zarr_compressor(path) -> Optional[str]:
    """The compressor id of a zarr array's chunks (None: uncompressed), without reading or checking the array."""
    comp = read_json(Path(path), ".zarray").get("compressor")
    return str(comp.get("id")) if isinstance(comp, dict) else None


def _array_meta(root: Path, name: str) -> Dict[str, Any]:
    """What reading the array at ``root`` needs: shape, chunks, dtype (native order), fill value, and per chunk
    its file (``key``), the most bytes any coding of it takes (``max_bytes``) and its decoder (``decode``)."""
    if is_v3(root):
        return array_meta_v3(root, name)
    m = read_json(root, ".zarray")
    if not m:
        arrays = sorted(d.name for d in root.iterdir()
                        if (d / ".zarray").is_file() or is_v3(d))[:5] if root.is_dir() else []
        hint = f"; pass an array inside it, e.g. {root / arrays[0]}" if arrays else ""
        raise InputError(f"{name}: {root} is not a zarr array nor an OME-Zarr image (no multiscales){hint}")
    if m.get("zarr_format") != 2:
        raise InputError(f"{name}: zarr_format {m.get('zarr_format')!r} is not supported (format 2 is)")
    shape, chunks = check_grid(m.get("shape"), m.get("chunks"), f"{name}: .zarray")
    try:
        dtype = np.dtype(m.get("dtype"))
    except (TypeError, ValueError):
        raise InputError(f"{name}: unsupported dtype {m.get('dtype')!r} in .zarray") from None
    if dtype.kind not in "uifb" or dtype.itemsize > 8:
        raise InputError(f"{name}: unsupported pixel type {dtype} (integer or floating-point pixels expected)")
    if m.get("order", "C") not in ("C", "F"):
        raise InputError(f"{name}: unknown memory order {m.get('order')!r}")
    if m.get("filters"):
        ids = [f.get("id") if isinstance(f, dict) else f for f in m["filters"]]
        raise InputError(f"{name}: zarr filters {ids} are not supported; rewrite the array without filters")
    comp = m.get("compressor")
    if isinstance(comp, dict) and comp.get("id") == "microcomp":
        raise InputError(f"{name}: its chunks are microcomp streams (`microcomp compress --zarr`); decode it with "
                         "`microcomp decompress` (or open it in napari with its zarr reader)")
    if comp is not None and (not isinstance(comp, dict) or comp.get("id") not in CODECS):
        raise InputError(f"{name}: compressor {comp!r} is not supported (supported: {', '.join(CODECS)})")
    sep = m.get("dimension_separator", ".")
    if sep not in (".", "/"):
        raise InputError(f"{name}: dimension_separator {sep!r} is not '.' or '/'")
    check_declared(f"{name} (one chunk)", chunks, dtype)   # each chunk is decoded whole
    fill = m.get("fill_value")
    try:
        fill = dtype.type(0 if fill is None else fill)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name}: fill_value {fill!r} does not fit {dtype}") from None
    n = math.prod(chunks) * dtype.itemsize
    order = m.get("order", "C")

    def decode(raw: bytes, where: str) -> np.ndarray:
        a = np.frombuffer(decode_bytes(raw, comp, n, where), dtype).reshape(chunks, order=order)
        return a.astype(dtype.newbyteorder("="), copy=False)

    return {"shape": shape, "chunks": chunks, "dtype": dtype.newbyteorder("="), "fill": fill,
            "key": lambda idx: sep.join(map(str, idx)), "max_bytes": 2 * n + (1 << 16), "decode": decode}


def _read_chunk(root: Path, idx: Tuple[int, ...], m: Dict[str, Any], name: str) -> Optional[np.ndarray]:
    key = m["key"](idx)
    raw = read_chunk_file(root, key, m["max_bytes"], name)
    return None if raw is None else m["decode"](raw, f"{name} chunk {key}")


def _read_region(root: Path, m: Dict[str, Any], sel: List[Any], name: str, notes: List[str]) -> np.ndarray:
    """The part of the array ``sel`` selects: per axis an int (the axis is dropped), None (whole) or a slice
    with step 1; only the chunks it touches are read."""
    shape, chunks = m["shape"], m["chunks"]
    sel = [slice(0, n) if i is None else slice(*i.indices(n)) if isinstance(i, slice) else i
           for i, n in zip(sel, shape)]
    out_shape = [max(0, i.stop - i.start) for i in sel if isinstance(i, slice)]
    check_declared(name, out_shape, m["dtype"])
    out = np.full(out_shape, m["fill"], dtype=m["dtype"])
    ranges = [range(i.start // c, math.ceil(i.stop / c)) if isinstance(i, slice) else [i // c]
              for i, c in zip(sel, chunks)]
    n_chunks = math.prod(len(r) for r in ranges) * m.get("per_chunk", 1)   # inner chunks of shards count
    if n_chunks > MAX_CHUNKS:
        raise InputError(f"{name}: the image is split into {n_chunks} chunks of {chunks}; more than {MAX_CHUNKS} "
                         "are not read (rechunk it)")
    absent = total = 0
    for idx in itertools.product(*ranges):
        total += 1
        chunk = _read_chunk(root, idx, m, name)
        if chunk is None:
            absent += 1
            continue
        src, dst = [], []
        for k, c, i in zip(idx, chunks, sel):
            if isinstance(i, slice):
                lo, hi = max(i.start, k * c), min(i.stop, k * c + c)
                src.append(slice(lo - k * c, hi - k * c))
                dst.append(slice(lo - i.start, hi - i.start))
            else:
                src.append(i - k * c)
        out[tuple(dst)] = chunk[tuple(src)]
    if absent:
        notes.append(f"{name}: {absent} of {total} chunk(s) absent, read as the fill value {m['fill']!r}")
    return out


def _open(store: Path, scene: Optional[int]) -> Dict[str, Any]:
    """What a read needs: the level-0 array's metadata and folder, its axes, channel names, pixel sizes, scene."""
    root, attrs, s, n_scenes = _image_root(store, scene)
    ms_list = attrs.get("multiscales")
    ms: Dict[str, Any] = ms_list[0] if isinstance(ms_list, list) and ms_list and isinstance(ms_list[0], dict) else {}
    dataset: Dict[str, Any] = {}
    if ms:
        datasets = ms.get("datasets")
        if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], dict):
            raise InputError(f"{store.name}: multiscales without datasets")
        dataset = datasets[0]
        root = _inside(root, dataset.get("path"), "dataset path")
    m = _array_meta(root, store.name)
    axes = _axes(ms, len(m["shape"]), store.name) if ms else list("tczyx")[-len(m["shape"]):]
    if len(axes) < len(m["shape"]):
        raise InputError(f"{store.name}: {len(m['shape'])} dimensions without NGFF axes; expected at most 5 (TCZYX)")
    for a, n in zip(axes, m["shape"]):
        if a == "?" and n > 1:
            raise InputError(f"{store.name}: an axis that is not t, c, z, y or x has {n} planes; not supported")
    size = dict(zip(axes, m["shape"]))
    if size.get("c", 1) > MAX_CHANNELS:   # each would become a name here, and a layer in napari
        raise InputError(f"{store.name} declares {size['c']:,} channels; more than {MAX_CHANNELS:,} are not read")
    names = []
    omero = attrs.get("omero")
    chans = omero.get("channels") if isinstance(omero, dict) else None
    if isinstance(chans, list) and len(chans) == size.get("c", 1):
        names = [str(c.get("label", f"C{i}")) if isinstance(c, dict) else f"C{i}" for i, c in enumerate(chans)]
    return {"root": root, "m": m, "axes": axes, "size": size, "scene": s, "n_scenes": n_scenes,
            "names": names or [f"C{i}" for i in range(size.get("c", 1))],
            "pixel_size": _scale(ms, dataset, axes) if ms else [None] * 3}


def read_zarr(path, channel: Optional[int] = None, scene: Optional[int] = None,
              timepoint: Optional[int] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """One single-channel (Z, Y, X) or (Y, X) image from a zarr store: the full-resolution level of an OME-Zarr
    image (its first multiscales dataset), or a plain zarr array. ``channel``/``timepoint`` pick along the c/t axes,
    ``scene`` the series of a bioformats2raw layout; pixel sizes (µm) come from the NGFF scale and units."""
    view = ZarrView(path, channel, timepoint, scene)
    arr = view[()]
    notes = default_notes(view.name, view.n_scenes, view.meta["channel_names"], view.n_timepoints, scene, channel,
                          timepoint) + view.notes
    meta: Dict[str, Any] = {"source": str(path), **view.meta}
    if notes:
        meta["notes"] = notes
    return arr, meta


def read_zarr_all(path, scene: Optional[int] = None,
                  lazy_above: Optional[int] = None) -> Tuple[Any, str, Dict[str, Any]]:
    """Every channel and time point of a store's image (for napari): the array, its axes (a subset of "tczyx",
    in store order, other axes of one plane dropped) and meta as :func:`read_zarr`'s plus ``n_scenes``. Larger
    than ``lazy_above`` bytes, the array is a dask array whose chunks are the store's, each read when needed."""
    store = Path(path)
    notes: List[str] = []
    o = _open(store, scene)
    sel = [0 if a == "?" else None for a in o["axes"]]
    m = o["m"]
    if lazy_above is not None and math.prod(m["shape"]) * m["dtype"].itemsize > lazy_above:
        import dask.array as da
        level = _Level(o["root"], m, store.name)
        arr = da.from_array(level, chunks=tuple(m["chunks"]), asarray=True)[tuple(slice(None) if i is None else i
                                                                                    for i in sel)]
    else:
        arr = _read_region(o["root"], m, sel, store.name, notes)
    axes = "".join(a for a in o["axes"] if a != "?")
    meta = {"source": str(store), "pixel_size": o["pixel_size"], "channel_names": o["names"], "scene": o["scene"],
            "n_scenes": o["n_scenes"], "notes": notes}
    return arr, axes, meta


class _Level:
    """A whole level of a store as dask reads it: ``shape``, ``dtype``, ``ndim``, slicing (``_read_region``)."""

    def __init__(self, root: Path, m: Dict[str, Any], name: str):
        self._root, self._m, self._name = root, m, name
        self.shape, self.dtype, self.ndim = tuple(m["shape"]), m["dtype"], len(m["shape"])

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return _read_region(self._root, self._m, list(key) + [None] * (self.ndim - len(key)), self._name, [])


class ZarrView:
    """A lazy (Z, Y, X) or (Y, X) view of a store's image at one channel and time point (``compress-tiled``):
    ``shape``, ``dtype``, ``ndim``, and slicing with ints and step-1 slices, which reads only the chunks it
    touches. What a read noticed (absent chunks) collects in ``notes``."""

    def __init__(self, path, channel: Optional[int] = None, timepoint: Optional[int] = None,
                 scene: Optional[int] = None):
        self._path = Path(path)
        self.name = self._path.name
        self.notes: List[str] = []
        o = _open(self._path, scene)
        self.n_scenes, self.n_timepoints = o["n_scenes"], o["size"].get("t", 1)
        c = pick(self._path, "channel", channel, o["size"].get("c", 1), f"channel(s) {o['names']}")
        t = pick(self._path, "timepoint", timepoint, o["size"].get("t", 1), "time point(s)")
        self._root, self._m = o["root"], o["m"]
        # fixed: c, t, other axes; dropped too: a z axis of one plane
        self._fixed = [c if a == "c" else t if a == "t" else 0 if a == "?" or (a == "z" and n == 1) else None
                       for a, n in zip(o["axes"], o["m"]["shape"])]
        self.shape = tuple(n for n, i in zip(o["m"]["shape"], self._fixed) if i is None)
        self.dtype, self.ndim = o["m"]["dtype"], len(self.shape)
        self.meta = {"pixel_size": o["pixel_size"], "channel_names": o["names"], "channel": c, "timepoint": t,
                     "scene": o["scene"]}

    def __getitem__(self, key) -> np.ndarray:
        key = list(key if isinstance(key, tuple) else (key,))
        if len(key) > self.ndim or any(not isinstance(k, (int, np.integer, slice)) or
                                       (isinstance(k, slice) and k.step not in (None, 1)) for k in key):
            raise IndexError(f"ZarrView takes up to {self.ndim} ints or step-1 slices, got {key!r}")
        key += [slice(None)] * (self.ndim - len(key))
        it = iter(key)
        sel: List[Any] = []
        for i, n in zip(self._fixed, self._m["shape"]):
            k = i if i is not None else next(it)
            if not isinstance(k, slice) and not -n <= int(k) < n:
                raise IndexError(f"index {k} is out of range for an axis of {n}")
            sel.append(k if isinstance(k, slice) else int(k) % n)
        return _read_region(self._root, self._m, sel, self.name, self.notes)
