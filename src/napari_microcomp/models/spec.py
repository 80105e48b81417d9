"""What describes one trainable codec architecture (no torch import: the registry fills the table)."""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

# CompressAI's MSE lambdas for qualities 1..8 (examples/train.py, zoo docs); our inputs are in [0, 1].
LAMBDAS_MSE: Tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@dataclass(frozen=True)
class ArchSpec:
    """One trainable architecture.

    ``factory(**widths)`` returns a 1-channel CompressAI ``CompressionModel``; ``widths(quality)``
    gives the default widths; ``coding`` selects how the codec calls compress/decompress
    (``"plain"``, ``"vbr"``, ``"ar"``: autoregressive context model); ``served_by`` names a variable-rate
    architecture whose weight file serves every quality of this fixed-rate one when it has no file of its own.
    """

    name: str
    factory: Callable[..., Any]
    ndim: int = 2
    lambdas: Tuple[float, ...] = LAMBDAS_MSE
    vbr: bool = False
    coding: str = "plain"
    widths: Callable[[int], Dict[str, int]] = field(default=lambda q: {})
    description: str = ""
    multiple: int = 64
    served_by: str = ""   # a VBR architecture whose file serves this one (models.derive) when it has no file


    def weights_filename(self, quality: int) -> str:
        return f"{self.name}.pt" if self.vbr else f"{self.name}-q{quality}.pt"

    def lmbda(self, quality: int) -> float:
        return float(self.lambdas[quality - 1])
