"""Where a training run starts: an exported weight file or a checkpoint, of the same architecture or of
one that :mod:`napari_microcomp.models.derive` converts (a VBR level folded into a fixed-rate model, 2D
weights inflated into a 3D model) or transplants (the tensors two architectures share)."""
from typing import Optional

from ..errors import MicrocompError
from ..weights.load import load_weights
from .base import load_checkpoint

CKPT_FORMAT = "napari-microcomp-ckpt/1"


def start_state(path, arch: str, quality: Optional[int] = None):
    """Model weights, widths, the source's λ table (None unless converted from another architecture) and
    the names of the tensors a transplant left freshly initialised."""
    from ..models.derive import TRANSPLANTS, derive
    from ..models.registry import get_arch

    d = load_checkpoint(path)   # weights_only=True: no code from the file runs
    if isinstance(d, dict) and d.get("format") == CKPT_FORMAT:
        src_arch, widths, state = d["arch"], dict(d["widths"]), d["model"]
        lam = (d.get("config") or {}).get("lambdas")
    else:
        lm = load_weights(path)
        src_arch, widths, state = lm.arch, dict(lm.meta["widths"]), lm.model.state_dict()
        lam = lm.meta.get("lambda")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    fresh = get_arch(arch).factory(**widths).state_dict() if (src_arch, arch) in TRANSPLANTS else None
    try:
        out = derive(src_arch, arch, state, quality, fresh=fresh)
    except ValueError as exc:
        raise MicrocompError(f"--init {path}: {exc}") from None
    new = sorted(k for k, v in out.items() if fresh is not None and v is fresh[k])
    return out, widths, (lam if isinstance(lam, list) and src_arch != arch else None), new
