"""Shipped label-free models: name -> weights file, plus user paths. Loaded once, then cached.

Shipped files live in ``napari_microcomp/weights/labelfree/`` (provenance in its README.md).
"""
import functools
from pathlib import Path
from typing import Dict, List, Tuple

from ..errors import WeightsNotFoundError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "labelfree"

# name -> (file, one-line description)
SHIPPED: Dict[str, Tuple[str, str]] = {
    "unet2d-isl-dapi": ("unet2d-isl-dapi.pt", "fnet U-Net, one phase-contrast slice -> DAPI (ISL)"),
    "unet-zstack-isl-dapi": ("unet-zstack-isl-dapi.pt", "fnet U-Net, 13 phase-contrast slices -> DAPI (ISL)"),
    "pix2pix-isl-dapi": ("pix2pix-isl-dapi.pt", "Pix2Pix (U-Net + multi-scale PatchGAN), phase slice -> DAPI"),
    "unet2d-isl-dapi-jpegxr": ("unet2d-isl-dapi-jpegxr.pt",
                               "fnet U-Net trained on JPEG XR (quality 4) reconstructions, phase -> DAPI"),
}


def known_models() -> Dict[str, str]:
    """Every shipped model name with its description, whether or not its weights are installed."""
    return {name: desc for name, (_, desc) in SHIPPED.items()}


def available_models() -> List[str]:
    """Names of shipped models whose weights are present in this installation."""
    return [name for name, (fname, _) in SHIPPED.items() if (WEIGHTS_DIR / fname).is_file()]


def weights_path(name_or_path) -> Path:
    """The weights file for a shipped model name or a user path; WeightsNotFoundError if absent."""
    s = str(name_or_path)
    if s in SHIPPED:
        p = WEIGHTS_DIR / SHIPPED[s][0]
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
            f"unknown label-free model {s!r}; shipped: {', '.join(SHIPPED)}; or give a .pt file")
    raise WeightsNotFoundError(hint)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int, device: str):
    from .model import LabelFreeModel

    return LabelFreeModel.from_file(path, device=device)


def load_model(name_or_path, device: str = "cpu"):
    """Return a :class:`~napari_microcomp.labelfree.model.LabelFreeModel` (cached per file and device).

    Parameters
    ----------
    name_or_path : a name from :func:`available_models` or a path to a ``.pt`` weights file.
    device : ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    """
    p = weights_path(name_or_path).resolve()
    st = p.stat()
    # The file's identity (mtime, size) is part of the key so a retrained file is reloaded.
    return _load_cached(str(p), st.st_mtime_ns, st.st_size, str(device))
