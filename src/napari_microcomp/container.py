"""The on-disk bitstream format shared by every codec.

Layout (little endian)::

    magic    4 bytes   b"\\x89MCZ"
    version  uint16    FORMAT_VERSION
    hlen     uint32    length of the JSON header
    hcrc     uint32    CRC32 of the JSON header
    header   hlen bytes of UTF-8 JSON (codec config, shape, dtype, layout, normalization,
             payload lengths and CRC32s, optional checksum of the expected reconstruction)
    payloads the codec's streams, concatenated in header order

Anything that does not parse exactly (short, long, flipped, foreign) raises StreamError.
"""
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

import numpy as np

from .errors import StreamError

MAGIC = b"\x89MCZ"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHII")
MAX_HEADER = 1 << 24
DTYPES = ("uint8", "uint16", "float32")
LAYOUTS = ("whole", "slicewise", "volume", "tiles")


@dataclass
class Header:
    codec: Dict[str, Any]
    shape: List[int]
    dtype: str
    layout: str = "whole"
    norm: Dict[str, Any] = field(default_factory=dict)
    check: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    payloads: List[List[int]] = field(default_factory=list)

    @property
    def codec_id(self) -> str:
        return str(self.codec.get("id"))

    def to_dict(self) -> Dict[str, Any]:
        return {"codec": self.codec, "shape": list(self.shape), "dtype": self.dtype,
                "layout": self.layout, "norm": self.norm, "check": self.check,
                "meta": self.meta, "payloads": self.payloads}


def crc32(data) -> int:
    return zlib.crc32(memoryview(data).cast("B")) & 0xFFFFFFFF


def array_crc32(a: np.ndarray) -> int:
    """CRC32 of an array's values in C order, little endian; the reconstruction check."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return crc32(a.view(np.uint8).reshape(-1))


def constant_crc32(value: float, dtype: str, n: int) -> int:
    """:func:`array_crc32` of ``n`` copies of ``value`` as ``dtype``, without allocating the array."""
    one = np.full(1, value, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
    chunk = one * (1 << 16)
    crc, left = 0, n
    while left:
        k = min(left, 1 << 16)
        crc = zlib.crc32(chunk[:k * len(one)], crc)
        left -= k
    return crc & 0xFFFFFFFF


def symbols_check(header: Header, symbols_crc) -> Any:
    """A latent-symbol checksum bound to everything else the header says (all but its checks and payload
    table), so that the same symbols decoded under an edited header cannot pass as rounding drift."""
    if symbols_crc is None:
        return None
    d = {k: v for k, v in header.to_dict().items() if k not in ("check", "payloads")}
    body = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
    return zlib.crc32(struct.pack("<I", int(symbols_crc)), zlib.crc32(body)) & 0xFFFFFFFF


def pack(header: Header, payloads: Sequence[bytes]) -> bytes:
    header.payloads = [[len(p), crc32(p)] for p in payloads]
    hjson = json.dumps(header.to_dict(), separators=(",", ":"), sort_keys=True).encode()
    if len(hjson) > MAX_HEADER:   # a decoder would refuse it: never write such a stream
        from .errors import InputError

        raise InputError(f"the stream header would be {len(hjson)} bytes (at most {MAX_HEADER}): "
                         "the metadata is too large")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hjson), crc32(hjson))
    return b"".join([prefix, hjson, *payloads])


ENV_BUDGET = "MICROCOMP_DECODE_BUDGET"


def decode_budget() -> int:
    """Largest decoded array (bytes) a stream may declare: ``$MICROCOMP_DECODE_BUDGET`` (e.g. ``8G``),
    else half the physical memory. Checked before anything is allocated or decoded."""
    env = os.environ.get(ENV_BUDGET, "").strip().upper()
    if env:
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(env[-1:], 1)
        try:
            n = int(float(env.rstrip("KMGT")) * mult)
            if n <= 0:
                raise ValueError(env)
            return n
        except (ValueError, OverflowError):
            raise StreamError(f"${ENV_BUDGET}={env!r} is not a size (e.g. 8G, 500M, 1000000)") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def _fail(msg: str):
    raise StreamError(f"not a valid microcomp stream: {msg}")


def read_header(data) -> "tuple[Header, int]":
    """Parse and validate the header; return it and the offset of the first payload."""
    try:
        view = memoryview(data).cast("B")
    except TypeError:
        _fail(f"expected bytes, got {type(data).__name__}")
    if len(view) < _PREFIX.size:
        _fail(f"only {len(view)} bytes, shorter than the {_PREFIX.size}-byte prefix (truncated?)")
    magic, version, hlen, hcrc = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        _fail("wrong magic bytes (this is not a file written by microcomp)")
    if version != FORMAT_VERSION:
        _fail(f"format version {version} is not supported (this build reads version {FORMAT_VERSION}); "
              "upgrade napari-microcomp")
    if hlen > MAX_HEADER:
        _fail(f"header length {hlen} is implausible (corrupted)")
    end = _PREFIX.size + hlen
    if len(view) < end:
        _fail(f"truncated inside the header ({len(view)} of at least {end} bytes)")
    hbytes = bytes(view[_PREFIX.size:end])
    if crc32(hbytes) != hcrc:
        _fail("header checksum mismatch (corrupted)")
    try:
        d = json.loads(hbytes.decode("utf-8"))
        header = Header(**d)
    except (ValueError, TypeError, RecursionError) as exc:   # RecursionError: absurdly nested JSON
        _fail(f"unreadable header ({type(exc).__name__})")
    _validate(header)
    return header, end


def _validate(h: Header) -> None:
    if not isinstance(h.codec, dict) or not isinstance(h.codec.get("id"), str):
        _fail("header has no codec id")
    if (not isinstance(h.shape, list) or len(h.shape) not in (2, 3)
            or not all(isinstance(s, int) and 0 < s < 1 << 31 for s in h.shape)):
        _fail(f"bad shape {h.shape!r}")
    if h.dtype not in DTYPES:
        _fail(f"bad dtype {h.dtype!r}")
    nbytes = int(np.prod(h.shape, dtype=np.float64)) * np.dtype(h.dtype).itemsize
    budget = decode_budget()
    if nbytes > budget:
        raise StreamError(f"the stream declares a {h.dtype}{h.shape} image ({nbytes / 2**30:.1f} GiB), above the "
                          f"decode budget of {budget / 2**30:.1f} GiB; raise ${ENV_BUDGET} if it is genuine")
    if h.layout not in LAYOUTS:
        _fail(f"bad layout {h.layout!r}")
    for name in ("norm", "check", "meta"):
        if not isinstance(getattr(h, name), dict):
            _fail(f"bad {name} field")
    if not isinstance(h.payloads, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
            for p in h.payloads):
        _fail("bad payload table")


def unpack(data) -> "tuple[Header, List[bytes]]":
    """Split a stream into its header and verified payloads."""
    header, offset = read_header(data)
    view = memoryview(data).cast("B")
    total = offset + sum(n for n, _ in header.payloads)
    if len(view) < total:
        _fail(f"truncated: {len(view)} of {total} bytes")
    if len(view) > total:
        _fail(f"{len(view) - total} unexpected trailing bytes")
    payloads = []
    for i, (n, c) in enumerate(header.payloads):
        chunk = bytes(view[offset:offset + n])
        if crc32(chunk) != c:
            _fail(f"payload {i} checksum mismatch (corrupted)")
        payloads.append(chunk)
        offset += n
    return header, payloads
