"""Zarr format 3 arrays (OME-Zarr 0.5), read by hand under the same bounds as format 2 (:mod:`.io_zarr_raw`).

An array's ``zarr.json`` names its chunk grid, chunk keys, fill value and a codec pipeline: array→array codecs
(``transpose``), one array→bytes codec (``bytes``, or ``sharding_indexed``: a shard file of inner chunks with an
index of their offsets), then bytes→bytes codecs (``gzip``, ``zstd``, ``blosc``, ``crc32c``, numcodecs' others).
Every stage is held to what it declares: a chunk decodes to exactly its size, a shard index points inside its
file, a crc32c matches.
"""
import math
import struct
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from .errors import InputError
from .io_checks import check_declared
from .io_zarr_raw import CODECS, check_grid, decode_bytes, read_json

_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
           "float64")
_MAX_INNER = 1 << 16    # inner chunks per shard
_EMPTY = 2 ** 64 - 1     # both fields of a shard index entry whose inner chunk is absent
_FLOAT_FILLS = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
Decoder = Callable[[bytes, str], np.ndarray]


def is_v3(p: Path) -> bool:
    """A format-3 node: a ``zarr.json`` and no format-2 metadata beside it."""
    return (p / "zarr.json").is_file() and not any((p / n).is_file() for n in (".zarray", ".zgroup", ".zattrs"))


def _crc32c_table() -> List[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as zarr's ``crc32c`` codec appends it; shard indexes are the usual use (kilobytes)."""
    c, t = 0xFFFFFFFF, _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _strip_crc(data: bytes, where: str) -> bytes:
    if len(data) < 4 or struct.unpack("<I", data[-4:])[0] != crc32c(data[:-4]):
        raise InputError(f"{where}: crc32c checksum fails (damaged)")
    return data[:-4]


def _codec(c: Any, name: str) -> Tuple[str, Dict[str, Any]]:
    conf = c.get("configuration", {}) if isinstance(c, dict) else {}
    if isinstance(c, str):
        return c, {}
    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(conf, dict):
        raise InputError(f"{name}: codec {c!r} is not a {{name, configuration}} object")
    return c["name"], conf


def _compressor(n: str) -> str:
    cid = n[len("numcodecs."):] if n.startswith("numcodecs.") else n
    return cid if cid in CODECS else ""


def _pipeline(codecs: Any, shape: List[int], dtype: np.dtype, fill, name: str,
              in_shard: bool = False) -> Tuple[Decoder, int, int]:
    """The decoder of one chunk of ``shape`` coded by ``codecs``, the most bytes any coding of it takes, and how
    many chunks it holds (inner chunks of a shard; else 1)."""
    if not isinstance(codecs, list) or not codecs:
        raise InputError(f"{name}: codecs {codecs!r} is not a non-empty list")
    parsed = [_codec(c, name) for c in codecs]
    names = [n for n, _ in parsed]
    a2b = [i for i, n in enumerate(names) if n in ("bytes", "sharding_indexed")]
    if len(a2b) != 1:
        raise InputError(f"{name}: codecs {names} need exactly one 'bytes' or 'sharding_indexed'")
    k = a2b[0]
    perms, shp = [], list(shape)
    for n, conf in parsed[:k]:
        order = conf.get("order")
        if n != "transpose":
            raise InputError(f"{name}: array codec {n!r} is not supported (transpose is)")
        if not isinstance(order, list) or sorted(o for o in order if type(o) is int) != list(range(len(shp))):
            raise InputError(f"{name}: transpose order {order!r} is not a permutation of {len(shp)} axes")
        perms.append(order)
        shp = [shp[o] for o in order]
    b2b = names[k + 1:]
    for n in b2b:
        if n != "crc32c" and not _compressor(n):
            raise InputError(f"{name}: codec {n!r} is not supported (supported: transpose, bytes, sharding_indexed, "
                             f"crc32c, {', '.join(CODECS)})")
    if sum(n != "crc32c" for n in b2b) > 1:
        raise InputError(f"{name}: more than one compressor ({b2b}) is not supported")
    if names[k] == "sharding_indexed":
        if in_shard or b2b:
            raise InputError(f"{name}: sharding inside a shard or codecs after sharding_indexed are not supported")
        to_array, max_bytes, n_inner = _sharded(parsed[k][1], shp, dtype, fill, name)
    else:
        endian = parsed[k][1].get("endian", "little")
        if endian not in ("little", "big"):
            raise InputError(f"{name}: bytes codec endian {endian!r} is not 'little' or 'big'")
        n_bytes, n_inner = math.prod(shp) * dtype.itemsize, 1
        max_bytes = 2 * n_bytes + (1 << 16) + 4 * len(b2b)   # no compressor here makes a chunk larger than that
        coded = dtype.newbyteorder("<" if endian == "little" else ">")

        def to_array(data: bytes, where: str) -> np.ndarray:
            for j in reversed(range(len(b2b))):
                if b2b[j] == "crc32c":
                    data = _strip_crc(data, where)
                else:   # the bytes it must give: the array's plus the checksums applied before it
                    data = decode_bytes(data, {"id": _compressor(b2b[j])}, n_bytes + 4 * j, where)
            if len(data) != n_bytes:
                raise InputError(f"{where}: chunk holds {len(data)} bytes, {n_bytes} expected")
            return np.frombuffer(data, coded).reshape(shp)

    def decode(raw: bytes, where: str) -> np.ndarray:
        a = to_array(raw, where)
        for order in reversed(perms):
            a = np.transpose(a, np.argsort(order))
        return np.ascontiguousarray(a, dtype=dtype)

    return decode, max_bytes, n_inner


def _sharded(conf: Dict[str, Any], shard: List[int], dtype: np.dtype, fill, name: str) -> Tuple[Decoder, int, int]:
    """A shard's decoder: its index (inner-chunk offsets and sizes) read and checked first, then each inner chunk."""
    _, inner = check_grid(shard, conf.get("chunk_shape"), f"{name}: sharding_indexed")
    if any(s % c for s, c in zip(shard, inner)):
        raise InputError(f"{name}: inner chunks {inner} do not tile the shard {shard}")
    grid = [s // c for s, c in zip(shard, inner)]
    n_inner = math.prod(grid)
    if n_inner > _MAX_INNER:   # its index is read whole, and checksummed in Python
        raise InputError(f"{name}: {n_inner} inner chunks per shard; more than {_MAX_INNER} are not read")
    index_codecs = conf.get("index_codecs", [{"name": "bytes"}, {"name": "crc32c"}])
    idx_names = [_codec(c, name)[0] for c in index_codecs] if isinstance(index_codecs, list) else []
    if not set(idx_names) <= {"bytes", "crc32c"}:   # a fixed-size index: where it starts is known
        raise InputError(f"{name}: shard index codecs {index_codecs!r} are not supported (bytes, crc32c)")
    index_decode, _, _ = _pipeline(index_codecs, grid + [2], np.dtype(np.uint64), 0, name, in_shard=True)
    inner_decode, inner_max, _ = _pipeline(conf.get("codecs"), inner, dtype, fill, name, in_shard=True)
    at_end = conf.get("index_location", "end")
    if at_end not in ("start", "end"):
        raise InputError(f"{name}: index_location {at_end!r} is not 'start' or 'end'")
    at_end = at_end == "end"
    idx_bytes = 16 * n_inner + 4 * idx_names.count("crc32c")

    def to_array(data: bytes, where: str) -> np.ndarray:
        if len(data) < idx_bytes:
            raise InputError(f"{where}: shard of {len(data)} bytes is shorter than its index ({idx_bytes})")
        lo, hi = (0, len(data) - idx_bytes) if at_end else (idx_bytes, len(data))
        index = index_decode(data[hi:] if at_end else data[:idx_bytes], f"{where} index")
        out = np.full(shard, fill, dtype)
        for i, (off, nb) in enumerate(index.reshape(n_inner, 2).tolist()):
            if off == _EMPTY and nb == _EMPTY:
                continue   # absent: the fill value
            if not lo <= off <= off + nb <= hi or nb > inner_max:
                raise InputError(f"{where}: shard index entry {i} ({off}, {nb}) points outside the shard's chunks")
            pos = np.unravel_index(i, grid)
            out[tuple(slice(p * c, p * c + c) for p, c in zip(pos, inner))] = \
                inner_decode(data[off:off + nb], f"{where} inner chunk {i}")
        return out

    return to_array, idx_bytes + n_inner * inner_max, n_inner


def _fill(v: Any, dtype: np.dtype, name: str):
    try:
        if v is None:
            return dtype.type(0)
        if isinstance(v, str) and dtype.kind == "f":
            if v.startswith("0x"):   # the value's bits, big-endian hex
                return np.frombuffer(int(v, 16).to_bytes(dtype.itemsize, "big"), dtype.newbyteorder(">"))[0]
            return dtype.type(_FLOAT_FILLS[v])
        if isinstance(v, (bool, int, float)):
            return dtype.type(v)
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    raise InputError(f"{name}: fill_value {v!r} does not fit {dtype}")


def _chunk_key(enc: Any, name: str) -> Callable[[Tuple[int, ...]], str]:
    kind, conf = _codec(enc, name) if enc is not None else ("default", {})
    if kind not in ("default", "v2"):
        raise InputError(f"{name}: chunk_key_encoding {kind!r} is not supported (default, v2)")
    sep = conf.get("separator", "/" if kind == "default" else ".")
    if sep not in ("/", "."):
        raise InputError(f"{name}: chunk key separator {sep!r} is not '/' or '.'")
    if kind == "default":
        return lambda idx: sep.join(["c", *map(str, idx)])
    return lambda idx: sep.join(map(str, idx))


def array_meta_v3(root: Path, name: str) -> Dict[str, Any]:
    """``io_zarr``'s array description (shape, chunks, dtype, fill, key, max_bytes, decode) of a format-3 array."""
    j = read_json(root, "zarr.json")
    if j.get("zarr_format") != 3:
        raise InputError(f"{name}: zarr_format {j.get('zarr_format')!r} in {root / 'zarr.json'} is not 3")
    if j.get("node_type") != "array":
        arrays = sorted(d.name for d in root.iterdir() if is_v3(d) and
                        read_json(d, "zarr.json").get("node_type") == "array")[:5]
        hint = f"; pass an array inside it, e.g. {root / arrays[0]}" if arrays else ""
        raise InputError(f"{name}: {root} is not a zarr array nor an OME-Zarr image (no multiscales){hint}")
    if j.get("storage_transformers"):
        raise InputError(f"{name}: storage transformers {j['storage_transformers']!r} are not supported")
    if j.get("data_type") not in _DTYPES:
        raise InputError(f"{name}: data type {j.get('data_type')!r} is not supported (integer, floating-point "
                         "or bool pixels)")
    dtype = np.dtype(j["data_type"])
    grid = j.get("chunk_grid")
    conf = grid.get("configuration") if isinstance(grid, dict) and grid.get("name") == "regular" else None
    if not isinstance(conf, dict):
        raise InputError(f"{name}: chunk grid {grid!r} is not supported (regular)")
    shape, chunks = check_grid(j.get("shape"), conf.get("chunk_shape"), f"{name}: zarr.json")
    check_declared(f"{name} (one chunk)", chunks, dtype)   # each chunk (shard) is decoded whole
    fill = _fill(j.get("fill_value"), dtype, name)
    decode, max_bytes, per_chunk = _pipeline(j.get("codecs"), chunks, dtype, fill, name)
    return {"shape": shape, "chunks": chunks, "dtype": dtype, "fill": fill, "per_chunk": per_chunk,
            "key": _chunk_key(j.get("chunk_key_encoding"), name), "max_bytes": max_bytes, "decode": decode}
