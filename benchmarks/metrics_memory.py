"""Peak memory and time of the reconstruction metrics (``metrics.all_metrics``) on one big plane.

Each size runs in a FRESH process (its own peak): a uint16 N × N image and a perturbed copy, then MSE, PSNR,
SSIM, MS-SSIM and Pearson r. Reports the peak RSS above what the two images and the imported libraries hold,
per pixel, and the seconds. Before the strip path (2026-12-05) SSIM alone took ~121 bytes/pixel and MS-SSIM ~141
(4096²), so a 12000² image needed ~19 GB to be scored.

    python benchmarks/metrics_memory.py --sizes 2048 4096 8192
"""
import argparse
import json
import resource
import subprocess
import sys
import time


def _one(n: int) -> dict:
    import numpy as np
    import pytorch_msssim  # noqa: F401  (imported before the baseline, like the metrics' own imports)
    import skimage.metrics  # noqa: F401
    import torch  # noqa: F401

    from napari_microcomp import metrics

    rng = np.random.default_rng(0)
    x = rng.integers(0, 4000, (n, n), dtype=np.uint16)
    y = x.copy()
    y[::3] += 7
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    m = metrics.all_metrics(x, y, 1000)
    seconds = time.perf_counter() - t0
    extra_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"size": n, "pixels": n * n, "peak_extra_mb": round(extra_kb / 1024, 1),
            "bytes_per_pixel": round(extra_kb * 1024 / (n * n), 1), "seconds": round(seconds, 1),
            "ssim": m["ssim"], "ms_ssim": m["ms_ssim"], "strip_px": metrics.STRIP_PX}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one)))
        return 0
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True)
        if out.returncode:
            print(f"{n}²: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>6}²  {r['pixels'] / 1e6:7.1f} Mpx  peak +{r['peak_extra_mb']:8.1f} MB  "
              f"{r['bytes_per_pixel']:6.1f} B/px  {r['seconds']:6.1f} s  (SSIM {r['ssim']:.6f}, "
              f"MS-SSIM {r['ms_ssim']:.6f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
