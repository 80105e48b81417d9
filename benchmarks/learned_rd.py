"""Rate–distortion of the learned 2D codecs on the held-out evaluation split vs JPEG 2000 and JPEG XL.

Data: ``datasets.codec2d_split("eval")`` (never used for training). Every image is coded whole by
every setting; rates are bits per pixel of the complete container (headers included); PSNR and SSIM
use the original image's range (``metrics``, data range "image"). A codec's curve is the mean bpp
and mean PSNR/SSIM over the images at each setting (CompressAI's evaluation convention). The
classical codecs are swept densely over their native parameter so their curves are fine enough.

Reported per learned architecture: BD-rate (PSNR and SSIM) against JPEG 2000, (a) on the points
between 0.05 and 0.5 bpp and (b) on all points, plus BD-PSNR; JPEG XL likewise for reference.
Target (issue 3): best learned model ≤ −15 % BD-rate vs JPEG 2000 between 0.05 and 0.5 bpp.

    python benchmarks/learned_rd.py                                 # shipped / $MICROCOMP_WEIGHTS weights
    python benchmarks/learned_rd.py --archs mbt2018-mean --max-images 2 --crop 256 --sparse   # quick
    python benchmarks/learned_rd.py --out results/learned_rd.json
"""
import argparse
import json
import math
import os
import time
from typing import Dict, List, Sequence

import numpy as np

from napari_microcomp import metrics
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.datasets import codec2d_split

try:
    from napari_microcomp.bdrate import bd_psnr, bd_rate
except ImportError:  # pragma: no cover - fallback when the shared module is absent
    bd_rate = bd_psnr = None

JPEG2K_LEVELS = (26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 53, 56, 60)
JPEGXL_DISTANCES = (25.0, 18.0, 14.0, 11.0, 9.0, 7.0, 5.5, 4.5, 3.5, 2.8, 2.2, 1.7, 1.3, 1.0, 0.7, 0.5)
WINDOW = (0.05, 0.5)


def _local_bd_rate(ra, qa, rt, qt) -> float:
    """BD-rate with cubic fits in log-rate (VCEG-M33), used only if napari_microcomp.bdrate is missing."""
    la, lt = np.log(ra), np.log(rt)
    pa, pt = np.polyfit(qa, la, 3), np.polyfit(qt, lt, 3)
    lo, hi = max(min(qa), min(qt)), min(max(qa), max(qt))
    if not hi > lo:
        return float("nan")
    ia, it = np.polyint(pa), np.polyint(pt)
    d = ((np.polyval(it, hi) - np.polyval(it, lo)) - (np.polyval(ia, hi) - np.polyval(ia, lo))) / (hi - lo)
    return float((np.exp(d) - 1) * 100)


def measure(img: np.ndarray, codec) -> Dict:
    t = time.perf_counter()
    data = codec.encode(img)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    rec = decode(data)
    t_dec = time.perf_counter() - t
    return {"bpp": metrics.bpp(img, len(data)), "psnr": metrics.psnr(img, rec), "ssim": metrics.ssim(img, rec),
            "encode_s": t_enc, "decode_s": t_dec}


def curve(images: Sequence, make_codec, settings: Sequence) -> List[Dict]:
    """Mean bpp/PSNR/SSIM over ``images`` for each setting (one RD point per setting)."""
    points = []
    for s in settings:
        codec = make_codec(s)
        rows = [measure(img, codec) for _, img in images]
        finite = [r for r in rows if math.isfinite(r["psnr"])]
        if len(finite) < len(rows):
            continue  # a lossless point has no place on a PSNR curve
        points.append({"setting": s, "config": codec.get_config(),
                       **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}})
        print(f"  {codec.label:34s} bpp {points[-1]['bpp']:.4f}  PSNR {points[-1]['psnr']:.2f}  "
              f"SSIM {points[-1]['ssim']:.4f}", flush=True)
    return points


def bd(anchor: List[Dict], test: List[Dict], key: str, window=None) -> float:
    def sel(pts):
        return [p for p in pts if window is None or window[0] <= p["bpp"] <= window[1]]

    a, t = sel(anchor), sel(test)
    if len(a) < 2 or len(t) < 2:
        return float("nan")
    args = ([p["bpp"] for p in a], [p[key] for p in a], [p["bpp"] for p in t], [p[key] for p in t])
    return bd_rate(*args) if bd_rate is not None else _local_bd_rate(*map(np.asarray, args))


def main(argv=None) -> int:
    from napari_microcomp.models import zoo

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="*", default=None, help="learned architectures (default: all nine)")
    p.add_argument("--weights-dir", default=None, help="extra weight folder (sets $MICROCOMP_WEIGHTS)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--crop", type=int, default=None, help="centre-crop every image to at most CROP×CROP")
    p.add_argument("--sparse", action="store_true", help="every 3rd classical setting (quick runs)")
    p.add_argument("--out", default=None, help="write all points and BD numbers as JSON")
    args = p.parse_args(argv)
    if args.weights_dir:
        os.environ[zoo.ENV_WEIGHTS] = args.weights_dir

    images = codec2d_split("eval")[: args.max_images]
    if args.crop:
        c = args.crop
        images = [(n, np.ascontiguousarray(a[max(0, (a.shape[0] - c) // 2):][:c, max(0, (a.shape[1] - c) // 2):][:, :c]))
                  for n, a in images]
    print(f"{len(images)} evaluation images: " + ", ".join(f"{n} {a.shape} {a.dtype}" for n, a in images))
    step = 3 if args.sparse else 1
    result: Dict = {"images": [[n, list(a.shape), a.dtype.name] for n, a in images], "curves": {}, "bd": {}}
    print("jpeg2k")
    result["curves"]["jpeg2k"] = curve(images, lambda s: get_codec("jpeg2k", level=s), JPEG2K_LEVELS[::step])
    print("jpegxl")
    result["curves"]["jpegxl"] = curve(images, lambda s: get_codec("jpegxl", distance=s), JPEGXL_DISTANCES[::step])
    for arch in args.archs or zoo.list_archs(ndim=2):
        qualities = sorted(zoo.available_qualities(arch))
        if not qualities:
            print(f"{arch}: no weights, skipped")
            continue
        print(f"{arch} (qualities {qualities})")
        result["curves"][arch] = curve(images, lambda q, a=arch: get_codec(a, quality=q), qualities)
    anchor = result["curves"]["jpeg2k"]
    print(f"\nBD vs JPEG 2000 (negative BD-rate = fewer bits); window {WINDOW[0]}-{WINDOW[1]} bpp / all points")
    print(f"{'codec':28s} {'BD-rate PSNR':>22s} {'BD-rate SSIM':>22s} {'BD-PSNR dB':>11s}")
    for name, pts in result["curves"].items():
        if name == "jpeg2k" or len(pts) < 2:
            continue
        row = {"bd_rate_psnr_window": bd(anchor, pts, "psnr", WINDOW), "bd_rate_psnr_all": bd(anchor, pts, "psnr"),
               "bd_rate_ssim_window": bd(anchor, pts, "ssim", WINDOW), "bd_rate_ssim_all": bd(anchor, pts, "ssim")}
        a, t = anchor, pts
        row["bd_psnr_all"] = (bd_psnr([q["bpp"] for q in a], [q["psnr"] for q in a], [q["bpp"] for q in t],
                                      [q["psnr"] for q in t]) if bd_psnr is not None else float("nan"))
        result["bd"][name] = row
        print(f"{name:28s} {row['bd_rate_psnr_window']:+9.1f}% / {row['bd_rate_psnr_all']:+8.1f}% "
              f"{row['bd_rate_ssim_window']:+9.1f}% / {row['bd_rate_ssim_all']:+8.1f}% {row['bd_psnr_all']:+10.2f}")
    if args.out:
        from pathlib import Path

        from napari_microcomp.io import atomic_write_bytes
        atomic_write_bytes(Path(args.out), json.dumps(result, indent=1, default=str).encode())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
