"""The generic learned-codec trainer behind ``microcomp train-codec``.

Rate–distortion training as CompressAI's ``examples/train.py``: loss = λ·255²·MSE + bpp on inputs in [0, 1], an
auxiliary loss (entropy-bottleneck quantiles) with its own Adam, gradient clipping at 1, a warm-up then a cosine (or
step) decay over the budget (steps or wall-clock minutes, whichever runs out first). VBR architectures draw one of
the eight rate levels per batch and use its λ (CompressAI's ``stage=2``). Convolutions run under bf16 autocast,
channels-last, where the device has native bf16; likelihoods and the loss stay float32. 2D or 3D, any zoo architecture.

:func:`train` is a generator of Progress events that returns a summary dict (:class:`CodecTrainer`, a
:class:`~.base.Trainer`); checkpoints (model, both optimizers, step, sampler state) are written atomically every
``ckpt_every`` steps and at the end, and training resumes from one exactly. ``init`` warm-starts a run (fresh
optimizers, step 0) from another run's weights, e.g. one quality fine-tuned from another (λ-transfer).
"""
import copy
import math
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .._progress import Progress
from ..errors import MicrocompError, TrainingDiverged
from ..models.coding import channels_last_by_rank
from ..models.registry import get_arch
from ..models.widen import grown, widen_state
from ..weights.export import export_weights
from .base import Prefetcher, RunConfig, Trainer, check_settings, git_revision, load_checkpoint, save_checkpoint
from .data import PatchSampler, collect_files, load_items
from .quant import check_quant, mixed_forward
from .warmstart import CKPT_FORMAT, start_state
from .precision import cpu_has_bf16 as _cpu_has_bf16, fp32_entropy as _fp32_entropy, lr_factor


@dataclass
class TrainConfig(RunConfig):
    """Everything that defines a training run (stored in checkpoints and exported metadata)."""

    arch: str
    data: List[str]
    quality: Optional[int] = None
    lmbda: Optional[float] = None
    lambdas: Optional[List[float]] = None   # VBR: the eight λ of its rate levels (default: the architecture's)
    steps: int = 100_000
    patch: Optional[List[int]] = None
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    ckpt_every: int = 1000
    init: Optional[str] = None
    widths: Dict[str, int] = field(default_factory=dict)
    log_every: int = 100
    threads: Optional[int] = None
    bf16: Optional[bool] = None
    command: str = ""
    warmup: int = 500
    schedule: str = "cosine"     # "cosine" (warm-up, then cosine to lr/50) or "step" (×0.1 for the last quarter)
    spike: float = 20.0          # a loss this many times its running median counts as an explosion
    modality: Optional[str] = None  # recorded in the weights' metadata ("transmitted", "fluorescence")
    fresh_lr_mult: float = 10.0  # learning-rate factor for the tensors a transplanted start left new
    steps_offset: int = 0        # steps the ``init`` weights had already trained (recorded as steps_total)
    sample_power: float = 1.0    # images drawn ∝ size**power: < 1 gives small sources more weight
    quant: str = "noise"         # "mixed": rate from noisy latents, decoder fed rounded ones (factorized models)
    restretch: float = 0.0       # share of crops stretched by their own min/max (data.PatchSampler)

    def resolved_patch(self, ndim: int) -> List[int]:
        if not self.patch:
            return [256, 256] if ndim == 2 else [16, 64, 64]
        p = [int(v) for v in self.patch]
        if len(p) == 1:
            p = p * ndim
        if len(p) != ndim:
            raise MicrocompError(f"--patch needs 1 or {ndim} values for a {ndim}D architecture, got {p}")
        return p


class CodecTrainer(Trainer):
    """Rate–distortion training of one registered architecture (see the module docstring)."""

    ckpt_format = CKPT_FORMAT

    def __init__(self, cfg: TrainConfig, stop: Optional[threading.Event] = None):
        super().__init__(cfg.steps, cfg.max_minutes, stop)
        self.cfg = cfg
        check_settings(cfg)
        self.spec = spec = get_arch(cfg.arch)
        self.lambdas = list(spec.lambdas)
        if spec.vbr:
            self.lmbda = None
            if cfg.lambdas:
                lams = [float(v) for v in cfg.lambdas]
                if len(lams) != len(spec.lambdas) or any(b <= a for a, b in zip(lams, lams[1:])) or lams[0] <= 0:
                    raise MicrocompError(f"lambdas: {len(spec.lambdas)} positive, increasing values, got {cfg.lambdas}")
                self.lambdas = lams
        elif cfg.lmbda is not None:
            self.lmbda = float(cfg.lmbda)
        elif cfg.quality is not None:
            if not 1 <= int(cfg.quality) <= 8:
                raise MicrocompError(f"--quality must be 1..8, got {cfg.quality}")
            self.lmbda = spec.lmbda(int(cfg.quality))
        else:
            raise MicrocompError(f"{cfg.arch} is fixed-rate: give --quality 1..8 or --lambda")
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise MicrocompError("--device cuda requested but CUDA is not available")
        self.prev_threads = None
        self.fresh_names: List[str] = []
        self.prefetch = None

    # -- setup ------------------------------------------------------------------------------------
    def _build_model(self):
        """The model (resumed, warm-started or fresh) and the checkpoint to resume from, if any."""
        cfg, spec = self.cfg, self.spec
        ckpt = init_state = None
        grow: Any = ()
        if cfg.resume:
            ckpt = load_checkpoint(cfg.resume)
            if ckpt.get("format") != CKPT_FORMAT or ckpt.get("arch") != cfg.arch:
                raise MicrocompError(f"{cfg.resume} is not a {cfg.arch} training checkpoint")
            widths = dict(ckpt["widths"])
            self.fresh_names = list(ckpt.get("fresh_params") or [])
        elif cfg.init:
            init_state, widths, src_lam, self.fresh_names = start_state(cfg.init, cfg.arch, cfg.quality)
            # the λ the source was trained at (warmstart.start_state says when it applies), unless given
            if isinstance(src_lam, float) and not spec.vbr and cfg.lmbda is None:
                self.lmbda = src_lam
            elif isinstance(src_lam, list) and spec.vbr and not cfg.lambdas and len(src_lam) == len(self.lambdas):
                self.lambdas = src_lam
            try:  # wider than the init weights: grow them, function-preserving (models/widen.py)
                grow = grown(widths, cfg.widths)
            except ValueError as exc:
                raise MicrocompError(f"--init {cfg.init}: {exc}") from None
            widths.update({k: int(cfg.widths[k]) for k in grow})
        else:
            widths = dict(spec.widths(cfg.quality or 8))
            widths.update({k: int(v) for k, v in cfg.widths.items()})
        model = spec.factory(**widths)
        if init_state is not None:
            # Lower bounds are constants of the architecture, not learned: an exported file holds them in fp16,
            # where the likelihood bound 1e-9 is 0 — training from it then hit log(0) = inf within 100 steps.
            fresh = model.state_dict()
            init_state.update({k: v for k, v in fresh.items() if k.endswith(".bound")})
            if grow:
                init_state = widen_state(init_state, model)
            model.load_state_dict(init_state)
        check_quant(cfg.quant, model, cfg.arch)
        self.model, self.widths = model, widths
        return ckpt

    def _load_data(self) -> Generator[Progress, None, None]:
        cfg, spec = self.cfg, self.spec
        self.files = collect_files(cfg.data)
        yield Progress("load", 0, len(self.files), f"reading {len(self.files)} file(s)")
        self.items = load_items(self.files, spec.ndim, skipped := [])
        for note in skipped:
            yield Progress("load", 0, len(self.files), f"skipped {note}")
        self.patch = patch = cfg.resolved_patch(spec.ndim)
        if any(p % spec.multiple for p in patch[-2:]):
            raise MicrocompError(f"{cfg.arch} needs --patch sizes (Y, X) that are multiples of {spec.multiple}, "
                                 f"got {patch}")
        self.sampler = PatchSampler(self.items, patch, cfg.seed, power=cfg.sample_power, restretch=cfg.restretch)
        yield Progress("load", len(self.files), len(self.files),
                       f"{len(self.items)} {spec.ndim}D items, {self.sampler.n_pixels / 1e6:.1f} Mpx; patch {patch} "
                       f"batch {cfg.batch}")

    def _resume(self, ckpt: Optional[Dict[str, Any]]) -> None:
        self.lr_scale, ckpt_last = 1.0, {}
        if ckpt is not None:
            self.lr_scale = float(ckpt.get("lr_scale", 1.0))
            # the λ the run trains at, which a warm start may have taken from its source rather than the config
            self.lambdas = [float(v) for v in ckpt.get("lambdas") or self.lambdas]
            self.lmbda = ckpt.get("lmbda", self.lmbda)
            ckpt_last = dict(ckpt.get("last") or {})
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["opt"])
            self.aux_opt.load_state_dict(ckpt["aux_opt"])
            self.step, self.elapsed_before = int(ckpt["step"]), float(ckpt["elapsed"])
            self.sampler.rng.bit_generator.state = ckpt["sampler"]
            torch.set_rng_state(ckpt["torch_rng"])
        self.last = {"loss": float("nan"), "bpp": float("nan"), "psnr": float("nan"), **ckpt_last}

    def setup(self) -> Generator[Progress, None, None]:
        cfg, device = self.cfg, self.device
        self.prev_threads = torch.get_num_threads()   # restored in close(): a library call leaves global state alone
        torch.set_num_threads(int(cfg.threads or (1 if device.type == "cuda" else self.prev_threads)))
        torch.manual_seed(cfg.seed)
        self.bf16 = cfg.bf16 if cfg.bf16 is not None else (device.type == "cuda" or _cpu_has_bf16())
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        ckpt = self._build_model()
        yield from self._load_data()
        model = self.model.to(device)
        if self.bf16:
            channels_last_by_rank(model, training=True)
        _fp32_entropy(model, device.type)
        named = [(n, p) for n, p in model.named_parameters() if not n.endswith(".quantiles") and p.requires_grad]
        self.main_params = [p for _, p in named]
        aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
        # A transplant's new parts (a context model, a prior) learn from nothing beside trained ones: faster.
        new = set(self.fresh_names)
        groups = [{"params": [p for n, p in named if n not in new], "lr_mult": 1.0}]
        if new:
            groups.append({"params": [p for n, p in named if n in new], "lr_mult": float(cfg.fresh_lr_mult)})
        self.opt = torch.optim.Adam(groups, lr=cfg.lr)
        self.aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
        self._resume(ckpt)
        del ckpt
        self.rate_rng = np.random.default_rng(cfg.seed + 7919 * self.step)
        self.prefetch = Prefetcher(self._sample, self._to_device)
        model.train()
        self.window: Dict[str, List[float]] = {"loss": [], "bpp": [], "mse": []}
        self.n_restores = 0
        self.recent: Dict[Any, List[float]] = {}   # per rate level: VBR losses differ ~50× across λ
        self.good = self._snapshot()

    # -- data sampling hooks ----------------------------------------------------------------------
    def _sample(self) -> torch.Tensor:
        """One batch of crops (on the prefetch thread)."""
        x = torch.from_numpy(self.sampler.batch(self.cfg.batch))
        return x.pin_memory() if self.device.type == "cuda" else x

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def close(self) -> None:
        if self.prefetch is not None:
            self.prefetch.close()
        if self.prev_threads is not None:
            torch.set_num_threads(self.prev_threads)

    # -- one step ---------------------------------------------------------------------------------
    def _snapshot(self) -> Dict[str, Any]:
        return {"model": copy.deepcopy(self.model.state_dict()), "opt": copy.deepcopy(self.opt.state_dict()),
                "aux_opt": copy.deepcopy(self.aux_opt.state_dict())}

    def _restore(self, lv: float, bpp, mse, med: Optional[float], why: str = "") -> Progress:
        """A loss (or gradient) explosion: back to the last good state, half the learning rate."""
        self.n_restores += 1
        if self.n_restores > 12:
            raise TrainingDiverged(f"training diverged ({self.n_restores} loss explosions); lower --lr")
        self.model.load_state_dict(self.good["model"])
        self.opt.load_state_dict(self.good["opt"])
        self.aux_opt.load_state_dict(self.good["aux_opt"])
        self.lr_scale *= 0.5
        return Progress("train", self.step, self.cfg.steps,
                        f"loss {lv:.3g} (bpp {float(bpp.detach()):.3g}, mse {float(mse.detach()):.3g}) at step "
                        f"{self.step} (running median {med if med is not None else float('nan'):.3g}"
                        f"{'; ' + why if why else ''}): restored "
                        f"the last good state, lr ×{self.lr_scale:g}")

    def _forward(self, x: torch.Tensor):
        """Loss, bpp, mse and the VBR rate level (None for fixed-rate) of one batch."""
        kwargs: Dict[str, Any] = {}
        lam = self.lmbda
        if self.spec.vbr:
            s = int(self.rate_rng.integers(0, len(self.lambdas)))
            kwargs = {"stage": 2, "s": s}
            lam = self.lambdas[s]
        self.opt.zero_grad(set_to_none=True)
        self.aux_opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = mixed_forward(self.model, x) if self.cfg.quant == "mixed" else self.model(x, **kwargs)
        n_px = x.numel() / x.shape[1]
        bpp = sum(torch.log(v.float()).sum() for v in out["likelihoods"].values()) / (-math.log(2) * n_px)
        mse = F.mse_loss(out["x_hat"].float(), x.float())
        return lam * 255 ** 2 * mse + bpp, bpp, mse, kwargs.get("s")

    def train_step(self) -> Optional[Progress]:
        cfg = self.cfg
        frac = self.fraction()
        lr = cfg.lr * self.lr_scale * lr_factor(self.step, frac, cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        # a stack of rotated 1-channel crops, made channels-last, corrupted the heap in the first
        # convolution's backward (torch 2.14 CPU, AVX-512 EPYC; bf16 and fp32): standard layout
        x = self.prefetch.next().contiguous()
        loss, bpp, mse, level = self._forward(x)
        lv = float(loss.detach())
        hist = self.recent.setdefault(level, [])
        med = float(np.median(hist)) if len(hist) >= 50 else None
        if not math.isfinite(lv) or (med is not None and lv > cfg.spike * med):
            return self._restore(lv, bpp, mse, med)
        hist.append(lv)
        del hist[:-200]
        loss.backward()
        # a finite loss can still give an overflowing gradient (seen: bf16, tiny 3D widths, first step)
        if not math.isfinite(float(torch.nn.utils.clip_grad_norm_(self.main_params, 1.0))):
            return self._restore(lv, bpp, mse, med, "gradient norm not finite")
        self.opt.step()
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_opt.step()
        self.step += 1
        for k, v in (("loss", lv), ("bpp", float(bpp.detach())), ("mse", float(mse.detach()))):
            self.window[k].append(v)
        event = None
        if self.step % cfg.log_every == 0 or self.step == cfg.steps:
            event = self._log(lr, float(aux.detach()))
        if self.step % cfg.ckpt_every == 0:
            self.good = self._snapshot()
            if cfg.ckpt:
                self._save()
        return event

    def _log(self, lr: float, aux: float) -> Progress:
        w = self.window
        self.last = {"loss": float(np.mean(w["loss"])), "bpp": float(np.mean(w["bpp"])),
                     "psnr": float(10 * np.log10(1.0 / max(np.mean(w["mse"]), 1e-12)))}
        self.window = {k: [] for k in w}
        dev = self.device
        mem = f" mem {torch.cuda.max_memory_allocated() / 2**20:.0f}MiB" if dev.type == "cuda" else ""
        last = self.last
        return Progress("train", self.step, self.cfg.steps,
                        f"step {self.step}/{self.cfg.steps} loss {last['loss']:.4f} bpp {last['bpp']:.4f} "
                        f"psnr {last['psnr']:.2f}dB aux {aux:.1f} lr {lr:.1e} {self.run_time():.0f}s{mem}")

    # -- checkpoints and export -------------------------------------------------------------------
    def _save(self) -> None:
        """The checkpoint (model + both optimizers + step + sampler state), written atomically."""
        save_checkpoint({"format": CKPT_FORMAT, "arch": self.cfg.arch, "widths": self.widths,
                         "config": asdict(self.cfg), "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                         "aux_opt": self.aux_opt.state_dict(), "step": self.step, "elapsed": self.elapsed(),
                         "sampler": self.sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                         "lr_scale": float(self.lr_scale), "last": dict(self.last or {}),
                         "lambdas": list(self.lambdas), "lmbda": self.lmbda,
                         "fresh_params": list(self.fresh_names)}, self.cfg.ckpt)

    def _meta(self, seconds: float) -> Dict[str, Any]:
        cfg, spec, device = self.cfg, self.spec, self.device
        return {"arch": cfg.arch, "quality": None if spec.vbr else cfg.quality,
                "lambda": list(self.lambdas) if spec.vbr else self.lmbda, "widths": self.widths, "steps": self.step,
                "stop": self.stop_reason, "data": [str(f) for f in self.files], "n_items": len(self.items),
                "patch": self.patch, "batch": cfg.batch, "lr": cfg.lr, "seconds": round(seconds, 1),
                "device": (torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
                "bf16": bool(self.bf16), "torch": str(torch.__version__), "compressai": _compressai_version(),
                "git": git_revision(), "command": cfg.command or " ".join(sys.argv), "seed": cfg.seed,
                "final_train": self.last, "init": cfg.init, "schedule": cfg.schedule, "warmup": cfg.warmup,
                "restores": self.n_restores, "modality": cfg.modality, "sample_power": cfg.sample_power,
                "quant": cfg.quant, "restretch": cfg.restretch, "steps_total": self.step + int(cfg.steps_offset)}

    def finish(self) -> Generator[Progress, None, Dict[str, Any]]:
        cfg, spec = self.cfg, self.spec
        seconds = self.elapsed()
        if cfg.ckpt:
            self._save()
        out_path = cfg.out or spec.weights_filename(cfg.quality or 0)
        meta = self._meta(seconds)
        self.model.eval()
        export_weights(self.model, cfg.arch, out_path, None if spec.vbr else cfg.quality, self.widths, meta)
        yield Progress("export", 1, 1, f"wrote {out_path} ({os.path.getsize(out_path) / 1024:.0f} KiB) after "
                                       f"{self.step} steps, {seconds:.0f}s ({self.stop_reason})")
        return {"out": str(out_path), "steps": self.step, "seconds": seconds, "meta": meta}


def train(cfg: TrainConfig, stop: Optional[threading.Event] = None) -> Generator[Progress, None, Dict[str, Any]]:
    """Train ``cfg.arch``; yield progress every ``log_every`` steps; return a summary dict.

    ``stop``: when set (e.g. from a SIGTERM handler, :func:`~.base.stop_on_signals`), training ends after
    the current step, writes its checkpoint and exports, exactly as when the budget runs out.

    A non-finite loss, or one above ``cfg.spike`` times the running median, restores the last good
    state (kept in memory every ``ckpt_every`` steps), halves the learning rate and goes on.
    """
    return (yield from CodecTrainer(cfg, stop).run())


def _compressai_version() -> str:
    import compressai
    return getattr(compressai, "__version__", "?")


def export_checkpoint(ckpt_path, out, extra_meta: Optional[Dict[str, Any]] = None) -> Path:
    """Export a checkpoint's current model as a weight file (e.g. to evaluate a run that goes on)."""
    ck = load_checkpoint(ckpt_path)
    if ck.get("format") != CKPT_FORMAT:
        raise MicrocompError(f"{ckpt_path} is not a napari-microcomp training checkpoint")
    spec = get_arch(ck["arch"])
    cfg = dict(ck.get("config") or {})
    widths = dict(ck["widths"])
    model = spec.factory(**widths)
    model.load_state_dict(ck["model"])
    model.eval()
    q = None if spec.vbr else cfg.get("quality")
    if spec.vbr:
        lam = list(ck.get("lambdas") or cfg.get("lambdas") or spec.lambdas)
    else:
        lam = ck.get("lmbda") or cfg.get("lmbda") or spec.lmbda(int(q or 4))
    meta = {"arch": ck["arch"], "quality": q, "lambda": lam, "widths": widths, "steps": int(ck["step"]),
            "seconds": round(float(ck["elapsed"]), 1), "data": cfg.get("data"), "patch": cfg.get("patch"),
            "batch": cfg.get("batch"), "lr": cfg.get("lr"), "schedule": cfg.get("schedule", "step"),
            "device": cfg.get("device"), "torch": str(torch.__version__), "compressai": _compressai_version(),
            "git": git_revision(), "command": cfg.get("command"), "seed": cfg.get("seed"),
            "modality": cfg.get("modality"), "from_checkpoint": True, **(extra_meta or {})}
    return export_weights(model, ck["arch"], out, q, widths, meta)
