"""Where a training run starts: an exported weight file or a checkpoint, of the same architecture or of
one that :mod:`napari_microcomp.models.derive` converts (a VBR level folded into a fixed-rate model, 2D
weights inflated into a 3D model) or transplants (the tensors two architectures share)."""
from typing import Optional

from ..errors import MicrocompError
from ..weights.load import load_weights
from .base import load_checkpoint

CKPT_FORMAT = "napari-microcomp-ckpt/1"


def start_state(path, arch: str, quality: Optional[int] = None):
    """Model weights, widths, the λ the new run should train at (None: its own default) and the names of
    the tensors a transplant left freshly initialised.

    The λ: a variable-rate source's table (for a variable-rate run, or one level of it for a fixed-rate
    run), or a fixed-rate source's own λ when the run continues it at the same architecture and quality
    (at another quality, λ-transfer, the quality's table value applies)."""
    from ..models.derive import TRANSPLANTS, derive
    from ..models.registry import get_arch

    d = load_checkpoint(path)   # weights_only=True: no code from the file runs
    if isinstance(d, dict) and d.get("format") == CKPT_FORMAT:
        cfg = d.get("config") or {}
        src_arch, widths, state = d["arch"], dict(d["widths"]), d["model"]
        lam = (d.get("lambdas") or cfg.get("lambdas")) if get_arch(src_arch).vbr else d.get("lmbda", cfg.get("lmbda"))
        src_q = cfg.get("quality")
    else:
        lm = load_weights(path)
        src_arch, widths, state = lm.arch, dict(lm.meta["widths"]), lm.model.state_dict()
        lam, src_q = lm.meta.get("lambda"), lm.meta.get("quality")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    fresh = get_arch(arch).factory(**widths).state_dict() if (src_arch, arch) in TRANSPLANTS else None
    try:
        out = derive(src_arch, arch, state, quality, fresh=fresh)
    except ValueError as exc:
        raise MicrocompError(f"--init {path}: {exc}") from None
    new = sorted(k for k, v in out.items() if fresh is not None and v is fresh[k])
    return out, widths, _start_lambda(lam, src_arch, src_q, arch, quality), new


def _start_lambda(lam, src_arch: str, src_q, arch: str, quality: Optional[int]):
    from ..models.registry import get_arch

    if isinstance(lam, list):
        if get_arch(arch).vbr:
            return [float(v) for v in lam]
        return float(lam[int(quality) - 1]) if quality else None
    same = src_arch == arch and quality is not None and src_q is not None and int(src_q) == int(quality)
    return float(lam) if isinstance(lam, (int, float)) and same else None
