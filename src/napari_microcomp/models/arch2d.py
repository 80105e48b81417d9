"""CompressAI's nine image architectures adapted to one channel (grayscale microscopy).

Only the first analysis layer and the last synthesis layer change (3 -> 1 channel), so the
state-dict keys stay those of CompressAI. Widths are parameters: the defaults in
:mod:`napari_microcomp.models.registry` are reduced from CompressAI's RGB widths for CPU speed
(one gray channel carries a third of the information an RGB pixel does).
"""
from typing import Callable, Dict

import torch.nn as nn
from compressai.layers import ResidualBlockWithStride, subpel_conv3x3
from compressai.models import (Cheng2020Anchor, Cheng2020Attention, FactorizedPrior, FactorizedPriorReLU,
                               JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior,
                               MeanScaleHyperpriorVbr, ScaleHyperprior, ScaleHyperpriorVbr)
from compressai.models.utils import conv, deconv


def _gray_gdn_family(model: nn.Module, N: int, k: int = 5) -> nn.Module:
    model.g_a[0] = conv(1, N, kernel_size=k, stride=2)
    model.g_s[-1] = deconv(N, 1, kernel_size=k, stride=2)
    return model


def _gray_cheng(model: nn.Module, N: int) -> nn.Module:
    model.g_a[0] = ResidualBlockWithStride(1, N, stride=2)
    model.g_s[-1] = subpel_conv3x3(N, 1, 2)
    return model


def bmshj2018_factorized(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(FactorizedPrior(N, M), N)


def bmshj2018_factorized_relu(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(FactorizedPriorReLU(N, M), N)


def bmshj2018_hyperprior(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(ScaleHyperprior(N, M), N)


def mbt2018_mean(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(MeanScaleHyperprior(N, M), N)


def mbt2018(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(JointAutoregressiveHierarchicalPriors(N, M), N)


def cheng2020_anchor(N: int = 64) -> nn.Module:
    return _gray_cheng(Cheng2020Anchor(N), N)


def cheng2020_attn(N: int = 64) -> nn.Module:
    return _gray_cheng(Cheng2020Attention(N), N)


def bmshj2018_hyperprior_vbr(N: int = 64, M: int = 96) -> nn.Module:
    # vr_entbttlnck=False: the hyper-latent uses the ordinary bottleneck, so one update() serves
    # every quality level and the cached model never changes state between encodes.
    return _gray_gdn_family(ScaleHyperpriorVbr(N, M, vr_entbttlnck=False), N)


def mbt2018_mean_vbr(N: int = 64, M: int = 96) -> nn.Module:
    return _gray_gdn_family(MeanScaleHyperpriorVbr(N, M, vr_entbttlnck=False), N)


FACTORIES: Dict[str, Callable[..., nn.Module]] = {
    "bmshj2018-factorized": bmshj2018_factorized,
    "bmshj2018-factorized-relu": bmshj2018_factorized_relu,
    "bmshj2018-hyperprior": bmshj2018_hyperprior,
    "mbt2018-mean": mbt2018_mean,
    "mbt2018": mbt2018,
    "cheng2020-anchor": cheng2020_anchor,
    "cheng2020-attn": cheng2020_attn,
    "bmshj2018-hyperprior-vbr": bmshj2018_hyperprior_vbr,
    "mbt2018-mean-vbr": mbt2018_mean_vbr,
}
