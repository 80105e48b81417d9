"""Volumetric (Conv3d) learned-compression architectures for 1-channel z-stacks.

:class:`Factorized3D` is bmshj2018-factorized with every 2D convolution replaced by a 3D one.
Y and X are downsampled by 16 (four stride-2 layers) but Z only by ``2**len(z_down)`` (default
4): microscopy stacks are often only 5–60 slices deep, and padding a 5-slice stack to 16 slices
would waste a third of the latent on padding.

:class:`Hyperprior3D` adds a 3D scale hyperprior (bmshj2018-hyperprior). Both follow CompressAI's
model protocol (``forward`` -> ``{"x_hat", "likelihoods"}``, ``compress``/``decompress``,
``aux_loss``, ``update``), so the generic trainer trains them unchanged. The entropy math runs in
float32 even under bf16 autocast (the rate estimate must match real streams).
"""
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.models.utils import update_registered_buffers


# Scale table of compressai's bmshj2018-hyperprior (quantised Gaussian scales).
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


class GDN3d(GDN):
    """GDN on (B, C, D, H, W): the normalisation is pointwise over space, so fold D into H.

    Without autograd (coding) it works in place: two fewer volume-sized temporaries per layer,
    which is most of a tile's peak memory.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        if x.dim() == 5:
            b, c, d, h, w = shape
            x = x.reshape(b, c, d * h, w)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return super().forward(x).reshape(shape)
        c = x.shape[1]
        gamma = self.gamma_reparam(self.gamma).reshape(c, c, 1, 1)
        norm = F.conv2d(x * x, gamma, self.beta_reparam(self.beta))
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return norm.mul_(x).reshape(shape)


def _stride(z_down: bool) -> Tuple[int, int, int]:
    return (2 if z_down else 1, 2, 2)


def conv3d(cin: int, cout: int, z_down: bool = True, k: int = 5) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, k, stride=_stride(z_down), padding=k // 2)


def deconv3d(cin: int, cout: int, z_up: bool = True, k: int = 5) -> nn.ConvTranspose3d:
    s = _stride(z_up)
    return nn.ConvTranspose3d(cin, cout, k, stride=s, padding=k // 2,
                              output_padding=tuple(v - 1 for v in s))


def _z_flags(z_down: Sequence[bool]) -> List[bool]:
    flags = [bool(v) for v in z_down]
    if len(flags) != 4:
        raise ValueError(f"z_down needs 4 flags (one per stride-2 layer), got {z_down!r}")
    return flags


def _entropy_f32(module, y: torch.Tensor, *extra: torch.Tensor):
    """Call an entropy model in float32 with autocast off, whatever the caller's precision."""
    with torch.autocast(device_type=y.device.type, enabled=False):
        return module(y.float(), *(e.float() for e in extra))


class Factorized3D(CompressionModel):
    """bmshj2018-factorized in 3D for 1-channel volumes (B, 1, Z, Y, X) scaled to [0, 1].

    Parameters
    ----------
    N, M : int
        Channels of the hidden layers and of the latent.
    z_down : sequence of 4 bool
        Which of the four stride-2 stages also halve Z (default: the first two).
    """

    ndim = 3

    def __init__(self, N: int = 96, M: int = 128, z_down: Sequence[bool] = (True, True, False, False),
                 **kwargs: Any):
        super().__init__(**kwargs)
        zf = _z_flags(z_down)
        self.N, self.M, self.z_down = int(N), int(M), zf
        self.entropy_bottleneck = EntropyBottleneck(self.M)
        self.g_a = nn.Sequential(
            conv3d(1, N, zf[0]), GDN3d(N),
            conv3d(N, N, zf[1]), GDN3d(N),
            conv3d(N, N, zf[2]), GDN3d(N),
            conv3d(N, M, zf[3]))
        self.g_s = nn.Sequential(
            deconv3d(M, N, zf[3]), GDN3d(N, inverse=True),
            deconv3d(N, N, zf[2]), GDN3d(N, inverse=True),
            deconv3d(N, N, zf[1]), GDN3d(N, inverse=True),
            deconv3d(N, 1, zf[0]))

    @property
    def downsampling_factor(self) -> Tuple[int, int, int]:
        """Padding multiple per axis (Z, Y, X)."""
        return (2 ** sum(self.z_down), 16, 16)

    def latent_shape(self, zyx: Sequence[int]) -> List[int]:
        """The ``shape`` :meth:`compress` returns for a padded block ``zyx`` (that of ``y``)."""
        return [int(v) // f for v, f in zip(zyx, (2 ** sum(self.z_down), 16, 16))]

    def config(self) -> Dict[str, Any]:
        """Constructor arguments, stored with exported weights."""
        return {"N": self.N, "M": self.M, "z_down": list(self.z_down)}

    def forward(self, x: torch.Tensor) -> Dict[str, Any]:
        y = self.g_a(x)
        y_hat, y_lik = _entropy_f32(self.entropy_bottleneck, y)
        x_hat = self.g_s(y_hat.to(y.dtype))
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik}}

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> Dict[str, Any]:
        y = self.g_a(x).float()
        strings = self.entropy_bottleneck.compress(y)
        return {"strings": [strings], "shape": tuple(y.shape[-3:])}

    @torch.no_grad()
    def decompress(self, strings: List[List[bytes]], shape: Sequence[int]) -> Dict[str, torch.Tensor]:
        y_hat = self.entropy_bottleneck.decompress(strings[0], tuple(shape))
        return {"x_hat": self.g_s(y_hat)}

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, torch.Tensor], **config: Any) -> "Factorized3D":
        """Build a model sized from ``state_dict`` (``z_down`` from ``config``, default)."""
        N = state_dict["g_a.0.weight"].size(0)
        M = state_dict["g_a.6.weight"].size(0)
        net = cls(N, M, **{k: v for k, v in config.items() if k == "z_down"})
        net.load_state_dict(state_dict)
        return net


class Hyperprior3D(CompressionModel):
    """bmshj2018-hyperprior in 3D: a factorized hyper-latent z carries per-voxel Gaussian scales.

    The hyper-transforms keep Z (their strides are (1, 2, 2)), because the main latent is already
    only a few slices deep.
    """

    ndim = 3

    def __init__(self, N: int = 96, M: int = 128, z_down: Sequence[bool] = (True, True, False, False),
                 **kwargs: Any):
        super().__init__(**kwargs)
        zf = _z_flags(z_down)
        self.N, self.M, self.z_down = int(N), int(M), zf
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.g_a = nn.Sequential(
            conv3d(1, N, zf[0]), GDN3d(N),
            conv3d(N, N, zf[1]), GDN3d(N),
            conv3d(N, N, zf[2]), GDN3d(N),
            conv3d(N, M, zf[3]))
        self.g_s = nn.Sequential(
            deconv3d(M, N, zf[3]), GDN3d(N, inverse=True),
            deconv3d(N, N, zf[2]), GDN3d(N, inverse=True),
            deconv3d(N, N, zf[1]), GDN3d(N, inverse=True),
            deconv3d(N, 1, zf[0]))
        self.h_a = nn.Sequential(
            nn.Conv3d(M, N, 3, stride=1, padding=1), nn.ReLU(inplace=True),
            conv3d(N, N, False), nn.ReLU(inplace=True),
            conv3d(N, N, False))
        self.h_s = nn.Sequential(
            deconv3d(N, N, False), nn.ReLU(inplace=True),
            deconv3d(N, N, False), nn.ReLU(inplace=True),
            nn.Conv3d(N, M, 3, stride=1, padding=1), nn.ReLU(inplace=True))

    @property
    def downsampling_factor(self) -> Tuple[int, int, int]:
        return (2 ** sum(self.z_down), 64, 64)

    def latent_shape(self, zyx: Sequence[int]) -> List[int]:
        """The ``shape`` :meth:`compress` returns for a padded block ``zyx`` (that of ``z``)."""
        return [int(v) // f for v, f in zip(zyx, self.downsampling_factor)]

    def config(self) -> Dict[str, Any]:
        return {"N": self.N, "M": self.M, "z_down": list(self.z_down)}

    def forward(self, x: torch.Tensor) -> Dict[str, Any]:
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_hat, z_lik = _entropy_f32(self.entropy_bottleneck, z)
        scales = self.h_s(z_hat.to(z.dtype))
        y_hat, y_lik = _entropy_f32(self.gaussian_conditional, y, scales)
        x_hat = self.g_s(y_hat.to(y.dtype))
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        if scale_table is None:
            scale_table = torch.exp(torch.linspace(
                torch.log(torch.tensor(SCALES_MIN)), torch.log(torch.tensor(SCALES_MAX)), SCALES_LEVELS))
        updated = self.gaussian_conditional.update_scale_table(scale_table, force=force)
        updated |= super().update(force=force, update_quantiles=update_quantiles)
        return updated

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        update_registered_buffers(self.gaussian_conditional, "gaussian_conditional",
                                  ["_quantized_cdf", "_offset", "_cdf_length", "scale_table"], state_dict)
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> Dict[str, Any]:
        y = self.g_a(x).float()
        z = self.h_a(torch.abs(y)).float()
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, tuple(z.shape[-3:]))
        # scales come from the DECODED z, exactly as the decoder will see them
        indexes = self.gaussian_conditional.build_indexes(self.h_s(z_hat).float())
        y_strings = self.gaussian_conditional.compress(y, indexes)
        return {"strings": [y_strings, z_strings], "shape": tuple(z.shape[-3:])}

    @torch.no_grad()
    def decompress(self, strings: List[List[bytes]], shape: Sequence[int]) -> Dict[str, torch.Tensor]:
        z_hat = self.entropy_bottleneck.decompress(strings[1], tuple(shape))
        indexes = self.gaussian_conditional.build_indexes(self.h_s(z_hat).float())
        y_hat = self.gaussian_conditional.decompress(strings[0], indexes, z_hat.dtype)
        return {"x_hat": self.g_s(y_hat)}

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, torch.Tensor], **config: Any) -> "Hyperprior3D":
        N = state_dict["g_a.0.weight"].size(0)
        M = state_dict["g_a.6.weight"].size(0)
        net = cls(N, M, **{k: v for k, v in config.items() if k == "z_down"})
        net.load_state_dict(state_dict)
        return net


def pad_multiple(x: torch.Tensor, multiple: Sequence[int]) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
    """Replicate-pad a (B, C, Z, Y, X) tensor at the far end so each axis is a multiple; return the
    padded tensor and the original (Z, Y, X)."""
    zyx = tuple(int(s) for s in x.shape[-3:])
    pads: List[int] = []
    for size, m in zip(reversed(zyx), reversed(tuple(multiple))):
        pads += [0, (-size) % m]
    if any(pads):
        # replicate padding in 3D needs at least one voxel per axis, which every volume has
        x = F.pad(x, pads, mode="replicate")
    return x, zyx  # type: ignore[return-value]





def factorized3d(N: int = 64, M: int = 96) -> Factorized3D:
    """Zoo factory: :class:`Factorized3D` with the default Z downsampling."""
    return Factorized3D(N, M)


def hyperprior3d(N: int = 64, M: int = 96) -> Hyperprior3D:
    """Zoo factory: :class:`Hyperprior3D` with the default Z downsampling."""
    return Hyperprior3D(N, M)
