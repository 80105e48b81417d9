"""Codec-training numerics: entropy models in float32 under bf16 autocast, the bf16 probe, the lr schedule."""
import math

import torch

from ..models.coding import cpu_has_bf16  # noqa: F401  (the trainers' bf16 default)


def fp32_entropy(model: torch.nn.Module, device_type: str) -> None:
    """Run every entropy model outside autocast, on float32 inputs (likelihoods need the precision)."""
    from compressai.entropy_models import EntropyModel

    for m in model.modules():
        if isinstance(m, EntropyModel) and "forward" not in m.__dict__:
            orig = m.forward

            def forward(*args, _orig=orig, **kwargs):
                f = (lambda v: v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                with torch.autocast(device_type=device_type, enabled=False):
                    return _orig(*[f(a) for a in args], **{k: f(v) for k, v in kwargs.items()})

            m.forward = forward


def lr_factor(step: int, frac: float, cfg) -> float:
    """Learning-rate multiplier: linear warm-up over ``cfg.warmup`` steps, then the decay schedule.

    ``frac`` is the fraction of the budget used (steps or wall clock, whichever is further).
    """
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.schedule == "step":
        return warm * (0.1 if frac >= 0.75 else 1.0)
    floor = 0.02
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))))
