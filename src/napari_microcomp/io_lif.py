"""Leica LIF files (LAS AF / LAS X projects), parsed here and read lazily through a small aicsimageio Reader.

Why not aicsimageio's LifReader: it needs readlif, whose current release requires numpy >= 2 (CompressAI needs
< 2), and readlif pairs memory blocks with images by their order, pads a truncated file with blank planes and
ignores each channel's byte offset (interleaved RGB reads wrong). Here every image finds its block by
MemoryBlockID, every pixel is addressed by the byte increments the file declares (read plane by plane), and a
layout that does not fit its block, or a block that the file does not hold, is refused. One scene per image
element, axes (T, C, Z, Y, X).
"""
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .io_checks import MAX_CHANNELS, check_declared, pixel_size, um_per

_MAGIC, _SEP = 0x70, 0x2A
_MAX_BLOCKS = 200_000
_AXES = {1: "X", 2: "Y", 3: "Z", 4: "T"}
_OTHER_DIMS = {5: "a λ (spectral) scan", 6: "a rotation series", 9: "an excitation λ scan",
               10: "mosaic tiles (export the merged image)"}


class Unsupported(InputError):
    """An image of a kind not read here (a λ scan, mosaic tiles, a line scan, 24-bit samples); like an image whose
    own header is damaged, skipped (with a warning) when the project holds others that read."""


def _fail(p: Path, what: str) -> InputError:
    return InputError(f"{p.name} is not a readable Leica LIF file: {what}")


def parse_lif(p: Path) -> Tuple[ET.Element, Dict[str, Tuple[int, int]]]:
    """(the XML header's root, {memory block id: (data offset, size)}) of the LIF file ``p``."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(13)
        if len(head) < 13 or struct.unpack_from("<I", head)[0] != _MAGIC or head[8] != _SEP:
            raise _fail(p, "no LIF header")
        n = struct.unpack_from("<I", head, 9)[0]
        if 13 + 2 * n > size:
            raise _fail(p, "its XML header runs past the end of the file (truncated)")
        try:
            root = ET.fromstring(f.read(2 * n).decode("utf-16-le"))
        except (UnicodeDecodeError, ET.ParseError) as exc:
            raise _fail(p, f"its XML header is damaged ({exc})") from exc
        return root, _blocks(p, f, 13 + 2 * n, size)


def _blocks(p: Path, f, at: int, size: int) -> Dict[str, Tuple[int, int]]:
    """Each memory block: magic, a length, 0x2A, its size (32-bit in version 1 files, 64-bit in version 2: told
    apart by where the next 0x2A lies, as files do not always say), 0x2A, its name (UTF-16), its data."""
    blocks: Dict[str, Tuple[int, int]] = {}
    while at < size:
        f.seek(at)
        head = f.read(22)
        if len(head) < 18:
            raise _fail(p, f"truncated inside a memory block header at byte {at}")
        magic, _, s1 = struct.unpack_from("<IIB", head)
        wide = head[13] != _SEP
        fmt = "<QBI" if wide else "<IBI"
        if magic != _MAGIC or s1 != _SEP or len(head) < 9 + struct.calcsize(fmt):
            raise _fail(p, f"damaged memory block header at byte {at}")
        n_bytes, s2, n_chars = struct.unpack_from(fmt, head, 9)
        if s2 != _SEP:
            raise _fail(p, f"damaged memory block header at byte {at}")
        start = at + 9 + struct.calcsize(fmt)
        f.seek(start)
        name = f.read(2 * n_chars)
        start += 2 * n_chars
        if len(name) < 2 * n_chars or start + n_bytes > size:
            raise InputError(f"{p.name} is truncated: a memory block that starts at byte {at} needs "
                             f"{start + n_bytes} bytes, the file has {size}; refusing to read it")
        try:
            key = name.decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise _fail(p, f"damaged memory block name at byte {at}") from exc
        blocks[key] = (start, n_bytes)
        if len(blocks) > _MAX_BLOCKS:
            raise _fail(p, f"more than {_MAX_BLOCKS} memory blocks")
        at = start + n_bytes
    return blocks


class LifImage:
    """One image element: its name, shape (T, C, Z, Y, X), channel dtypes and byte layout, pixel sizes."""

    def __init__(self, p: Path, name: str, elem: ET.Element, block: Tuple[int, int]):
        self.path, self.name = p, name
        desc = elem.find("./Data/Image/ImageDescription")
        dims = {}
        for d in desc.findall("./Dimensions/DimensionDescription"):
            dim_id, count, inc = _int(d, "DimID"), _int(d, "NumberOfElements"), _int(d, "BytesInc")
            if dim_id in dims or count < 1 or inc < 0:
                raise self._bad(f"dimension {dim_id} declared twice, with no elements or a negative byte increment")
            dims[dim_id] = (count, inc, d)
        for dim_id, (count, _, _) in dims.items():
            if dim_id not in _AXES and count > 1:
                raise Unsupported(f"{p.name}, image {name!r}, holds "
                                 f"{_OTHER_DIMS.get(dim_id, f'a dimension of type {dim_id}')}; "
                                 "only x-y images, z-stacks and time series are read")
        if 1 not in dims or 2 not in dims:
            raise Unsupported(f"{p.name}, image {name!r}, is a line or point scan (no x-y plane); not read")
        chans = desc.findall("./Channels/ChannelDescription")
        if not 1 <= len(chans) <= MAX_CHANNELS:
            raise self._bad(f"{len(chans)} channels")
        self.dtypes = [_dtype(c, self) for c in chans]
        self.offsets = [_int(c, "BytesInc") for c in chans]
        self.names = _names(chans)
        get = {a: dims.get(i, (1, 0, None)) for i, a in _AXES.items()}
        self.shape = tuple(get[a][0] for a in "T") + (len(chans),) + tuple(get[a][0] for a in "ZYX")
        self.strides = tuple(get[a][1] for a in "TZYX")
        self.sizes = [_step(get[a][2], get[a][0]) for a in "ZYX"]
        self.block = block
        self._check_layout()

    def _bad(self, what: str) -> InputError:
        return InputError(f"{self.path.name}, image {self.name!r}: {what}; its header is damaged, not read")

    def _check_layout(self) -> None:
        """Every pixel of every channel lies inside the block and no two share a byte."""
        item = max(np.dtype(d).itemsize for d in self.dtypes)
        axes = [(n, s) for n, s in zip(self.shape[:1] + self.shape[2:], self.strides) if n > 1]
        offs = sorted(self.offsets)
        if offs[0] < 0:
            raise self._bad(f"a channel at byte offset {offs[0]}")
        if len(offs) > 1:
            step = offs[1] - offs[0]
            if step <= 0 or any(b - a != step for a, b in zip(offs, offs[1:])):
                raise self._bad(f"channel byte offsets {self.offsets} are not evenly spaced")
            axes.append((len(offs), step))
        if any(s == 0 for _, s in axes):
            raise self._bad("a dimension with several elements has a byte increment of 0")
        need = item
        for n, s in sorted(axes, key=lambda a: a[1]):
            if s < need:
                raise self._bad("its byte increments make pixels overlap")
            need = s * n
        end = offs[0] + sum((n - 1) * s for n, s in axes) + item
        if end > self.block[1]:
            raise self._bad(f"its pixels need {end} bytes, its memory block holds {self.block[1]}")

    def plane(self, f, t: int, c: int, z: int) -> np.ndarray:
        """The (Y, X) plane of channel ``c`` at (``t``, ``z``), read from the open file ``f`` (read, not
        memory-mapped: a file cut short while napari shows it raises here instead of killing the process)."""
        s_t, s_z, s_y, s_x = self.strides
        dt = np.dtype(self.dtypes[c])
        y, x = self.shape[3:]
        start = self.block[0] + self.offsets[c] + t * s_t + z * s_z
        span = (y - 1) * s_y + (x - 1) * s_x + dt.itemsize
        f.seek(start)
        buf = f.read(span)
        if len(buf) < span:
            raise InputError(f"{self.path.name}, image {self.name!r}: the file ends inside a plane (it was cut "
                             "short after it was opened?)")
        return np.ndarray((y, x), dt, buffer=buf, strides=(s_y, s_x)).astype(self.dtype)

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(*self.dtypes)


def _int(e: ET.Element, key: str) -> int:
    try:
        return int(e.get(key, "0"))
    except ValueError:
        raise InputError(f"a LIF {e.tag} has a {key} that is not a number: {e.get(key)!r}") from None


def _dtype(c: ET.Element, img: LifImage) -> str:
    bits, kind = _int(c, "Resolution"), _int(c, "DataType")
    if kind == 1 and bits == 32:
        return "<f4"
    if kind == 0 and 1 <= bits <= 16:
        return "<u1" if bits <= 8 else "<u2"
    raise Unsupported(f"{img.path.name}, image {img.name!r}: a channel of {bits}-bit "
                      f"{'float' if kind == 1 else 'integer'} samples; not read")


def _names(chans: List[ET.Element]) -> List[str]:
    rgb = {1: "red", 2: "green", 3: "blue"}
    names = [rgb.get(_int(c, "ChannelTag")) or c.get("LUTName") or "" for c in chans]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"Ch{i}" for i in range(len(chans))]


def _step(d: Optional[ET.Element], n: int) -> Optional[float]:
    """The pixel size in µm along one dimension: LIF records the extent from first to last pixel centre."""
    if d is None or n < 2:
        return None
    try:
        length = abs(float(d.get("Length", "nan")))
    except ValueError:
        return None
    per = um_per(d.get("Unit") or "m")
    return pixel_size(float(f"{length * per / (n - 1):.9g}")) if per is not None else None


def lif_images(p: Path) -> List[LifImage]:
    """Every image element of the LIF file ``p`` that is read here, in the order of its project tree (the
    others skipped with a warning; a file with none refused). Damage to the file itself (truncation, a missing
    block, a block of another size than its image says) refuses the whole file."""
    root, blocks = parse_lif(p)
    found: List[LifImage] = []
    skipped: List[str] = []

    def walk(elem: ET.Element, path: str) -> None:
        for child in elem.findall("./Children/Element") if elem.tag == "Element" else elem.findall("./Element"):
            name = f"{path}/{child.get('Name', '?')}" if path else child.get("Name", "?")
            mem = child.find("./Memory")
            if child.find("./Data/Image/ImageDescription") is not None and mem is not None \
                    and _int(mem, "Size") > 0:
                key = mem.get("MemoryBlockID", "")
                if key not in blocks:
                    raise InputError(f"{p.name}, image {name!r}: its memory block {key!r} is not in the file "
                                     "(truncated or damaged); refusing to read it")
                if blocks[key][1] != _int(mem, "Size"):
                    raise InputError(f"{p.name}, image {name!r}: its memory block holds {blocks[key][1]} bytes, "
                                     f"the header says {_int(mem, 'Size')}; the file is damaged")
                try:
                    found.append(LifImage(p, name, child, blocks[key]))
                except InputError as exc:   # of a kind not read, or its own header damaged: the others still read
                    skipped.append(str(exc))
            walk(child, name)

    walk(root, "")
    if not found:
        raise Unsupported(skipped[0] if skipped else f"{p.name} holds no images (a Leica LIF file with no "
                                                     "image elements)")
    if skipped:
        warnings.warn("; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""),
                      stacklevel=2)
    return found


def open_lif(p: Path):
    """The LIF file ``p`` as an AICSImage: one scene per image, (T, C, Z, Y, X), pixel sizes in µm."""
    from aicsimageio import AICSImage

    from .io_planes import PlaneScenes

    images = lif_images(p)
    for img in images:
        check_declared(f"{p.name} ({img.name})", img.shape, img.dtype)
    return AICSImage(images, reader=PlaneScenes)
