"""`microcomp benchmark`: the two-phase benchmark from the command line (the README's main job).

With no arguments it runs the ``tuned`` preset on the built-in real samples
(:func:`napari_microcomp.samples.benchmark_samples`), with phase 2 on the ISL phase image against
its DAPI ground truth when the label-free model's weights are installed, and writes ``results/``:
``results.csv``, ``results.json``, ``results.md`` and ``rd_*.png``. The summary tables are printed
at the end.
"""
import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from .._progress import drain
from ..errors import InputError, MicrocompError, WeightsNotFoundError
from ..io import READ_FORMATS, image_files
from ._args import CHANNEL_HELP, Ints, channel, command, names, read_input, read_inputs

MAIN_MODEL = "unet2d-isl-dapi"
MAIN_PHASE2_IMAGE = "isl_phase_z6"
# A label-free prediction of a 1024² image costs ~3 s on 2 CPU cores: the main job scores phase 2 at
# every other level (and the lossless rows, which are free) to stay within its 15-minute budget.
MAIN_PHASE2_QUALITIES = (2, 4, 6, 8)
# Learned rows cost 3–9 CPU-s per 1024² image, autoregressive ones ~25 (serial decode): the main job
# keeps 3 levels of each learned codec and 1 of each autoregressive one (measured, see the module doc).
MAIN_MAX_LEARNED_LEVELS = 3
MAIN_MAX_AR_LEVELS = 1


def register(sub) -> None:
    p = command(sub, "benchmark", cmd_benchmark,
                "benchmark codecs on images: tables, RD plots, BD-rates (no arguments: the main job)",
                "Compress every image with every codec configuration, measure stream and reconstruction (phase 1) "
                "and, with a label-free model and ground truth, the predicted fluorescence (phase 2). Without "
                "IMAGES: the built-in real samples.")
    p.add_argument("images", nargs="*", help=f"{READ_FORMATS}, or folders of them (a file in a folder that cannot "
                   "be read or coded is skipped, said, and the exit status is 1); default: built-in samples")
    p.add_argument("--preset", choices=("tuned", "paper"), default="tuned",
                   help="tuned: whole-image codecs, every level (default); paper: the study's 12 methods")
    p.add_argument("--codecs", nargs="+", metavar="CODEC",
                   help="codec names instead of the preset's (spaces or commas between them)")
    p.add_argument("--qualities", nargs="+", action=Ints, metavar="Q",
                   help="levels 1..8, e.g. 2 4 6 or 2,4,6 (default: all)")
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N", help="start a local dask cluster of N worker processes")
    g.add_argument("--scheduler", metavar="ADDRESS", help="use a running dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--ground-truth", nargs="+", metavar="FILE",
                   help="ground-truth fluorescence, one file per image, for phase 2")
    p.add_argument("--model", help=f"label-free model name or .pt file for phase 2 (main job: {MAIN_MODEL})")
    p.add_argument("--tta", action="store_true",
                   help="phase 2: average the 8 rotations/flips of each prediction (8x slower; time in predict_s)")
    p.add_argument("--no-phase2", action="store_true", help="phase 1 only")
    p.add_argument("--phase2-qualities", nargs="+", action=Ints, metavar="Q",
                   help="levels that get phase 2 (default: all; main job: 2 4 6 8)")
    p.add_argument("--no-learned", action="store_true", help="leave out learned codecs")
    p.add_argument("--no-autoregressive", action="store_true",
                   help="leave out the slow autoregressive learned codecs (mbt2018, cheng2020-*)")
    p.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (saves time)")
    p.add_argument("--anchor", default="jpeg2k", help="anchor method of the BD-rate table (default jpeg2k)")
    p.add_argument("--data-range", default="image", help="PSNR/SSIM peak: image, dtype, bits or a number")
    p.add_argument("--channel", type=channel, help=CHANNEL_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar, no tables")


def _data_range(text: str):
    try:
        value = float(text)
    except ValueError:
        if text not in ("image", "dtype", "bits"):
            raise InputError(f"--data-range must be image, dtype, bits or a number, got {text!r}") from None
        return text
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"--data-range must be a positive number, got {text!r}")
    return value


def _named(items) -> List[Tuple[str, np.ndarray]]:
    out, seen = [], set()
    for p, arr, meta in items:
        name = meta.get("label") or Path(p).name   # "cells.nd2 c1 DAPI" under --channel all
        while name in seen:  # same file name in two folders
            name = f"{name}_"
        seen.add(name)
        out.append((name, arr))
    return out


def _predictor(name: str, notes: List[str], tta: bool = False, named: bool = False):
    """The phase-2 predictor; a missing default model skips phase 2 with a note, a missing ``named`` one
    (the user's --model) is an error."""
    from ..benchmark import ModelPredictor

    pred = ModelPredictor(name, tta=tta)
    try:
        pred.check()
    except WeightsNotFoundError as exc:
        if named:
            raise
        notes.append(f"phase 2 skipped: {exc}")
        return None
    return pred


def resolve(args) -> Dict[str, Any]:
    """Turn the arguments into the run's inputs: images, configs, predictor, ground truth, notes."""
    from ..benchmark import get_preset
    from ..benchmark.engine import expand_codecs

    notes: List[str] = []
    skipped: List[str] = []
    predictor, ground_truth = None, None
    phase2_qualities = args.phase2_qualities
    for flag, levels in (("--qualities", args.qualities), ("--phase2-qualities", phase2_qualities)):
        bad = [q for q in levels or () if not 1 <= q <= 8]
        if bad:   # else every row would fail, one by one, after the images were read
            raise InputError(f"{flag} are levels 1..8, got {bad[0]}")
    if args.images:
        items, skipped = read_inputs(args.images, channel=args.channel)   # folders: their images
        if skipped and args.ground_truth:
            raise InputError(f"--ground-truth pairs files in order, so every image must be readable: {skipped[0]}")
        notes += skipped
        images = _named(items)
        if args.ground_truth:
            truth = image_files(args.ground_truth)
            if len(truth) != len(images):
                raise InputError(f"--ground-truth needs one file per image ({len(images)}), got {len(truth)}")
            ground_truth = {n: read_input(g)[0] for (n, _), g in zip(images, truth)}
        if args.model and not args.no_phase2:
            predictor = _predictor(args.model, notes, args.tta, named=True)
        elif ground_truth is not None and not args.no_phase2:
            raise InputError("--ground-truth needs --model (the label-free model that predicts it)")
    else:
        from .. import samples

        images = samples.benchmark_samples()
        if not args.no_phase2:
            predictor = _predictor(args.model or MAIN_MODEL, notes, args.tta, named=bool(args.model))
            if predictor is not None:
                ground_truth = {MAIN_PHASE2_IMAGE: samples.isl_dapi()}
                if phase2_qualities is None:
                    phase2_qualities = MAIN_PHASE2_QUALITIES
                    notes.append(f"phase 2 at levels {', '.join(map(str, phase2_qualities))} and lossless "
                                 "(--phase2-qualities to change)")
    ndim = max(a.ndim for _, a in images)
    if args.codecs:
        configs = expand_codecs(names(args.codecs), args.qualities)
    elif args.preset == "paper":
        plan = get_preset("paper", ndim=ndim, learned=not args.no_learned)
        configs, notes = plan.configs, plan.notes + notes
    else:
        plan = get_preset("tuned", levels=args.qualities, ndim=ndim, learned=not args.no_learned,
                          autoregressive=not args.no_autoregressive,
                          max_learned_levels=None if args.images else MAIN_MAX_LEARNED_LEVELS,
                          max_autoregressive_levels=None if args.images else MAIN_MAX_AR_LEVELS)
        configs, notes = plan.configs, plan.notes + notes
    return {"images": images, "configs": configs, "predictor": predictor, "ground_truth": ground_truth,
            "phase2_qualities": phase2_qualities, "notes": notes,
            "skipped": skipped}


def _meta(args, run: Dict[str, Any], seconds: float, n_rows: int) -> Dict[str, Any]:
    """Run metadata; CPU seconds of this process help read the wall time on a busy machine."""
    import napari_microcomp

    return {"arguments": {k: v for k, v in vars(args).items() if k != "func"},
            "preset": None if args.codecs else args.preset, "images": [n for n, _ in run["images"]],
            "rows": n_rows, "wall_seconds": round(seconds, 1),
            "process_cpu_seconds": round(time.process_time(), 1), "cpu_count": os.cpu_count(),
            "workers": args.workers or (args.scheduler and f"scheduler {args.scheduler}") or "local process",
            "phase2_model": getattr(run["predictor"], "model", None),
            "phase2_tta": getattr(run["predictor"], "tta", False), "napari_microcomp": napari_microcomp.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


def cmd_benchmark(args: argparse.Namespace) -> int:
    from ..benchmark import export_all, iter_benchmark, summary_markdown

    run = resolve(args)
    if not run["configs"]:
        raise MicrocompError("nothing to run: no codec configurations (see the notes above)")
    out = Path(args.out)
    rows: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    kwargs = dict(predictor=run["predictor"], ground_truth=run["ground_truth"],
                  data_range=_data_range(args.data_range), with_ms_ssim=not args.no_ms_ssim,
                  phase2_qualities=run["phase2_qualities"])
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; name a folder for the results")
    out.mkdir(parents=True, exist_ok=True)   # a folder that cannot be made fails now, not after the run
    if not args.quiet:
        for n in run["notes"]:
            print(f"note: {n}", file=sys.stderr)
        print(f"benchmark: {len(run['images'])} image(s) × {len(run['configs'])} configuration(s) -> {out}/",
              file=sys.stderr)

    def collect(gen):
        # Rows are collected from the events too, so an interrupted run still writes what it has.
        for event in gen:
            if event.stage == "row":
                rows.append(event.payload)
            yield event

    try:
        if args.workers or args.scheduler:
            from ..benchmark.distributed import open_client

            with open_client(workers=args.workers, scheduler=args.scheduler) as client:
                rows_done = drain(collect(iter_benchmark(run["images"], run["configs"], client=client, **kwargs)),
                                  desc="benchmark", show=not args.quiet)
        else:
            rows_done = drain(collect(iter_benchmark(run["images"], run["configs"], **kwargs)),
                              desc="benchmark", show=not args.quiet)
    except KeyboardInterrupt:
        if rows:
            export_all(rows, out, anchor=args.anchor, notes=run["notes"] + ["interrupted: partial results"],
                       meta=_meta(args, run, time.perf_counter() - t0, len(rows)))
            print(f"interrupted: {len(rows)} row(s) written to {out}/", file=sys.stderr)
        raise
    # collect() sees rows in completion order; the engine returns them in plan order
    rows = rows_done if rows_done is not None else rows
    seconds = time.perf_counter() - t0
    paths = export_all(rows, out, anchor=args.anchor, notes=run["notes"], meta=_meta(args, run, seconds, len(rows)))
    failed = [r for r in rows if r["status"] != "ok"]
    if not args.quiet:
        print(summary_markdown(rows, anchor=args.anchor))
        print(f"{len(rows)} rows in {seconds:.0f} s ({len(failed)} failed); wrote "
              + ", ".join(str(p) for k, p in paths.items() if k != "plots")
              + (", " + ", ".join(str(p) for p in paths["plots"]) if paths["plots"] else ""))
    if run["skipped"]:
        print(f"microcomp benchmark: {len(run['skipped'])} file(s) skipped ({run['skipped'][0]}); the notes list them",
              file=sys.stderr)
    if failed:
        first = failed[0]
        print(f"microcomp benchmark: {len(failed)} of {len(rows)} row(s) failed (first: "
              f"{first.get('label') or first.get('codec', '?')} on {first.get('image', '?')}: {str(first.get('error', ''))[:200]}); "
              f"the tables mark them", file=sys.stderr)
        return 1
    return 1 if run["skipped"] else 0


__all__ = ["register", "resolve", "cmd_benchmark"]
