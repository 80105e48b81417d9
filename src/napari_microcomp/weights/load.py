"""Loading weight files into ready models: always ``torch.load(..., weights_only=True)``, one cache.

:func:`get_model` resolves ``(arch, quality, weights)`` for the codecs — None (user folders, then
shipped; general weights first), a modality name, a file path, an https URL of a CompressAI-format
state dict, or ``"compressai"`` (CompressAI's official pretrained RGB weights: the gray input is
replicated to 3 channels and the output averaged, as the study did). :func:`read_labelfree` reads a
label-free network. Everything loaded is kept in one process-wide cache (:func:`cached`), keyed by
the file's path, size and modification time, so a retrained file is reloaded.
"""
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Optional, Tuple

from ..errors import MicrocompError, WeightsNotFoundError
from ..io_checks import real_path
from . import locate
from .download import fetch_url, secure_url
from .fingerprint import file_id

FORMAT = "napari-microcomp-weights/1"
LABELFREE_FORMAT = "napari-microcomp/labelfree"
LABELFREE_VERSION = 1

_CACHE: Dict[Hashable, Any] = {}
_LOCK = threading.RLock()


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """The cached object for ``key``, built once (under the lock) by ``build()``."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def file_key(kind: str, path: Path, *extra) -> Tuple:
    st = path.stat()
    return (kind, str(path), st.st_size, st.st_mtime_ns, *extra)


def _torch_load(p: Path, what: str):
    """``torch.load(p, weights_only=True)``; ``what`` starts the error message ("X is not a readable ...")."""
    import torch

    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsNotFoundError(f"{what} ({type(exc).__name__}: {exc})") from exc


class LoadedModel:
    """A ready-to-code model: eval mode, float32, CPU, entropy tables in place."""

    def __init__(self, model, arch: str, weights_id: str, source: str, channels: int = 1,
                 meta: Optional[Dict[str, Any]] = None):
        self.model = model
        self.arch = arch
        self.weights_id = weights_id
        self.source = source
        self.channels = channels
        self.meta = meta or {}


MAX_WIDTH = 1024   # channel widths a codec weight file may declare (the zoo uses 48..192)
ENCODER_ONLY = ("g_a.", "h_a.")   # the analysis transforms: decoding never runs them (retired files lack them)


def _read_codec_file(p: Path) -> LoadedModel:
    from ..models.coding import (prepare_for_coding, rebuild_gaussian_tables, unpack_cdf_tables,
                                  unpack_masked_weights)
    from ..models.registry import get_arch

    d = _torch_load(p, f"{p} is not a readable weight file")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise WeightsNotFoundError(f"{p} is not a napari-microcomp weight file (export it with "
                                   "`microcomp train-codec ... --out FILE.pt`)")
    try:
        spec = get_arch(d.get("arch"))
    except MicrocompError as exc:
        raise WeightsNotFoundError(f"{p}: {exc}") from None
    widths = d.get("widths")
    # checked before anything is allocated: a crafted file asking for M=10**6 would try 150 TB
    if (not isinstance(widths, dict) or set(widths) - {"N", "M"}
            or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_WIDTH for v in widths.values())):
        raise WeightsNotFoundError(f"{p}: implausible network widths {widths!r} (each of N, M 1..{MAX_WIDTH}; "
                                   "damaged or crafted file)")
    model = spec.factory(**widths)
    import torch

    sd = d.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsNotFoundError(f"{p} holds no state dict of tensors (damaged or crafted file)")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    meta = d["meta"] if isinstance(d.get("meta"), dict) else {}
    wid = file_id(p)
    if meta.get("decoder_only"):  # a retired file (export.retire): no analysis transforms, the original's id
        state.update({k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_ONLY)})
        wid = str(meta.get("weights_id") or wid)
    try:
        unpack_cdf_tables(state)
        unpack_masked_weights(model, state)
        rebuild_gaussian_tables(model, state)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        why = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])
        raise WeightsNotFoundError(f"{p}: the weights do not fit {d['arch']} {widths} ({why[:300]})") from None
    prepare_for_coding(model, channels_last=spec.ndim == 2)
    return LoadedModel(model, d["arch"], wid, str(p), 1, dict(meta, quality=d.get("quality"), widths=d["widths"]))


def encodable(lm: LoadedModel, codec_id: str) -> LoadedModel:
    """``lm``, unless it is a retired decode-only file (it lacks the analysis transforms)."""
    if lm.meta.get("decoder_only"):
        raise WeightsNotFoundError(f"{codec_id}: {lm.source} is a retired, decode-only weight file (it decodes the "
                                   "streams written with it); encode with current weights")
    return lm


def load_weights(path, arch: Optional[str] = None, quality: Optional[int] = None) -> LoadedModel:
    """Load a codec weight file written by :func:`~.export.export_weights` (cached by path, size and mtime)."""
    p = real_path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"weight file not found: {p}")
    lm = cached(file_key("file", p), lambda: _read_codec_file(p))
    if arch is not None and lm.arch != arch:
        raise WeightsNotFoundError(f"{p} holds weights for {lm.arch!r}, not {arch!r}")
    fq = lm.meta.get("quality")
    if quality is not None and fq is not None and fq != quality:
        raise WeightsNotFoundError(f"{p} holds {arch} weights for quality {fq}, not {quality}")
    return lm


def _read_url(arch: str, url: str, cache: Optional[Path]) -> LoadedModel:
    import torch
    from compressai.zoo.image import model_architectures
    from compressai.zoo.pretrained import load_pretrained

    from ..models.coding import prepare_for_coding

    path = fetch_url(url, cache)
    sd = load_pretrained(torch.load(path, map_location="cpu", weights_only=True))
    model = model_architectures[arch].from_state_dict(sd)
    channels = int(model.g_a[0].weight.shape[1] if hasattr(model.g_a[0], "weight")
                   else model.g_a[0].conv1.weight.shape[1])
    prepare_for_coding(model, channels_last=True)
    return LoadedModel(model, arch, file_id(path), url, channels, {"url": url})


def load_url(arch: str, url: str, cache: Optional[Path] = None) -> LoadedModel:
    """A CompressAI-format (RGB) state dict by URL, e.g. the official pretrained weights."""
    from ..models.registry import get_arch

    spec = get_arch(arch)
    if spec.vbr or spec.ndim != 2:
        raise WeightsNotFoundError(f"{arch}: loading CompressAI-format weights is supported for the fixed-rate "
                                   "2D architectures only")
    return cached(("url", arch, url), lambda: _read_url(arch, url, cache))


def derived_model(src: LoadedModel, arch: str, quality: int) -> LoadedModel:
    """``arch`` at ``quality`` folded from one rate level of the variable-rate model ``src``
    (:mod:`napari_microcomp.models.derive`); its ``weights_id`` is ``{src id}.q{quality}``."""
    def build() -> LoadedModel:
        from ..models.coding import prepare_for_coding
        from ..models.derive import derive
        from ..models.registry import get_arch

        model = get_arch(arch).factory(**src.meta["widths"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in src.model.state_dict().items()}
        try:
            model.load_state_dict(derive(src.arch, arch, state, quality))
        except (ValueError, RuntimeError, KeyError) as exc:
            raise WeightsNotFoundError(f"{src.source}: cannot serve {arch} q{quality} ({exc})") from None
        prepare_for_coding(model, channels_last=True)
        table = src.meta.get("lambda")
        meta = dict(src.meta, quality=quality, derived_from=src.source,
                    **{"lambda": table[quality - 1]} if isinstance(table, list) and len(table) >= quality else {})
        return LoadedModel(model, arch, f"{src.weights_id}.q{quality}",
                           f"{src.source} (rate level {quality}, folded into {arch})", 1, meta)

    return cached(("derived", src.weights_id, src.source, arch, int(quality)), build)


def load_by_id(arch: str, quality: int, weights_id: str) -> Optional[LoadedModel]:
    """The model whose fingerprint is ``weights_id`` (a file, a retired file, or a level folded from one), or None."""
    from ..models.registry import get_arch

    spec = get_arch(arch)
    base, dot, level = str(weights_id).partition(".q")
    if dot and spec.served_by:
        p = locate.find_by_id(spec.served_by, quality, base) if level == str(quality) else None
        return derived_model(load_weights(p, spec.served_by), arch, quality) if p else None
    p = locate.find_by_id(arch, quality, weights_id)
    return load_weights(p, arch) if p else None


def get_model(arch: str, quality: int, weights: Optional[str] = None) -> LoadedModel:
    """Resolve and load the weights for ``(arch, quality)``.

    ``weights``: None (user folders, then shipped; general weights first), ``"transmitted"`` or
    ``"fluorescence"`` (that modality's weights, else the general ones), a file path, an http(s) URL,
    or ``"compressai"``. Raises WeightsNotFoundError with instructions when nothing is found.
    """
    from ..modality import MODALITIES
    from ..models.registry import compressai_url, get_arch

    spec = get_arch(arch)
    if weights is None or weights in MODALITIES:
        p = locate.find_weights(arch, quality, weights)
        if p is None and spec.served_by:
            src = locate.find_weights(spec.served_by, quality, weights)
            if src is not None:
                return derived_model(load_weights(src, spec.served_by), arch, quality)
        if p is None:
            raise WeightsNotFoundError(locate.missing_weights_message(arch, quality, weights))
        return load_weights(p, arch, None if spec.vbr else quality)
    w = str(weights)
    if w == "compressai":
        url = compressai_url(arch, quality)
        if url is None:
            raise WeightsNotFoundError(f"CompressAI has no pretrained {arch} weights for quality {quality}")
        return load_url(arch, url)
    if w.startswith(("http://", "https://")):
        if not secure_url(w):
            raise WeightsNotFoundError(f"{w}: plain http is refused for weights; use an https URL or a local file")
        return load_url(arch, w)
    if spec.served_by:
        lm = load_weights(w)
        if lm.arch == spec.served_by:
            return derived_model(lm, arch, quality)
    return load_weights(w, arch, None if spec.vbr else quality)


def read_labelfree(path) -> Tuple[Any, Dict[str, Any]]:
    """A label-free network (float32, CPU) and its metadata (``meta["source"]`` = the path) from a file."""
    from ..models.unet import build_generator

    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"label-free weights file not found: {p}")
    blob = _torch_load(p, f"{p.name} is not a readable weights file")
    if not isinstance(blob, dict) or blob.get("format") != LABELFREE_FORMAT:
        raise WeightsNotFoundError(f"{p.name} is not a napari-microcomp label-free weights file")
    if int(blob.get("version", 0)) > LABELFREE_VERSION:
        raise WeightsNotFoundError(f"{p.name} needs a newer napari-microcomp (format v{blob['version']})")
    import torch

    meta, sd = blob.get("meta"), blob.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor)
                                                                          for v in sd.values()):
        raise WeightsNotFoundError(f"{p.name} lacks its metadata or weights (damaged or crafted file)")
    net = build_generator(meta.get("arch"))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsNotFoundError(f"{p.name}: weights do not match the stored architecture: {exc}") from exc
    return net, dict(meta, source=str(p))
