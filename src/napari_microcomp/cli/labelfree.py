"""`microcomp predict` and `microcomp train-labelfree`."""
import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ._args import check_train_out, command, in_out, read_input, run_args


def register(sub) -> None:
    p = command(sub, "predict", run_predict, "predict a fluorescence channel from a phase/bright-field image",
                "Predict fluorescence from a transmitted-light image with a label-free model (output: float32 "
                "OME-TIFF in the model's normalized units).")
    in_out(p, "phase / bright-field image (2D, or a Z-stack for z-stack models)", "output .tif/.ome.tif or .npy")
    p.add_argument("--model", default="unet2d-isl-dapi",
                   help="shipped model name (see `microcomp predict --list`) or a .pt weights file")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: the model's, 512)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default 64)")
    p.add_argument("--batch", type=int, default=None, help="tiles per forward pass")
    p.add_argument("--channel", type=int, default=None, help="channel of a multi-channel file")
    p.add_argument("--slice", type=int, default=None, help="z-slice to use for a 2D model (negative: from the end)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast: ~2x faster on recent CPUs, approximate")
    p.add_argument("--tta", action="store_true", help="average the 8 rotations/flips (8x slower, more accurate)")

    t = command(sub, "train-labelfree", run_train, "train a label-free (phase -> fluorescence) model",
                "Train a U-Net or Pix2Pix label-free model on paired images; writes a compact fp16 .pt that "
                "`predict --model FILE` and load_model() use.")
    t.add_argument("--inputs", nargs="+", required=True, help="input images (2D, or Z-stacks with --zstack)")
    t.add_argument("--targets", nargs="+", required=True, help="target fluorescence images, same order")
    t.add_argument("--aux-targets", nargs="+", default=[], metavar="FILE",
                   help="more target channels trained beside the main one (K per input, in input order), e.g. "
                        "other stains of the same field; the exported model predicts the main target only")
    t.add_argument("--aux-weight", type=float, default=1.0, help="weight of the auxiliary targets' MSE")
    t.add_argument("--aux-out", nargs="+", default=[], metavar="FILE",
                   help="also export the auxiliary outputs, one .pt per auxiliary target in order (with --out)")
    t.add_argument("--model", choices=["unet", "pix2pix"], default="unet")
    t.add_argument("--zstack", action="store_true", help="inputs are (Z, Y, X) stacks used as channels")
    t.add_argument("--compress-with", default=None, metavar="CODEC:QUALITY",
                   help="train on reconstructions from this codec, e.g. jpegxr:4 (compression-aware)")
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--crop", type=int, default=256, help="square crop size (multiple of 16)")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=None, help="default 1e-3 (U-Net/pretraining), 2e-4 for GAN")
    run_args(t, ckpt_every=500, log_every=50, out_help="compact weights file to write (.pt)")
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--base", type=int, default=32, help="channels of the first U-Net level")
    t.add_argument("--pretrain-frac", type=float, default=0.5, help="pix2pix: fraction of the run with MSE only")
    t.add_argument("--d-scales", type=int, default=2, help="pix2pix: discriminator scales")
    t.add_argument("--amp", choices=["auto", "bf16", "off"], default="auto", help="auto = bf16 on CUDA only")
    t.add_argument("--norm-percentiles", type=float, nargs=2, default=(1.0, 99.0), metavar=("LOW", "HIGH"))
    t.add_argument("--gpu-mem-gb", type=float, default=4.0, help="CUDA memory cap per process (0 = none)")
    t.add_argument("--augment", choices=["basic", "strong"], default="basic",
                   help="strong: also scale ±20 %%, input gain/offset and noise (generalizes beyond one field)")
    t.add_argument("--val-frac", type=float, default=0.0,
                   help="hold out this right-most fraction of each pair's width; its Pearson r picks the "
                        "exported weights (the best, not the last) and drives --patience")
    t.add_argument("--patience", type=int, default=0,
                   help="stop after this many validations (every --log-every steps) without a better r")


def run_predict(args: argparse.Namespace) -> int:
    from .._progress import drain
    from ..io_write import check_image_output, check_output, write_image
    from ..labelfree import load_model
    from ..labelfree.model import input_caveat

    check_image_output(check_output(args.output, args.overwrite))
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be 1 or more, got {args.threads}")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    image, meta = read_input(args.input, channel=args.channel)
    if args.slice is not None:
        # negative counts from the end, as --channel does
        if image.ndim != 3 or not -image.shape[0] <= args.slice < image.shape[0]:
            raise InputError(f"--slice {args.slice} is out of range for shape {image.shape}")
        image = image[args.slice]
    pred = drain(model.iter_predict(image, tile=args.tile, overlap=args.overlap, batch=args.batch,
                                    precision="bf16" if args.bf16 else "fp32", tta=args.tta), desc="predict")
    write_image(args.output, pred, {"pixel_size": meta.get("pixel_size")})
    print(f"wrote {args.output}: {pred.shape} float32 prediction ({model!r})")
    print(f"note: {model.provenance}")
    caveat = input_caveat(image)
    if caveat:
        print(f"warning: {args.input}: {caveat}", file=sys.stderr)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from ..labelfree.train import TrainConfig, apply_threads, iter_train
    from ..training.base import stop_on_signals

    apply_threads(args.device, args.threads)
    cfg = TrainConfig(inputs=args.inputs, targets=args.targets, model=args.model, zstack=args.zstack,
                      compress_with=args.compress_with, steps=args.steps, crop=args.crop, batch=args.batch,
                      lr=args.lr, device=args.device, max_minutes=args.max_minutes, out=args.out,
                      ckpt=args.ckpt, ckpt_every=args.ckpt_every, resume=args.resume, log_every=args.log_every,
                      seed=args.seed, depth=args.depth, base=args.base, pretrain_frac=args.pretrain_frac,
                      d_scales=args.d_scales, amp=args.amp, norm_low=args.norm_percentiles[0],
                      norm_high=args.norm_percentiles[1], gpu_mem_gb=args.gpu_mem_gb, augment=args.augment,
                      val_frac=args.val_frac, patience=args.patience, aux_targets=args.aux_targets,
                      aux_weight=args.aux_weight, aux_out=args.aux_out)
    if args.out and Path(args.out).suffix != ".pt":
        raise InputError(f"--out should be a .pt file, got {args.out}")
    check_train_out(args.out, args)
    # First signal: finish the step, checkpoint and export; a second one kills as usual.
    with stop_on_signals(once=True) as stop:
        gen = iter_train(cfg, stop=stop.is_set)
        while True:
            try:
                event = next(gen)
            except StopIteration as done:
                summary = done.value
                break
            if event.message:
                print(f"[{event.stage}] {event.message}", flush=True)
    print(f"trained {summary['steps']} steps in {summary['seconds']:.0f}s (stopped by {summary['stopped_by']})",
          file=sys.stderr)
    return 0
