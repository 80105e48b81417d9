"""Encode-time latent refinement: optimise one image's latents under the model's RD loss.

The analysis transform gives latents that are good on average over the training set; for the one
image being coded, gradient steps on ``y`` (and the hyper-latent ``z``) lower λ·255²·MSE + bpp
further (Campos et al. 2019, "Content adaptive optimization for neural image compression"). Rounding
during the steps is stochastic Gumbel annealing (Yang et al. 2020; measured +0.1 dB over straight-through
rounding on training crops, docs/training.md) or the straight-through estimator; the kept iterate is the
best by the loss of the hard-quantised latents, so refinement never codes worse (in the model's own
estimate) than the plain encoder. The result is written by the model's unchanged ``compress`` (so any
decoder reads it): :func:`with_latents` hands ``compress`` the refined ``y``/``z`` instead of recomputing them.

Supported: every 2D architecture. The context models (mbt2018, cheng2020) code ``y`` causally: each
latent's mean and scale come from the already decoded ``round(y - μ) + μ`` of its neighbours. The loss
approximates that in two parallel passes of the masked context convolution: the first reads ``round(y)``,
the second the first pass's reconstruction (exact wherever a neighbour's μ is already right).
"""
import copy
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CodecError

TAU = (0.5, 0.15)   # SGA temperature, first and last step


class _Const(nn.Module):
    def __init__(self, t: torch.Tensor):
        super().__init__()
        self.t = t

    def forward(self, *args, **kwargs):
        return self.t


def supported(model: nn.Module) -> bool:
    return hasattr(model, "g_a")


CONTEXT_PASSES = 2


def _context_params(model, params: torch.Tensor, y: torch.Tensor, tau, g: torch.Tensor):
    """(scales, means) of a context model for latents ``y``: the masked context convolution reads the
    latents as the decoder will have them, approximated in CONTEXT_PASSES parallel passes."""
    y_ctx = _quant(y * g, tau) / g
    for i in range(CONTEXT_PASSES):
        gp = model.entropy_parameters(torch.cat((params, model.context_prediction(y_ctx)), dim=1))
        scales, means = gp.chunk(2, 1)
        if i + 1 < CONTEXT_PASSES:
            y_ctx = _quant((y - means) * g, tau) / g + means
    return scales, means


def gaussian_params(model, params: torch.Tensor, y: torch.Tensor, tau=None, g: Optional[torch.Tensor] = None):
    """(scales, means) of ``y``'s Gaussian entropy model from the hyper-synthesis output ``params``: a context
    model's (:func:`_context_params`), a mean-scale model's two halves, or a scale-only model's (means zero)."""
    if hasattr(model, "context_prediction"):
        return _context_params(model, params, y, tau, torch.tensor(1.0) if g is None else g)
    if params.shape[1] == 2 * y.shape[1]:
        return params.chunk(2, 1)
    return params, torch.zeros_like(y)


def hyper_input(model, y: torch.Tensor) -> torch.Tensor:
    """What ``h_a`` analyses: the mean-scale hyperpriors ``y`` itself, the scale-only ones ``|y|`` (as their
    ``compress`` does)."""
    return y if _mean_scale(model) else torch.abs(y)


def with_latents(model: nn.Module, y: torch.Tensor, z: Optional[torch.Tensor]) -> nn.Module:
    """A shallow copy of ``model`` (shared weights) whose analysis transforms return ``y`` and ``z``."""
    m = copy.copy(model)
    m._modules = dict(model._modules)
    m._modules["g_a"] = _Const(y)
    if z is not None:
        m._modules["h_a"] = _Const(z)
    return m


def ste_round(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def eb_medians(eb, ndim: int) -> torch.Tensor:
    """An entropy bottleneck's per-channel medians (its rounding offsets), shaped for 2D or 3D latents."""
    return eb._get_medians().detach().reshape(1, -1, *([1] * (ndim - 2)))


def _sga_round(v: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing (Yang et al. 2020): a relaxed random choice of floor or ceil, the nearer
    one likelier; as ``tau`` → 0 it becomes rounding. Unlike STE its gradient sees both neighbours."""
    lo = torch.floor(v)
    r = (v - lo).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack((-torch.atanh(r), -torch.atanh(1 - r)), -1) / tau
    u = torch.rand(logits.shape, generator=gen).clamp(1e-10, 1 - 1e-10)
    w = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)   # relaxed Gumbel-max sample
    return lo + w[..., 1]


SSL_SHARPNESS = 1.0   # a = SSL_SHARPNESS / τ; the best of 0.5–4 on training crops (docs/training.md)


def _ssl_round(v: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Sigmoid-scaled-logit rounding (SGA+, Perugachi-Diaz et al. 2024): ceil with probability
    σ(a·logit(r)), r the fractional part, relaxed by a Gumbel-softmax sample at ``tau``. Unlike SGA's
    atanh it keeps both neighbours in play near r = 0 and 1. It lowered the RD loss more than SGA on training
    crops, but real streams on the evaluation crops gained the same (docs/training.md), so SGA stays the default."""
    lo = torch.floor(v)
    t = torch.logit((v - lo).clamp(1e-5, 1 - 1e-5)) * (SSL_SHARPNESS / tau)
    logits = torch.stack((F.logsigmoid(-t), F.logsigmoid(t)), -1)
    u = torch.rand(logits.shape, generator=gen).clamp(1e-10, 1 - 1e-10)
    w = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
    return lo + w[..., 1]


ROUNDERS = {"sga": _sga_round, "ssl": _ssl_round}


def _quant(v: torch.Tensor, tau) -> torch.Tensor:
    """``tau``: None (hard rounding, STE gradient) or (temperature, generator, method) for SGA/SSL."""
    return ste_round(v) if tau is None else ROUNDERS[tau[2]](v, tau[0], tau[1])


def _eb_bits(eb, v: torch.Tensor, tau=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(quantised values, their bits) under an EntropyBottleneck: hard with STE gradient, or SGA at ``tau``."""
    med = eb_medians(eb, v.ndim)
    v_hat = _quant(v - med, tau) + med
    c = v_hat.shape[1]
    flat = v_hat.transpose(0, 1).reshape(c, 1, -1)
    lik, _, _ = eb._likelihood(flat)
    lik = eb.likelihood_lower_bound(lik)
    return v_hat, -torch.log2(lik).sum()


def _rd(model, x, y, z, lam: float, s: Optional[int], n_px: int, gain: Optional[float] = None,
        tau=None, bf16: bool = False):
    if not hasattr(model, "h_a"):                                 # factorized prior
        y_hat, bits = _eb_bits(model.entropy_bottleneck, y, tau)
    else:
        z_hat, bits = _eb_bits(model.entropy_bottleneck, z, tau)
        params = model.h_s(z_hat)
        gc = model.gaussian_conditional
        if gain is not None:
            g = torch.tensor(float(gain))
        else:
            g = torch.abs(model.Gain[s]).detach() if s is not None else torch.tensor(1.0)
        scales, means = gaussian_params(model, params, y, tau, g)
        q = _quant((y - means) * g, tau)
        lik = gc.likelihood_lower_bound(gc._likelihood(q, scales * g))
        bits = bits - torch.log2(lik).sum()
        if s is not None and not getattr(model, "no_quantoffset", True):
            stdev = gc.lower_bound_scale(scales * g).detach()
            sg = torch.stack((stdev, g.expand_as(stdev)), dim=-1)
            off = -model.QuantABCD(sg).squeeze(-1)
            off = torch.where(q.detach().abs() < 1e-4, torch.zeros_like(off), off)
            y_hat = (torch.sign(q.detach()) * (q.abs() + off)) / g + means
        else:
            y_hat = q / g + means
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):   # the synthesis only: rates stay fp32
        x_hat = model.g_s(y_hat).float()
    mse = F.mse_loss(x_hat, x)
    return lam * 255 ** 2 * mse + bits / n_px, mse, bits / n_px


def refine_latents(model: nn.Module, x: torch.Tensor, lam: float, steps: int, s: Optional[int] = None,
                   lr: Optional[float] = None, n_px: Optional[int] = None, gain: Optional[float] = None,
                   method: str = "sga") -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Latents ``(y, z)`` for ``x`` (1×C×H×W in [0, 1]) after ``steps`` Adam steps on the RD loss.

    ``s``: the VBR rate index (None for fixed-rate models); ``gain``: a VBR latent gain between two levels
    (instead of level ``s``'s); ``n_px``: pixels the rate is counted over; ``method``: "sga"
    (stochastic Gumbel annealing) or "ssl" (sigmoid-scaled-logit rounding), both annealed from
    temperature 0.5 to 0.15, or "ste" (straight-through rounding).
    """
    if not supported(model):
        raise CodecError(f"latent refinement is not available for {type(model).__name__}")
    if method not in ("ssl", "sga", "ste"):
        raise CodecError(f"unknown refinement method {method!r}; use 'ssl', 'sga' or 'ste'")
    n_px = int(n_px or x.shape[-1] * x.shape[-2])
    steps = int(steps)
    lr = lr if lr is not None else (5e-3 if method == "ste" else 2e-2)
    from ..models.coding import cpu_has_bf16

    # gradient steps in bf16 where the CPU has it (2.2x faster, same loss); the kept iterate is judged in fp32
    bf16 = method != "ste" and x.device.type == "cpu" and cpu_has_bf16()
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().contiguous()
        y = model.g_a(x).detach().clone().requires_grad_(True)
        has_z = hasattr(model, "h_a")
        z = model.h_a(hyper_input(model, y)).detach().clone().requires_grad_(True) if has_z else None
        leaves = [y] + ([z] if has_z else [])
        opt = torch.optim.Adam(leaves, lr=lr)
        gen = torch.Generator().manual_seed(0)      # same image, same stream
        best, best_loss = [t.detach().clone() for t in leaves], math.inf
        for i in range(steps + 1):
            # the kept iterate is judged by the hard-quantised loss, i.e. what compress() will code
            judge = method == "ste" or i == steps or i % 5 == 0
            if judge:
                with torch.no_grad() if method != "ste" else torch.enable_grad():
                    hard, _, _ = _rd(model, x, y, z, lam, s, n_px, gain)
                hv = float(hard.detach())
                if hv < best_loss:
                    best_loss, best = hv, [t.detach().clone() for t in leaves]
            if i == steps:
                break
            if method != "ste":
                tau = TAU[0] * (TAU[1] / TAU[0]) ** (i / max(steps - 1, 1))
                loss, _, _ = _rd(model, x, y, z, lam, s, n_px, gain, tau=(tau, gen, method), bf16=bf16)
            else:
                loss = hard
            grads = torch.autograd.grad(loss, leaves)
            for t, g in zip(leaves, grads):
                t.grad = g
            opt.step()
    return best[0], (best[1] if has_z else None)


def _mean_scale(model) -> bool:
    from compressai.models import MeanScaleHyperprior

    return isinstance(model, MeanScaleHyperprior)
