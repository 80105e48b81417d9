"""The architecture registry: name -> :class:`~.spec.ArchSpec` (factory, dimensionality, λ table, widths).

The nine 2D CompressAI architectures (:mod:`.arch2d`) and the 3D ones (:mod:`.arch3d`) are registered
here; :func:`register_arch` adds more, and ``microcomp train-codec`` trains anything registered.
Where the weights for an architecture come from is :mod:`napari_microcomp.weights`' business.

The table needs no torch: factories import their module when called, so listing codecs (the GUI's
process, ``microcomp --help``) stays light and never loads torch, CompressAI or triton.
"""
from importlib import import_module
from typing import Any, Callable, Dict, List, Optional

from ..errors import MicrocompError
from .spec import LAMBDAS_MSE, ArchSpec

__all__ = ["LAMBDAS_MSE", "ArchSpec", "register_arch", "get_arch", "list_archs", "build_model", "model_widths",
           "compressai_url"]

_ARCHS: Dict[str, ArchSpec] = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Make an architecture known to the zoo and the trainer (``microcomp train-codec --arch``)."""
    if spec.ndim not in (2, 3):
        raise MicrocompError(f"{spec.name}: ndim must be 2 or 3")
    if len(spec.lambdas) != 8:
        raise MicrocompError(f"{spec.name}: need 8 lambdas (qualities 1..8)")
    _ARCHS[spec.name] = spec
    return spec


def get_arch(name: str) -> ArchSpec:
    try:
        return _ARCHS[name]
    except KeyError:
        raise MicrocompError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}") from None


def list_archs(ndim: Optional[int] = None) -> List[str]:
    return [n for n, s in _ARCHS.items() if ndim is None or s.ndim == ndim]


def compressai_url(name: str, quality: int) -> Optional[str]:
    """CompressAI's pretrained (RGB) weights URL for ``name`` at ``quality``, if it publishes one."""
    try:
        from compressai.zoo.image import model_urls
    except ImportError:  # pragma: no cover - compressai always ships its zoo
        return None
    return model_urls.get(name, {}).get("mse", {}).get(quality)


def _lazy(module: str, function: str) -> Callable[..., Any]:
    """A factory that imports ``models.<module>`` (torch) only when a model is built."""
    def factory(**widths: int) -> Any:
        return getattr(import_module(f"napari_microcomp.models.{module}"), function)(**widths)
    factory.__name__ = factory.__qualname__ = function
    return factory


# Default widths, reduced from CompressAI's RGB ones (N/M = 128/192 .. 192/320) for CPU speed:
# a gray pixel carries a third of the information of an RGB one. Higher qualities get wider
# networks, as in CompressAI's zoo. These are the widths the shipped weights were trained with;
# a weight file always records its own widths, so changing these never breaks existing files.
def _w_nm(q: int) -> Dict[str, int]:
    return {"N": 48, "M": 64} if q <= 4 else {"N": 64, "M": 96}


def _w_cheng(q: int) -> Dict[str, int]:
    return {"N": 48} if q <= 4 else {"N": 64}


def _w_vbr(q: int) -> Dict[str, int]:
    return {"N": 64, "M": 96}


# Fixed-rate architectures served, without a file of their own, by folding one rate level of a
# variable-rate file (models/derive.py): the same function, minus the VBR model's learned offsets.
SERVED_BY = {"mbt2018-mean": "mbt2018-mean-vbr", "bmshj2018-hyperprior": "bmshj2018-hyperprior-vbr"}

for _name, _coding, _widths, _desc in [
    ("bmshj2018-factorized", "plain", _w_nm, "Ballé 2018 factorized prior (GDN)"),
    ("bmshj2018-factorized-relu", "plain", _w_nm, "Ballé 2018 factorized prior (ReLU)"),
    ("bmshj2018-hyperprior", "plain", _w_nm, "Ballé 2018 scale hyperprior"),
    ("mbt2018-mean", "plain", _w_nm, "Minnen 2018 mean-scale hyperprior"),
    ("mbt2018", "ar", _w_nm, "Minnen 2018 joint autoregressive + hyperprior"),
    ("cheng2020-anchor", "ar", _w_cheng, "Cheng 2020 anchor (residual blocks, autoregressive)"),
    ("cheng2020-attn", "ar", _w_cheng, "Cheng 2020 with attention (autoregressive)"),
    ("bmshj2018-hyperprior-vbr", "vbr", _w_vbr, "variable-rate scale hyperprior (one model, 8 rates)"),
    ("mbt2018-mean-vbr", "vbr", _w_vbr, "variable-rate mean-scale hyperprior (one model, 8 rates)"),
]:
    register_arch(ArchSpec(name=_name, factory=_lazy("arch2d", _name.replace("-", "_")), ndim=2,
                           vbr=_coding == "vbr", coding=_coding, widths=_widths, description=_desc,
                           served_by=SERVED_BY.get(_name, "")))


def _w_3d(q: int) -> Dict[str, int]:
    # N stays 64 at every rate: a 5x5x5 conv has 5x the weights and cost of a 5x5 one (N=96 would
    # make 15 MB weight files); the latent widens for the high rates, as in CompressAI.
    return {"N": 64, "M": 96} if q <= 4 else {"N": 64, "M": 128}


register_arch(ArchSpec(name="factorized3d", factory=_lazy("arch3d", "factorized3d"), ndim=3, widths=_w_3d,
                       multiple=16, description="3D (Conv3d) Ballé 2018 factorized prior for z-stacks"))
register_arch(ArchSpec(name="hyperprior3d", factory=_lazy("arch3d", "hyperprior3d"), ndim=3, widths=_w_3d,
                       multiple=64, description="3D (Conv3d) Ballé 2018 scale hyperprior for z-stacks"))
register_arch(ArchSpec(name="mbt2018-mean-vbr3d", factory=_lazy("stacked3d", "mbt2018_mean_vbr3d"), ndim=3,
                       vbr=True, coding="vbr", widths=_w_vbr, multiple=64,
                       description="3D (Conv3d) transforms around the variable-rate mean-scale hyperprior "
                                   "(one model, 8 rates)"))


def build_model(arch: str, quality: int = 4, **widths: int) -> "Any":
    """A freshly initialised 1-channel model (widths default to the zoo's for ``quality``)."""
    spec = get_arch(arch)
    w = dict(spec.widths(quality))
    w.update({k: int(v) for k, v in widths.items() if v is not None})
    return spec.factory(**w)


def model_widths(model: Any) -> Dict[str, int]:
    """The constructor widths of a model built by a zoo factory."""
    out = {}
    for k in ("N", "M"):
        v = getattr(model, k, None)
        if isinstance(v, int):
            out[k] = v
    return out
