"""Pad tiles to the analysis transform's stride (16), not to the hyperprior's (64).

Why: replicate padding is not cheap to code. Measured with ``mbt2018-mean-vbr`` on crops of a 1024×768
phase image: a 512×392 crop (padded to 512×448) cost 11,431 bytes, a 512×448 crop 11,382 and a 512×384 one
9,850 — the 56 padded columns cost as much as real content. The hyper-analysis needs its input (the latent
``y``, 1/16 of the image) to be a multiple of 4, so that padding now happens on ``y`` (replicate, seen only
by ``h_a``) and ``h_s``'s output is cropped back to ``y``'s size: the coded latent covers the image plus at
most 15 pixels. Streams record ``grid``; those without it were padded to 64 and still decode that way.
"""
import copy
from functools import lru_cache
from typing import Tuple

GRID = 16      # what new streams use
OLD_GRID = 64  # streams that do not record a grid
GRIDS = (16, 64)


def latent_shape(h: int, w: int, grid: int) -> Tuple[int, int]:
    """The latent ``y``'s size for an ``h``×``w`` tile padded to ``grid``."""
    return -(-h // grid) * grid // 16, -(-w // grid) * grid // 16


def crop(t, size: Tuple[int, int]):
    return t[..., :size[0], :size[1]]


@lru_cache(maxsize=None)
def _wrappers():
    """The two wrapper modules, built on first use: listing codecs must not import torch."""
    import torch.nn as nn
    import torch.nn.functional as F

    class PadIn(nn.Module):
        """``h_a`` on a latent replicate-padded to a multiple of 4."""

        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, y):
            h, w = y.shape[-2:]
            return self.inner(F.pad(y, (0, -w % 4, 0, -h % 4), mode="replicate") if (h % 4 or w % 4) else y)

    class CropOut(nn.Module):
        """``h_s`` cropped to the latent's size."""

        def __init__(self, inner: nn.Module, size: Tuple[int, int]):
            super().__init__()
            self.inner, self.size = inner, tuple(size)

        def forward(self, z):
            return crop(self.inner(z), self.size)

    return PadIn, CropOut


def on_grid(model, ysize: Tuple[int, int]):
    """A shallow copy of ``model`` (shared weights) whose hyperprior works on a latent of ``ysize``."""
    if not hasattr(model, "h_a") or (ysize[0] % 4 == 0 and ysize[1] % 4 == 0):
        return model
    pad_in, crop_out = _wrappers()
    m = copy.copy(model)
    m._modules = dict(model._modules)
    m._modules["h_a"] = pad_in(model.h_a)
    m._modules["h_s"] = crop_out(model.h_s, ysize)
    return m


def hyper_synthesis(model):
    """(the model's own ``h_s``, the size to crop its output to, or None)."""
    h_s = model.h_s
    return (h_s.inner, h_s.size) if isinstance(h_s, _wrappers()[1]) else (h_s, None)
