"""Wall time of the full ``tuned`` benchmark of one real 1024² image, phase 1 + 2, on this machine.

Runs every tuned codec configuration (whole-image classical codecs, lossless baselines, every
learned codec level with weights) on the ISL phase-contrast slice z6 (1024², uint16), with phase 2
against the matching DAPI image when the label-free model is installed. Reports the wall time
without the autoregressive learned codecs (target ≤ 120 s on 2 cores) and with them.

    python benchmarks/tuned_1024.py                       # the full measurement, one process
    python benchmarks/tuned_1024.py --workers 2           # the same on a local dask cluster
    python benchmarks/tuned_1024.py --size 128 --levels 2 6   # a tiny smoke setting (seconds)

Also prints the process CPU seconds and the load average: on a shared machine the wall time
depends on what else runs.
"""
import argparse
import contextlib
import json
import os
import time

import numpy as np

from napari_microcomp._progress import drain
from napari_microcomp.benchmark import ModelPredictor, get_preset, iter_benchmark
from napari_microcomp.benchmark.presets import is_autoregressive
from napari_microcomp.errors import MicrocompError


def _part(configs, image, gt, predictor, client, args):
    t0, c0 = time.perf_counter(), time.process_time()
    rows = drain(iter_benchmark({"isl_phase_z6": image}, configs, predictor=predictor,
                                ground_truth={"isl_phase_z6": gt} if predictor else None,
                                with_ms_ssim=not args.no_ms_ssim, client=client), desc="tuned 1024")
    out = {"rows": len(rows), "seconds": round(time.perf_counter() - t0, 1),
           "process_cpu_seconds": round(time.process_time() - c0, 1),
           "failed": sum(r["status"] != "ok" for r in rows), "codec_seconds_by_family": {}}
    for r in rows:
        if r["status"] == "ok":
            fam = out["codec_seconds_by_family"].setdefault(r["family"], [0, 0.0])
            fam[0] += 1
            fam[1] = round(fam[1] + r["encode_s"] + r["decode_s"], 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="centre crop size (default 1024 = whole image)")
    ap.add_argument("--levels", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--model", default="unet2d-isl-dapi", help="label-free model for phase 2")
    ap.add_argument("--no-ms-ssim", action="store_true")
    ap.add_argument("--workers", type=int, help="run the rows on a local dask cluster of N processes")
    ap.add_argument("--json", help="also write the timings here")
    args = ap.parse_args(argv)

    from napari_microcomp import samples
    phase = samples.isl_phase_stack()[6]
    dapi = samples.isl_dapi()
    c0 = (phase.shape[0] - args.size) // 2
    crop = (slice(c0, c0 + args.size), slice(c0, c0 + args.size))
    image, gt = np.ascontiguousarray(phase[crop]), np.ascontiguousarray(dapi[crop])

    predictor = ModelPredictor(args.model)
    try:
        predictor.check()
    except MicrocompError as exc:
        print(f"phase 2 skipped: {exc}")
        predictor = None
    plan = get_preset("tuned", levels=args.levels)
    for n in plan.notes:
        print("note:", n)
    fast = [c for c in plan.configs if not is_autoregressive(c["id"])]
    slow = [c for c in plan.configs if is_autoregressive(c["id"])]
    report = {"image": f"isl_phase_z6 {image.shape}", "levels": args.levels, "cpu_count": os.cpu_count(),
              "phase2": predictor is not None, "workers": args.workers or "one process",
              "load_average_at_start": [round(v, 1) for v in os.getloadavg()]}
    if args.workers:
        from napari_microcomp.benchmark.distributed import open_client, preload
        cm = open_client(workers=args.workers)
    else:
        cm = contextlib.nullcontext()
    with cm as client:
        if client is not None:
            client.run(preload)
        for part, configs in (("without_autoregressive", fast), ("autoregressive_only", slow)):
            report[part] = _part(configs, image, gt, predictor, client, args) if configs else {"rows": 0, "seconds": 0.0}
    no_ar, ar = report["without_autoregressive"], report["autoregressive_only"]
    report["with_autoregressive_seconds"] = round(no_ar["seconds"] + ar["seconds"], 1)
    print(f"| setting | rows | wall s |\n|---|---:|---:|\n"
          f"| without autoregressive | {no_ar['rows']} | {no_ar['seconds']:.1f} |\n"
          f"| with autoregressive | {no_ar['rows'] + ar['rows']} | {report['with_autoregressive_seconds']:.1f} |")
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
