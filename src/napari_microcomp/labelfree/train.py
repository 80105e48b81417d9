"""Training label-free models: U-Net (MSE) and Pix2Pix (MSE pretraining, then multi-scale PatchGAN).

:func:`iter_train` is a generator of :class:`Progress` (one per step; ``message`` set on log
steps) that returns a summary dict. Whole images live on the training device; random aligned
crops with flips / 90° rotations are cut there, so a GPU job needs no data-loader processes.
With ``compress_with="codec:quality"`` every input image is encoded and decoded once at load
(codecs are deterministic) and the net trains on the reconstructions.

Pix2Pix losses follow the study (pix2pixHD): LSGAN weight 1, discriminator feature matching
weight 10, reconstruction (MSE) weight 1000; the generator is first trained with MSE alone for
``pretrain_frac`` of the run.
"""
import hashlib
import io as _io
import math
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Generator, List, Optional, Tuple

import numpy as np

from .._progress import Progress
from ..errors import InputError, MicrocompError
from ..io import atomic_write_bytes, read_image
from .model import export_weights, resolve_device
from .normalize import normalize, percentile_scheme

CKPT_FORMAT = "napari-microcomp/labelfree-checkpoint"
MODELS = ("unet", "pix2pix")
GAN_WEIGHTS = {"gan": 1.0, "feature_matching": 10.0, "reconstruction": 1000.0}


@dataclass
class TrainConfig:
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
    device: str = "cpu"
    max_minutes: Optional[float] = None
    out: Optional[str] = None
    ckpt: Optional[str] = None
    ckpt_every: int = 500
    resume: Optional[str] = None
    log_every: int = 50
    seed: int = 0
    depth: int = 4
    base: int = 32
    pretrain_frac: float = 0.5
    d_scales: int = 2
    amp: str = "auto"                       # auto (bf16 on CUDA) | bf16 | off
    norm_low: float = 1.0
    norm_high: float = 99.0
    gpu_mem_gb: float = 4.0                 # hard cap per process on CUDA; 0 = none
    command: str = field(default_factory=lambda: shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]))


# -- data -----------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_codec_spec(spec: str):
    """``"jpegxr:4"`` -> a configured codec from the registry (quality 1..8)."""
    from ..codecs import get_codec

    name, _, q = spec.partition(":")
    if not name:
        raise InputError(f"--compress-with needs CODEC:QUALITY, got {spec!r}")
    try:
        quality = int(q) if q else None
    except ValueError:
        raise InputError(f"--compress-with quality must be an integer 1..8, got {q!r}") from None
    return get_codec(name, quality=quality)


def load_pairs(cfg: TrainConfig) -> Tuple[List[np.ndarray], List[np.ndarray], Dict[str, Any]]:
    """Read, (optionally) compress and normalize the paired images: ``(C, Y, X)`` and ``(1, Y, X)``."""
    if not cfg.inputs or len(cfg.inputs) != len(cfg.targets):
        raise InputError(f"need as many --targets as --inputs, got {len(cfg.inputs)} and {len(cfg.targets)}")
    codec = parse_codec_spec(cfg.compress_with) if cfg.compress_with else None
    scheme = percentile_scheme(cfg.norm_low, cfg.norm_high)
    xs, ys, files, comp = [], [], [], []
    n_slices = None
    for xin, yin in zip(cfg.inputs, cfg.targets):
        x, _ = read_image(xin)
        y, _ = read_image(yin)
        if y.ndim != 2:
            raise InputError(f"target {Path(yin).name} must be 2D (Y, X), got shape {y.shape}")
        if cfg.zstack:
            if x.ndim != 3:
                raise InputError(f"--zstack needs (Z, Y, X) inputs; {Path(xin).name} has shape {x.shape}")
            if n_slices is not None and x.shape[0] != n_slices:
                raise InputError(f"all input stacks need the same slice count ({n_slices}), "
                                 f"{Path(xin).name} has {x.shape[0]}")
            n_slices = x.shape[0]
        elif x.ndim != 2:
            raise InputError(f"input {Path(xin).name} has shape {x.shape}: pass 2D images, or --zstack for stacks")
        if x.shape[-2:] != y.shape:
            raise InputError(f"{Path(xin).name} {x.shape[-2:]} and {Path(yin).name} {y.shape} are not the same size")
        if min(y.shape) < cfg.crop:
            raise InputError(f"--crop {cfg.crop} is larger than {Path(yin).name} {y.shape}")
        if codec is not None:
            stream = codec.encode(x)
            x = codec.decode(stream)
            comp.append({"file": Path(xin).name, "bytes": len(stream),
                         "ratio": float(x.nbytes) / len(stream)})
        xn = normalize(x, scheme)
        xs.append(xn if xn.ndim == 3 else xn[None])
        ys.append(normalize(y, scheme)[None])
        files += [{"role": role, "path": str(p), "name": Path(p).name, "sha256": _sha256(Path(p)),
                   "shape": list(a.shape)} for role, p, a in (("input", xin, x), ("target", yin, y))]
    info = {"files": files, "n_slices": int(n_slices or 1), "normalization": scheme,
            "compress_with": None if codec is None else {"codec": codec.get_config(), "streams": comp}}
    return xs, ys, info


def _heldin_window(shape: Tuple[int, int], crop: int, multiple: int) -> Tuple[slice, slice]:
    """A fixed central window of the first training pair for the quick Pearson check (held-in)."""
    size = [max(multiple, (min(n, 2 * crop) // multiple) * multiple) for n in shape]
    starts = [(n - s) // 2 for n, s in zip(shape, size)]
    return tuple(slice(a, a + s) for a, s in zip(starts, size))


class _Sampler:
    """Random aligned crops + dihedral augmentation, cut on the device from whole images."""

    def __init__(self, xs, ys, crop: int, batch: int, device, seed: int):
        import torch

        self.xs = [torch.from_numpy(x).to(device) for x in xs]
        self.ys = [torch.from_numpy(y).to(device) for y in ys]
        areas = np.array([y.shape[-1] * y.shape[-2] for y in ys], dtype=np.float64)
        self.p = areas / areas.sum()
        self.crop, self.batch = crop, batch
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        import torch

        c = self.crop
        bx, by = [], []
        for _ in range(self.batch):
            i = int(self.rng.choice(len(self.xs), p=self.p))
            h, w = self.ys[i].shape[-2:]
            r0, c0 = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            pair = [t[:, r0:r0 + c, c0:c0 + c] for t in (self.xs[i], self.ys[i])]
            pair = [torch.rot90(t, k, dims=(1, 2)) for t in pair]
            if flip:
                pair = [torch.flip(t, dims=(2,)) for t in pair]
            bx.append(pair[0])
            by.append(pair[1])
        return torch.stack(bx), torch.stack(by)


# -- helpers --------------------------------------------------------------------------------------
def git_revision() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _save_atomic(obj: Dict[str, Any], path) -> None:
    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _pearson_t(a, b) -> float:
    a = a.double().flatten()
    b = b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float((a.square().sum() * b.square().sum()).sqrt())
    return float((a * b).sum()) / den if den > 0 else float("nan")


def _lsgan(maps, real: bool):
    import torch

    return sum(torch.mean((m[-1].float() - (1.0 if real else 0.0)) ** 2) for m in maps) / len(maps)


def _feature_matching(fake_maps, real_maps):
    n_scales = len(fake_maps)
    total = 0.0
    for f_scale, r_scale in zip(fake_maps, real_maps):
        layers = len(f_scale) - 1  # the last map is the score, not a feature
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + (f.float() - r.detach().float()).abs().mean() / (layers * n_scales)
    return total


# -- the training generator -------------------------------------------------------------------------
def iter_train(cfg: TrainConfig, stop: Optional[Callable[[], bool]] = None
               ) -> Generator[Progress, None, Dict[str, Any]]:
    """Train as configured; yield Progress each step; return a summary dict.

    ``stop()`` is polled every step (e.g. set by SIGTERM): the run then ends cleanly, writes the
    checkpoint and exports, exactly as when ``max_minutes`` or ``steps`` is reached.
    """
    import torch
    import torch.nn.functional as F

    from ..models.unet import MultiScaleDiscriminator, build_generator, count_parameters

    if cfg.model not in MODELS:
        raise InputError(f"--model must be one of {', '.join(MODELS)}, got {cfg.model!r}")
    if cfg.crop % (2 ** cfg.depth):
        raise InputError(f"--crop must be a multiple of {2 ** cfg.depth}, got {cfg.crop}")
    if cfg.batch < 1 or cfg.steps < 1:
        raise InputError("--batch and --steps must be positive")
    if not (cfg.out or cfg.ckpt):
        raise InputError("give --out FILE.pt (and/or --ckpt FILE) so the trained weights are kept")
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        if cfg.gpu_mem_gb and cfg.gpu_mem_gb > 0:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, cfg.gpu_mem_gb * 2 ** 30 / total), device)
    use_amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)

    yield Progress("load", 0, 1, "reading" + (f" and compressing with {cfg.compress_with}" if cfg.compress_with else ""))
    xs, ys, data_info = load_pairs(cfg)
    in_ch = xs[0].shape[0]
    arch = {"ndim": 2, "in_channels": int(in_ch), "out_channels": 1, "depth": cfg.depth, "base": cfg.base}
    G = build_generator(arch).to(device)
    optG = torch.optim.Adam(G.parameters(), lr=cfg.lr or 1e-3, betas=(0.9, 0.999))
    D = optD = None
    if cfg.model == "pix2pix":
        D = MultiScaleDiscriminator(in_ch + 1, n_scales=cfg.d_scales).to(device)
        optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step, elapsed_before, gan_started, gan_frac0, history = 0, 0.0, None, None, []
    loss_ema: Optional[float] = None
    if cfg.resume:
        if not Path(cfg.resume).is_file():
            raise InputError(f"--resume: checkpoint not found: {cfg.resume}")
        ck = torch.load(cfg.resume, map_location=device, weights_only=True)
        if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
            raise InputError(f"{cfg.resume} is not a label-free training checkpoint")
        if ck["arch"] != arch or ck["config"]["model"] != cfg.model:
            raise InputError(f"checkpoint is for {ck['config']['model']} {ck['arch']}, this run is "
                             f"{cfg.model} {arch}; resume with the same --model/--zstack/data")
        G.load_state_dict(ck["G"])
        optG.load_state_dict(ck["optG"])
        if D is not None:
            D.load_state_dict(ck["D"])
            optD.load_state_dict(ck["optD"])
        step, elapsed_before = int(ck["step"]), float(ck["elapsed_s"])
        gan_started, gan_frac0 = ck.get("gan_started"), ck.get("gan_frac0")
        history = list(ck.get("history", []))
        loss_ema = ck.get("loss_ema")
    sampler = _Sampler(xs, ys, cfg.crop, cfg.batch, device, cfg.seed + step)
    win = _heldin_window(ys[0].shape[-2:], cfg.crop, G.multiple)
    hx = sampler.xs[0][(slice(None),) + win][None]
    hy = sampler.ys[0][(slice(None),) + win][None]
    yield Progress("load", 1, 1, f"{len(xs)} pair(s), input channels {in_ch}, generator "
                   f"{count_parameters(G) / 1e6:.2f} M parameters, device {device}, amp {'bf16' if use_amp else 'off'}")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else None
    t0 = time.monotonic()
    start_step = step

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t0

    def fraction() -> float:
        # With a time budget (per invocation) the schedule runs in time; a resumed run continues it
        # from where the checkpoint left off and ends it at this invocation's deadline.
        f = step / cfg.steps
        return max(f, elapsed() / (elapsed_before + budget)) if budget else f

    def meta(final: bool) -> Dict[str, Any]:
        G.eval()
        with torch.inference_mode(), autocast():
            r = _pearson_t(G(hx).float(), hy)
        G.train()
        training = {
            "steps": step, "seconds": round(elapsed(), 1), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "amp": "bf16" if use_amp else "off", "torch": str(torch.__version__), "numpy": str(np.__version__),
            "git_revision": git_revision(), "command": cfg.command, "crop": cfg.crop, "batch": cfg.batch,
            "lr": cfg.lr, "seed": cfg.seed, "max_minutes": cfg.max_minutes, "finished": final, "loss_ema": loss_ema,
            "heldin_pearson_r": r, "data": data_info["files"], "compress_with": data_info["compress_with"],
            "augmentation": "random aligned crops, 90-degree rotations, horizontal flips",
            "gan_started_step": gan_started, "history": history[-200:],
        }
        if cfg.model == "pix2pix":
            training["loss_weights"] = GAN_WEIGHTS
            training["pretrain_frac"] = cfg.pretrain_frac
            training["d_scales"] = cfg.d_scales
        return {"kind": cfg.model, "arch": arch,
                "input": {"layout": "zyx-channels" if cfg.zstack else "yx", "n_slices": data_info["n_slices"]},
                "normalization": {"input": data_info["normalization"], "target": data_info["normalization"]},
                "output_units": (f"target normalized by its own {cfg.norm_low:g}th/{cfg.norm_high:g}th "
                                 "percentiles (see normalization.target)"),
                "training": training}

    def save(final: bool):
        m = meta(final)
        if cfg.ckpt:
            _save_atomic({"format": CKPT_FORMAT, "config": asdict(cfg), "arch": arch, "step": step,
                          "elapsed_s": elapsed(), "G": G.state_dict(), "optG": optG.state_dict(),
                          "D": D.state_dict() if D is not None else None,
                          "optD": optD.state_dict() if optD is not None else None,
                          "gan_started": gan_started, "gan_frac0": gan_frac0, "history": history,
                          "loss_ema": loss_ema},
                         cfg.ckpt)
        if cfg.out:
            export_weights(cfg.out, G.state_dict(), m)
        return m

    G.train()
    if D is not None:
        D.train()
    stopped = "steps"
    while step < cfg.steps:
        if stop is not None and stop():
            stopped = "signal"
            break
        if budget is not None and time.monotonic() - t0 >= budget:
            stopped = "time"
            break
        frac = fraction()
        gan_phase = cfg.model == "pix2pix" and (gan_started is not None or frac >= cfg.pretrain_frac)
        if gan_phase and gan_started is None:
            gan_started = step
            gan_frac0 = frac
        if gan_phase:
            f0 = cfg.pretrain_frac if gan_frac0 is None else gan_frac0
            phase_frac = min(1.0, (frac - f0) / max(1e-9, 1.0 - f0))
            base_lr = 2e-4 if cfg.lr is None else cfg.lr * 0.2
        else:
            end = cfg.pretrain_frac if cfg.model == "pix2pix" else 1.0
            phase_frac = min(1.0, frac / end)
            base_lr = cfg.lr or 1e-3
        # Cosine decay to 5 % over the phase; with a time budget the phase is measured in time.
        lr = base_lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * phase_frac)))
        for g in optG.param_groups:
            g["lr"] = lr
        xb, yb = sampler()
        logs: Dict[str, float] = {}
        if not gan_phase:
            with autocast():
                pred = G(xb)
            loss = F.mse_loss(pred.float(), yb)
            optG.zero_grad(set_to_none=True)
            loss.backward()
            optG.step()
            logs["mse"] = float(loss.detach())
        else:
            for g in optD.param_groups:
                g["lr"] = lr
            with autocast():
                fake = G(xb)
                real_maps = D(torch.cat([xb, yb], 1))
                fake_maps_d = D(torch.cat([xb, fake.detach()], 1))
            loss_d = 0.5 * (_lsgan(real_maps, True) + _lsgan(fake_maps_d, False))
            optD.zero_grad(set_to_none=True)
            loss_d.backward()
            optD.step()
            with autocast():
                fake_maps = D(torch.cat([xb, fake], 1))
            mse = F.mse_loss(fake.float(), yb)
            g_gan = _lsgan(fake_maps, True)
            g_fm = _feature_matching(fake_maps, real_maps)
            loss = (GAN_WEIGHTS["gan"] * g_gan + GAN_WEIGHTS["feature_matching"] * g_fm
                    + GAN_WEIGHTS["reconstruction"] * mse)
            optG.zero_grad(set_to_none=True)
            loss.backward()
            optG.step()
            logs.update(mse=float(mse.detach()), g_gan=float(g_gan.detach()), fm=float(g_fm.detach()),
                        d=float(loss_d.detach()))
        if not math.isfinite(logs["mse"]):
            raise MicrocompError(f"training diverged at step {step} (loss {logs['mse']}); lower --lr")
        step += 1
        loss_ema = logs["mse"] if loss_ema is None else 0.95 * loss_ema + 0.05 * logs["mse"]
        message = ""
        if step % cfg.log_every == 0 or step == 1:
            G.eval()
            with torch.inference_mode(), autocast():
                r = _pearson_t(G(hx).float(), hy)
            G.train()
            now = time.monotonic()
            rate = (step - start_step) / max(1e-9, now - t0)
            mem = (f" mem {torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}GB"
                   if device.type == "cuda" else "")
            extra = "".join(f" {k} {v:.4g}" for k, v in logs.items() if k != "mse")
            message = (f"step {step}/{cfg.steps} {'gan' if gan_phase else 'mse'} mse {logs['mse']:.5f} "
                       f"ema {loss_ema:.5f}{extra} r_heldin {r:.4f} lr {lr:.2e} {rate:.2f} it/s "
                       f"{elapsed():.0f}s{mem}")
            history.append({"step": step, "mse": round(logs["mse"], 6), "mse_ema": round(loss_ema, 6), "r_heldin": round(r, 4),
                            "seconds": round(elapsed(), 1)})
        if cfg.ckpt_every and step % cfg.ckpt_every == 0 and step < cfg.steps:
            save(final=False)
            message = (message + " | " if message else "") + f"checkpoint at step {step}"
        yield Progress("train", step, cfg.steps, message)
    m = save(final=True)
    summary = {"steps": step, "stopped_by": stopped, "seconds": m["training"]["seconds"],
               "loss_ema": loss_ema, "heldin_pearson_r": m["training"]["heldin_pearson_r"],
               "out": cfg.out, "ckpt": cfg.ckpt, "history": history}
    yield Progress("train", step, cfg.steps,
                   f"done: {step} steps ({stopped}), {summary['seconds']:.0f}s, r_heldin "
                   f"{summary['heldin_pearson_r']:.4f}; wrote {', '.join(p for p in (cfg.out, cfg.ckpt) if p)}")
    return summary


def apply_threads(device: str, threads: Optional[int]) -> None:
    """Limit torch CPU threads (GPU jobs share the host's cores: default 1 thread there)."""
    import torch

    if threads is None and str(device).startswith("cuda"):
        threads = 1
    if threads:
        torch.set_num_threads(int(threads))
