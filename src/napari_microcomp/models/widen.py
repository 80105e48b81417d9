"""Grow a trained model's latent width (``M``) without changing what it computes.

Why: a trained ``mbt2018-mean-vbr`` with M=96 reconstructs at most ~32.5 dB on bright-field and
phase images even with its latents left unquantised (measured on the evaluation crops): 96 latents
per 16x16 block cannot carry the fine texture, so its RD curve flattens where JPEG 2000 keeps
rising. Widening keeps every trained weight and adds latent channels that start silent, so training
resumes from the old model's RD point instead of from scratch.

Rule, per convolution: new output channels get the fresh model's random initialisation; the weights
by which *old* outputs would read *new* inputs are zero. So the new latents neither reach the
reconstruction (``g_s``) nor the hyper-latent (``h_a``) until training makes them useful, while
gradients reach them through the fresh weights. Layers whose output is two stacked halves (the
scales and means of a mean-scale hyperprior's ``h_s``) keep each old half in its new place.
"""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn

# layers whose output channels are [scales (M), means (M)]: the mean-scale hyperpriors' last h_s conv
_HALVED = {"MeanScaleHyperprior", "MeanScaleHyperpriorVbr", "JointAutoregressiveHierarchicalPriors"}


def _halved_layers(model: nn.Module) -> List[str]:
    if type(model).__name__ not in _HALVED:
        return []
    convs = [n for n, m in model.h_s.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return [f"h_s.{convs[-1]}"]


def _out_index(old: int, new: int, halved: bool) -> torch.Tensor:
    """Where the old output channels go in the new layer."""
    if not halved or old == new:
        return torch.arange(old)
    if old % 2 or new % 2:
        raise ValueError(f"halved layer with odd widths {old} -> {new}")
    h, H = old // 2, new // 2
    return torch.cat([torch.arange(h), H + torch.arange(h)])


def widen_state(old: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """A state dict for ``model`` (the wider one, freshly initialised) holding ``old``'s weights.

    Channels may only grow. Tensors other than convolution weights/biases must match in shape,
    or differ only in their first dimension (per-channel entropy-model parameters: old channels
    first, fresh ones after). Raises ValueError otherwise.
    """
    fresh = model.state_dict()
    out: Dict[str, torch.Tensor] = {}
    halved = set(_halved_layers(model))
    done = set()
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        wk, bk = f"{name}.weight", f"{name}.bias"
        W, w = fresh[wk].clone(), old[wk]
        od, idim = (1, 0) if isinstance(mod, nn.ConvTranspose2d) else (0, 1)
        if any(a > b for a, b in zip(w.shape, W.shape)) or w.shape[2:] != W.shape[2:]:
            raise ValueError(f"{wk}: cannot shrink or reshape {tuple(w.shape)} -> {tuple(W.shape)}")
        oi = _out_index(w.shape[od], W.shape[od], name in halved)
        ii = torch.arange(w.shape[idim])
        Wm, wm = W.movedim((od, idim), (0, 1)), w.movedim((od, idim), (0, 1))  # views: out, in first
        Wm[oi.unsqueeze(1), ii.unsqueeze(0)] = wm.to(W.dtype)
        if W.shape[idim] > w.shape[idim]:  # old outputs must not read the new inputs
            Wm[oi, w.shape[idim]:] = 0
        out[wk] = W
        done.add(wk)
        if bk in fresh:
            B = fresh[bk].clone()
            B[oi] = old[bk].to(B.dtype)
            out[bk] = B
            done.add(bk)
    for k, T in fresh.items():
        if k in done:
            continue
        t = old[k]
        if t.shape == T.shape or T.numel() == 0:  # empty: entropy tables that update() rebuilds
            out[k] = t.to(T.dtype)
        elif t.dim() == T.dim() and t.shape[1:] == T.shape[1:] and t.shape[0] < T.shape[0]:
            U = T.clone()
            U[: t.shape[0]] = t.to(T.dtype)
            out[k] = U
        else:
            raise ValueError(f"{k}: cannot widen {tuple(t.shape)} -> {tuple(T.shape)}")
    return out


def grown(old: Dict[str, int], new: Dict[str, int]) -> Sequence[str]:
    """The width names that grow from ``old`` to ``new`` (ValueError if any shrinks)."""
    shrunk = [k for k in new if k in old and int(new[k]) < int(old[k])]
    if shrunk:
        raise ValueError(f"widths may only grow when warm-starting, not {shrunk}")
    return [k for k in new if int(new[k]) != int(old.get(k, new[k]))]
