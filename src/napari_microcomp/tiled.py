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
``tifffile.memmap``/``np.load(mmap_mode="r")``), dask arrays or zarr views of compressed TIFFs
(:func:`open_lazy`); outputs numpy arrays, np.memmap, or ``.npy``/``.tif`` files written as memory maps.
"""
import mmap
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional, Tuple, Union

import numpy as np

from . import container
from ._progress import Progress, result_of
from ._validate import restore_dtype
from .codecs import codec_from_config
from .codecs.base import Codec
from .codecs.tiled import TiledCodec, _tiles_from_header
from .errors import InputError, MicrocompError, StreamError
from .io import image_source, unreadable
from .io_zarr import ZarrView, is_zarr
from .io_write import temp_beside
from .tiling import Box

_COPY_CHUNK = 1 << 20


def open_lazy(path) -> Any:
    """Open an image file without loading it: ``.npy`` and uncompressed TIFF as read-only memory maps, other
    TIFF (compressed, tiled) as a zarr view through tifffile (decodes only the pages/tiles a slice needs), a zarr
    store (OME-Zarr) as a :class:`~napari_microcomp.io_zarr.ZarrView` (likewise, at channel 0 and time point 0); any
    other format is read whole with :func:`napari_microcomp.io.read_image`. Singleton axes are dropped.

    A damaged file raises InputError, also where the damage only shows when a tile is read."""
    p = image_source(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(p, mmap_mode="r", allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            from .io import check_tiff_file, quiet_readers
            check_tiff_file(p)
            with quiet_readers(p):   # refuses a truncated file, which tifffile would open as its first pages
                try:
                    a = tifffile.memmap(p, mode="r")
                except ValueError:  # not memory-mappable (compressed, tiled or damaged): decode what a tile needs
                    return _tiff_zarr(p)
        elif is_zarr(p):   # channel 0, time point 0 (what compress picks by default), read tile by tile
            return ZarrView(p)
        else:
            from .io import read_image
            return read_image(p)[0]
    except MicrocompError:
        raise
    except Exception as exc:  # third-party readers raise anything on a damaged file
        raise unreadable(p, exc) from exc
    shape = tuple(s for s in a.shape if s != 1)
    return a.reshape(shape) if shape != tuple(a.shape) else a  # a view: nothing is read


def _tiff_zarr(p: Path):
    import tifffile
    import zarr

    with tifffile.TiffFile(p) as tf:   # checked by open_lazy
        axes = tf.series[0].axes
    z = zarr.open(tifffile.imread(p, aszarr=True), mode="r")
    if isinstance(z, zarr.hierarchy.Group):   # a pyramid: its full-resolution level
        z = z[sorted(z.array_keys())[0]]
    planes = [s for a, s in zip(axes[:-2], z.shape[:-2]) if s != 1]
    if not axes.endswith("YX") or len(planes) > 1 or z.ndim != len(axes):
        raise InputError(f"{p.name}: not a single-channel 2D image or (Z, Y, X) stack (axes {axes}, shape "
                         f"{z.shape}); convert it to .npy or an uncompressed TIFF to compress it tile by tile")
    return _Lazy(z, tuple(0 if s == 1 else slice(None) for s in z.shape[:-2]) + (slice(None),) * 2, p)


class _Lazy:
    """A lazy view of a zarr array with its singleton axes dropped; a strip or tile that fails to decode
    raises InputError naming the file (tifffile decodes only when a slice is read, long after opening)."""

    def __init__(self, z, keep, path: Path):
        self._z, self._keep, self._path = z, keep, path
        self.shape = tuple(s for s, k in zip(z.shape, keep) if not isinstance(k, int))
        self.dtype, self.ndim = z.dtype, len(self.shape)

    def __getitem__(self, key):
        key = list(key if isinstance(key, tuple) else (key,)) + [slice(None)] * self.ndim
        it = iter(key)
        try:
            return self._z[tuple(k if isinstance(k, int) else next(it) for k in self._keep)]
        except Exception as exc:
            raise unreadable(self._path, exc) from exc


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


# -- streaming to and from files ---------------------------------------------------------------------
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
            of.write(container.encode_header(header))   # pack() would need every payload in memory
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
        need = float(np.prod([float(n) for n in shape])) * np.dtype(dtype).itemsize
        free = shutil.disk_usage(dst.parent).free
        if need > free:   # a memory map filled past the free space kills the process (SIGBUS), it raises nothing
            raise InputError(f"{dst.name} needs {need / 2**30:.3g} GiB and {dst.parent} has {free / 2**30:.3g} GiB "
                             "free; write it elsewhere or free some space")
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
    # the caller's pixel type (int32 in, int32 out), as the in-memory decode gives it; tiles hold the coded one
    shape, dtype = tuple(header.shape), restore_dtype(np.empty(0, header.dtype), header.meta).dtype
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
                    arr[t.slices("core")] = restore_dtype(tcodec.decode_tile(t, data, header), header.meta)
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
