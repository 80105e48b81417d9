"""Start an architecture from another one's trained weights, computing the same function.

* ``mbt2018-mean-vbr`` -> ``mbt2018-mean`` (and ``bmshj2018-hyperprior-vbr`` -> ``bmshj2018-hyperprior``,
  whose hyper-analysis reads ``|y|`` and whose scales pass a ReLU: both commute with ``g > 0``) at one quality: the VBR model's rate level ``s`` scales the
  latent by one scalar gain before quantisation (``y*g``) and back after. Folding ``g`` into the last
  analysis conv, the first hyper-analysis conv, the last hyper-synthesis conv and the first synthesis
  conv gives the fixed-rate model of that level. Only the VBR model's learned reconstruction offsets
  (``QuantABCD``) have no fixed-rate counterpart; the tests measure what that costs.
* ``mbt2018-mean-vbr`` -> ``mbt2018-mean-vbr3d``: :func:`.stacked3d.inflate_state`.

:data:`TRANSPLANTS` are training starts only, never a way to serve a model: they copy every tensor
whose name and shape agree and leave the rest freshly initialised: ``mbt2018-mean-vbr`` ->
``bmshj2018-hyperprior-vbr`` keeps the transforms, rate gains, hyper-analysis and offsets (the scale-only
hyper-synthesis is new); -> ``mbt2018`` and ``bmshj2018-factorized`` start from one folded level
(the context model and entropy parameters, or the factorized prior on the latent, are new);
``bmshj2018-factorized`` -> ``bmshj2018-factorized-relu`` keeps every conv and the prior, and the
network relearns around ReLU in place of GDN; ``cheng2020-anchor`` -> ``cheng2020-attn`` keeps everything and
adds the attention blocks near identity.
"""
from typing import Callable, Dict, Optional, Tuple

import torch

State = Dict[str, torch.Tensor]


def fold_vbr_level(state: State, level: int) -> State:
    """Variable-rate weights -> the fixed-rate weights of rate level ``level`` (0..7)."""
    g = float(state["Gain"][level].abs())
    out = {k: v.clone() for k, v in state.items() if not k.startswith(("Gain", "QuantABCD"))}
    for k in ("g_a.6.weight", "g_a.6.bias", "h_s.4.weight", "h_s.4.bias"):
        out[k] *= g       # the latent, and the means and scales predicted for it, in units of y*g
    for k in ("h_a.0.weight", "g_s.0.weight"):
        out[k] /= g       # their inputs are now y*g
    return out


def _inflate(state: State, quality: Optional[int]) -> State:
    from .stacked3d import inflate_state
    return inflate_state(state)


def _fold(state: State, quality: Optional[int]) -> State:
    if quality is None:
        raise ValueError("deriving a fixed-rate model from a variable-rate one needs --quality")
    return fold_vbr_level(state, int(quality) - 1)


DERIVATIONS: Dict[Tuple[str, str], Callable[[State, Optional[int]], State]] = {
    ("mbt2018-mean-vbr", "mbt2018-mean"): _fold,
    ("bmshj2018-hyperprior-vbr", "bmshj2018-hyperprior"): _fold,
    ("mbt2018-mean-vbr", "mbt2018-mean-vbr3d"): _inflate,
}


def _anchor_to_attn(state: State, quality: Optional[int]) -> State:
    """cheng2020-anchor -> cheng2020-attn: the residual blocks move to their places between the four
    attention blocks, which start as ``x + sigmoid(-4) * relu(x)`` (the last convs of their trunk zeroed, their
    mask biased to -4): the network begins within 2 % of the anchor and the blocks learn from there."""
    moves = {"g_a": (0, 1, 2, 4, 5, 6, 7), "g_s": (1, 2, 3, 4, 6, 7, 8, 9)}
    out = {}
    for k, v in state.items():
        part, _, rest = k.partition(".")
        if part in moves:
            i, _, tail = rest.partition(".")
            k = f"{part}.{moves[part][int(i)]}.{tail}"
        out[k] = v.clone()
    n = int(state["g_a.6.weight"].shape[0])
    for blk in ("g_a.3", "g_a.8", "g_s.0", "g_s.5"):
        for u in range(3):
            out[f"{blk}.conv_a.{u}.conv.4.weight"] = torch.zeros(n, n // 2, 1, 1)
            out[f"{blk}.conv_a.{u}.conv.4.bias"] = torch.zeros(n)
        out[f"{blk}.conv_b.3.weight"] = torch.zeros(n, n, 1, 1)
        out[f"{blk}.conv_b.3.bias"] = torch.full((n,), -4.0)
    return out


# (source, destination) -> what to do to the source first (a fixed-rate destination takes one folded level)
TRANSPLANTS: Dict[Tuple[str, str], Optional[Callable[[State, Optional[int]], State]]] = {
    ("mbt2018-mean-vbr", "bmshj2018-hyperprior-vbr"): None,
    ("mbt2018-mean-vbr", "mbt2018"): _fold,               # + a fresh context model and entropy parameters
    ("mbt2018-mean-vbr", "bmshj2018-factorized"): _fold,  # + a fresh factorized prior on y
    ("bmshj2018-factorized", "bmshj2018-factorized-relu"): None,  # the convs and prior; ReLU in place of GDN
    ("cheng2020-anchor", "cheng2020-attn"): _anchor_to_attn,      # + four attention blocks, near identity
}


def transplant(state: State, fresh: State) -> State:
    """``fresh`` with every tensor of ``state`` whose name and shape agree copied in."""
    return {k: (state[k] if k in state and state[k].shape == v.shape else v) for k, v in fresh.items()}


def derive(src_arch: str, dst_arch: str, state: State, quality: Optional[int] = None,
           fresh: Optional[State] = None) -> State:
    """``state`` of ``src_arch`` as weights for ``dst_arch``; ValueError when no derivation exists.
    A transplant (training starts only) needs the ``fresh`` state of the destination model."""
    if src_arch == dst_arch:
        return state
    if (src_arch, dst_arch) in TRANSPLANTS and fresh is not None:
        first = TRANSPLANTS[(src_arch, dst_arch)]
        return transplant(first(state, quality) if first else state, fresh)
    fn = DERIVATIONS.get((src_arch, dst_arch))
    if fn is None:
        raise ValueError(f"{src_arch!r} weights cannot start a {dst_arch!r} model")
    return fn(state, quality)
