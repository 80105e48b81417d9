"""How training stands in for rounding: the quantisation proxy of ``TrainConfig.quant``."""
from typing import Any, Dict

import torch

from ..codecs.refine import eb_medians, gaussian_params, hyper_input, ste_round
from ..errors import MicrocompError


def check_quant(quant: str, model, arch: str) -> None:
    if quant not in ("noise", "mixed"):
        raise MicrocompError(f"quant must be 'noise' or 'mixed', got {quant!r}")
    # fixed-rate models (the VBR ones train on rounded latents already, stage 2); of the 3D ones the factorized
    # only (the hyperprior 3D models code their latent slices through a 2D hyperprior)
    if quant == "mixed" and (not hasattr(model, "entropy_bottleneck") or not hasattr(model, "g_s")
                             or hasattr(model, "Gain") or (hasattr(model, "h_a") and getattr(model, "ndim", 2) != 2)):
        raise MicrocompError(f"quant 'mixed' is for the fixed-rate architectures (3D: factorized), not {arch}")


def _eb_mixed(eb, v: torch.Tensor):
    """(likelihoods of noisy ``v``, ``round(v − median) + median`` with a straight-through gradient)."""
    _, lik = eb(v)
    med = eb_medians(eb, v.ndim)
    v = v.float()
    return lik, ste_round(v - med) + med


def mixed_forward(model, x: torch.Tensor) -> Dict[str, Any]:
    """A forward pass whose rate terms see uniform noise but whose decoders see the rounded latents a real
    stream decodes to (straight-through gradient): noise training leaves the synthesis, the hyper-synthesis
    and a context model a train/test mismatch.

    Factorized models: ``round(y − median) + median``. Hyperpriors: ``z`` likewise (into ``h_s``), ``y``
    rounded around the predicted means (zero for the scale-only one). Context models: the means come from
    the causal decoding approximated as refinement does (``refine.gaussian_params``).
    """
    y = model.g_a(x)
    if not hasattr(model, "h_a"):
        lik, y_hat = _eb_mixed(model.entropy_bottleneck, y)
        return {"x_hat": model.g_s(y_hat), "likelihoods": {"y": lik}}
    z_lik, z_hat = _eb_mixed(model.entropy_bottleneck, model.h_a(hyper_input(model, y)))
    scales, means = gaussian_params(model, model.h_s(z_hat), y)
    _, y_lik = model.gaussian_conditional(y, scales, means=means)
    means = means.float()
    y_hat = ste_round(y.float() - means) + means
    return {"x_hat": model.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}
