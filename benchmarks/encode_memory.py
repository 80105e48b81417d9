"""Peak memory of coding and measuring one big plane (``api.compress_array``) against what the encoder's
working-memory check (``memory.check_working_memory``) expects.

Each (codec, dtype, size) runs in a FRESH process: the libraries, the codec and its weights are loaded and a
smooth, noisy N × N image is made first; the peak RSS above that is the job's working set (the reconstruction
included). Printed per pixel beside the check's estimate of the same thing (its ``need`` less the image itself);
the estimate should not be below the measurement. Session 47: the 16-bit mapping of the classical codecs held
two float64 copies of the image (16 B per uint8 pixel) before it went to strips.

    python benchmarks/encode_memory.py --sizes 2048 4096 --codecs jpeg2k jpegxl htj2k lerc mbt2018-mean-vbr
"""
import argparse
import json
import subprocess
import sys
import time


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) * 1024


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux: clear_refs), so that the temporaries which built the image
    do not hide the job's own peak; return the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _one(codec: str, dtype: str, n: int) -> dict:
    import numpy as np
    import pytorch_msssim  # noqa: F401  (imported before the baseline, as the metrics import them)
    import skimage.metrics  # noqa: F401
    import torch  # noqa: F401

    from napari_microcomp import memory
    from napari_microcomp.api import compress_array
    from napari_microcomp.codecs import get_codec

    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max * 0.8
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    a = np.clip(top * (0.5 + 0.3 * np.sin(xx / 37) * np.cos(yy / 53)) + rng.normal(0, top / 100, (n, n)), 0, top)
    a = a.astype(dtype)
    del yy, xx
    c = get_codec(codec, quality=4)
    compress_array(a[:64, :64], c)   # weights loaded, lazy imports done
    base = _reset_peak()
    t0 = time.perf_counter()
    r = compress_array(a, c)
    seconds = time.perf_counter() - t0
    extra = _status("VmHWM") - base
    px = n * n
    estimate = a.nbytes + c.plane_work_bytes * px + memory.FIXED_BYTES   # the check's need less the image
    return {"codec": codec, "dtype": dtype, "size": n, "peak_extra_mb": round(extra / 2**20, 1),
            "bytes_per_pixel": round(extra / px, 1), "estimate_bytes_per_pixel": round(estimate / px, 1),
            "seconds": round(seconds, 1), "psnr": round(r.metrics["psnr"], 2),
            "check_bytes_per_pixel": memory.BYTES_PER_PIXEL, "check_fixed_mb": memory.FIXED_BYTES >> 20}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    p.add_argument("--codecs", nargs="+", default=["jpeg2k", "jpegxl", "htj2k", "lerc", "mbt2018-mean-vbr"])
    p.add_argument("--dtypes", nargs="+", default=["uint8", "uint16"])
    p.add_argument("--json", help="write the results here")
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one[0], args.one[1], int(args.one[2]))))
        return 0
    rows, low = [], 0
    for codec in args.codecs:
        for dtype in args.dtypes:
            for n in args.sizes:
                out = subprocess.run([sys.executable, __file__, "--one", codec, dtype, str(n)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{codec} {dtype} {n}²: failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(r)
                low += r["estimate_bytes_per_pixel"] < r["bytes_per_pixel"]
                print(f"{codec:18s} {dtype:6s} {n:>6}²  peak +{r['peak_extra_mb']:8.1f} MB  "
                      f"{r['bytes_per_pixel']:5.1f} B/px (estimate {r['estimate_bytes_per_pixel']:5.1f})  "
                      f"{r['seconds']:6.1f} s  PSNR {r['psnr']}", flush=True)
    print(f"estimate below the measurement in {low} of {len(rows)} runs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
