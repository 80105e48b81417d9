"""Training label-free models: U-Net (MSE) and Pix2Pix (MSE pretraining, then multi-scale PatchGAN).

:func:`iter_train` is a generator of :class:`Progress` (one per step; ``message`` set on log
steps) that returns a summary dict; :class:`LabelFreeTrainer` is a :class:`~napari_microcomp.training.base.Trainer`
(loop, budget, stop requests and atomic checkpoints are the base's). Whole images live on the training
device; random aligned crops with flips / 90° rotations are cut there (:mod:`.train_data`), so a GPU job
needs no data-loader processes.
With ``compress_with="codec:quality"`` every input image is encoded and decoded once at load
(codecs are deterministic) and the net trains on the reconstructions.

Pix2Pix losses follow the study (pix2pixHD): LSGAN weight 1, discriminator feature matching
weight 10, reconstruction (MSE) weight 1000; the generator is first trained with MSE alone for
``pretrain_frac`` of the run.
"""
import math
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Generator, List, Optional, Tuple

import numpy as np

from .._progress import Progress
from ..errors import InputError, MicrocompError
from ..training.base import RunConfig, Trainer, check_settings, git_revision, load_checkpoint, save_checkpoint
from ..weights.export import export_labelfree
from .model import resolve_device
from .losses import feature_matching, lsgan, pearson
from .train_data import (Validation, _heldin_window, _Sampler, load_pairs, one_head, parse_codec_spec,
                         split_validation)

CKPT_FORMAT = "napari-microcomp/labelfree-checkpoint"
MODELS = ("unet", "pix2pix")
GAN_WEIGHTS = {"gan": 1.0, "feature_matching": 10.0, "reconstruction": 1000.0}
__all__ = ["CKPT_FORMAT", "MODELS", "GAN_WEIGHTS", "TrainConfig", "LabelFreeTrainer", "iter_train", "apply_threads",
           "load_pairs", "parse_codec_spec"]


@dataclass
class TrainConfig(RunConfig):
    """Everything a training run depends on (stored in checkpoints and, summarized, in the export)."""

    inputs: List[str]
    targets: List[str]
    model: str = "unet"
    zstack: bool = False
    compress_with: Optional[str] = None
    steps: int = 2000
    crop: int = 256
    batch: int = 8
    lr: Optional[float] = None              # unet / pretraining: 1e-3; GAN phase: 2e-4
    ckpt_every: int = 500
    log_every: int = 50
    depth: int = 4
    base: int = 32
    pretrain_frac: float = 0.5
    d_scales: int = 2
    amp: str = "auto"                       # auto (bf16 on CUDA) | bf16 | off
    norm_low: float = 1.0
    norm_high: float = 99.0
    gpu_mem_gb: float = 4.0                 # hard cap per process on CUDA; 0 = none
    augment: str = "basic"                  # basic (crops, rotations, flips) | strong (+ scale, gain, noise)
    val_frac: float = 0.0                   # right-most strip of each pair held out for validation
    patience: int = 0                       # stop after this many validations without a better r (0: never)
    aux_targets: List[str] = field(default_factory=list)   # K more targets per input, trained beside the main one
    aux_weight: float = 1.0                 # weight of their mean MSE in the loss
    aux_out: List[str] = field(default_factory=list)       # files for the auxiliary outputs (1st, 2nd, ...)
    command: str = field(default_factory=lambda: shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]))


# -- the trainer ------------------------------------------------------------------------------------
class LabelFreeTrainer(Trainer):
    """U-Net (MSE) or Pix2Pix (MSE pretraining, then GAN) on paired images (see the module docstring)."""

    ckpt_format = CKPT_FORMAT
    clock_includes_setup = False    # the clock (and the budget) start after the data are read
    stopped_name = "signal"

    def __init__(self, cfg: TrainConfig, stop: Optional[Callable[[], bool]] = None):
        super().__init__(cfg.steps, cfg.max_minutes or None, stop)
        if cfg.model not in MODELS:
            raise InputError(f"--model must be one of {', '.join(MODELS)}, got {cfg.model!r}")
        if cfg.crop % (2 ** cfg.depth):
            raise InputError(f"--crop must be a multiple of {2 ** cfg.depth}, got {cfg.crop}")
        check_settings(cfg)
        if not (cfg.out or cfg.ckpt):
            raise InputError("give --out FILE.pt (and/or --ckpt FILE) so the trained weights are kept")
        self.cfg = cfg
        self.gan_started = self.gan_frac0 = self.loss_ema = None
        self.val: Optional[Validation] = None
        self.out_of_patience = False
        self.history: List[Dict[str, Any]] = []

    def should_stop(self) -> Optional[str]:
        # a stop request is checked before the budget (a signal during the last step reads "signal")
        if self.stop_requested():
            return self.stopped_name
        return "patience" if self.out_of_patience else super().should_stop()

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> Generator[Progress, None, None]:
        import torch

        from ..models.unet import MultiScaleDiscriminator, build_generator, count_parameters

        cfg = self.cfg
        self.device = device = resolve_device(cfg.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if cfg.gpu_mem_gb and cfg.gpu_mem_gb > 0:
                total = torch.cuda.get_device_properties(device).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, cfg.gpu_mem_gb * 2 ** 30 / total), device)
        self.use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
        torch.manual_seed(cfg.seed)
        yield Progress("load", 0, 1, "reading" + (f" and compressing with {cfg.compress_with}"
                                                  if cfg.compress_with else ""))
        xs, ys, self.data_info = load_pairs(cfg)
        in_ch, out_ch = xs[0].shape[0], ys[0].shape[0]
        if out_ch > 1 and cfg.model != "unet":
            raise InputError("--aux-targets trains a U-Net (--model unet) only")
        if len(cfg.aux_out) > out_ch - 1 or (cfg.aux_out and not cfg.out):
            raise InputError(f"--aux-out names at most one file per auxiliary target ({out_ch - 1}), with --out")
        self.arch = {"ndim": 2, "in_channels": int(in_ch), "out_channels": int(out_ch), "depth": cfg.depth,
                     "base": cfg.base}
        self.G = build_generator(self.arch).to(device)
        self.optG = torch.optim.Adam(self.G.parameters(), lr=cfg.lr or 1e-3, betas=(0.9, 0.999))
        self.D = self.optD = None
        if cfg.model == "pix2pix":
            self.D = MultiScaleDiscriminator(in_ch + 1, n_scales=cfg.d_scales).to(device)
            self.optD = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        if cfg.resume:
            self._resume()
        xs, ys, vxs, vys = split_validation(xs, ys, cfg.val_frac, self.G.multiple, cfg.crop)
        self.val = Validation(vxs, vys, device, cfg.patience)
        if cfg.resume:
            self._resume_validation()
        self.sampler = _Sampler(xs, ys, cfg.crop, cfg.batch, device, cfg.seed + self.step, cfg.augment)
        win = _heldin_window(ys[0].shape[-2:], cfg.crop, self.G.multiple)
        self.hx = self.sampler.xs[0][(slice(None),) + win][None]
        self.hy = self.sampler.ys[0][(slice(0, 1),) + win][None]
        yield Progress("load", 1, 1, f"{len(xs)} pair(s), input channels {in_ch}, generator "
                       f"{count_parameters(self.G) / 1e6:.2f} M parameters, device {device}, amp "
                       f"{'bf16' if self.use_amp else 'off'}")
        self.start_step = self.step
        self.G.train()
        if self.D is not None:
            self.D.train()

    def _resume(self) -> None:
        cfg = self.cfg
        if not Path(cfg.resume).is_file():
            raise InputError(f"--resume: checkpoint not found: {cfg.resume}")
        ck = load_checkpoint(cfg.resume, map_location=self.device, error=InputError)
        if ck.get("format") != CKPT_FORMAT:
            raise InputError(f"{cfg.resume} is not a label-free training checkpoint")
        if ck["arch"] != self.arch or ck["config"]["model"] != cfg.model:
            raise InputError(f"checkpoint is for {ck['config']['model']} {ck['arch']}, this run is "
                             f"{cfg.model} {self.arch}; resume with the same --model/--zstack/data")
        self.G.load_state_dict(ck["G"])
        self.optG.load_state_dict(ck["optG"])
        if self.D is not None:
            self.D.load_state_dict(ck["D"])
            self.optD.load_state_dict(ck["optD"])
        self.step, self.elapsed_before = int(ck["step"]), float(ck["elapsed_s"])
        self.gan_started, self.gan_frac0 = ck.get("gan_started"), ck.get("gan_frac0")
        self.history = list(ck.get("history", []))
        self.loss_ema = ck.get("loss_ema")
        self._val_ck = ck.get("validation")

    def _resume_validation(self) -> None:
        v = getattr(self, "_val_ck", None)
        if v and self.val:
            self.val.best_r, self.val.best_step, self.val.since_best = v["best_r"], v["best_step"], v["since_best"]
            self.val.best_state = v["best_state"]

    # -- one step ---------------------------------------------------------------------------------
    def autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp)

    def _phase_lr(self) -> Tuple[bool, float]:
        """(GAN phase?, learning rate): cosine decay to 5 % over each phase (in time with a budget)."""
        cfg, frac = self.cfg, self.fraction()
        gan_phase = cfg.model == "pix2pix" and (self.gan_started is not None or frac >= cfg.pretrain_frac)
        if gan_phase and self.gan_started is None:
            self.gan_started, self.gan_frac0 = self.step, frac
        if gan_phase:
            f0 = cfg.pretrain_frac if self.gan_frac0 is None else self.gan_frac0
            phase_frac = min(1.0, (frac - f0) / max(1e-9, 1.0 - f0))
            base_lr = 2e-4 if cfg.lr is None else cfg.lr * 0.2
        else:
            end = cfg.pretrain_frac if cfg.model == "pix2pix" else 1.0
            phase_frac = min(1.0, frac / end)
            base_lr = cfg.lr or 1e-3
        return gan_phase, base_lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * phase_frac)))

    def _mse_step(self, xb, yb) -> Dict[str, float]:
        import torch.nn.functional as F

        with self.autocast():
            pred = self.G(xb)
        loss = F.mse_loss(pred[:, :1].float(), yb[:, :1])
        total = loss + (self.cfg.aux_weight * F.mse_loss(pred[:, 1:].float(), yb[:, 1:]) if yb.shape[1] > 1 else 0)
        self.optG.zero_grad(set_to_none=True)
        total.backward()
        self.optG.step()
        return {"mse": float(loss.detach())}

    def _gan_step(self, xb, yb, lr: float) -> Dict[str, float]:
        import torch
        import torch.nn.functional as F

        G, D, optD = self.G, self.D, self.optD
        for g in optD.param_groups:
            g["lr"] = lr
        with self.autocast():
            fake = G(xb)
            real_maps = D(torch.cat([xb, yb], 1))
            fake_maps_d = D(torch.cat([xb, fake.detach()], 1))
        loss_d = 0.5 * (lsgan(real_maps, True) + lsgan(fake_maps_d, False))
        optD.zero_grad(set_to_none=True)
        loss_d.backward()
        optD.step()
        with self.autocast():
            fake_maps = D(torch.cat([xb, fake], 1))
        mse = F.mse_loss(fake.float(), yb)
        g_gan = lsgan(fake_maps, True)
        g_fm = feature_matching(fake_maps, real_maps)
        loss = (GAN_WEIGHTS["gan"] * g_gan + GAN_WEIGHTS["feature_matching"] * g_fm
                + GAN_WEIGHTS["reconstruction"] * mse)
        self.optG.zero_grad(set_to_none=True)
        loss.backward()
        self.optG.step()
        return {"mse": float(mse.detach()), "g_gan": float(g_gan.detach()), "fm": float(g_fm.detach()),
                "d": float(loss_d.detach())}

    def sample(self):
        """The data sampling hook: one batch of aligned crops, cut on the device."""
        return self.sampler()

    def train_step(self) -> Progress:
        cfg = self.cfg
        gan_phase, lr = self._phase_lr()
        for g in self.optG.param_groups:
            g["lr"] = lr
        xb, yb = self.sample()
        logs = self._gan_step(xb, yb, lr) if gan_phase else self._mse_step(xb, yb)
        if not math.isfinite(logs["mse"]):
            raise MicrocompError(f"training diverged at step {self.step} (loss {logs['mse']}); lower --lr")
        self.step += 1
        step = self.step
        self.loss_ema = logs["mse"] if self.loss_ema is None else 0.95 * self.loss_ema + 0.05 * logs["mse"]
        message = ""
        if step % cfg.log_every == 0 or step == 1:
            message = self._log(logs, gan_phase, lr)
        if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
            self._save(final=False)
            message = (message + " | " if message else "") + f"checkpoint at step {step}"
        return Progress("train", step, cfg.steps, message)

    def _heldin_r(self) -> float:
        import torch

        self.G.eval()
        with torch.inference_mode(), self.autocast():
            r = pearson(self.G(self.hx)[:, :1].float(), self.hy)
        self.G.train()
        return r

    def _log(self, logs: Dict[str, float], gan_phase: bool, lr: float) -> str:
        import torch

        r, step, device = self._heldin_r(), self.step, self.device
        rate = (step - self.start_step) / max(1e-9, self.run_time())
        mem = f" mem {torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}GB" if device.type == "cuda" else ""
        extra = "".join(f" {k} {v:.4g}" for k, v in logs.items() if k != "mse")
        entry = {"step": step, "mse": round(logs["mse"], 6), "mse_ema": round(self.loss_ema, 6),
                 "r_heldin": round(r, 4), "seconds": round(self.elapsed(), 1)}
        if self.val:
            r_val = self.val.evaluate(self.G, self.autocast, pearson)
            self.out_of_patience = self.val.update(r_val, step, self.G)
            entry["r_val"] = round(r_val, 4)
            extra += f" r_val {r_val:.4f} (best {self.val.best_r:.4f} at {self.val.best_step})"
        self.history.append(entry)
        return (f"step {step}/{self.cfg.steps} {'gan' if gan_phase else 'mse'} mse {logs['mse']:.5f} "
                f"ema {self.loss_ema:.5f}{extra} r_heldin {r:.4f} lr {lr:.2e} {rate:.2f} it/s "
                f"{self.elapsed():.0f}s{mem}")

    # -- checkpoints and export -------------------------------------------------------------------
    def _meta(self, final: bool) -> Dict[str, Any]:
        import torch

        cfg, device, info = self.cfg, self.device, self.data_info
        training = {
            "steps": self.step, "seconds": round(self.elapsed(), 1), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "amp": "bf16" if self.use_amp else "off", "torch": str(torch.__version__), "numpy": str(np.__version__),
            "git_revision": git_revision(), "command": cfg.command, "crop": cfg.crop, "batch": cfg.batch,
            "lr": cfg.lr, "seed": cfg.seed, "max_minutes": cfg.max_minutes, "finished": final,
            "loss_ema": self.loss_ema, "heldin_pearson_r": self._heldin_r(), "data": info["files"],
            "compress_with": info["compress_with"],
            "augmentation": "random aligned crops, 90-degree rotations, horizontal flips" + (
                "; scale ±20 %, input gain ×0.8–1.25, offset ±0.1, noise σ ≤ 0.03" if cfg.augment == "strong" else ""),
            "validation": None if not self.val else {
                "frac": cfg.val_frac, "patience": cfg.patience, "best_pearson_r": self.val.best_r,
                "best_step": self.val.best_step, "exported": "best" if final and self.val.best_state else "last"},
            "gan_started_step": self.gan_started, "history": self.history[-200:],
            "aux_targets": None if self.arch["out_channels"] == 1 else {
                "weight": cfg.aux_weight, "note": "trained beside the main target; only its output is kept"},
        }
        if cfg.model == "pix2pix":
            training.update(loss_weights=GAN_WEIGHTS, pretrain_frac=cfg.pretrain_frac, d_scales=cfg.d_scales)
        return {"kind": cfg.model, "arch": one_head({}, self.arch)[1],
                "input": {"layout": "zyx-channels" if cfg.zstack else "yx", "n_slices": info["n_slices"]},
                "normalization": {"input": info["normalization"], "target": info["normalization"]},
                "output_units": (f"target normalized by its own {cfg.norm_low:g}th/{cfg.norm_high:g}th "
                                 "percentiles (see normalization.target)"),
                "training": training}

    def _save(self, final: bool) -> Dict[str, Any]:
        cfg, D, optD = self.cfg, self.D, self.optD
        m = self._meta(final)
        if cfg.ckpt:
            save_checkpoint({"format": CKPT_FORMAT, "config": asdict(cfg), "arch": self.arch, "step": self.step,
                             "elapsed_s": self.elapsed(), "G": self.G.state_dict(), "optG": self.optG.state_dict(),
                             "D": D.state_dict() if D is not None else None,
                             "optD": optD.state_dict() if optD is not None else None,
                             "gan_started": self.gan_started, "gan_frac0": self.gan_frac0,
                             "history": self.history, "loss_ema": self.loss_ema,
                             "validation": None if not self.val else {
                                 "best_r": self.val.best_r, "best_step": self.val.best_step,
                                 "since_best": self.val.since_best, "best_state": self.val.best_state}}, cfg.ckpt)
        if cfg.out:   # the final export is the state that validated best, when there is a validation strip
            best = self.val.best_state if final and self.val else None
            state = best or self.G.state_dict()
            export_labelfree(cfg.out, one_head(state, self.arch)[0], m)
            for k, path in enumerate(cfg.aux_out, 1):   # the validation strip scored the main output only
                export_labelfree(path, one_head(state, self.arch, k)[0],
                                 dict(m, training=dict(m["training"], exported_output=f"auxiliary target {k}")))
        return m

    def finish(self) -> Generator[Progress, None, Dict[str, Any]]:
        cfg = self.cfg
        m = self._save(final=True)
        summary = {"steps": self.step, "stopped_by": self.stop_reason, "seconds": m["training"]["seconds"],
                   "loss_ema": self.loss_ema, "heldin_pearson_r": m["training"]["heldin_pearson_r"],
                   "out": cfg.out, "ckpt": cfg.ckpt, "history": self.history}
        yield Progress("train", self.step, cfg.steps,
                       f"done: {self.step} steps ({self.stop_reason}), {summary['seconds']:.0f}s, r_heldin "
                       f"{summary['heldin_pearson_r']:.4f}; wrote {', '.join(p for p in (cfg.out, cfg.ckpt) if p)}")
        return summary


def iter_train(cfg: TrainConfig, stop: Optional[Callable[[], bool]] = None
               ) -> Generator[Progress, None, Dict[str, Any]]:
    """Train as configured; yield Progress each step; return a summary dict.

    ``stop()`` is polled every step (e.g. set by SIGTERM): the run then ends cleanly, writes the
    checkpoint and exports, exactly as when ``max_minutes`` or ``steps`` is reached.
    """
    return (yield from LabelFreeTrainer(cfg, stop).run())


def apply_threads(device: str, threads: Optional[int]) -> None:
    """Limit torch CPU threads (GPU jobs share the host's cores: default 1 thread there)."""
    import torch

    if threads is None and str(device).startswith("cuda"):
        threads = 1
    if threads:
        torch.set_num_threads(int(threads))
