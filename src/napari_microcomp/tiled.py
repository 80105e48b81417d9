"""Volumes (and images) of any size, compressed tile by tile with any registered codec.

Seam strategy: **halo and crop**. The volume is cut into near-equal *cores* no larger than ``tile``;
each tile is encoded as its core plus a *halo* of ``halo`` voxels on every side (clipped at the
volume border), independently, as a complete stream of the inner codec (with that codec's own
normalisation and reconstruction checksum). On decoding only the core is kept. Hence, exactly::

    decompress(stream)[core] == inner.decode(inner.encode(volume[outer]))[core - outer.start]

so every voxel is reconstructed from a tile in which it lies at least ``halo`` voxels from any cut,
where a codec's boundary effects (padding, missing context) have decayed. Lossless inner codecs give
exact volumes, seams included. For lossy codecs the documented bound, checked by the tests (JPEG XL
and JPEG 2000, default halo 8 in Y/X), is that the mean squared error within 2 voxels of a seam is at
most 2x the MSE of the tile interiors (:func:`seam_error_ratio`). Each tile keeps its own intensity
normalisation, so seams are not free of a small step in level at low rates. The price is rate: the
halo is coded twice (e.g. ×1.27 voxels for 32×256×256 cores with a (2, 8, 8) halo).

The stream is an ordinary container (codec ``"tiled"``, layout ``"tiles"``): the header records the
inner codec's config, the tile and halo sizes and the tile table (explicit per-axis cut positions,
``meta["tiles"]["edges"]``); each payload is one tile's complete stream.
:func:`compress_file` writes it through temporary files and :func:`decompress_file` reads it tile by
tile, so peak memory is bounded by the tile, not the volume: memory-mapped pages are released band by
band (tiles sharing their Z and Y ranges). Inputs may be numpy arrays, np.memmap (also from
``tifffile.memmap``/``np.load(mmap_mode="r")``), dask arrays or :class:`TiffPages`
(:func:`open_lazy`); outputs numpy arrays, np.memmap, or ``.npy``/``.tif`` files written as memory maps.
"""
import json
import math
import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import container
from ._progress import checkpoint
from ._progress import Progress, result_of
from .codecs.base import Codec
from .codecs.registry import codec_from_config, get_codec, register_codec
from .codecs.registry import decode as decode_any
from .errors import CodecError, InputError, StreamError
from .io import temp_beside

Box = Tuple[Tuple[int, int], ...]
DEFAULT_TILE_3D = (32, 512, 512)
DEFAULT_TILE_2D = (2048, 2048)
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Tile:
    """One tile: ``outer`` is what is encoded, ``core`` what is kept (both absolute ``(start, stop)``)."""

    core: Box
    outer: Box

    def slices(self, which: str = "outer") -> Tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in getattr(self, which))

    def core_in_outer(self) -> Tuple[slice, ...]:
        return tuple(slice(c0 - o0, c1 - o0) for (c0, c1), (o0, _) in zip(self.core, self.outer))


def _splits(size: int, tile: int) -> List[Tuple[int, int]]:
    # Near-equal pieces: no thin remainder tile that a codec would refuse (< 8 px) or code badly.
    n = max(1, math.ceil(size / max(1, tile)))
    edges = [round(i * size / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def _as_tuple(v: Union[int, Sequence[int], None], ndim: int, name: str) -> Tuple[int, ...]:
    if v is None:
        raise CodecError(f"{name} is required")
    t = (int(v),) * ndim if np.isscalar(v) else tuple(int(x) for x in v)
    if len(t) != ndim or any(x < 0 for x in t):
        raise CodecError(f"{name} must be {ndim} non-negative integers, got {v!r}")
    return t


def grid_edges(shape: Sequence[int], tile: Union[int, Sequence[int]]) -> List[List[int]]:
    """Per-axis cut positions ``[0, ..., size]`` giving near-equal cores of at most ``tile``."""
    shape = tuple(int(s) for s in shape)
    tile_t = _as_tuple(tile, len(shape), "tile")
    if any(t < 1 for t in tile_t):
        raise CodecError(f"tile sizes must be ≥ 1, got {tile_t}")
    return [[a for a, _ in _splits(s, t)] + [s] for s, t in zip(shape, tile_t)]


def tiles_from_edges(shape: Sequence[int], edges: Sequence[Sequence[int]],
                     halo: Union[int, Sequence[int]] = 0) -> List[Tile]:
    """The tiles (C order: first axis slowest) of a grid given by per-axis ``edges``, with halos."""
    shape = tuple(int(s) for s in shape)
    halo_t = _as_tuple(halo, len(shape), "halo")
    axes = [list(zip(e[:-1], e[1:])) for e in edges]
    out = []
    for idx in np.ndindex(*[len(a) for a in axes]):
        core = tuple((int(axes[d][i][0]), int(axes[d][i][1])) for d, i in enumerate(idx))
        outer = tuple((max(0, a - h), min(s, b + h)) for (a, b), h, s in zip(core, halo_t, shape))
        out.append(Tile(core, outer))
    return out


def tile_grid(shape: Sequence[int], tile: Union[int, Sequence[int]],
              halo: Union[int, Sequence[int]] = 0) -> List[Tile]:
    """Cut ``shape`` into near-equal cores of at most ``tile`` voxels per axis, each with its halo.

    Tiles are in C order (first axis slowest), so a z-slab of tiles is finished before the next.
    """
    return tiles_from_edges(shape, grid_edges(shape, tile), halo)


def default_tile(codec: Codec, ndim: int) -> Tuple[int, ...]:
    """The codec's preferred tile (attribute ``tile_shape``) or a default sized for ~16–32 MB tiles."""
    pref = getattr(codec, "tile_shape", None)
    if pref is not None:
        pref = tuple(pref)
        return pref[-ndim:] if len(pref) >= ndim else (1,) * (ndim - len(pref)) + pref
    return DEFAULT_TILE_3D if ndim == 3 else DEFAULT_TILE_2D


def default_halo(codec: Codec, ndim: int) -> Tuple[int, ...]:
    """The codec's preferred halo (attribute ``tile_halo``); otherwise none for lossless codecs and
    codecs coding each slice alone along Z, 8 voxels across Y/X for lossy ones."""
    pref = getattr(codec, "tile_halo", None)
    if pref is not None:
        pref = tuple(pref)
        return pref[-ndim:] if len(pref) >= ndim else (0,) * (ndim - len(pref)) + pref
    if codec.lossless or codec.family == "lossless":
        return (0,) * ndim
    z = 2 if codec.native_3d else 0
    return ((z,) if ndim == 3 else ()) + (8, 8)


# ------------------------------------------------------------------------------------------------
# reading inputs and releasing memory-mapped pages
def _out_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype ``check_image`` turns every tile of ``dtype`` into (the same for all tiles)."""
    dt = np.dtype(dtype)
    if dt in (np.uint8, np.uint16, np.float32):
        return dt
    if dt.kind == "f":
        return np.dtype(np.float32)
    if dt.kind in "iu":
        return np.dtype(np.uint16)
    raise InputError(f"unsupported pixel type {dt}; expected uint8, uint16 or float32")


def _check_volume(volume) -> Tuple[Tuple[int, ...], np.dtype]:
    shape = getattr(volume, "shape", None)
    dtype = getattr(volume, "dtype", None)
    if shape is None or dtype is None:
        raise InputError(f"expected an array-like with shape and dtype, got {type(volume).__name__}")
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise InputError(f"expected a 2D (Y, X) or 3D (Z, Y, X) single-channel array, got shape {shape}")
    if min(shape[-2:]) < 8:
        raise InputError(f"image too small to compress meaningfully: shape {shape} (need ≥ 8×8 in Y, X)")
    return shape, _out_dtype(dtype)


def _read(volume, box: Box) -> np.ndarray:
    block = volume[tuple(slice(a, b) for a, b in box)]
    if hasattr(block, "compute"):  # dask
        block = block.compute()
    return np.ascontiguousarray(np.asarray(block))


class TiffPages:
    """A read-only (Z, Y, X) view of a multi-page TIFF that decodes only the pages it is sliced by.

    For TIFFs that cannot be memory-mapped (compressed, tiled); one page is one z-slice.
    """

    def __init__(self, path):
        import tifffile

        self._tf = tifffile.TiffFile(path)
        series = self._tf.series[0]
        self._pages = list(series.pages)
        first = self._pages[0]
        if len(first.shape) != 2 or len(self._pages) * int(np.prod(first.shape)) != int(np.prod(series.shape)):
            self._tf.close()
            raise InputError(f"{Path(path).name}: pages are not single-channel 2D slices; convert the file to "
                             ".npy or an uncompressed TIFF to compress it tile by tile")
        self.shape = (len(self._pages), *first.shape)
        self.dtype = np.dtype(first.dtype)
        self.ndim = 3

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        zs = range(*key[0].indices(self.shape[0])) if isinstance(key[0], slice) else [int(key[0])]
        rest = key[1:]
        planes = [self._pages[z].asarray()[rest] for z in zs]
        return np.stack(planes) if isinstance(key[0], slice) else planes[0]


def open_lazy(path) -> Any:
    """Open an image file without loading it: ``.npy`` and uncompressed TIFF as read-only memory
    maps, other TIFF (compressed, tiled) as :class:`TiffPages` (decodes the pages a tile needs); any
    other format is read whole with :func:`napari_microcomp.io.read_image`. Singleton axes are dropped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        a = np.load(p, mmap_mode="r")
    elif suffix in (".tif", ".tiff"):
        import tifffile
        try:
            a = tifffile.memmap(p, mode="r")
        except ValueError:  # not memory-mappable (compressed or tiled): decode the pages a tile needs
            a = TiffPages(p)
    else:
        from .io import read_image
        return read_image(p)[0]
    if isinstance(a, TiffPages):
        return a
    shape = tuple(s for s in a.shape if s != 1)
    return a.reshape(shape) if shape != tuple(a.shape) else a  # a view: nothing is read


def _mapping(arr) -> Optional[mmap.mmap]:
    """The shared file mapping behind ``arr``, or None (plain memory, copy-on-write, dask, ...)."""
    if not isinstance(arr, np.memmap) or getattr(arr, "mode", "c") == "c":
        return None
    mm = getattr(arr, "_mmap", None)
    return mm if isinstance(mm, mmap.mmap) else None


def release_pages(arr, start: int, stop: int, rows: Optional[Tuple[int, int]] = None) -> None:
    """Drop the resident pages of ``arr[start:stop]`` (first axis) if ``arr`` is a shared np.memmap.

    With ``rows=(y0, y1)`` on a 3D array only rows ``y0:y1`` of each of those slices are dropped.
    Pages of a file mapping count in the process's RSS until the kernel reclaims them; dropping them
    after use keeps a streaming pass over a volume larger than memory at tile-sized RSS. For shared
    mappings this never loses data (the page cache and the file keep it). No-op for other arrays.
    """
    mm = _mapping(arr)
    if mm is None or stop <= start or not arr.flags.c_contiguous:
        return
    if arr.mode in ("r+", "w+"):
        arr.flush()
    base = arr.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
    step = arr.strides[0]
    if rows is None or arr.ndim < 3:
        spans = [(start * step, stop * step)]
    else:
        y0, y1 = rows
        spans = [(z * step + y0 * arr.strides[1], z * step + y1 * arr.strides[1]) for z in range(start, stop)]
    for lo, hi in spans:
        lo, hi = base + lo, min(len(mm), base + hi)
        lo -= lo % mmap.PAGESIZE  # a shared neighbour page is only re-read from the page cache
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class _BandReleaser:
    """Releases a memory map's pages band by band (tiles sharing Z and Y ranges), as tiles move on."""

    def __init__(self, arr):
        self.arr, self.band = arr, None

    def tile(self, box: Box) -> None:
        band = tuple(box[:-1])
        if self.band is not None and band != self.band:
            self.flush()
        self.band = band

    def flush(self) -> None:
        if self.band is not None:
            b = self.band
            release_pages(self.arr, *b[0], rows=b[1] if len(b) > 1 else None)
        self.band = None


# ------------------------------------------------------------------------------------------------
# the container header for tiled streams
def _tiles_meta(shape: Sequence[int], tile: Tuple[int, ...], halo: Tuple[int, ...]) -> Dict[str, Any]:
    # The tile table: explicit per-axis cut positions (every box follows from them and the halo).
    edges = grid_edges(shape, tile)
    return {"tile": list(tile), "halo": list(halo), "edges": edges,
            "n_tiles": int(np.prod([len(e) - 1 for e in edges]))}


def _tiles_from_header(header: container.Header) -> List[Tile]:
    shape = tuple(header.shape)
    try:
        t = header.meta["tiles"]
        edges = [[int(v) for v in e] for e in t["edges"]]
        halo = [int(v) for v in t["halo"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamError(f"tiled stream has an unreadable tile table ({exc})") from exc
    if len(edges) != len(shape) or len(halo) != len(shape) or any(h < 0 for h in halo) or any(
            len(e) < 2 or e[0] != 0 or e[-1] != s or any(b <= a for a, b in zip(e, e[1:]))
            for e, s in zip(edges, shape)):
        raise StreamError(f"tiled stream has an invalid tile table for shape {list(shape)}: edges {edges}, halo {halo}")
    n = math.prod(len(e) - 1 for e in edges)   # before building them: a table may promise 10^12 tiles
    if n != len(header.payloads):
        raise StreamError(f"tiled stream lists {n} tiles but {len(header.payloads)} payloads")
    tiles = tiles_from_edges(shape, edges, halo)
    if len(tiles) != len(header.payloads):
        raise StreamError(f"tiled stream lists {len(tiles)} tiles but {len(header.payloads)} payloads")
    return tiles


def _header_bytes(header: container.Header) -> bytes:
    # Same bytes as container.pack() writes before its payloads; pack() needs every payload in
    # memory, which is exactly what a streamed tiled file avoids.
    hjson = json.dumps(header.to_dict(), separators=(",", ":"), sort_keys=True).encode()
    return container._PREFIX.pack(container.MAGIC, container.FORMAT_VERSION, len(hjson),
                                  container.crc32(hjson)) + hjson


# ------------------------------------------------------------------------------------------------
# the in-memory codec (so any tiled stream also decodes through codecs.decode)
@register_codec
class TiledCodec(Codec):
    """Wrap any codec: encode a volume as independent tiles with halos (see module docstring).

    Parameters
    ----------
    inner : str, dict or Codec
        The inner codec (name, config dict or instance).
    tile, halo : int or sequence, optional
        Core size and halo per axis; default from the inner codec (:func:`default_tile`, :func:`default_halo`).
    quality : int, optional
        Passed to the inner codec when ``inner`` is a name.
    """

    codec_id = "tiled"
    family = "wrapper"  # listed apart from the codecs it wraps; instances take the inner family
    description = "any codec, tile by tile with halos, for volumes larger than memory"

    def __init__(self, inner: Union[str, Dict[str, Any], Codec] = "zstd", tile=None, halo=None,
                 quality: Optional[int] = None, lossless: bool = False):
        if isinstance(inner, dict):
            inner = codec_from_config(inner)
        elif not isinstance(inner, Codec):
            inner = get_codec(str(inner), quality=quality, **({"lossless": True} if lossless else {}))
        if isinstance(inner, TiledCodec):
            raise CodecError("a tiled codec cannot wrap another tiled codec")
        self.inner = inner
        self.tile = None if tile is None else list(np.atleast_1d(tile).astype(int).tolist())
        self.halo = None if halo is None else list(np.atleast_1d(halo).astype(int).tolist())
        self.quality = inner.quality
        self.lossless = inner.lossless
        self.params: Dict[str, Any] = {}
        self.family = inner.family
        self.native_3d = inner.native_3d

    def get_config(self) -> Dict[str, Any]:
        return {"id": self.codec_id, "inner": self.inner.get_config(), "tile": self.tile, "halo": self.halo}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "TiledCodec":
        cfg = dict(config)
        if cfg.pop("id", cls.codec_id) != cls.codec_id:
            raise CodecError(f"config is not for {cls.codec_id!r}")
        return cls(inner=cfg.get("inner", "zstd"), tile=cfg.get("tile"), halo=cfg.get("halo"))

    @property
    def label(self) -> str:
        return f"{self.inner.label} tiled"

    def plan(self, shape: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...], List[Tile]]:
        """Tile size, halo and tiles this codec uses for ``shape``."""
        nd = len(shape)
        tile = _as_tuple(self.tile, nd, "tile") if self.tile is not None else default_tile(self.inner, nd)
        if self.tile is not None and len(self.tile) == 1:
            tile = (self.tile[0],) * nd
        halo = (_as_tuple(self.halo if len(self.halo) != 1 else self.halo * nd, nd, "halo")
                if self.halo is not None else default_halo(self.inner, nd))
        return tile, halo, tile_grid(shape, tile, halo)

    def encode_tiles(self, volume) -> Tuple[container.Header, Iterator[Tuple[Tile, bytes]]]:
        """The header (payload table still empty) and a lazy iterator of (tile, stream): one tile in memory."""
        shape, dtype = _check_volume(volume)
        tile, halo, tiles = self.plan(shape)
        header = container.Header(codec=self.get_config(), shape=list(shape), dtype=dtype.name, layout="tiles",
                                  meta={"tiles": _tiles_meta(shape, tile, halo)})

        def streams() -> Iterator[Tuple[Tile, bytes]]:
            for k, t in enumerate(tiles):
                checkpoint("encode", k, len(tiles), f"tile {k + 1}/{len(tiles)}")
                block = _read(volume, t.outer)
                yield t, self.inner.encode(block)

        return header, streams()

    def _encode(self, a: np.ndarray, header: container.Header) -> List[bytes]:
        h, streams = self.encode_tiles(a)
        header.codec, header.layout, header.meta = h.codec, h.layout, {**header.meta, **h.meta}
        header.dtype = h.dtype
        return [s for _, s in streams]

    def decode_tile(self, tile: Tile, data: bytes, header: container.Header) -> np.ndarray:
        """Decode one tile stream and return its core.

        Each tile decodes with the configuration recorded in its own stream (threads, weights id,
        normalisation), not the outer one: a tile coded on another machine keeps what it was coded with.
        """
        th, _ = container.read_header(data)
        if th.codec_id != self.inner.codec_id:
            raise StreamError(f"a tile was written by {th.codec_id!r} inside a {self.inner.codec_id!r} tiled stream")
        block = decode_any(data)
        want = tuple(b - a for a, b in tile.outer)
        if block.shape != want or block.dtype.name != header.dtype:
            raise StreamError(f"tile decoded as {block.dtype}{block.shape}, expected {header.dtype}{want}")
        return block[tile.core_in_outer()]

    def _decode(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        if header.layout != "tiles":
            raise StreamError(f"tiled stream with layout {header.layout!r}")
        out = np.empty(header.shape, dtype=header.dtype)
        for k, (t, p) in enumerate(zip(_tiles_from_header(header), payloads)):
            checkpoint("decode", k, len(payloads), f"tile {k + 1}/{len(payloads)}")
            out[t.slices("core")] = self.decode_tile(t, p, header)
        return out


# ------------------------------------------------------------------------------------------------
# streaming to and from files
def compress_file(volume, path, codec: Union[str, Codec, Dict[str, Any]] = "zstd", *, tile=None, halo=None,
                  quality: Optional[int] = None) -> Generator[Progress, None, Dict[str, Any]]:
    """Compress ``volume`` tile by tile into the container file ``path`` (atomically).

    A progress generator (drain it with :func:`napari_microcomp._progress.drain`); returns a summary
    dict (path, bytes, tiles, tile, halo, bits per voxel). Tile streams go to a temporary file first;
    the final file (header, then payloads) is assembled by copying, so memory holds one tile at a time.
    Pages of a memory-mapped input are released after each band of tiles (same Z and Y range).
    """
    tcodec = codec if isinstance(codec, TiledCodec) else TiledCodec(codec, tile=tile, halo=halo, quality=quality)
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    header, streams = tcodec.encode_tiles(volume)
    n_tiles = header.meta["tiles"]["n_tiles"]
    parts = temp_beside(dst, ".tiles")
    tmp_out = temp_beside(dst, ".part")
    table: List[List[int]] = []
    try:
        with open(parts, "w+b") as pf, open(tmp_out, "wb") as of:
            pages = _BandReleaser(volume)
            for i, (t, data) in enumerate(streams):
                pf.write(data)
                table.append([len(data), container.crc32(data)])
                pages.tile(t.outer)
                yield Progress("compress", i + 1, n_tiles, f"tile {i + 1}/{n_tiles}")
            pages.flush()
            header.payloads = table
            pf.flush()
            pf.seek(0)
            of.write(_header_bytes(header))
            buf = memoryview(bytearray(_COPY_CHUNK))  # one reused buffer: memory stays flat
            while (n := pf.readinto(buf)):
                of.write(buf[:n])
            of.flush()
            os.fsync(of.fileno())
        os.replace(tmp_out, dst)
    except BaseException:
        Path(tmp_out).unlink(missing_ok=True)
        raise
    finally:
        Path(parts).unlink(missing_ok=True)
    size = dst.stat().st_size
    return {"path": str(dst), "bytes": size, "tiles": n_tiles, "tile": header.meta["tiles"]["tile"],
            "halo": header.meta["tiles"]["halo"], "bpv": 8.0 * size / float(np.prod(header.shape)),
            "codec": header.codec}


def read_file_header(path) -> Tuple[container.Header, int]:
    """Read and validate only the header of a container file; return it and the payload offset."""
    with open(path, "rb") as f:
        data = f.read(container._PREFIX.size)
        if len(data) == container._PREFIX.size:
            hlen = container._PREFIX.unpack(data)[2]
            if hlen <= container.MAX_HEADER:
                data += f.read(hlen)
        # the container validates (and raises StreamError on a short/foreign/damaged prefix)
        return container.read_header(data)


def _open_output(out, shape: Tuple[int, ...], dtype: np.dtype):
    """Return (array to fill, finish); ``finish(ok)`` completes the output and returns the result."""
    if out is None:
        arr = np.empty(shape, dtype=dtype)
        return arr, lambda ok: arr
    if isinstance(out, (str, os.PathLike)):
        dst = Path(out)
        suffix = dst.suffix.lower()
        if suffix not in (".npy", ".tif", ".tiff"):
            raise InputError(f"output must be .npy or .tif/.tiff, got {dst.name}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(temp_beside(dst, ".part" + suffix))
        import tifffile
        if suffix == ".npy":
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        else:
            arr = tifffile.memmap(tmp, shape=shape, dtype=dtype, photometric="minisblack")

        def finish(ok: bool):
            if not ok:
                Path(tmp).unlink(missing_ok=True)
                return None
            arr.flush()
            os.replace(tmp, dst)
            # a fresh read-only map of the final file (the filled one still names the temporary file)
            return np.load(dst, mmap_mode="r") if suffix == ".npy" else tifffile.memmap(dst, mode="r")
        return arr, finish
    if tuple(out.shape) != tuple(shape) or np.dtype(out.dtype) != dtype:
        raise InputError(f"output array is {out.dtype}{tuple(out.shape)}, the stream holds {dtype}{tuple(shape)}")

    def finish_array(ok: bool):
        if isinstance(out, np.memmap):
            out.flush()
        return out
    return out, finish_array


def decompress_file(path, out=None) -> Generator[Progress, None, np.ndarray]:
    """Decompress a container file tile by tile into ``out`` and return it.

    ``out``: None (a new numpy array), an array of the right shape and dtype (e.g. an ``np.memmap``
    opened ``w+``), or a ``.npy``/``.tif`` path written as a memory map and renamed into place when
    complete (the returned array is then the memory map). Non-tiled files are decoded whole.
    """
    header, offset = read_file_header(path)
    shape, dtype = tuple(header.shape), np.dtype(header.dtype)
    arr, finish = _open_output(out, shape, dtype)
    ok = False
    result = None
    try:
        if header.layout != "tiles":
            from .codecs.registry import decode
            arr[...] = decode(Path(path).read_bytes())
            yield Progress("decompress", 1, 1)
        else:
            tcodec = codec_from_config(header.codec)
            if not isinstance(tcodec, TiledCodec):
                raise StreamError("layout 'tiles' written by a codec other than 'tiled'")
            tiles = _tiles_from_header(header)
            total = offset + sum(n for n, _ in header.payloads)
            size = os.path.getsize(path)
            if size != total:
                raise StreamError(f"not a valid microcomp stream: {'truncated' if size < total else 'trailing bytes'}"
                                  f" ({size} bytes, expected {total})")
            pages = _BandReleaser(arr)
            with open(path, "rb") as f:
                f.seek(offset)
                for i, (t, (n, crc)) in enumerate(zip(tiles, header.payloads)):
                    data = f.read(n)
                    if container.crc32(data) != crc:
                        raise StreamError(f"not a valid microcomp stream: tile {i} checksum mismatch (corrupted)")
                    arr[t.slices("core")] = tcodec.decode_tile(t, data, header)
                    pages.tile(t.core)
                    yield Progress("decompress", i + 1, len(tiles), f"tile {i + 1}/{len(tiles)}")
            pages.flush()
        ok = True
    finally:
        result = finish(ok)
    return result


def compress(volume, path, codec: Union[str, Codec, Dict[str, Any]] = "zstd", **kwargs: Any) -> Dict[str, Any]:
    """:func:`compress_file` run to completion without a progress bar."""
    return result_of(compress_file(volume, path, codec, **kwargs))


def decompress(path, out=None) -> np.ndarray:
    """:func:`decompress_file` run to completion without a progress bar."""
    return result_of(decompress_file(path, out))


def seam_error_ratio(original, reconstruction, tiles: List[Tile], width: int = 2) -> float:
    """MSE within ``width`` voxels of an internal tile seam divided by the MSE elsewhere.

    The quantity the seam bound of the module docstring is about (1.0 = seams invisible in MSE).
    """
    x = np.asarray(original, dtype=np.float64)
    err = (x - np.asarray(reconstruction, dtype=np.float64)) ** 2
    near = np.zeros(x.shape, dtype=bool)
    for t in tiles:
        for d, ((c0, c1), s) in enumerate(zip(t.core, x.shape)):
            for edge in (c0, c1):
                if 0 < edge < s:
                    sl = [slice(a, b) for a, b in t.core]
                    sl[d] = slice(max(0, edge - width), min(s, edge + width))
                    near[tuple(sl)] = True
    if not near.any() or near.all():
        return 1.0
    inner = err[~near].mean()
    seam = err[near].mean()
    if inner == 0:
        return 1.0 if seam == 0 else float("inf")
    return float(seam / inner)
