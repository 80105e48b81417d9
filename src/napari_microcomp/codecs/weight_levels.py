"""What learned codecs (2D and 3D) share: the levels their weight files serve, how a stream's weights are
found again, and the coding parameters every learned stream records (threads, entropy precision)."""
import os
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from ..errors import CodecError, StreamError, WeightsNotFoundError
from ..modality import MODALITIES, detect_modality
from ..models.registry import ArchSpec, get_arch
from ..weights.load import LoadedModel, get_model, load_by_id
from ..weights.locate import ENV_WEIGHTS, available_qualities, find_source, missing_weights_message

MAX_THREADS = 256   # a stream may not ask for more (a hostile 5000 aborted the process)
EP_BITS = (64, 32)   # entropy-parameter arithmetic of hyperprior models (models/coding.exact_hyper); 32: older streams


def default_threads() -> int:
    """Thread count recorded in new streams: up to 4 (more rarely helps these model sizes), and no more than
    the cores this process may run on (a cluster job's CPU set, ``taskset``): more threads than cores made a
    pinned encode several times slower."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class WeightLevels:
    """Learned codecs (2D and 3D) serve the quality levels that have weight files for their ``arch``."""

    arch: ClassVar[str] = ""
    native_meaning: ClassVar[str] = ("λ of CompressAI's rate–distortion table for that level; a weight file "
                                     "records the λ it was trained with (transmitted-light VBR: up to 0.71)")

    @classmethod
    def weights_available(cls) -> Dict[int, str]:
        """quality -> ``"shipped"``/``"provisional"``/``"user"`` for the qualities that have weight files."""
        return available_qualities(cls.arch)

    @classmethod
    def served_qualities(cls) -> List[int]:
        return sorted(int(q) for q in cls.weights_available())

    @property
    def spec(self) -> ArchSpec:
        return get_arch(self.arch)

    def _q(self) -> int:
        """The quality level that names the weight file (a fractional VBR ``level``: its nearest level)."""
        if self.quality is not None:   # type: ignore[attr-defined]
            return int(self.quality)   # type: ignore[attr-defined]
        return int(round(float(self.params["level"])))   # type: ignore[attr-defined]

    def _fraction(self) -> bool:
        lv = self.params.get("level")   # type: ignore[attr-defined]
        return self.quality is None and lv is not None and float(lv) != int(float(lv))   # type: ignore[attr-defined]

    def _ep(self) -> int:
        """Bits of the entropy-parameter arithmetic; streams that do not record it were coded in float32."""
        return int(self.params.get("ep") or 32)   # type: ignore[attr-defined]

    def _check_ep(self) -> None:
        ep = self.params.get("ep")   # type: ignore[attr-defined]
        if ep is not None and (isinstance(ep, bool) or ep not in EP_BITS):
            raise CodecError(f"{self.codec_id}: ep (entropy-parameter precision in bits) must be one of "   # type: ignore[attr-defined]
                             f"{EP_BITS}, got {ep!r}")

    def load(self, weights: Any = None) -> LoadedModel:
        """The (cached) model for this codec's quality and weights; WeightsNotFoundError if none."""
        w = weights if weights is not None else self.params.get("weights")   # type: ignore[attr-defined]
        return get_model(self.arch, self._q(), None if w == "auto" else w)

    def _kwargs(self) -> Dict[str, Any]:
        """The rate of a variable-rate model (one file): a trained level, or the recorded interpolated gain."""
        if not self.spec.vbr:
            return {}
        if not self._fraction():
            return {"stage": 2, "s": self._q() - 1}
        import torch

        return {"stage": 2, "s": self._q() - 1, "inputscale": torch.tensor(float(self.params["gain"]))}   # type: ignore[attr-defined]

    def _resolve_weights(self, a: np.ndarray) -> Any:
        """The weights to encode ``a`` with: the user's choice, else the image's modality (recorded) when
        there are weights for it, else None (general files first, then any modality's)."""
        w = self.params.get("weights")   # type: ignore[attr-defined]
        if w not in (None, "auto"):
            return w
        m = detect_modality(a)
        return m if find_source(self.arch, self._q(), m) else None

    def weights_note(self, a: np.ndarray) -> Optional[str]:
        """What the user should know when automatic weights could not follow the image's modality, else None."""
        if self.params.get("weights") not in (None, "auto"):   # type: ignore[attr-defined]
            return None
        m = detect_modality(a)
        if find_source(self.arch, self._q(), m) or not find_source(self.arch, self._q()):
            return None
        other = next((o for o in MODALITIES if o != m and find_source(self.arch, self._q(), o)), "other")
        # the level is left out: rows of several levels share the note (the row's label names its level)
        return (f"this image looks like {m}; {self.codec_id} has no {m} weights at this level, so its {other} "   # type: ignore[attr-defined]
                f"weights were used: trained on another kind of image, they compress this one less well")

    def _named_model(self, want: Optional[str], weights: Any = None) -> LoadedModel:
        """The model for ``weights`` (else this codec's); if a stream names another fingerprint ``want``,
        any known file with it (retired files and folded levels too)."""
        q = self._q()
        try:
            lm: Optional[LoadedModel] = self.load(weights)
        except WeightsNotFoundError:
            lm = None
        if want and (lm is None or lm.weights_id != want):
            alt = load_by_id(self.arch, q, want)
            if alt is not None:
                return alt
            if lm is not None:
                raise StreamError(f"{self.codec_id} q{q}: the stream was encoded with weights {want} "   # type: ignore[attr-defined]
                                  f"but {lm.source} is {lm.weights_id}; decode with the same weights "
                                  f"(weights='path/to/file.pt', or its retired copy *.{want}.pt in "
                                  f"${ENV_WEIGHTS}/retired/; the project's weights-archive/retired/ keeps them)")
        if lm is None:
            raise WeightsNotFoundError(missing_weights_message(self.arch, q))
        return lm
