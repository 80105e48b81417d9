"""Benchmark presets: which codec configurations a run compares.

* ``tuned``: every available whole-image classical codec (JPEG 2000, HTJ2K, JPEG XR, LERC, JPEG XL,
  JPEG-LS) at every level, the lossless baselines once each, and every learned codec at every
  level that has weights (volumetric codecs too for 3D images). Learned levels without weights are
  skipped with a note, not an error: weights ship over time.
* ``paper``: the study's 12 methods as the study ran them: JPEG XR, JPEG 2000 and LERC written as
  TIFF with 16×16 tiles and ``level=8`` (:mod:`napari_microcomp.codecs.tiff_tiles`), and the nine CompressAI architectures
  at their best quality (the study used the highest quality of CompressAI's zoo; here: the highest
  level that has weights, noted when it is not 8).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..codecs import QUALITIES, available_codecs, codec_class, is_wrapper
from ..errors import CodecError, MicrocompError
from ..codecs.tiff_tiles import paper_configs

# The study's nine learned architectures (CompressAI names).
PAPER_LEARNED = ("bmshj2018-factorized", "bmshj2018-factorized-relu", "bmshj2018-hyperprior", "mbt2018-mean",
                 "mbt2018", "cheng2020-anchor", "cheng2020-attn", "bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr")
@dataclass
class PresetPlan:
    """A preset resolved on this installation: the configs to run and what was left out, and why."""

    name: str
    configs: List[Dict[str, Any]]
    notes: List[str] = field(default_factory=list)


def weighted_qualities(name: str) -> List[int]:
    """Levels of ``name`` that can be coded here (learned/volumetric: the levels with weights)."""
    return codec_class(name).served_qualities()


def is_autoregressive(name: str) -> bool:
    """True for codecs with a serial context model (mbt2018, cheng2020-*): ~10× slower on CPU."""
    cls = codec_class(name)
    flag = getattr(cls, "autoregressive", None)
    if flag is not None:
        return bool(flag)
    if cls.family not in ("learned", "volumetric"):
        return False
    from ..models.registry import get_arch

    try:
        return get_arch(name).coding == "ar"
    except MicrocompError:
        return False


def spread(levels: Sequence[int], n: Optional[int]) -> List[int]:
    """At most ``n`` of ``levels``, evenly spread and always including the lowest and highest."""
    levels = sorted(levels)
    if n is None or len(levels) <= n:
        return levels
    if n <= 1:
        return levels[-1:]
    return [levels[round(k * (len(levels) - 1) / (n - 1))] for k in range(n)]


def _learned_configs(names: Sequence[str], levels: Sequence[int], notes: List[str],
                     max_levels: Optional[int] = None, max_ar_levels: Optional[int] = None) -> List[Dict[str, Any]]:
    out, none = [], []
    for name in names:
        have = weighted_qualities(name)
        use = [q for q in levels if q in have]
        if not have:
            none.append(name)
            continue
        slow = max_ar_levels is not None and is_autoregressive(name)
        cap = max_ar_levels if slow else max_levels
        if cap is not None and len(use) > cap:
            use = spread(use, cap)
        if use != list(levels):
            notes.append(f"{name}: levels {use} (weights installed for {have}"
                         + ("; autoregressive, slow on CPU)" if slow else ")"))
        out.extend({"id": name, "quality": q, "lossless": False} for q in use)
    if none:
        notes.append(f"skipped, no weights installed: {', '.join(none)}")
    return out


def tuned(levels: Optional[Sequence[int]] = None, ndim: int = 2, learned: bool = True,
          autoregressive: bool = True, learned_levels: Optional[Sequence[int]] = None,
          max_learned_levels: Optional[int] = None, max_autoregressive_levels: Optional[int] = None) -> PresetPlan:
    """Whole-image classical codecs, lossless baselines and learned codecs with weights.

    Parameters
    ----------
    levels
        Quality levels of the lossy codecs (default 1..8).
    ndim
        2 for images, 3 adds the volumetric codecs.
    learned
        Include learned codecs.
    autoregressive
        Include the autoregressive learned codecs (slow on CPU: ~6 s encode, ~14 s decode per 1024²).
    learned_levels
        Levels for learned codecs (default: ``levels``).
    max_learned_levels, max_autoregressive_levels
        Keep at most this many levels (evenly spread) of each learned / autoregressive codec.
    """
    levels = list(QUALITIES if levels is None else levels)
    notes: List[str] = []
    configs: List[Dict[str, Any]] = []
    for name in available_codecs("classical"):
        if not is_wrapper(name):
            configs.extend({"id": name, "quality": q, "lossless": False} for q in levels)
    configs.extend({"id": name, "quality": None, "lossless": True} for name in available_codecs("lossless")
                   if not is_wrapper(name))
    families = ["learned"] + (["volumetric"] if ndim == 3 else [])
    unavailable = [n for f in families for n in available_codecs(f, include_unavailable=True)
                   if n not in available_codecs(f)]
    if unavailable:
        notes.append(f"not available in this installation: {', '.join(unavailable)}")
    if learned:
        names = [n for f in families for n in available_codecs(f)]
        if not autoregressive:
            slow = [n for n in names if is_autoregressive(n)]
            if slow:
                notes.append(f"autoregressive codecs left out: {', '.join(slow)}")
            names = [n for n in names if n not in slow]
        configs.extend(_learned_configs(names, list(levels if learned_levels is None else learned_levels), notes,
                                        max_learned_levels, max_autoregressive_levels))
    return PresetPlan("tuned", configs, notes)


def paper(ndim: int = 2, learned: bool = True) -> PresetPlan:
    """The study's 12 methods and settings (see the module docstring); ``learned=False``: its 3 classical."""
    if ndim != 2:
        raise MicrocompError("the paper preset is defined for 2D images (the study's 2D experiments)")
    notes = ["classical codecs as the study ran them: TIFF, 16×16 tiles, level 8 (see codecs.tiff_tiles)"]
    configs = paper_configs()
    if not learned:
        notes.append("learned codecs left out")
    for name in PAPER_LEARNED if learned else ():
        try:
            have = weighted_qualities(name)
        except CodecError:
            notes.append(f"{name}: not in this installation")
            continue
        if not have:
            notes.append(f"{name}: skipped: no weights installed")
            continue
        if max(have) != max(QUALITIES):
            notes.append(f"{name}: the study used the top quality; best level with weights here is {max(have)}")
        configs.append({"id": name, "quality": max(have), "lossless": False})
    return PresetPlan("paper", configs, notes)


PRESETS = {"tuned": tuned, "paper": paper}


def get_preset(name: str, **kwargs: Any) -> PresetPlan:
    """Resolve a preset by name (``tuned`` or ``paper``) on this installation."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise MicrocompError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
    return factory(**kwargs)


__all__ = ["PAPER_LEARNED", "PRESETS", "PresetPlan", "get_preset", "is_autoregressive", "paper", "tuned",
           "weighted_qualities"]
