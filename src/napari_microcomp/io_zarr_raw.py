"""What both zarr formats share when a store is read by hand (``io_zarr``, ``io_zarr3``): bounded JSON metadata,
chunk files read no larger than any coding of their bytes, and compressors that must give exactly the bytes a
chunk declares (a zlib/bz2/lzma "bomb" stops at that size, a blosc/zstd/lz4 header that claims more is refused)."""
import bz2
import json
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import InputError

CODECS = ("blosc", "zstd", "lz4", "zlib", "gzip", "bz2", "lzma")
_JSON_MAX = 4 << 20          # metadata files larger than this are not metadata
MAX_CHUNKS = 1_000_000       # chunks visited for one read (and inner chunks per shard)


def read_json(p: Path, name: str) -> Dict[str, Any]:
    f = p / name
    if not f.is_file():
        return {}
    if f.stat().st_size > _JSON_MAX:
        raise InputError(f"{f} is {f.stat().st_size} bytes: too large for zarr metadata")
    try:
        out = json.loads(f.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: "[[[[…" nested too deep
        raise InputError(f"{f} is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not isinstance(out, dict):
        raise InputError(f"{f} does not hold a JSON object")
    return out


def decode_bytes(raw: bytes, comp: Optional[Dict[str, Any]], n: int, where: str) -> bytes:
    """The chunk's ``n`` bytes from ``raw``, refusing anything that is not exactly ``n`` bytes."""
    cid = comp.get("id") if comp else None
    try:
        if cid is None:
            out = raw
        elif cid == "blosc":
            if len(raw) < 16:
                raise ValueError("shorter than a blosc header")
            nbytes, _, cbytes = struct.unpack_from("<III", raw, 4)
            if nbytes != n or cbytes != len(raw):
                raise ValueError(f"blosc header declares {nbytes} bytes in {cbytes}, the chunk holds {n} in "
                                 f"{len(raw)}")
            from numcodecs import blosc
            out = blosc.decompress(raw)
        elif cid == "lz4":
            if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != n:
                raise ValueError("lz4 size header does not match the chunk")
            from numcodecs.lz4 import LZ4
            out = LZ4().decode(raw)
        elif cid == "zstd":
            import imagecodecs
            out = imagecodecs.zstd_decode(raw, out=n)   # a frame that claims more fails, bounded
        else:   # streams without a trusted size: decompress at most n + 1 bytes
            d = (zlib.decompressobj(15 if cid == "zlib" else 31) if cid in ("zlib", "gzip")
                 else bz2.BZ2Decompressor() if cid == "bz2" else lzma.LZMADecompressor(memlimit=256 << 20))
            out = d.decompress(raw, n + 1)
    except InputError:
        raise
    except Exception as exc:   # third-party decoders raise anything on a damaged chunk
        raise InputError(f"{where}: damaged chunk ({type(exc).__name__}: {str(exc)[:160]})") from None
    if len(out) != n:
        raise InputError(f"{where}: chunk decodes to {len(out)} bytes, {n} expected (damaged or not this array's)")
    return bytes(out)


def check_grid(shape: Any, chunks: Any, where: str) -> Tuple[List[int], List[int]]:
    """``shape`` (sizes ≥ 0) and ``chunks`` (≥ 1), one per dimension, or InputError."""
    ok = lambda v, lo: isinstance(v, list) and v and all(type(n) is int and n >= lo for n in v)  # noqa: E731
    if not ok(shape, 0) or not ok(chunks, 1) or len(shape) != len(chunks):
        raise InputError(f"{where}: invalid shape {shape!r} / chunks {chunks!r}")
    return shape, chunks


def read_chunk_file(root: Path, key: str, max_bytes: int, name: str) -> Optional[bytes]:
    """The bytes of chunk ``key`` (None: absent, i.e. the fill value), refusing a non-regular file or one larger
    than ``max_bytes``, which no coding of the chunk reaches."""
    f = root / key
    if not f.exists():
        if f.is_symlink():   # a link to nothing, or to itself: the data is missing, not sparse
            raise InputError(f"{name}: chunk {key} is a broken link (its target is missing or a loop)")
        return None   # an absent chunk is the fill value (zarr's sparse arrays)
    if not f.is_file():
        raise InputError(f"{name}: chunk {key} is not a regular file (a folder, pipe or device)")
    with open(f, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise InputError(f"{name}: chunk {key} is larger than any coding of its bytes")
    return raw
