"""The on-disk bitstream format shared by every codec.

Layout (little endian)::

    magic    4 bytes   b"\\x89MCZ"
    version  uint16    FORMAT_VERSION (2; version 1 streams are still read)
    hlen     uint32    length of the stored header
    hcrc     uint32    CRC32 of the stored header
    header   hlen bytes: compact UTF-8 JSON (codec config, shape, dtype, layout, normalization,
             payload lengths and CRC32s, optional checksum of the expected reconstruction), stored
             raw-deflated with the fixed preset dictionary :data:`HEADER_ZDICT` in version 2, as is in version 1
    payloads the codec's streams, concatenated in header order (the last one holds the exactly coded outlier
             pixels when ``meta["outliers"]`` is set, see :mod:`napari_microcomp.outliers`)

Version 2 exists because the JSON header (about 220-380 bytes) was up to a third of a small image's stream;
deflated against a dictionary of the keys and values every header repeats it takes 50-140 bytes.

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
from .memory import parse_size

MAGIC = b"\x89MCZ"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<4sHII")
MAX_HEADER = 1 << 24
DTYPES = ("uint8", "uint16", "float32")
LAYOUTS = ("whole", "slicewise", "volume", "tiles")

# The preset dictionary of version 2 headers: fragments every header repeats, the most common last (nearest).
# Frozen: version 2 streams decode only against these exact bytes (test-pinned); changing it needs version 3.
HEADER_ZDICT = "".join([
    '"layout":"tiles"', '"layout":"volume"', '"layout":"slicewise"', '"dtype":"float32"', '"dtype":"uint8"',
    '"weights":"fluorescence"', '"refine":',
    '"codec":{"compression":"jpeg2000","id":"tiff-tiles","lossless":false,"quality":',
    '"meta":{"blocks":[{"core":[[0,', '"latent":[', '"outer":[[0,',
    '"id":"zstd","lossless":true,"quality":null}', '"id":"jpegxl-lossless","lossless":true,"quality":null}',
    '"id":"jpegls","lossless":false,"quality":', '"meta":{"bits":12,"native":{"near":',
    '"id":"lerc","lossless":false,"quality":', '"native":{"max_error":',
    '"id":"jpegxr","lossless":false,"quality":', '"id":"htj2k","lossless":false,"quality":', '"shift":1',
    '"id":"jpegxl","lossless":false,"quality":', '"native":{"distance":',
    '"id":"bmshj2018-factorized-relu"', '"id":"bmshj2018-factorized"', '"id":"bmshj2018-hyperprior-vbr"',
    '"id":"bmshj2018-hyperprior"', '"id":"cheng2020-attn"', '"id":"cheng2020-anchor"', '"id":"mbt2018-mean-vbr3d"',
    '"id":"mbt2018-mean"', '"id":"mbt2018"',
    '{"check":{"crc32":', '},"codec":{"id":"jpeg2k","lossless":false,"quality":',
    '},"dtype":"uint16","layout":"whole","meta":{"bits":16,"native":{"level":',
    '},"work_dtype":"uint16"},"norm":{"kind":"stretch16","offset":', ',"scale":', '},"payloads":[[', ']],"shape":[',
    '{"check":{"crc32":', ',"symbols":',
    '},"codec":{"ep":64,"grid":16,"id":"mbt2018-mean-vbr","lossless":false,"quality":',
    ',"threads":2,"tile":1024,"weights":"transmitted","weights_id":"',
    '"},"dtype":"uint16","layout":"whole","meta":{},"norm":{"hi":', ',"lo":', ',"mode":"minmax"},"payloads":[[',
]).encode()


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


def encode_header(header: Header) -> bytes:
    """The prefix and stored header that :func:`pack` writes before the payloads (the payload table included)."""
    hjson = _header_json(header)
    if len(hjson) > MAX_HEADER:   # a decoder would refuse it: never write such a stream
        from .errors import InputError

        raise InputError(f"the stream header would be {len(hjson)} bytes (at most {MAX_HEADER}): "
                         "the metadata is too large")
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_ZDICT)
    stored = z.compress(hjson) + z.flush()
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(stored), crc32(stored)) + stored


def _header_json(header: Header) -> bytes:
    return json.dumps(header.to_dict(), separators=(",", ":"), sort_keys=True).encode()


def format1_size(data) -> int:
    """The length ``data`` would have with its header stored as format 1 (plain JSON)."""
    header, offset = read_header(data)
    return len(data) - offset + _PREFIX.size + len(_header_json(header))


def pack(header: Header, payloads: Sequence[bytes]) -> bytes:
    header.payloads = [[len(p), crc32(p)] for p in payloads]
    return b"".join([encode_header(header), *payloads])


def _inflate(stored: bytes) -> bytes:
    z = zlib.decompressobj(-15, zdict=HEADER_ZDICT)
    try:
        out = z.decompress(stored, MAX_HEADER + 1)   # bounded: a small header must not inflate to gigabytes
    except zlib.error:
        _fail("undecodable header (corrupted)")
    if len(out) > MAX_HEADER:
        _fail(f"header inflates beyond {MAX_HEADER} bytes (corrupted)")
    if not z.eof or z.unused_data:
        _fail("header does not end where its length says (corrupted)")
    return out


def stream_version(data) -> int:
    """The format version a stream's prefix declares (after :func:`read_header` has accepted it)."""
    return int(_PREFIX.unpack_from(memoryview(data).cast("B"), 0)[1])


ENV_BUDGET = "MICROCOMP_DECODE_BUDGET"


def decode_budget() -> int:
    """Largest decoded array (bytes) a stream may declare: ``$MICROCOMP_DECODE_BUDGET`` (e.g. ``8G``),
    else half the physical memory. Checked before anything is allocated or decoded."""
    env = os.environ.get(ENV_BUDGET, "").strip().upper()
    if env:
        try:
            return parse_size(env)
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
    if version not in READ_VERSIONS:
        _fail(f"format version {version} is not supported (this build reads versions "
              f"{', '.join(map(str, READ_VERSIONS))}); upgrade napari-microcomp")
    if hlen > MAX_HEADER:
        _fail(f"header length {hlen} is implausible (corrupted)")
    end = _PREFIX.size + hlen
    if len(view) < end:
        _fail(f"truncated inside the header ({len(view)} of at least {end} bytes)")
    hbytes = bytes(view[_PREFIX.size:end])
    if crc32(hbytes) != hcrc:
        _fail("header checksum mismatch (corrupted)")
    if version >= 2:
        hbytes = _inflate(hbytes)
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
        raise StreamError(f"the stream declares a {h.dtype}{h.shape} image ({nbytes / 2**30:.3g} GiB), above the "
                          f"decode budget of {budget / 2**30:.3g} GiB; raise ${ENV_BUDGET} if it is genuine")
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


def is_stream(path) -> bool:
    """Whether the file ``path`` starts with a microcomp stream's magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False
