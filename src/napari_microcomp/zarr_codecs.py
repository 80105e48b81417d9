"""Zarr storage with any project codec, chunk by chunk, through the numcodecs registry.

:class:`MicrocompZarrCodec` (numcodecs id ``"microcomp"``) wraps ANY project codec config
(classical, learned, volumetric): each zarr chunk is stored as one self-describing microcomp
stream, so a chunk decodes (and is checksum-verified) on its own. Arrays are written in Zarr
format 2, whose ``compressor`` is a numcodecs codec: zarr-python 2.x and 3.x both read them.

Reading back needs the codec registered with numcodecs: importing this module does it, and an
installed napari-microcomp does it for plain ``zarr.open`` through the ``numcodecs.codecs``
entry point::

    [project.entry-points."numcodecs.codecs"]
    microcomp = "napari_microcomp.zarr_codecs:MicrocompZarrCodec"

Chunks must be 2D or 3D once leading length-1 axes are dropped, at least 8×8 in (Y, X), of dtype
uint8, uint16, float32, int8 or int16 (signed chunks are coded with their minimum subtracted). Edge chunks
are padded by zarr with the fill value (0) before encoding; the padding is cropped on read. Wider integer
types are not offered: that zero padding could widen a chunk's span past 65,536 levels.
"""
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Generator, Mapping, Optional, Sequence, Tuple, Union

import numcodecs
import numpy as np
from numcodecs.abc import Codec as NumcodecsCodec
from numcodecs.compat import ensure_bytes, ndarray_copy

from ._progress import Progress, result_of
from .codecs import Codec, codec_from_config, get_codec
from .codecs.registry import decode as decode_stream
from .errors import CodecError, InputError, StreamError

CODEC_ID = "microcomp"
DTYPES = (np.uint8, np.uint16, np.float32, np.int8, np.int16)
DTYPE_NAMES = "uint8, uint16, float32, int8 or int16"
CodecLike = Union[str, Mapping[str, Any], Codec]


def codec_config(codec: CodecLike, quality: Optional[int] = None) -> Dict[str, Any]:
    """A project codec config from a name (with ``quality``), a config dict or a codec."""
    if isinstance(codec, Codec):
        return codec.get_config()
    if isinstance(codec, Mapping):
        return codec_from_config(dict(codec)).get_config()
    if isinstance(codec, str):
        return get_codec(codec, quality=quality).get_config()
    raise CodecError(f"not a codec, codec name or codec config: {codec!r}")


class MicrocompZarrCodec(NumcodecsCodec):
    """numcodecs codec storing each chunk as a microcomp stream of the configured project codec.

    Parameters
    ----------
    codec
        A project codec config dict (``codec.get_config()``), a codec, or a codec name.
    dtype, chunks
        The array's dtype and chunk shape (recorded by :func:`compress_to_zarr`): a chunk whose stream decodes
        to another dtype or shape is refused, where zarr would reinterpret its bytes (int16 read as uint16, a
        (2, 64, 32) stream as a (64, 64) chunk). Arrays written without them decode unchecked.
    """

    codec_id = CODEC_ID
    # Learned codecs set torch's process-wide thread count around coding (their streams depend on
    # it), so chunks of those families are coded one at a time even when zarr uses threads.
    _serial = threading.Lock()

    def __init__(self, codec: CodecLike = "zstd", dtype: Optional[str] = None,
                 chunks: Optional[Sequence[int]] = None):
        self.codec = codec_config(codec)
        self.dtype = None if dtype is None else np.dtype(dtype).name
        self.chunks = None if chunks is None else [int(c) for c in chunks]
        self._impl: Optional[Codec] = None

    def _get(self) -> Codec:
        if self._impl is None:
            self._impl = codec_from_config(self.codec)
        return self._impl

    def _guard(self):
        return self._serial if self._get().family in ("learned", "volumetric") else _NoLock()

    def encode(self, buf) -> bytes:
        a = np.asarray(buf)
        if a.dtype not in DTYPES:
            raise CodecError(f"microcomp zarr codec: dtype {a.dtype} not supported; store {DTYPE_NAMES} arrays")
        while a.ndim > 2 and a.shape[0] == 1:
            a = a[0]
        if a.ndim not in (2, 3):
            raise CodecError(f"microcomp zarr codec: chunk of shape {np.shape(buf)} is not 2D/3D; use it as the "
                             "compressor (not after a filter that flattens) with 2D or 3D chunks")
        with self._guard():
            return self._get().encode(a)

    def decode(self, buf, out=None):
        data = ensure_bytes(buf)
        with self._guard():
            arr = decode_stream(data)
        self._check(arr, out)
        return ndarray_copy(arr, out) if out is not None else arr

    def _check(self, arr: np.ndarray, out) -> None:
        want = self.dtype
        if want is None and isinstance(out, np.ndarray) and out.dtype != np.uint8:
            want = out.dtype.name   # a typed buffer says what it holds; raw bytes do not
        if want is not None and arr.dtype.name != want:
            raise StreamError(f"microcomp zarr chunk decodes to {arr.dtype.name} but the array holds {want}; "
                              "refusing to reinterpret its bytes")
        shape = list(arr.shape)
        if self.chunks is not None and (shape != self.chunks[len(self.chunks) - len(shape):]
                                        or int(np.prod(self.chunks)) != arr.size):
            raise StreamError(f"microcomp zarr chunk decodes to shape {shape}, not the array's chunks "
                              f"{self.chunks}; refusing to reshape it")

    def get_config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"id": self.codec_id, "codec": dict(self.codec)}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype
        if self.chunks is not None:
            cfg["chunks"] = list(self.chunks)
        return cfg

    def __repr__(self) -> str:
        return f"MicrocompZarrCodec(codec={self.codec!r}, dtype={self.dtype!r}, chunks={self.chunks!r})"


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


numcodecs.register_codec(MicrocompZarrCodec)


# -- writing arrays -------------------------------------------------------------------------------
def default_chunks(shape: Sequence[int], codec: Codec) -> Tuple[int, ...]:
    """Whole planes up to 1024² for 2D codecs (slices of a stack); 32×256² blocks for 3D codecs."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return (min(shape[0], 1024), min(shape[1], 1024))
    if len(shape) == 3:
        if getattr(codec, "native_3d", False) or codec.family == "volumetric":
            return (min(shape[0], 32), min(shape[1], 256), min(shape[2], 256))
        return (1, min(shape[1], 1024), min(shape[2], 1024))
    raise InputError(f"expected a 2D (Y, X) or 3D (Z, Y, X) array, got shape {shape}")


def _create(path: str, shape, chunks, dtype, compressor):
    import zarr

    if int(zarr.__version__.split(".")[0]) >= 3:
        return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype=dtype, compressors=compressor,
                                 filters=None, fill_value=0, zarr_format=2, order="C", overwrite=True)
    return zarr.open_array(path, mode="w", shape=shape, chunks=chunks, dtype=dtype, compressor=compressor,
                           fill_value=0, order="C")


def _stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith(".z"))


def iter_compress_to_zarr(array, path, codec: CodecLike, chunks: Optional[Sequence[int]] = None,
                          quality: Optional[int] = None, overwrite: bool = False
                          ) -> Generator[Progress, None, Dict[str, Any]]:
    """Generator form of :func:`compress_to_zarr`: yields one Progress per row of chunks."""
    cfg = codec_config(codec, quality)
    impl = codec_from_config(cfg)
    shape = tuple(int(s) for s in array.shape)
    dtype = np.dtype(array.dtype)
    if dtype.type not in DTYPES:
        raise InputError(f"cannot store dtype {dtype} with microcomp codecs; convert to {DTYPE_NAMES}")
    chunks = tuple(int(c) for c in (chunks or default_chunks(shape, impl)))
    if len(chunks) != len(shape) or any(c < 1 for c in chunks):
        raise InputError(f"chunks {chunks} do not fit an array of shape {shape}")
    if min(chunks[-2:]) < 8:
        raise InputError(f"chunks {chunks} are too small: need at least 8×8 in (Y, X)")
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; remove it first or pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed at the end: a reader never sees half an array.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        z = _create(str(tmp), shape, chunks, dtype, MicrocompZarrCodec(cfg, dtype.name, chunks))
        z.attrs["microcomp"] = {"codec": cfg}
        # One row of chunks along the first axis at a time: bounded memory, and zarr may code the
        # chunks of a row concurrently.
        starts = range(0, shape[0], chunks[0])
        for k, s in enumerate(starts):
            region = (slice(s, min(s + chunks[0], shape[0])),)
            z[region] = np.asarray(array[region])
            yield Progress("zarr", k + 1, len(starts), f"{target.name}: rows {region[0].start}..{region[0].stop}")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    raw = int(np.prod(shape)) * dtype.itemsize
    stored = _stored_bytes(target)
    return {"path": str(target), "shape": list(shape), "dtype": dtype.name, "chunks": list(chunks), "codec": cfg,
            "raw_bytes": raw, "stored_bytes": stored, "compression_ratio": raw / stored if stored else float("inf")}


def compress_to_zarr(array, path, codec: CodecLike, chunks: Optional[Sequence[int]] = None,
                     quality: Optional[int] = None, overwrite: bool = False) -> Dict[str, Any]:
    """Write a numpy or dask array to a Zarr (format 2) array at ``path``, each chunk coded by ``codec``.

    Parameters
    ----------
    array
        2D (Y, X) or 3D (Z, Y, X) numpy or dask array (uint8, uint16, float32); dask arrays are
        computed one row of chunks at a time, so stacks larger than memory work.
    path
        Output directory (``.zarr``), written atomically (a temporary directory renamed at the end).
    codec
        Project codec name (with ``quality``), config dict, or codec.
    chunks
        Chunk shape; default :func:`default_chunks`.
    overwrite
        Replace an existing ``path``.

    Returns
    -------
    dict
        ``path, shape, dtype, chunks, codec, raw_bytes, stored_bytes, compression_ratio``.
    """
    return result_of(iter_compress_to_zarr(array, path, codec, chunks, quality, overwrite))


def open_zarr(path):
    """Open a Zarr array written by :func:`compress_to_zarr` for reading (codec registered)."""
    import zarr

    return zarr.open_array(str(path), mode="r")


__all__ = ["CODEC_ID", "MicrocompZarrCodec", "codec_config", "compress_to_zarr", "default_chunks",
           "iter_compress_to_zarr", "open_zarr"]
