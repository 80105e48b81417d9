"""A CZI's subblock directory, checked before aicsimageio builds the image from it: one subblock edited to sit at
channel 65535 of a 30-subblock file had aicsimageio work 128 s and take 1.9 GB before the decode budget could
refuse the (1, 3, 65536, 5, 170, 240) array it then declared."""
import struct
from pathlib import Path

from .codestreams import Undecodable, jxr_dims
from .errors import InputError

_SEGMENT = 32        # segment header: id (16 bytes), allocated size, used size
_MAX_ENTRIES = 10**7
_JPGXR = 4           # a DirectoryEntryDV's compression code for JPEG XR
_HEAD, _MORE = 4096, 1 << 20


def _entries(f, count: int):
    """(dimension → (start, size, stored size), compression, file position) of each DirectoryEntryDV, read from the
    file's current position."""
    for _ in range(count):
        head = f.read(32)
        if len(head) < 32 or head[:2] != b"DV":
            raise ValueError("damaged subblock directory")
        n = struct.unpack_from("<i", head, 28)[0]
        if not 0 <= n <= 64:
            raise ValueError(f"a subblock directory entry with {n} dimensions")
        dims = f.read(20 * n)
        if len(dims) < 20 * n:
            raise ValueError("damaged subblock directory")
        yield ({dims[20 * k:20 * k + 4].rstrip(b"\0").decode("latin-1"):
                struct.unpack_from("<ii", dims, 20 * k + 4) + struct.unpack_from("<i", dims, 20 * k + 16)
                for k in range(n)}, struct.unpack_from("<i", head, 18)[0], struct.unpack_from("<q", head, 6)[0])


def _jxr_subblock(f, pos: int):
    """The (height, width) a JPEG XR subblock's codestream declares, from its segment at ``pos``; None where the
    segment is not where the directory says (the reader reports that). Undecodable: what jxrlib crashes on."""
    f.seek(pos)
    head = f.read(_SEGMENT + 16 + 32)
    if len(head) < _SEGMENT + 48 or not head.startswith(b"ZISRAWSUBBLOCK"):
        return None
    meta_size = struct.unpack_from("<i", head, _SEGMENT)[0]
    n = struct.unpack_from("<i", head, _SEGMENT + 16 + 28)[0]
    if meta_size < 0 or not 0 <= n <= 64:
        return None
    start = pos + _SEGMENT + max(256, 16 + 32 + 20 * n) + meta_size
    why = ""
    for size in (_HEAD, _MORE):
        f.seek(start)
        try:
            return jxr_dims(f.read(size))
        except Undecodable:
            raise
        except (ValueError, IndexError, struct.error) as exc:
            why = str(exc)
    raise Undecodable(f"its JPEG XR header cannot be read: {why}")


def _check_subblock(f, pos: int, file_size: int, name: str) -> None:
    """Refuse a subblock whose own header says it holds more than its segment: a data size edited to 2⁶² had libCZI
    crash the process (SIGSEGV). A segment that is not where the directory says is left to the reader."""
    f.seek(pos)
    head = f.read(_SEGMENT + 16 + 32)
    if len(head) < _SEGMENT + 48 or not head.startswith(b"ZISRAWSUBBLOCK"):
        return
    allocated = struct.unpack_from("<q", head, 16)[0]
    meta, attach, data = struct.unpack_from("<iiq", head, _SEGMENT)
    n = struct.unpack_from("<i", head, _SEGMENT + 16 + 28)[0]
    need = max(256, 16 + 32 + 20 * max(n, 0)) + meta + attach + data
    if min(meta, attach, data, allocated) < 0 or need > allocated:
        raise InputError(f"{name}: a subblock at byte {pos:,} says it holds {need:,} bytes in a segment of "
                         f"{allocated:,}; the file is damaged or crafted, refusing to decode it")
    if pos + _SEGMENT + need > file_size:
        raise InputError(f"{name}: a subblock at byte {pos:,} runs to byte {pos + _SEGMENT + need:,} but the file has "
                         f"{file_size:,}; the file is truncated or damaged, refusing to read it")


def check_czi(path) -> None:
    """Refuse a CZI whose directory puts a non-spatial index (channel, z, time, scene, mosaic tile…) beyond what
    its subblocks can fill: in a real file every index of such a dimension holds at least one subblock. A file
    whose directory cannot be read is left to the reader, which reports it."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(_SEGMENT + 60)
        if len(head) < _SEGMENT + 60 or not head.startswith(b"ZISRAWFILE"):
            return
        f.seek(struct.unpack_from("<q", head, _SEGMENT + 52)[0])
        seg = f.read(_SEGMENT + 128)
        if len(seg) < _SEGMENT + 128 or not seg.startswith(b"ZISRAWDIRECTORY"):
            return
        count = struct.unpack_from("<i", seg, _SEGMENT)[0]
        if not 0 < count <= _MAX_ENTRIES:
            return
        lo, hi, jxr = {}, {}, []
        file_size = p.stat().st_size
        try:
            entries = list(_entries(f, count))   # read whole first: the checks below move the file position
        except (ValueError, struct.error, UnicodeDecodeError):
            return
        for entry, compression, pos in entries:
            _check_subblock(f, pos, file_size, p.name)
            if compression == _JPGXR:
                jxr.append((pos, entry))
            for dim, (start, size, _) in entry.items():
                if dim in ("X", "Y"):
                    continue
                lo[dim] = min(lo.get(dim, start), start)
                hi[dim] = max(hi.get(dim, start + size), start + size)
        for pos, entry in jxr:   # libCZI's jxrlib crashes the process on some headers (SIGSEGV): checked first
            stored = tuple(entry.get(d, (0, 0, 0))[2] or entry.get(d, (0, 0, 0))[1] for d in ("Y", "X"))
            try:
                dims = _jxr_subblock(f, pos)
            except Undecodable as exc:
                raise InputError(f"{p.name}: a JPEG XR subblock is damaged or crafted ({exc}); refusing to decode "
                                 "it") from None
            if dims is not None and dims != stored:
                raise InputError(f"{p.name}: a JPEG XR subblock of {stored[0]}×{stored[1]} pixels declares "
                                 f"{dims[0]}×{dims[1]}; the file is damaged or crafted, refusing to decode it")
    for dim in lo:
        if hi[dim] - lo[dim] > count:
            raise InputError(f"{p.name}: its subblock directory spans {dim} indices {lo[dim]}..{hi[dim] - 1} with "
                             f"{count} subblocks in all; the file is damaged or crafted, refusing to read it")
