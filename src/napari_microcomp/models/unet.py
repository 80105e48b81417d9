"""Networks for label-free prediction: an fnet-style U-Net (2D or 3D) and a multi-scale PatchGAN.

The U-Net follows the Allen Institute's pytorch_fnet: each level has two 3×3 conv-BN-ReLU, goes
down with a stride-2 2×2 conv and up with a stride-2 2×2 transposed conv, and doubles the
channels per level (depth 4, 32 base channels: 32-64-128-256-512). Spatial sizes must be
multiples of ``2**depth`` (tiling takes care of it). The discriminator is pix2pixHD's
multi-scale PatchGAN, conditional on the input (it sees ``cat(input, image)``).
"""
from typing import Any, Dict, List

import torch
from torch import nn

from ..errors import InputError


def _ops(ndim: int):
    if ndim == 2:
        return nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d
    if ndim == 3:
        return nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d
    raise InputError(f"U-Net ndim must be 2 or 3, got {ndim}")


def _double_conv(n_in: int, n_out: int, ndim: int) -> nn.Sequential:
    conv, _, bn = _ops(ndim)
    return nn.Sequential(conv(n_in, n_out, 3, padding=1), bn(n_out), nn.ReLU(inplace=True),
                         conv(n_out, n_out, 3, padding=1), bn(n_out), nn.ReLU(inplace=True))


class _Level(nn.Module):
    """One U-Net level; recursion keeps the skip connection next to the code that uses it."""

    def __init__(self, n_in: int, n_out: int, depth: int, ndim: int):
        super().__init__()
        conv, convt, bn = _ops(ndim)
        self.more = _double_conv(n_in, n_out, ndim)
        self.depth = depth
        if depth > 0:
            self.down = nn.Sequential(conv(n_out, n_out, 2, stride=2), bn(n_out), nn.ReLU(inplace=True))
            self.inner = _Level(n_out, 2 * n_out, depth - 1, ndim)
            self.up = nn.Sequential(convt(2 * n_out, n_out, 2, stride=2), bn(n_out), nn.ReLU(inplace=True))
            self.less = _double_conv(2 * n_out, n_out, ndim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.more(x)
        if self.depth == 0:
            return x
        y = self.up(self.inner(self.down(x)))
        return self.less(torch.cat([x, y], dim=1))


class UNet(nn.Module):
    """fnet-style U-Net: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.

    Parameters
    ----------
    in_channels, out_channels : channels in and out (a z-stack model uses the slices as channels).
    depth : number of down-sampling steps; spatial sizes must be multiples of ``2**depth``.
    base : channels of the first level.
    ndim : 2 (Conv2d) or 3 (Conv3d).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 4, base: int = 32,
                 ndim: int = 2):
        super().__init__()
        self.ndim = ndim
        self.multiple = 2 ** depth
        self.body = _Level(in_channels, base, depth, ndim)
        conv = _ops(ndim)[0]
        self.head = conv(base, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bad = [s for s in x.shape[2:] if s % self.multiple]
        if bad:
            raise InputError(f"U-Net input sizes must be multiples of {self.multiple}, got {tuple(x.shape[2:])}")
        return self.head(self.body(x))


class PatchDiscriminator(nn.Module):
    """pix2pixHD NLayerDiscriminator; returns every intermediate feature map (for feature matching)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        blocks: List[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for n in range(1, n_layers + 1):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(nf_prev, nf, 4, stride, 2), nn.InstanceNorm2d(nf),
                                        nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """``n_scales`` PatchGANs on the image at full, 1/2, 1/4 ... resolution.

    ``forward`` returns, per scale, the list of feature maps whose last entry is the patch score map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, n_scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers) for _ in range(n_scales))
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = self.pool(x)
            out.append(d(x))
        return out


def build_generator(arch: Dict[str, Any]) -> UNet:
    """The U-Net described by ``arch`` (the ``meta["arch"]`` of a weights file)."""
    if not isinstance(arch, dict):
        raise InputError(f"model architecture must be a mapping, got {type(arch).__name__}")
    try:
        dims = {k: arch[k] for k in ("in_channels", "out_channels", "depth", "base", "ndim")}
    except KeyError as exc:
        raise InputError(f"model architecture lacks {exc}; the weights file is incomplete") from exc
    # checked before anything is allocated: a crafted file asking for base=10**6 would try terabytes
    limits = {"in_channels": (1, 64), "out_channels": (1, 16), "depth": (1, 8), "base": (1, 256), "ndim": (2, 3)}
    for k, (lo, hi) in limits.items():
        v = dims[k]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InputError(f"model architecture {k}={v!r}: expected an integer {lo}..{hi} (damaged or crafted "
                             "weights file)")
    return UNet(**dims)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
