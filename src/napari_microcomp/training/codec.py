"""The generic learned-codec trainer behind ``microcomp train-codec``.

Rate–distortion training as CompressAI's ``examples/train.py``: loss = λ·255²·MSE + bpp on
inputs in [0, 1], an auxiliary loss (entropy-bottleneck quantiles) with its own Adam optimizer,
gradient clipping at 1, and a learning-rate drop ×0.1 for the last quarter of the budget (steps
or wall-clock minutes, whichever runs out first). Variable-rate (VBR) architectures draw one of the
eight rate levels per batch and use its λ, as CompressAI's VBR models expect (``stage=2``).

Convolutions run under bf16 autocast with channels-last tensors on CUDA (and on CPUs with native
bf16); the entropy models' likelihoods and the loss stay float32. Works for any architecture in
the zoo, 2D (patches ``P×P``) or 3D (crops ``D×H×W``).

:func:`train` is a generator of :class:`~napari_microcomp._progress.Progress` events that returns
a summary dict; checkpoints (model + both optimizers + step + sampler state) are written
atomically every ``ckpt_every`` steps and at the end, and training resumes from one exactly.
``init`` warm-starts a new run (fresh optimizers, step 0) from another run's weights, e.g. every
quality fine-tuned from one model trained at the highest λ, which short GPU budgets need.
"""
import io as _io
import math
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._progress import Progress
from ..errors import MicrocompError
from ..io import atomic_write_bytes
from ..models import registry as zoo_archs
from ..weights.export import export_weights
from ..weights.load import load_weights
from .data import PatchSampler, collect_files, load_items

CKPT_FORMAT = "napari-microcomp-ckpt/1"


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints and exported metadata)."""

    arch: str
    data: List[str]
    quality: Optional[int] = None
    lmbda: Optional[float] = None
    steps: int = 100_000
    patch: Optional[List[int]] = None
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    device: str = "cpu"
    max_minutes: Optional[float] = None
    out: Optional[str] = None
    ckpt: Optional[str] = None
    ckpt_every: int = 1000
    resume: Optional[str] = None
    init: Optional[str] = None
    seed: int = 0
    widths: Dict[str, int] = field(default_factory=dict)
    log_every: int = 100
    threads: Optional[int] = None
    bf16: Optional[bool] = None
    command: str = ""
    warmup: int = 500
    schedule: str = "cosine"     # "cosine" (warm-up, then cosine to lr/50) or "step" (×0.1 for the last quarter)
    spike: float = 20.0          # a loss this many times its running median counts as an explosion
    modality: Optional[str] = None  # recorded in the weights' metadata ("transmitted", "fluorescence")
    steps_offset: int = 0        # steps the ``init`` weights had already trained (recorded as steps_total)

    def resolved_patch(self, ndim: int) -> List[int]:
        if not self.patch:
            return [256, 256] if ndim == 2 else [16, 64, 64]
        p = [int(v) for v in self.patch]
        if len(p) == 1:
            p = p * ndim
        if len(p) != ndim:
            raise MicrocompError(f"--patch needs 1 or {ndim} values for a {ndim}D architecture, got {p}")
        return p


def _git_revision() -> Optional[str]:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _fp32_entropy(model: torch.nn.Module, device_type: str) -> None:
    """Run every entropy model outside autocast, on float32 inputs (likelihoods need the precision)."""
    from compressai.entropy_models import EntropyModel

    for m in model.modules():
        if isinstance(m, EntropyModel) and "forward" not in m.__dict__:
            orig = m.forward

            def forward(*args, _orig=orig, **kwargs):
                f = (lambda v: v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                with torch.autocast(device_type=device_type, enabled=False):
                    return _orig(*[f(a) for a in args], **{k: f(v) for k, v in kwargs.items()})

            m.forward = forward


def _cpu_has_bf16() -> bool:
    probe = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return "AVX512" in str(probe).upper() or "AMX" in str(probe).upper()


class _Prefetcher:
    """Crops the next batches on a background thread while the device trains on the current one."""

    def __init__(self, sampler: PatchSampler, batch: int, device: torch.device, depth: int = 3):
        self.sampler, self.batch, self.device = sampler, batch, device
        self.q: "queue.Queue" = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                x = torch.from_numpy(self.sampler.batch(self.batch))
                if self.device.type == "cuda":
                    x = x.pin_memory()
            except BaseException as exc:  # hand the error to the training loop instead of hanging it
                x = exc
            while not self.stop.is_set():
                try:
                    self.q.put(x, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self) -> torch.Tensor:
        x = self.q.get()
        if isinstance(x, BaseException):
            raise x
        return x.to(self.device, non_blocking=True)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


def _save_ckpt(path, model, opt, aux_opt, step, elapsed, cfg: TrainConfig, widths, sampler_state,
               lr_scale: float = 1.0, last: Optional[Dict[str, float]] = None) -> None:
    buf = _io.BytesIO()
    torch.save({"format": CKPT_FORMAT, "arch": cfg.arch, "widths": widths, "config": asdict(cfg),
                "model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                "step": step, "elapsed": elapsed, "sampler": sampler_state,
                "torch_rng": torch.get_rng_state(), "lr_scale": float(lr_scale),
                "last": dict(last or {})}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_ckpt(path) -> Dict[str, Any]:
    """A training checkpoint, loaded without running any code from it (``weights_only=True``)."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MicrocompError(f"{path} is not a readable training checkpoint ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(d, dict):
        raise MicrocompError(f"{path} is not a napari-microcomp training checkpoint")
    return d


def lr_factor(step: int, frac: float, cfg: "TrainConfig") -> float:
    """Learning-rate multiplier: linear warm-up over ``cfg.warmup`` steps, then the decay schedule.

    ``frac`` is the fraction of the budget used (steps or wall clock, whichever is further).
    """
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    if cfg.schedule == "step":
        return warm * (0.1 if frac >= 0.75 else 1.0)
    floor = 0.02
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))))


def _snapshot(model, opt, aux_opt) -> Dict[str, Any]:
    import copy
    return {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
            "aux_opt": copy.deepcopy(aux_opt.state_dict())}


def _init_state(path, arch: str):
    """Model weights and widths to start from: an exported weight file or a training checkpoint."""
    d = _load_ckpt(path)
    if isinstance(d, dict) and d.get("format") == CKPT_FORMAT:  # a checkpoint (loaded weights_only above)
        src_arch, widths, state = d["arch"], dict(d["widths"]), d["model"]
    else:
        lm = load_weights(path)
        src_arch, widths, state = lm.arch, dict(lm.meta["widths"]), lm.model.state_dict()
    if src_arch != arch:
        raise MicrocompError(f"--init {path} holds {src_arch!r} weights, not {arch!r}")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, widths


def train(cfg: TrainConfig, stop: Optional[threading.Event] = None) -> Generator[Progress, None, Dict[str, Any]]:
    """Train ``cfg.arch``; yield progress every ``log_every`` steps; return a summary dict.

    ``stop``: when set (e.g. from a SIGTERM handler), training ends after the current step,
    writes its checkpoint and exports, exactly as when the budget runs out.

    A non-finite loss, or one above ``cfg.spike`` times the running median, restores the last good
    state (kept in memory every ``ckpt_every`` steps), halves the learning rate and goes on.
    """
    t_start = time.monotonic()
    spec = zoo_archs.get_arch(cfg.arch)
    if spec.vbr:
        lmbda = None
    elif cfg.lmbda is not None:
        lmbda = float(cfg.lmbda)
    elif cfg.quality is not None:
        if not 1 <= int(cfg.quality) <= 8:
            raise MicrocompError(f"--quality must be 1..8, got {cfg.quality}")
        lmbda = spec.lmbda(int(cfg.quality))
    else:
        raise MicrocompError(f"{cfg.arch} is fixed-rate: give --quality 1..8 or --lambda")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MicrocompError("--device cuda requested but CUDA is not available")
    prev_threads = torch.get_num_threads()   # restored at the end: a library call leaves global state alone
    torch.set_num_threads(int(cfg.threads or (1 if device.type == "cuda" else prev_threads)))
    torch.manual_seed(cfg.seed)
    bf16 = cfg.bf16 if cfg.bf16 is not None else (device.type == "cuda" or _cpu_has_bf16())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    ckpt = None
    if cfg.resume:
        ckpt = _load_ckpt(cfg.resume)
        if ckpt.get("format") != CKPT_FORMAT or ckpt.get("arch") != cfg.arch:
            raise MicrocompError(f"{cfg.resume} is not a {cfg.arch} training checkpoint")
        widths = dict(ckpt["widths"])
    elif cfg.init:
        init_state, widths = _init_state(cfg.init, cfg.arch)
    else:
        widths = dict(spec.widths(cfg.quality or 8))
        widths.update({k: int(v) for k, v in cfg.widths.items()})
    model = spec.factory(**widths)
    if ckpt is None and cfg.init:
        # Lower bounds are constants of the architecture, not learned: an exported file holds them in fp16,
        # where the likelihood bound 1e-9 is 0 — training from it then hit log(0) = inf within 100 steps.
        fresh = model.state_dict()
        init_state.update({k: v for k, v in fresh.items() if k.endswith(".bound")})
        model.load_state_dict(init_state)

    files = collect_files(cfg.data)
    yield Progress("load", 0, len(files), f"reading {len(files)} file(s)")
    items = load_items(files, spec.ndim)
    patch = cfg.resolved_patch(spec.ndim)
    if any(p % spec.multiple for p in patch[-2:]):
        raise MicrocompError(f"{cfg.arch} needs --patch sizes (Y, X) that are multiples of {spec.multiple}, got {patch}")
    sampler = PatchSampler(items, patch, seed=cfg.seed)
    yield Progress("load", len(files), len(files),
                   f"{len(items)} {spec.ndim}D items, {sampler.n_pixels / 1e6:.1f} Mpx; patch {patch} batch {cfg.batch}")

    model.to(device)
    mf = torch.channels_last if spec.ndim == 2 else torch.channels_last_3d
    if bf16:
        model.to(memory_format=mf)
    _fp32_entropy(model, device.type)
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
    step, elapsed_before, ckpt_lr_scale, ckpt_last = 0, 0.0, 1.0, {}
    if ckpt is not None:
        ckpt_lr_scale = float(ckpt.get("lr_scale", 1.0))
        ckpt_last = dict(ckpt.get("last") or {})
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        aux_opt.load_state_dict(ckpt["aux_opt"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed"])
        sampler.rng.bit_generator.state = ckpt["sampler"]
        torch.set_rng_state(ckpt["torch_rng"])
        del ckpt
    rate_rng = np.random.default_rng(cfg.seed + 7919 * step)
    budget = None if cfg.max_minutes is None else float(cfg.max_minutes) * 60.0
    prefetch = _Prefetcher(sampler, cfg.batch, device)
    model.train()
    window: Dict[str, List[float]] = {"loss": [], "bpp": [], "mse": []}
    last = {"loss": float("nan"), "bpp": float("nan"), "psnr": float("nan"), **ckpt_last}
    n_restores = 0
    lr_scale = float(ckpt_lr_scale)
    recent: Dict[Any, List[float]] = {}   # per rate level: VBR losses differ ~50× across λ
    good = _snapshot(model, opt, aux_opt)
    stop_reason = "steps"
    try:
        while step < cfg.steps:
            run_time = time.monotonic() - t_start
            if budget is not None and run_time >= budget:
                stop_reason = "time"
                break
            if stop is not None and stop.is_set():
                stop_reason = "stopped"
                break
            frac = max(step / max(cfg.steps, 1), run_time / budget if budget else 0.0)
            lr = cfg.lr * lr_scale * lr_factor(step, frac, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            x = prefetch.next()
            if bf16:
                x = x.contiguous(memory_format=mf)
            kwargs: Dict[str, Any] = {}
            lam = lmbda
            if spec.vbr:
                s = int(rate_rng.integers(0, len(spec.lambdas)))
                kwargs = {"stage": 2, "s": s}
                lam = spec.lambdas[s]
            opt.zero_grad(set_to_none=True)
            aux_opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(x, **kwargs)
            n_px = x.numel() / x.shape[1]
            bpp = sum(torch.log(v.float()).sum() for v in out["likelihoods"].values()) / (-math.log(2) * n_px)
            mse = F.mse_loss(out["x_hat"].float(), x.float())
            loss = lam * 255 ** 2 * mse + bpp
            lv = float(loss.detach())
            hist = recent.setdefault(kwargs.get("s"), [])
            med = float(np.median(hist)) if len(hist) >= 50 else None
            if not math.isfinite(lv) or (med is not None and lv > cfg.spike * med):
                n_restores += 1
                if n_restores > 12:
                    raise MicrocompError(f"training diverged ({n_restores} loss explosions); lower --lr")
                model.load_state_dict(good["model"])
                opt.load_state_dict(good["opt"])
                aux_opt.load_state_dict(good["aux_opt"])
                lr_scale *= 0.5
                yield Progress("train", step, cfg.steps, f"loss {lv:.3g} (bpp {float(bpp.detach()):.3g}, mse "
                               f"{float(mse.detach()):.3g}) at step {step} (running median "
                               f"{med if med is not None else float('nan'):.3g}): restored the last good state, "
                               f"lr ×{lr_scale:g}")
                continue
            hist.append(lv)
            del hist[:-200]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(main_params, 1.0)
            opt.step()
            aux = model.aux_loss()
            aux.backward()
            aux_opt.step()
            step += 1
            window["loss"].append(lv)
            window["bpp"].append(float(bpp.detach()))
            window["mse"].append(float(mse.detach()))
            if step % cfg.log_every == 0 or step == cfg.steps:
                last = {"loss": float(np.mean(window["loss"])), "bpp": float(np.mean(window["bpp"])),
                        "psnr": float(10 * np.log10(1.0 / max(np.mean(window["mse"]), 1e-12)))}
                window = {k: [] for k in window}
                mem = (f" mem {torch.cuda.max_memory_allocated() / 2**20:.0f}MiB" if device.type == "cuda" else "")
                t = time.monotonic() - t_start
                yield Progress("train", step, cfg.steps,
                               f"step {step}/{cfg.steps} loss {last['loss']:.4f} bpp {last['bpp']:.4f} "
                               f"psnr {last['psnr']:.2f}dB aux {float(aux.detach()):.1f} lr {lr:.1e} "
                               f"{t:.0f}s{mem}")
            if step % cfg.ckpt_every == 0:
                good = _snapshot(model, opt, aux_opt)
                if cfg.ckpt:
                    _save_ckpt(cfg.ckpt, model, opt, aux_opt, step, elapsed_before + time.monotonic() - t_start,
                               cfg, widths, sampler.rng.bit_generator.state, lr_scale, last)
    finally:
        prefetch.close()
        torch.set_num_threads(prev_threads)
    seconds = elapsed_before + time.monotonic() - t_start
    if cfg.ckpt:
        _save_ckpt(cfg.ckpt, model, opt, aux_opt, step, seconds, cfg, widths, sampler.rng.bit_generator.state,
                   lr_scale, last)
    out_path = cfg.out or spec.weights_filename(cfg.quality or 0)
    meta = {"arch": cfg.arch, "quality": None if spec.vbr else cfg.quality,
            "lambda": list(spec.lambdas) if spec.vbr else lmbda, "widths": widths, "steps": step,
            "stop": stop_reason, "data": [str(f) for f in files], "n_items": len(items),
            "patch": patch, "batch": cfg.batch, "lr": cfg.lr, "seconds": round(seconds, 1),
            "device": (torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
            "bf16": bool(bf16), "torch": str(torch.__version__), "compressai": _compressai_version(),
            "git": _git_revision(), "command": cfg.command or " ".join(sys.argv), "seed": cfg.seed,
            "final_train": last, "init": cfg.init, "schedule": cfg.schedule,
            "warmup": cfg.warmup, "restores": n_restores, "modality": cfg.modality,
            "steps_total": step + int(cfg.steps_offset)}
    model.eval()
    export_weights(model, cfg.arch, out_path, None if spec.vbr else cfg.quality, widths, meta)
    yield Progress("export", 1, 1, f"wrote {out_path} ({os.path.getsize(out_path) / 1024:.0f} KiB) after "
                                   f"{step} steps, {seconds:.0f}s ({stop_reason})")
    return {"out": str(out_path), "steps": step, "seconds": seconds, "meta": meta}


def _compressai_version() -> str:
    import compressai
    return getattr(compressai, "__version__", "?")



def export_checkpoint(ckpt_path, out, extra_meta: Optional[Dict[str, Any]] = None) -> Path:
    """Export a checkpoint's current model as a weight file (e.g. to evaluate a run that goes on)."""
    ck = _load_ckpt(ckpt_path)
    if ck.get("format") != CKPT_FORMAT:
        raise MicrocompError(f"{ckpt_path} is not a napari-microcomp training checkpoint")
    spec = zoo_archs.get_arch(ck["arch"])
    cfg = dict(ck.get("config") or {})
    widths = dict(ck["widths"])
    model = spec.factory(**widths)
    model.load_state_dict(ck["model"])
    model.eval()
    q = None if spec.vbr else cfg.get("quality")
    lam = list(spec.lambdas) if spec.vbr else (cfg.get("lmbda") or spec.lmbda(int(q or 4)))
    meta = {"arch": ck["arch"], "quality": q, "lambda": lam, "widths": widths, "steps": int(ck["step"]),
            "seconds": round(float(ck["elapsed"]), 1), "data": cfg.get("data"), "patch": cfg.get("patch"),
            "batch": cfg.get("batch"), "lr": cfg.get("lr"), "schedule": cfg.get("schedule", "step"),
            "device": cfg.get("device"), "torch": str(torch.__version__), "compressai": _compressai_version(),
            "git": _git_revision(), "command": cfg.get("command"), "seed": cfg.get("seed"),
            "modality": cfg.get("modality"), "from_checkpoint": True, **(extra_meta or {})}
    return export_weights(model, ck["arch"], out, q, widths, meta)
