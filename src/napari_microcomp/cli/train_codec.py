"""``microcomp train-codec``: train a learned codec (2D or 3D) and export a compact weight file.

Example (one quality of one architecture on a GPU, stopping cleanly after 8 minutes)::

    microcomp train-codec --arch mbt2018-mean --quality 4 --data train/ --steps 100000 \\
        --device cuda --batch 16 --patch 256 --max-minutes 8 \\
        --out mbt2018-mean-q4.pt --ckpt mbt2018-mean-q4.ckpt
"""
import argparse
import shlex
from ._args import Ints, check_train_out, command, run_args


def _widths(text: str):
    out = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        if k not in ("N", "M") or not v.isdigit():
            raise argparse.ArgumentTypeError(f"--widths expects e.g. N=64,M=96, got {text!r}")
        out[k] = int(v)
    return out


def register(subparsers) -> None:
    p = command(subparsers, "train-codec", run, "train a learned codec on image files and export its weights",
                "Rate-distortion training (CompressAI's λ·255²·MSE + bpp) of one architecture at one quality (VBR "
                "architectures: all qualities at once). Prints a progress line every --log-every steps; writes "
                "--ckpt atomically and --out (fp16 weights + metadata) at the end.")
    p.add_argument("--arch", required=True, help="architecture name (see `microcomp codecs`)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quality", type=int, choices=range(1, 9), metavar="1..8",
                   help="quality level; selects CompressAI's MSE λ for that level")
    g.add_argument("--lambda", dest="lmbda", type=float, help="explicit λ (instead of --quality)")
    p.add_argument("--lambdas", type=float, nargs=8, metavar="L",
                   help="VBR architectures: the eight λ of the rate levels (default CompressAI's 0.0018…0.18)")
    p.add_argument("--data", nargs="+", required=True, help="image files or folders (any format compress reads)")
    p.add_argument("--steps", type=int, default=100_000, help="maximum optimizer steps")
    p.add_argument("--patch", action=Ints, nargs="+", default=None,
                   help="crop size: P (P×P, or P×P×P for 3D) or D H W for 3D (default 256 / 16 64 64)")
    p.add_argument("--batch", type=int, default=8, help="patches per step (GPU: 16 of 256², 8 for mbt2018/cheng2020)")
    p.add_argument("--lr", type=float, default=1e-4,
                   help="Adam learning rate (default CompressAI's 1e-4; for runs of minutes 1e-3 learns ~5x faster)")
    p.add_argument("--aux-lr", type=float, default=1e-3, help="learning rate of the entropy-bottleneck quantiles")
    p.add_argument("--schedule", choices=("cosine", "step"), default="cosine",
                   help="after --warmup steps: cosine decay to lr/50 (default) or ×0.1 for the last quarter")
    p.add_argument("--warmup", type=int, default=500, help="linear learning-rate warm-up steps")
    p.add_argument("--spike", type=float, default=20.0,
                   help="a loss this many times its running median restores the last good state and halves lr")
    p.add_argument("--sample-power", type=float, default=1.0, metavar="P",
                   help="draw training images with probability ∝ size**P: 1 (default) every pixel equally likely, "
                        "0.5 gives small images more weight than a few large scans")
    p.add_argument("--restretch", type=float, default=0.0, metavar="P",
                   help="share of training crops mapped to [0, 1] by their own min/max rather than their image's "
                        "(contrast augmentation: the codec stretches whatever image it is given)")
    p.add_argument("--quant", choices=("noise", "mixed"), default="noise",
                   help="how training stands in for rounding: uniform noise (default) or, for the fixed-rate "
                        "models, noise for the rate and rounded latents (straight-through) for the decoders")
    p.add_argument("--modality", choices=("transmitted", "fluorescence"), default=None,
                   help="recorded in the weights' metadata; put the file in a folder of that name to serve it")
    run_args(p, ckpt_every=1000, log_every=100, out_help="exported weight file (default: {arch}-q{Q}.pt here)")
    p.add_argument("--init", default=None,
                   help="warm start from a weight file (.pt) or checkpoint of the same architecture "
                        "(fresh optimizers, step 0), e.g. fine-tune every quality from one model")
    p.add_argument("--widths", type=_widths, default={}, 
                   help="override network widths, e.g. N=64,M=96; with --init, a larger M grows the "
                        "init weights (function-preserving: training goes on from their RD point)")
    p.add_argument("--bf16", dest="bf16", action="store_true", default=None,
                   help="force bf16 autocast (default: on for cuda and bf16-capable CPUs)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--retries", type=int, default=None, metavar="N",
                   help="train in a child process and restart it from --ckpt (up to N times) if it dies of a native "
                        "crash or diverges; --max-minutes stays one budget")


def _command_line(args) -> str:
    """The run as a complete, re-runnable command (every option explicit, defaults included)."""
    parts = ["microcomp", "train-codec"]
    for key, value in vars(args).items():
        if key in ("func", "command", "verbose") or value is None or value == {}:
            continue
        flag = "--lambda" if key == "lmbda" else "--" + key.replace("_", "-")
        if key == "bf16":
            parts.append("--bf16" if value else "--no-bf16")
        elif isinstance(value, bool):   # a store_true flag
            parts += [flag] if value else []
        elif key == "widths":
            parts += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, list):
            parts += [flag, *map(str, value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def _supervised(args) -> int:
    """``--retries N``: train in a child process, restarted from ``--ckpt`` after a native crash or a divergence."""
    import sys
    import time
    from pathlib import Path

    from ..errors import InputError
    from .train_zoo import supervise

    if args.retries < 0:
        raise InputError(f"--retries must be 0 or more, got {args.retries}")
    if not args.ckpt:
        if not args.out:
            raise InputError("--retries needs --ckpt FILE (what a restart resumes from) or --out")
        args.ckpt = str(Path(args.out).with_suffix(".ckpt"))
    budget, retries = args.max_minutes, args.retries

    def child(attempt: int):
        a = argparse.Namespace(**vars(args))
        a.retries, a.max_minutes = None, None          # the supervisor passes what is left of the budget
        if attempt and Path(args.ckpt).is_file():
            a.resume = args.ckpt
        return [sys.executable, "-m", "napari_microcomp.cli", *shlex.split(_command_line(a))[1:]]

    return supervise(child, retries, lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True), budget,
                     name="training")


def run(args) -> int:
    from ..models.registry import get_arch
    from ..training.codec import TrainConfig, train

    check_train_out(args.out or get_arch(args.arch).weights_filename(args.quality or 0), args)
    if args.retries is not None:
        return _supervised(args)
    cfg = TrainConfig(arch=args.arch, data=list(args.data), quality=args.quality, lmbda=args.lmbda, lambdas=args.lambdas,
                      steps=args.steps, patch=args.patch, batch=args.batch, lr=args.lr, aux_lr=args.aux_lr,
                      device=args.device, max_minutes=args.max_minutes, out=args.out, ckpt=args.ckpt,
                      ckpt_every=args.ckpt_every, resume=args.resume, init=args.init, seed=args.seed, widths=args.widths,
                      log_every=args.log_every, threads=args.threads, bf16=args.bf16,
                      schedule=args.schedule, warmup=args.warmup, spike=args.spike, modality=args.modality,
                      sample_power=args.sample_power, quant=args.quant, restretch=args.restretch,
                      command=_command_line(args))
    gen = train(cfg)
    # Plain lines, flushed: training runs as a logged background job, never a terminal UI.
    try:
        while True:
            ev = next(gen)
            print(f"[{cfg.arch}{'' if cfg.quality is None else f' q{cfg.quality}'}] {ev.message}", flush=True)
    except StopIteration as stop:
        result = stop.value
    print(f"done: {result['out']}", flush=True)
    return 0
