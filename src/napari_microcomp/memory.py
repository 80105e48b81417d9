"""Memory a whole-image job needs against what the machine has: refused with a way round before the kernel's
out-of-memory killer ends the process without a word (the decode budget checks what a file declares, not the
working set: coding a 0.84 GiB uint8 image passed 9.5 GB before it was stopped)."""
import os
from typing import Optional

import numpy as np

from .errors import InputError

ENV_WORK = "MICROCOMP_WORK_MEMORY"
# Working set of encode (its check decode included) and metrics beyond the image and its reconstruction, measured
# with benchmarks/encode_memory.py (session 47; 2048²–8192² uint8, JPEG 2000 and mbt2018-mean-vbr): a fixed part
# (SSIM's 2-Mpx strips, a learned model's tiles: 280–330 MB) and 10–12 bytes per plane pixel (OpenJPEG, MS-SSIM's
# float32 planes).
BYTES_PER_PIXEL = 12
FIXED_BYTES = 320 << 20
_SMALL = 512 << 20   # jobs below this are not checked (no /proc read for every tile)


def parse_size(text: str) -> int:
    """``8G``, ``500M``, ``1e9`` as bytes; ValueError for anything else (or not positive)."""
    t = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    n = int(float(t.rstrip("KMGT")) * mult)
    if n <= 0:
        raise ValueError(text)
    return n


def available() -> Optional[int]:
    """Bytes a new allocation can get: ``$MICROCOMP_WORK_MEMORY`` if set, else MemAvailable + SwapFree from
    /proc/meminfo; None where unknown (the check is then skipped)."""
    env = os.environ.get(ENV_WORK, "").strip()
    if env:
        try:
            return parse_size(env)
        except (ValueError, OverflowError):
            raise InputError(f"${ENV_WORK}={env!r} is not a size (e.g. 64G, 500M)") from None
    try:
        with open("/proc/meminfo") as f:
            kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if v.split()}
        return (kb["MemAvailable"] + kb.get("SwapFree", 0)) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_working_memory(shape, dtype, per_plane_px: float = BYTES_PER_PIXEL) -> None:
    """InputError if coding an array of ``shape``/``dtype`` whole (its (Y, X) planes one at a time) and measuring
    it would need more than is available: the image, its reconstruction, ``per_plane_px`` bytes per pixel of one
    plane and a fixed part."""
    px = float(np.prod([float(n) for n in shape]))
    nbytes = px * np.dtype(dtype).itemsize
    need = 2 * nbytes + per_plane_px * float(np.prod([float(n) for n in shape[-2:]])) + FIXED_BYTES
    if need < _SMALL:
        return
    have = available()
    if have is None or need <= have:
        return
    raise InputError(f"coding and measuring this {np.dtype(dtype).name} image of shape {tuple(int(n) for n in shape)} "
                     f"({_size(nbytes)}) needs about {_size(need)} of memory, and {_size(have)} is available: "
                     f"`microcomp compress-tiled` codes a file tile by tile in bounded memory, or crop it "
                     f"(${ENV_WORK}=64G overrides this check)")


def _size(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"
