"""Checks a Microsoft compound file (the container of Olympus OIB) before oiffile parses it.

oiffile follows sector chains as the file links them: a chain that loops back on itself (one byte of damage in
the allocation table) makes it read forever, filling memory. Here every chain the reader will follow (the
DIFAT, the directory, the mini FAT, the mini stream, each stream) must stay inside the file, end, and visit
no sector twice, and each stream's chain must hold its size.
"""
import struct
from pathlib import Path
from typing import List

from .errors import InputError

_SIG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END, _MAXREG = 0xFFFFFFFE, 0xFFFFFFFA
_HEAD = struct.Struct("<8s16sHHHHH6sIIIIIIIII")
_ENTRY = struct.Struct("<64sHBBIII16sIQQIQ")


def _fail(p: Path, what: str) -> InputError:
    return InputError(f"{p.name} is not a readable compound file (OIB): {what}")


def _chain(p: Path, start: int, table: List[int], limit: int, what: str) -> List[int]:
    """The sector ids of the chain from ``start`` (``limit``: sectors that exist)."""
    out, seen = [], set()
    s = start
    while s != _END:
        if s > _MAXREG or s >= limit or s >= len(table) or s in seen:
            raise _fail(p, f"the sector chain of {what} is broken (sector {s}; damaged or truncated)")
        seen.add(s)
        out.append(s)
        s = table[s]
    return out


def check_cfb(p: Path) -> None:
    """Refuse (InputError) a compound file whose chains loop, leave the file or fall short of their streams."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(512)
        if len(head) < 512 or head[:8] != _SIG:
            raise _fail(p, "no compound file signature")
        (_, _, minor, major, order, shift, mini_shift, _, _, n_fat, dir_start, _, cutoff, mfat_start, n_mfat,
         difat_start, n_difat) = _HEAD.unpack_from(head)
        if order != 0xFFFE or mini_shift != 6 or (major, shift) not in ((3, 9), (4, 12)):
            raise _fail(p, f"version {major} with {2 ** min(shift, 31)}-byte sectors is not read")
        sec = 1 << shift
        n_sec = (size - sec) // sec if size > sec else 0

        def read(s: int) -> bytes:
            f.seek(sec + s * sec)
            return f.read(sec)

        per = sec // 4
        difat = list(struct.unpack_from("<109I", head, 76))
        s, seen = difat_start, set()
        for _ in range(n_difat):   # DIFAT sectors link by their own last entry
            if s > _MAXREG or s >= n_sec or s in seen:
                raise _fail(p, f"the DIFAT chain is broken (sector {s}; damaged or truncated)")
            seen.add(s)
            vals = struct.unpack(f"<{per}I", read(s))
            difat, s = difat + list(vals[:-1]), vals[-1]
        if n_fat > n_sec or n_fat > len(difat):
            raise _fail(p, f"{n_fat} allocation-table sectors declared, the file holds {n_sec} sectors")
        fat: List[int] = []
        for s in difat[:n_fat]:
            if s >= n_sec:
                raise _fail(p, f"an allocation-table sector ({s}) lies outside the file")
            fat += struct.unpack(f"<{per}I", read(s))
        entries = [_ENTRY.unpack_from(read(s), i) for s in _chain(p, dir_start, fat, n_sec, "the directory")
                   for i in range(0, sec, 128)]
        minifat: List[int] = []
        for s in _chain(p, mfat_start, fat, n_sec, "the mini FAT")[:n_mfat]:
            minifat += struct.unpack(f"<{per}I", read(s))
        if not entries or entries[0][2] != 5:
            raise _fail(p, "no root entry")
        wide = (1 << 64) - 1 if major == 4 else 0xFFFFFFFF   # version 3 keeps 32-bit stream sizes
        root_size = entries[0][12] & wide
        mini_secs = len(_chain(p, entries[0][11], fat, n_sec, "the mini stream"))
        if root_size > mini_secs * sec:
            raise _fail(p, f"its mini stream holds {mini_secs * sec} bytes, not the {root_size} it declares")
        for e in entries[1:]:
            if e[2] != 2:   # storages and unused entries have no data
                continue
            n = e[12] & wide
            mini = n < cutoff
            got = _chain(p, e[11], minifat if mini else fat, root_size // 64 if mini else n_sec, "a stream")
            if len(got) * (64 if mini else sec) < n:
                raise _fail(p, f"a stream of {n} bytes has a chain of {len(got)} sectors (damaged or truncated)")
