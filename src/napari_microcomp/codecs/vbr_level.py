"""The continuous rate of the variable-rate learned codecs: a fractional ``level`` between two trained ones."""
import math
from typing import Any, Sequence

import numpy as np

from .._validate import real_number
from ..errors import CodecError


def vbr_gain(gains: Sequence[float], level: float) -> float:
    """The latent gain of a fractional VBR ``level`` (1..8): log-linear between the two trained levels.

    Rounded to float32 and recorded in the stream, so the decoder uses the encoder's number rather than
    recomputing it (a last-ulp difference of exp/log between machines would change the coded symbols).
    """
    i = min(int(math.floor(level)), len(gains) - 1)
    f = level - i
    a = abs(float(gains[i - 1]))
    g = a if f == 0 else math.exp((1 - f) * math.log(a) + f * math.log(abs(float(gains[i]))))
    return float(np.float32(g))


def check_level(codec_id: str, level: Any) -> float:
    if not real_number(level) or not 1 <= float(level) <= 8:
        raise CodecError(f"{codec_id}: level must be a number from 1 to 8 (fractions interpolate between the "
                         f"trained rate levels), got {level!r}")
    return float(level)
