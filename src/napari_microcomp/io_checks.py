"""Checks every reader shares: declared sizes against the decode budget, plane selection, pixel sizes."""
import math
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from .errors import InputError

MAX_CHANNELS = 10**4   # channels a file may declare: each becomes a name (and a napari layer)


def check_declared(name: str, shape, dtype) -> None:
    """Refuse a file whose header declares more pixels than the decode budget, before reading it: a
    60000² TIFF of a few hundred bytes would otherwise take gigabytes (or the machine) to find out."""
    from .container import ENV_BUDGET, decode_budget

    nbytes = float(np.prod([float(s) for s in shape])) * np.dtype(dtype).itemsize
    budget = decode_budget()
    if nbytes > budget:
        raise InputError(f"{name} declares a {np.dtype(dtype).name} image of shape {tuple(int(s) for s in shape)} "
                         f"({nbytes / 2**30:.3g} GiB), above the decode budget of {budget / 2**30:.3g} GiB; "
                         f"raise ${ENV_BUDGET} if it is genuine")


def pick(p: Path, flag: str, value: Optional[int], n: int, what: str) -> int:
    """The index ``--flag value`` selects among ``n`` (default 0; negative counts from the end, as in Python)."""
    v = 0 if value is None else int(value)
    if not -n <= v < n:
        raise InputError(f"--{flag} {v} is out of range: {p.name} has {n} {what}")
    return v % n


def pixel_size(v) -> Optional[float]:
    """A file's physical pixel size as a float, or None where it records none usable (absent, 0, negative,
    NaN, inf: a crafted or broken header; inf as a layer scale breaks napari's view, NaN a stream's meta)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def default_notes(name: str, scenes: int, names: Sequence[str], timepoints: int, scene=None, channel=None,
                  timepoint=None) -> List[str]:
    """What a reader says it picked by default: scene, channel and time point 0 of several."""
    notes = []
    if scene is None and scenes > 1:
        notes.append(f"{name} holds {scenes} scenes (image series); using scene 0 (choose with --scene)")
    if channel is None and len(names) > 1:
        notes.append(f"{name} has {len(names)} channels {list(names)}; using channel 0 (choose with --channel)")
    if timepoint is None and timepoints > 1:
        notes.append(f"{name} has {timepoints} time points; using time point 0 (choose with --timepoint)")
    return notes
