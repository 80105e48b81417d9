"""How training stands in for rounding: the quantisation proxy of ``TrainConfig.quant``."""
from typing import Any, Dict

import torch

from ..codecs.refine import eb_medians, ste_round
from ..errors import MicrocompError


def check_quant(quant: str, model, arch: str) -> None:
    if quant not in ("noise", "mixed"):
        raise MicrocompError(f"quant must be 'noise' or 'mixed', got {quant!r}")
    if quant == "mixed" and (not hasattr(model, "entropy_bottleneck") or hasattr(model, "h_a")
                             or not hasattr(model, "g_s")):
        raise MicrocompError(f"quant 'mixed' is for the factorized architectures, not {arch}")


def mixed_forward(model, x: torch.Tensor) -> Dict[str, Any]:
    """A factorized model's forward pass with the decoder fed ``round(y − median) + median`` (straight-through).

    Uniform noise stands in for rounding in the rate term only; the decoder learns from the latents it will
    actually receive from a real stream, where noise training leaves it a train/test mismatch.
    """
    eb = model.entropy_bottleneck
    y = model.g_a(x)
    _, lik = eb(y)
    med = eb_medians(eb, y.ndim)
    y_hat = ste_round(y - med) + med
    return {"x_hat": model.g_s(y_hat), "likelihoods": {"y": lik}}
