"""Which kind of image is this: transmitted light (bright-field, phase, DIC) or fluorescence?

Learned codecs ship one weight set per modality (their statistics differ: fluorescence is a dark
background with sparse bright structure; transmitted light is a mid-grey background with dark and
bright detail). The rule, measured on the shared data's splits (see ``docs/training.md``): take the
median of the image on its robust range (0.5th–99.5th percentile), ignoring pixels at the minimum
(padding, e.g. outside a well scan). Fluorescence if that median lies in the lowest quarter of the
range, transmitted light otherwise. Users override it with ``weights="fluorescence"`` etc. Slices of a stack
far outside the others' range (a flash or saturated frame, ``slice_ranges``) are left out.
"""
import numpy as np

from . import slice_ranges

MODALITIES = ("transmitted", "fluorescence")
THRESHOLD = 0.25


def median_position(a, skip=()) -> float:
    """The image's median on its robust range, in [0, 1] (0.5 for constant images); ``skip``: slices left out."""
    a = np.asarray(a)
    step = max(1, int(np.sqrt(a.size / 250_000)))    # ~250k samples are plenty for a median
    s = a[..., ::step, ::step]
    s = (np.delete(s, sorted(skip), axis=0) if len(skip) else s).astype(np.float32).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0:
        return 0.5
    s = s[s > s.min()] if (s > s.min()).any() else s
    lo, hi = np.percentile(s, [0.5, 99.5])
    if not hi > lo:
        return 0.5
    return float(np.clip((np.median(s) - lo) / (hi - lo), 0.0, 1.0))


def detect_modality(a) -> str:
    """``"fluorescence"`` or ``"transmitted"`` for a 2D or 3D array (see the module docstring)."""
    a = np.asarray(a)
    return "fluorescence" if median_position(a, slice_ranges.aberrant(a)) < THRESHOLD else "transmitted"
