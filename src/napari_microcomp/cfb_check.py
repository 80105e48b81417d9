"""Checks a Microsoft compound file (the container of Olympus OIB) before oiffile parses it.

oiffile follows sector chains as the file links them: a chain that loops back on itself (one byte of damage in
the allocation table) makes it read forever, filling memory. Here every chain the reader will follow (the
DIFAT, the directory, the mini FAT, the mini stream, each stream) must stay inside the file, end, and visit
no sector twice, and each stream's chain must hold its size.
"""
import struct
from pathlib import Path
from typing import List

import numpy as np

from .errors import InputError

_SIG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END, _MAXREG = 0xFFFFFFFE, 0xFFFFFFFA
_HEAD = struct.Struct("<8s16sHHHHH6sIIIIIIIII")
_ENTRY = struct.Struct("<64sHBBIII16sIQQIQ")


def _fail(p: Path, what: str) -> InputError:
    return InputError(f"{p.name} is not a readable compound file (OIB): {what}")


def _chain(p: Path, start: int, table, limit: int, what: str, seen: bytearray) -> List[int]:
    """The sector ids of the chain from ``start`` (``limit``: sectors that exist). ``seen`` marks the sectors of
    every chain walked so far: in a sound file no sector belongs to two chains or twice to one (a bitmap, not a
    set: a 10 GB file has 20 million sectors)."""
    out = []
    s = start
    while s != _END:
        if s > _MAXREG or s >= limit or s >= len(table) or seen[s]:
            raise _fail(p, f"the sector chain of {what} is broken (sector {s}; damaged or truncated)")
        seen[s] = 1
        out.append(s)
        s = int(table[s])
    return out


def check_cfb(p: Path) -> None:
    """Refuse (InputError) a compound file whose chains loop, cross, leave the file or fall short of their
    streams."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(512)
        if len(head) < 512 or head[:8] != _SIG:
            raise _fail(p, "no compound file signature")
        (_, _, _, major, order, shift, mini_shift, _, _, n_fat, dir_start, _, cutoff, mfat_start, n_mfat,
         difat_start, n_difat) = _HEAD.unpack_from(head)
        if order != 0xFFFE or mini_shift != 6 or (major, shift) not in ((3, 9), (4, 12)):
            raise _fail(p, f"version {major} with {2 ** min(shift, 31)}-byte sectors is not read")
        sec = 1 << shift
        n_sec = (size - sec) // sec if size > sec else 0
        seen = bytearray(n_sec)

        def raw(s: int) -> bytes:
            f.seek(sec + s * sec)
            return f.read(sec)

        def read(s: int) -> np.ndarray:
            return np.frombuffer(raw(s), "<u4")

        difat = [np.frombuffer(head[76:], "<u4")]
        s = difat_start
        for _ in range(n_difat):   # DIFAT sectors link by their own last entry
            if s > _MAXREG or s >= n_sec or seen[s]:
                raise _fail(p, f"the DIFAT chain is broken (sector {s}; damaged or truncated)")
            seen[s] = 1
            vals = read(s)
            difat.append(vals[:-1])
            s = int(vals[-1])
        fat_secs = np.concatenate(difat)[:n_fat]
        if n_fat > n_sec or len(fat_secs) < n_fat or (n_fat and int(fat_secs.max()) >= n_sec):
            raise _fail(p, f"{n_fat} allocation-table sectors declared where the file holds {n_sec} sectors")
        fat = np.concatenate([read(int(s)) for s in fat_secs]) if n_fat else np.zeros(0, "<u4")
        for s in fat_secs:
            seen[int(s)] = 1
        entries = [_ENTRY.unpack_from(raw(s), i) for s in _chain(p, dir_start, fat, n_sec, "the directory", seen)
                   for i in range(0, sec, 128)]
        chain = _chain(p, mfat_start, fat, n_sec, "the mini FAT", seen)
        minifat = np.concatenate([read(s) for s in chain[:n_mfat]]) if n_mfat and chain else np.zeros(0, "<u4")
        if not entries or entries[0][2] != 5:
            raise _fail(p, "no root entry")
        wide = (1 << 64) - 1 if major == 4 else 0xFFFFFFFF   # version 3 keeps 32-bit stream sizes
        root_size = entries[0][12] & wide
        mini_secs = len(_chain(p, entries[0][11], fat, n_sec, "the mini stream", seen))
        if root_size > mini_secs * sec:
            raise _fail(p, f"its mini stream holds {mini_secs * sec} bytes, not the {root_size} it declares")
        seen_mini = bytearray(len(minifat))
        for e in entries[1:]:
            if e[2] != 2:   # storages and unused entries have no data
                continue
            n = e[12] & wide
            mini = n < cutoff
            marks = seen_mini if mini else seen
            if n == 0:   # some writers start an empty stream at sector 0, another stream's: loops are what matter
                marks = bytearray(len(marks))
            got = _chain(p, e[11], minifat if mini else fat, root_size // 64 if mini else n_sec, "a stream", marks)
            if len(got) * (64 if mini else sec) < n:
                raise _fail(p, f"a stream of {n} bytes has a chain of {len(got)} sectors (damaged or truncated)")
