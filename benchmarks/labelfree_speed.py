"""Label-free inference speed: a 1024² phase image (2D model) and a 13×1024² stack (z-stack model).

Uses the shipped weights when installed; otherwise a randomly initialised net of the same architecture
(fnet U-Net, depth 4, 32 base channels) — speed does not depend on the weights values, and the output
says which was used. Median of ``--repeats`` runs after one warm-up.

    PYTHONPATH=src python benchmarks/labelfree_speed.py [--threads 2] [--device cpu] [--tile 1024]
    PYTHONPATH=src python benchmarks/labelfree_speed.py --tiny        # 256² smoke test
"""
import argparse
import statistics
import sys
import time
from typing import List, Optional

import numpy as np


def _model(name: str, in_channels: int, device: str):
    from napari_microcomp.errors import WeightsNotFoundError
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.model import LabelFreeModel
    from napari_microcomp.models.unet import build_generator
    from napari_microcomp.labelfree.normalize import DEFAULT_SCHEME

    try:
        return load_model(name, device=device), "shipped weights"
    except WeightsNotFoundError:
        arch = {"ndim": 2, "in_channels": in_channels, "out_channels": 1, "depth": 4, "base": 32}
        meta = {"kind": "unet", "arch": arch,
                "input": {"layout": "zyx-channels" if in_channels > 1 else "yx", "n_slices": in_channels},
                "normalization": {"input": DEFAULT_SCHEME, "target": DEFAULT_SCHEME}}
        return LabelFreeModel(build_generator(arch), meta, device), "random weights (none installed)"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile", type=int, default=None, help="tile size (default: the model's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="256² inputs, 1 repeat")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from napari_microcomp.samples import isl_phase_stack  # real data, offline first

    stack = isl_phase_stack()
    if args.tiny:
        stack, args.repeats = stack[:, :256, :256], 1
    cases = [("unet2d-isl-dapi", 1, stack[6]), ("unet-zstack-isl-dapi", stack.shape[0], stack)]
    print(f"device {args.device}, {args.threads} torch threads, torch {torch.__version__}")
    print("| model | input | weights | precision | median s | min s | CPU s (process) |\n|---|---|---|---|---|---|---|")
    for name, ch, img in cases:
        model, which = _model(name, ch, args.device)
        for precision in ("fp32", "bf16"):
            kwargs = dict({"tile": args.tile} if args.tile else {}, precision=precision)
            model.predict(img, **kwargs)           # warm-up (allocations, oneDNN kernels)
            times, cpu = [], []
            for _ in range(args.repeats):
                t, c = time.perf_counter(), time.process_time()
                pred = model.predict(img, **kwargs)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            assert pred.shape == img.shape[-2:] and np.isfinite(pred).all()
            # CPU seconds beside wall seconds: on a shared machine wall time includes waiting for cores.
            print(f"| {name} | {tuple(img.shape)} {img.dtype} | {which} | {precision} | "
                  f"{statistics.median(times):.2f} | {min(times):.2f} | {statistics.median(cpu):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
