"""Where weight files are found.

Codec weights for ``(arch, quality)``, tried in this order:

1. a user folder: every folder in ``$MICROCOMP_WEIGHTS`` (``os.pathsep``-separated);
2. the weights shipped in the package: ``napari_microcomp/weights/codecs/``.

In each folder, ``DIR/MODALITY/NAME`` (``transmitted``, ``fluorescence``) when a modality is asked
for, then ``DIR/NAME`` (general weights). File names are ``{arch}-q{Q}.pt`` (fixed-rate) and
``{arch}.pt`` (variable-rate: one file for all eight qualities); a fixed-rate architecture with a
``served_by`` variable-rate source and no file of its own is folded from that source's file at load
time (``load.derived_model``). ``DIR/retired/`` keeps files a promotion
replaced, named ``{stem}.{fingerprint}.pt``; they are used only to decode streams that name them. The
project keeps every retired file in ``weights-archive/retired/`` beside ``src/`` (searched from a source
checkout), not in the package: decode-only copies of replaced files would otherwise eat the 100 MB that
the shipped weights may take.

Label-free models are shipped by name in ``napari_microcomp/weights/labelfree/`` (provenance in its
README.md); any other ``.pt`` path works too.
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import WeightsNotFoundError
from ..io_checks import real_path

SHIPPED_ROOT = Path(__file__).resolve().parent
SHIPPED_DIR = SHIPPED_ROOT / "codecs"
LABELFREE_DIR = SHIPPED_ROOT / "labelfree"
ENV_WEIGHTS = "MICROCOMP_WEIGHTS"
ARCHIVE_DIR = SHIPPED_ROOT.parents[2] / "weights-archive"   # repo/weights-archive in a source checkout

# label-free model name -> (file, one-line description)
LABELFREE_MODELS: Dict[str, Tuple[str, str]] = {
    "unet2d-isl-dapi": ("unet2d-isl-dapi.pt", "fnet U-Net, one phase-contrast slice -> DAPI (ISL)"),
    "unet-zstack-isl-dapi": ("unet-zstack-isl-dapi.pt", "fnet U-Net, 13 phase-contrast slices -> DAPI (ISL)"),
    "pix2pix-isl-dapi": ("pix2pix-isl-dapi.pt", "Pix2Pix (U-Net + multi-scale PatchGAN), phase slice -> DAPI"),
    "unet-zstack-isl-map2": ("unet-zstack-isl-map2.pt",
                             "fnet U-Net, 13 phase-contrast slices -> MAP2 (neurites; ISL, trained beside DAPI)"),
}


# -- codec weights ----------------------------------------------------------------------------
def _filename(arch: str, quality: int) -> str:
    from ..models.registry import get_arch

    return get_arch(arch).weights_filename(quality)


def weight_dirs() -> List[Path]:
    """Folders searched for weight files: ``$MICROCOMP_WEIGHTS`` entries, then the shipped folder."""
    env = os.environ.get(ENV_WEIGHTS, "")
    return [Path(d).expanduser() for d in env.split(os.pathsep) if d] + [SHIPPED_DIR]


def candidate_files(arch: str, quality: int, modality: Optional[str] = None) -> List[Path]:
    """Existing weight files for ``(arch, quality)``, best first.

    In each of :func:`weight_dirs` (user folders first): ``DIR/MODALITY/NAME`` when a modality is
    asked for, then ``DIR/NAME`` (general weights, trained on mixed data). Without a modality, every
    modality folder comes after the general files.
    """
    from ..modality import MODALITIES

    name = _filename(arch, quality)
    out = []
    for d in weight_dirs():
        subs = [modality, None] if modality else [None, *MODALITIES]
        for sub in subs:
            p = (d / sub / name) if sub else (d / name)
            if p.is_file():
                out.append(p)
    return out


def find_weights(arch: str, quality: int, modality: Optional[str] = None) -> Optional[Path]:
    """The first weight file for ``(arch, quality)`` (and ``modality``) in :func:`weight_dirs`, or None."""
    c = candidate_files(arch, quality, modality)
    return c[0] if c else None


RETIRED = "retired"  # files a promotion replaced, named {stem}.{fingerprint}.pt: found only by fingerprint


def find_by_id(arch: str, quality: int, weights_id: str) -> Optional[Path]:
    """A weight file for ``(arch, quality)`` whose fingerprint is ``weights_id`` (any folder, any modality),
    including the retired files a promotion replaced: a stream written before a weights refresh still decodes."""
    from .fingerprint import file_id

    stem = Path(_filename(arch, quality)).stem
    retired = [p for d in [*weight_dirs(), ARCHIVE_DIR] for p in sorted((d / RETIRED).glob(f"{stem}.{weights_id}.pt"))]
    for p in candidate_files(arch, quality) + retired:
        if file_id(p) == weights_id or (p in retired and _retired_id(p) == weights_id):
            return p
    return None


def find_source(arch: str, quality: int, modality: Optional[str] = None) -> Optional[Path]:
    """The file that serves ``(arch, quality)``: its own (:func:`find_weights`), else that of the
    variable-rate architecture it is folded from (``served_by``), or None."""
    from ..models.registry import get_arch

    served_by = get_arch(arch).served_by
    return find_weights(arch, quality, modality) or (find_weights(served_by, quality, modality) if served_by else None)


def _retired_id(p: Path) -> Optional[str]:
    """The fingerprint a decode-only retired file stands for (``export.retire``), else None."""
    import torch

    try:
        meta = torch.load(p, map_location="cpu", weights_only=True).get("meta", {})
    except Exception:  # noqa: BLE001 - an unreadable file is simply not the one asked for
        return None
    return meta.get("weights_id") if meta.get("decoder_only") else None


def is_shipped(p: Path) -> bool:
    return real_path(SHIPPED_DIR) in real_path(p).parents


PROVISIONAL_NOTE = "provisional weights: a short 2026-11-26 GPU run, far from converged"


def available_qualities(arch: str) -> Dict[int, str]:
    """quality -> ``"shipped"``, ``"provisional"`` or ``"user"`` for the qualities that have a weight file
    (or whose variable-rate source has one: the architecture's ``served_by``).

    ``"provisional"``: only the shipped general files serve it, the short 2026-11-26 GPU run that no RD
    gate passed; the gated files are those in the shipped modality folders."""
    from ..modality import MODALITIES

    out = {}
    for q in range(1, 9):
        p = find_source(arch, q)
        if p is None:
            continue
        if not is_shipped(p):
            out[q] = "user"
            continue
        gated = [m for m in MODALITIES if (pm := find_source(arch, q, m)) is not None and pm.parent.name == m]
        out[q] = "shipped" if gated else "provisional"
    return out


def missing_weights_message(arch: str, quality: int, modality: Optional[str] = None) -> str:
    from ..models.registry import compressai_url, get_arch, list_archs

    spec = get_arch(arch)
    name = spec.weights_filename(quality)
    q = "" if spec.vbr else f" --quality {quality}"
    if modality:
        from ..modality import MODALITIES

        other = find_source(arch, quality)
        if other is not None:   # the chosen modality has none, another set has: say which, and how to get it
            pick = other.parent.name if other.parent.name in MODALITIES else str(other)
            return (f"no {modality} weights for {arch} quality {quality}; {other} serves it "
                    f"(weights='auto' picks it, or pass weights='{pick}')")
    have = sorted(available_qualities(arch))
    if have:   # usually a level the set skips (fixed-rate sets ship 2, 4, 6, 8): say which exist first
        hint = f"{arch} has weights for quality {', '.join(map(str, have))}; pick one of those, or train"
    else:
        alt = [a for a in list_archs(spec.ndim) if a != arch and available_qualities(a)]
        hint = (f"{arch} has no weights in this installation"
                + (f" ({', '.join(alt)} {'has' if len(alt) == 1 else 'have'} them)" if alt else "") + "; train")
    pretrained = (f", or use weights='compressai' for CompressAI's pretrained RGB weights"
                  if compressai_url(arch, quality) else "")
    return (f"no weights for {arch} quality {quality}: expected {name} in ${ENV_WEIGHTS} or {SHIPPED_DIR}. "
            f"{hint} them with `microcomp train-codec --arch {arch}{q} --data FOLDER --out {name}` and put "
            f"the file in one of those folders, or pass weights='path/to/{name}'{pretrained}")


# -- label-free models ------------------------------------------------------------------------
def known_models() -> Dict[str, str]:
    """Every shipped label-free model name with its description, whether or not its weights are installed."""
    return {name: desc for name, (_, desc) in LABELFREE_MODELS.items()}


def available_models() -> List[str]:
    """Names of shipped label-free models whose weights are present in this installation."""
    return [name for name, (fname, _) in LABELFREE_MODELS.items() if (LABELFREE_DIR / fname).is_file()]


def labelfree_path(name_or_path) -> Path:
    """The weights file for a shipped label-free model name or a user path; WeightsNotFoundError if absent."""
    s = str(name_or_path)
    if s in LABELFREE_MODELS:
        p = LABELFREE_DIR / LABELFREE_MODELS[s][0]
        if not p.is_file():
            raise WeightsNotFoundError(
                f"weights for label-free model {s!r} are not installed (expected {p}); train them with "
                "`microcomp train-labelfree ... --out FILE.pt` and pass the file path instead")
        return p
    p = Path(s).expanduser()
    if p.is_file():
        return p
    looks_like_path = p.suffix == ".pt" or "/" in s or "\\" in s
    hint = (f"file not found: {p}" if looks_like_path else
            f"unknown label-free model {s!r}; shipped: {', '.join(LABELFREE_MODELS)}; or give a .pt file")
    raise WeightsNotFoundError(hint)
