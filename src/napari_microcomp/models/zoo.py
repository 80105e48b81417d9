"""The model zoo: architecture name -> factory, dimensionality, lambda table and weight sources.

Weight sources for ``(arch, quality)``, tried in this order when no explicit source is given:

1. a user folder: every folder in ``$MICROCOMP_WEIGHTS`` (``os.pathsep``-separated);
2. the weights shipped in the package: ``napari_microcomp/weights/codecs/``.

File names are ``{arch}-q{Q}.pt`` (fixed-rate models) and ``{arch}.pt`` (variable-rate models,
one file for all eight qualities). An explicit source may be a file path, an ``http(s)://`` URL of a
CompressAI-format state dict (downloaded once into the cache, checked against the hash prefix
in its name), or ``"compressai"``: CompressAI's official pretrained RGB weights (the gray input is
replicated to 3 channels and the output averaged, as the study did).

Models are loaded once per process and cached. The 3D engineer adds architectures with
:func:`register_arch`; ``microcomp train-codec`` trains anything registered here.
"""
import hashlib
import json
import io as _io
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..errors import MicrocompError, WeightsNotFoundError
from . import arch2d

FORMAT = "napari-microcomp-weights/1"
# CompressAI's MSE lambdas for qualities 1..8 (examples/train.py, zoo docs); our inputs are in [0, 1].
LAMBDAS_MSE: Tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights" / "codecs"
ENV_WEIGHTS = "MICROCOMP_WEIGHTS"
ENV_CACHE = "MICROCOMP_CACHE"


@dataclass(frozen=True)
class ArchSpec:
    """One trainable architecture.

    ``factory(**widths)`` returns a 1-channel CompressAI ``CompressionModel``; ``widths(quality)``
    gives the default widths; ``coding`` selects how the codec calls compress/decompress
    (``"plain"``, ``"vbr"``, ``"ar"``: autoregressive context model).
    """

    name: str
    factory: Callable[..., nn.Module]
    ndim: int = 2
    lambdas: Tuple[float, ...] = LAMBDAS_MSE
    vbr: bool = False
    coding: str = "plain"
    widths: Callable[[int], Dict[str, int]] = field(default=lambda q: {})
    pretrained_urls: Dict[int, str] = field(default_factory=dict)
    description: str = ""
    multiple: int = 64

    def weights_filename(self, quality: int) -> str:
        return f"{self.name}.pt" if self.vbr else f"{self.name}-q{quality}.pt"

    def lmbda(self, quality: int) -> float:
        return float(self.lambdas[quality - 1])


_ARCHS: Dict[str, ArchSpec] = {}


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Make an architecture known to the zoo and the trainer (``microcomp train-codec --arch``)."""
    if spec.ndim not in (2, 3):
        raise MicrocompError(f"{spec.name}: ndim must be 2 or 3")
    if len(spec.lambdas) != 8:
        raise MicrocompError(f"{spec.name}: need 8 lambdas (qualities 1..8)")
    _ARCHS[spec.name] = spec
    return spec


def _load_3d() -> None:
    # The 3D architectures live in their own module; importing it registers them.
    try:
        import importlib
        importlib.import_module("napari_microcomp.models.arch3d")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("napari_microcomp"):
            raise


def get_arch(name: str) -> ArchSpec:
    if name not in _ARCHS:
        _load_3d()
    try:
        return _ARCHS[name]
    except KeyError:
        raise MicrocompError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}") from None


def list_archs(ndim: Optional[int] = None) -> List[str]:
    _load_3d()
    return [n for n, s in _ARCHS.items() if ndim is None or s.ndim == ndim]


def _compressai_urls(name: str) -> Dict[int, str]:
    try:
        from compressai.zoo.image import model_urls
    except ImportError:  # pragma: no cover - compressai always ships its zoo
        return {}
    return dict(model_urls.get(name, {}).get("mse", {}))


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
    register_arch(ArchSpec(name=_name, factory=arch2d.FACTORIES[_name], ndim=2, vbr=_coding == "vbr",
                           coding=_coding, widths=_widths, pretrained_urls=_compressai_urls(_name),
                           description=_desc))


# ----------------------------------------------------------------------------------------------
# weight files
def build_model(arch: str, quality: int = 4, **widths: int) -> nn.Module:
    """A freshly initialised 1-channel model (widths default to the zoo's for ``quality``)."""
    spec = get_arch(arch)
    w = dict(spec.widths(quality))
    w.update({k: int(v) for k, v in widths.items() if v is not None})
    return spec.factory(**w)


def model_widths(model: nn.Module) -> Dict[str, int]:
    """The constructor widths of a model built by a zoo factory."""
    out = {}
    for k in ("N", "M"):
        v = getattr(model, k, None)
        if isinstance(v, int):
            out[k] = v
    return out


def export_weights(model: nn.Module, arch: str, path, quality: Optional[int], widths: Dict[str, int],
                   meta: Dict[str, Any]) -> Path:
    """Write a compact (fp16) weight file with its metadata, atomically.

    The model is copied to CPU, its floating tensors rounded to fp16, the entropy bottleneck's
    quantiles solved by bisection from its (rounded) density, and the entropy tables rebuilt from
    those values (``update(force=True)``) so that the shipped tables match the shipped parameters
    exactly. The bottleneck tables are stored (never recomputed on load); the Gaussian tables,
    which depend only on the stored scale table, are rebuilt on load.
    """
    from ..io import atomic_write_bytes

    spec = get_arch(arch)
    m = spec.factory(**widths)
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    m.load_state_dict(sd)
    with torch.no_grad():
        for t in list(m.parameters()) + [b for n, b in m.named_buffers()
                                         if b.is_floating_point() and not n.endswith(".bound")]:
            t.copy_(t.half().float())
    from compressai.entropy_models import EntropyBottleneck

    with fixed_threads(1), torch.no_grad():
        for eb in m.modules():
            if isinstance(eb, EntropyBottleneck):
                # Bisection for the quantiles the aux loss only approaches slowly (short GPU runs
                # leave it far from converged, which inflates the real streams), then fp16 them too.
                eb._update_quantiles()
                eb.quantiles.copy_(eb.quantiles.half().float())
        m.update(force=True)
    gc_tables = _gaussian_table_keys(m)
    # The Gaussian tables depend only on the scale table: rebuilt on load (they are most of the bytes).
    # fp16 for the weights; the scale table and the lower bounds (1e-9 underflows to 0 in fp16) stay float32
    state = {k: (v.half() if v.is_floating_point() and not k.endswith(("scale_table", ".bound")) else v)
             for k, v in m.state_dict().items() if k not in gc_tables}
    payload = {"format": FORMAT, "arch": arch, "quality": None if spec.vbr else quality,
               "widths": dict(widths), "state_dict": state,
               # plain JSON types only, so the file loads with torch.load(weights_only=True)
               "meta": json.loads(json.dumps(meta, default=str))}
    buf = _io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


_GC_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def _gaussian_table_keys(model: nn.Module) -> set:
    from compressai.entropy_models import GaussianConditional

    return {f"{name}.{b}" for name, mod in model.named_modules() if isinstance(mod, GaussianConditional)
            for b in _GC_BUFFERS}


def _rebuild_gaussian_tables(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Recompute the GaussianConditional CDF tables from the stored scale table (deterministic)."""
    from compressai.entropy_models import GaussianConditional

    for name, mod in model.named_modules():
        if isinstance(mod, GaussianConditional) and f"{name}._quantized_cdf" not in state:
            with fixed_threads(1):
                mod.update_scale_table(state[f"{name}.scale_table"].float(), force=True)
            for b in _GC_BUFFERS + ("scale_table",):
                state[f"{name}.{b}"] = getattr(mod, b).clone()


def _fast_build_indexes(gc):
    """GaussianConditional.build_indexes as one ``searchsorted`` instead of 63 full-tensor passes.

    Same comparisons, hence the same indexes: index = #{table[k] < scale, k < last}.
    """
    def build_indexes(scales: torch.Tensor) -> torch.Tensor:
        scales = gc.lower_bound_scale(scales).contiguous()
        return torch.searchsorted(gc.scale_table[:-1].contiguous(), scales).int()

    return build_indexes


def _prepare_for_coding(model: nn.Module, channels_last: bool) -> nn.Module:
    from compressai.entropy_models import GaussianConditional

    model.eval()
    for m in model.modules():
        if isinstance(m, GaussianConditional):
            m.build_indexes = _fast_build_indexes(m)
    if channels_last:  # oneDNN convolutions are ~1.5x faster channels-last on CPU
        model.to(memory_format=torch.channels_last)
    return model


class LoadedModel:
    """A ready-to-code model: eval mode, float32, CPU, entropy tables in place."""

    def __init__(self, model: nn.Module, arch: str, weights_id: str, source: str, channels: int = 1,
                 meta: Optional[Dict[str, Any]] = None):
        self.model = model
        self.arch = arch
        self.weights_id = weights_id
        self.source = source
        self.channels = channels
        self.meta = meta or {}


_CACHE: Dict[Tuple, LoadedModel] = {}
_LOCK = threading.RLock()


def _file_id(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_weights(path, arch: Optional[str] = None, quality: Optional[int] = None) -> LoadedModel:
    """Load a weight file written by :func:`export_weights` (cached by path, size and mtime)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise WeightsNotFoundError(f"weight file not found: {p}")
    st = p.stat()
    key = ("file", str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _CACHE:
            lm = _CACHE[key]
        else:
            try:
                d = torch.load(p, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise WeightsNotFoundError(f"{p} is not a readable weight file ({type(exc).__name__}: {exc})") from exc
            if not isinstance(d, dict) or d.get("format") != FORMAT:
                raise WeightsNotFoundError(f"{p} is not a napari-microcomp weight file (export it with "
                                           "`microcomp train-codec ... --out FILE.pt`)")
            spec = get_arch(d["arch"])
            model = spec.factory(**d["widths"])
            state = {k: (v.float() if v.is_floating_point() else v) for k, v in d["state_dict"].items()}
            _rebuild_gaussian_tables(model, state)
            model.load_state_dict(state)
            _prepare_for_coding(model, channels_last=spec.ndim == 2)
            lm = LoadedModel(model, d["arch"], _file_id(p), str(p), 1, dict(d.get("meta", {}),
                             quality=d.get("quality"), widths=d["widths"]))
            _CACHE[key] = lm
    if arch is not None and lm.arch != arch:
        raise WeightsNotFoundError(f"{p} holds weights for {lm.arch!r}, not {arch!r}")
    fq = lm.meta.get("quality")
    if quality is not None and fq is not None and fq != quality:
        raise WeightsNotFoundError(f"{p} holds {arch} weights for quality {fq}, not {quality}")
    return lm


def weight_dirs() -> List[Path]:
    """Folders searched for weight files: ``$MICROCOMP_WEIGHTS`` entries, then the shipped folder."""
    env = os.environ.get(ENV_WEIGHTS, "")
    return [Path(d).expanduser() for d in env.split(os.pathsep) if d] + [SHIPPED_DIR]


def candidate_files(arch: str, quality: int, modality: Optional[str] = None) -> List[Path]:
    """Existing weight files for ``(arch, quality)``, best first.

    In each of :func:`weight_dirs` (user folders first): ``DIR/MODALITY/NAME`` when a modality is
    asked for, then ``DIR/NAME`` (general weights, trained on mixed data). Without a modality, every
    modality folder comes after the general files.
    """
    from ..modality import MODALITIES

    name = get_arch(arch).weights_filename(quality)
    out = []
    for d in weight_dirs():
        subs = [modality, None] if modality else [None, *MODALITIES]
        for sub in subs:
            p = (d / sub / name) if sub else (d / name)
            if p.is_file():
                out.append(p)
    return out


def find_weights(arch: str, quality: int, modality: Optional[str] = None) -> Optional[Path]:
    """The first weight file for ``(arch, quality)`` (and ``modality``) in :func:`weight_dirs`, or None."""
    c = candidate_files(arch, quality, modality)
    return c[0] if c else None


def find_by_id(arch: str, quality: int, weights_id: str) -> Optional[Path]:
    """A weight file for ``(arch, quality)`` whose fingerprint is ``weights_id`` (any folder, any modality)."""
    for p in candidate_files(arch, quality):
        if _file_id(p) == weights_id:
            return p
    return None


def _is_shipped(p: Path) -> bool:
    return SHIPPED_DIR.resolve() in p.resolve().parents


def available_qualities(arch: str) -> Dict[int, str]:
    """quality -> ``"shipped"`` or ``"user"`` for the qualities that have a weight file."""
    out = {}
    for q in range(1, 9):
        p = find_weights(arch, q)
        if p is not None:
            out[q] = "shipped" if _is_shipped(p) else "user"
    return out


def missing_weights_message(arch: str, quality: int) -> str:
    spec = get_arch(arch)
    name = spec.weights_filename(quality)
    q = "" if spec.vbr else f" --quality {quality}"
    return (f"no weights for {arch} quality {quality}: expected {name} in "
            f"${ENV_WEIGHTS} or {SHIPPED_DIR}. Train them with `microcomp train-codec --arch {arch}{q} "
            f"--data FOLDER --steps 200000 --out {name}` and put the file in one of those folders, "
            f"pass weights='path/to/{name}', or use weights='compressai' for CompressAI's pretrained RGB weights")


# ----------------------------------------------------------------------------------------------
# CompressAI-format state dicts by URL
def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "napari-microcomp"
    return root / "weights"


_HASH_RE = re.compile(r"-([a-f0-9]{6,})\.pth(?:\.tar)?$")


def secure_url(url: str) -> bool:
    """https, or http to this machine's loopback (a local mirror; nothing on the wire to tamper with)."""
    from urllib.parse import urlparse

    u = urlparse(url)
    return u.scheme == "https" or (u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost", "::1"))


def _split_url(url: str) -> Tuple[str, Optional[str]]:
    """``URL#sha256=<64 hex>`` -> (URL, full hash); no fragment -> (URL, None)."""
    base, _, frag = url.partition("#")
    m = re.fullmatch(r"sha256=([0-9a-f]{64})", frag.lower()) if frag else None
    if frag and not m:
        raise WeightsNotFoundError(f"{url}: the fragment must be #sha256=<64 hex digits>")
    return base, (m.group(1) if m else None)


def published_prefixes() -> Dict[str, str]:
    """CompressAI's own published weights: URL -> the SHA-256 prefix its zoo puts in each file name."""
    try:
        from compressai.zoo.image import model_urls
    except ImportError:  # pragma: no cover
        return {}
    out = {}
    for by_metric in model_urls.values():
        for by_q in by_metric.values():
            for url in by_q.values():
                m = _HASH_RE.search(url)
                if m:
                    out[url] = m.group(1)
    return out


def cached_url(url: str, cache: Optional[Path] = None) -> Optional[Path]:
    """The cached download of ``url`` if it is there (never touches the network)."""
    base, _ = _split_url(url)
    p = (cache or cache_dir()) / base.rstrip("/").rsplit("/", 1)[-1]
    return p if p.is_file() else None


def fetch_url(url: str, cache: Optional[Path] = None) -> Path:
    """Download ``url`` once into the cache (pooch), verified against a SHA-256 known in advance.

    The hash comes from the user (``URL#sha256=<64 hex>``) or, for CompressAI's own pretrained files,
    from the table CompressAI publishes (:func:`published_prefixes`). Anything else is refused.
    """
    base, full = _split_url(url)
    if not secure_url(base):
        raise WeightsNotFoundError(f"{base}: only https URLs are fetched")
    prefix = published_prefixes().get(base)
    if full is None and prefix is None:
        raise WeightsNotFoundError(f"{base}: not one of CompressAI's published weight files; give its full SHA-256 "
                                   f"as {base}#sha256=<64 hex digits> (a hash you got from its publisher)")
    name = base.rstrip("/").rsplit("/", 1)[-1]
    dst = (cache or cache_dir()) / name

    def verified(p: Path) -> bool:
        h = hashlib.sha256(p.read_bytes()).hexdigest()
        return h == full if full else h.startswith(prefix)

    if dst.is_file() and verified(dst):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pooch

        dst.unlink(missing_ok=True)
        pooch.retrieve(base, known_hash=f"sha256:{full}" if full else None, fname=name, path=str(dst.parent),
                       progressbar=False)
    except Exception as exc:
        dst.unlink(missing_ok=True)
        raise WeightsNotFoundError(f"could not download {base} ({type(exc).__name__}: {str(exc)[:200]}); offline? "
                                   f"put the file in {dst.parent}") from exc
    if not verified(dst):
        dst.unlink(missing_ok=True)
        raise WeightsNotFoundError(f"could not download {base}: its SHA-256 does not match the published one")
    return dst


def load_url(arch: str, url: str, cache: Optional[Path] = None) -> LoadedModel:
    """A CompressAI-format (RGB) state dict by URL, e.g. the official pretrained weights."""
    spec = get_arch(arch)
    if spec.vbr or spec.ndim != 2:
        raise WeightsNotFoundError(f"{arch}: loading CompressAI-format weights is supported for the fixed-rate "
                                   "2D architectures only")
    key = ("url", arch, url)
    with _LOCK:
        if key not in _CACHE:
            from compressai.zoo.image import model_architectures
            from compressai.zoo.pretrained import load_pretrained

            path = fetch_url(url, cache)
            sd = load_pretrained(torch.load(path, map_location="cpu", weights_only=True))
            model = model_architectures[arch].from_state_dict(sd)
            channels = int(model.g_a[0].weight.shape[1] if hasattr(model.g_a[0], "weight")
                           else model.g_a[0].conv1.weight.shape[1])
            _prepare_for_coding(model, channels_last=True)
            _CACHE[key] = LoadedModel(model, arch, _file_id(path), url, channels, {"url": url})
    return _CACHE[key]


def get_model(arch: str, quality: int, weights: Optional[str] = None) -> LoadedModel:
    """Resolve and load the weights for ``(arch, quality)``.

    ``weights``: None (user folders, then shipped; general weights first), ``"transmitted"`` or
    ``"fluorescence"`` (that modality's weights, else the general ones), a file path, an http(s) URL,
    or ``"compressai"``.
    Raises WeightsNotFoundError with instructions when nothing is found.
    """
    from ..modality import MODALITIES

    spec = get_arch(arch)
    if weights is None or weights in MODALITIES:
        p = find_weights(arch, quality, weights)
        if p is None:
            raise WeightsNotFoundError(missing_weights_message(arch, quality))
        return load_weights(p, arch, None if spec.vbr else quality)
    w = str(weights)
    if w == "compressai":
        url = spec.pretrained_urls.get(quality)
        if url is None:
            raise WeightsNotFoundError(f"CompressAI has no pretrained {arch} weights for quality {quality}")
        return load_url(arch, url)
    if w.startswith(("http://", "https://")):
        if not secure_url(w):
            raise WeightsNotFoundError(f"{w}: plain http is refused for weights; use an https URL or a local file")
        return load_url(arch, w)
    return load_weights(w, arch, None if spec.vbr else quality)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class fixed_threads:
    """Run a block with exactly ``n`` torch intra-op threads, restoring the previous count.

    Learned entropy coding is only exact when encoder and decoder compute the entropy parameters
    bit-identically; the float reductions inside convolutions depend on the thread count.
    """

    _lock = threading.RLock()

    def __init__(self, n: int):
        self.n = int(n)

    def __enter__(self):
        self._lock.acquire()
        self.prev = torch.get_num_threads()
        if self.prev != self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.prev:
            torch.set_num_threads(self.prev)
        self._lock.release()
        return False


def provenance_markdown(folder=None) -> str:
    """A Markdown table of every weight file in ``folder`` (default: the shipped one) from its metadata.

    ``python -m napari_microcomp.models.zoo > src/napari_microcomp/weights/codecs/TABLE.md`` regenerates it.
    """
    folder = Path(folder) if folder else SHIPPED_DIR
    rows = ["| file | arch | q | λ | widths | steps | minutes | device | batch×patch | lr | train bpp | train PSNR | KiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(folder.glob("*.pt")):
        d = torch.load(p, map_location="cpu", weights_only=True)
        m = d.get("meta", {})
        lam = m.get("lambda")
        lam = "0.0018–0.18 (VBR)" if isinstance(lam, list) else lam
        ft = m.get("final_train") or {}
        rows.append(f"| {p.name} | {d.get('arch')} | {d.get('quality') or '1–8'} | {lam} | "
                    f"{','.join(f'{k}={v}' for k, v in d.get('widths', {}).items())} | {m.get('steps')} | "
                    f"{(m.get('seconds') or 0) / 60:.1f} | {m.get('device')} | {m.get('batch')}×{m.get('patch')} | "
                    f"{m.get('lr')} | {ft.get('bpp', float('nan')):.3f} | {ft.get('psnr', float('nan')):.2f} | "
                    f"{p.stat().st_size // 1024} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(provenance_markdown(sys.argv[1] if len(sys.argv) > 1 else None))
