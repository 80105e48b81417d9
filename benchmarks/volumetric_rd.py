"""Rate–distortion on held-out z-stacks: the learned 3D codec vs slice-wise JPEG XL and JPEG 2000.

Held-out data: ``datasets.stacks3d_split("eval")``: hiPSC nuclei (fluorescence, 60×256×256 uint16) and the
ISL phase stack's evaluation strip (transmitted light, 13×1024×256); never trained on.
Rates are bits per voxel of the WHOLE container (headers included); PSNR/SSIM use the original
volume's range (``metrics``: data range "image", 3D SSIM window). Classical codecs are swept densely
over their native parameter (JPEG XL ``distance``, JPEG 2000 target-PSNR ``level``) so their curves
are fine enough to read at the 3D codec's rates. Reported: every point, the classical PSNR at the
3D codec's bits per voxel (log-rate PCHIP interpolation), the gain there, and BD-PSNR.
Target (issue 4): ≥ +1 dB PSNR over slice-wise JPEG XL at equal bits per voxel.

    python benchmarks/volumetric_rd.py                        # weights from the zoo's folders
    python benchmarks/volumetric_rd.py --weights-dir DIR --crop 16 128 128 --sparse   # tiny, quick
    python benchmarks/volumetric_rd.py --out results/volumetric_rd.json
"""
import argparse
import json
import math
from pathlib import Path
from typing import Dict, List

import numpy as np

from napari_microcomp.bdrate import bd_psnr
from napari_microcomp.benchmark.rows import run_row
from napari_microcomp.codecs import get_codec

JPEGXL_DISTANCES = (25.0, 18.0, 14.0, 11.0, 9.0, 7.0, 5.5, 4.5, 3.5, 2.8, 2.2, 1.7, 1.3, 1.0, 0.7, 0.5, 0.3)
JPEG2K_LEVELS = (30, 33, 36, 38, 40, 42, 44, 46, 48, 50, 52, 55, 58, 62, 66, 70)


def measure(vol: np.ndarray, codec) -> Dict:
    """One benchmark row (the engine's ``run_row``), in this script's units (bits per voxel)."""
    r = run_row("volume", vol, codec.get_config(), with_ms_ssim=False)
    if r["status"] != "ok":
        raise RuntimeError(f"{codec.label}: {r['error']}")
    return {"codec": r["codec"], "config": r["config"], "bytes": r["compressed_bytes"], "bpv": r["bpp"],
            "psnr": r["psnr"], "ssim": r["ssim"], "pearson_r": r["pearson_r"],
            "encode_s": round(r["encode_s"], 3), "decode_s": round(r["decode_s"], 3)}


def psnr_at(rows: List[Dict], bpv: float) -> float:
    """A codec's PSNR at ``bpv`` by PCHIP in log-rate along its (monotone-filtered) curve; NaN outside."""
    from scipy.interpolate import PchipInterpolator

    pts = sorted((r["bpv"], r["psnr"]) for r in rows if math.isfinite(r["psnr"]))
    x, y = [], []
    for b, p in pts:  # keep the upper envelope: a point that costs more for less is not an operating point
        if x and math.isclose(b, x[-1]):
            y[-1] = max(y[-1], p)
        elif not y or p > y[-1]:
            x.append(b)
            y.append(p)
    if len(x) < 2 or not (x[0] <= bpv <= x[-1]):
        return float("nan")
    return float(PchipInterpolator(np.log(x), y)(math.log(bpv)))


def record(arch: str, name: str, vol: np.ndarray, ours: List[Dict], summary: Dict, job: str) -> None:
    """Write the gate record into the weight file that coded ``vol`` (the one its modality picks)."""
    from napari_microcomp.modality import detect_modality
    from napari_microcomp.training.gate import monotone, volume_gate_meta
    from napari_microcomp.weights.export import with_meta
    from napari_microcomp.weights.load import clear_cache
    from napari_microcomp.weights.locate import find_weights

    modality = detect_modality(vol)
    path = find_weights(arch, 1, modality)
    curve = [{"bpp": r["bpv"], "psnr": r["psnr"]} for r in sorted(ours, key=lambda r: r["config"]["quality"])]
    if not monotone(curve):
        print(f"  not recorded: the curve of {path} is not monotone")
        return
    meta = volume_gate_meta(path, name, curve, summary)
    with_meta(path, path, {"campaign_job": f"{job}-{modality}", "gate": meta})
    clear_cache()
    print(f"  recorded the gate in {path} (check points {meta['check_points']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="factorized3d", help="3D codec (registered codec id)")
    ap.add_argument("--weights-dir", help="folder with {arch}-q{Q}.pt files (default: the zoo's folders)")
    ap.add_argument("--qualities", type=int, nargs="+", default=list(range(1, 9)),
                    help="3D codec qualities to try (missing weights are skipped)")
    ap.add_argument("--crop", type=int, nargs=3, metavar=("Z", "Y", "X"), help="use a centred crop (quick runs)")
    ap.add_argument("--sparse", action="store_true", help="every 3rd classical setting only (quick runs)")
    ap.add_argument("--slicewise", nargs="*", default=[], metavar="ARCH",
                    help="also code slice by slice with these 2D learned codecs (qualities as --qualities), "
                         "e.g. mbt2018-mean-vbr: what the 3D transforms add over their 2D model")
    ap.add_argument("--stacks", nargs="+", default=None, help="only these evaluation stacks (by name)")
    ap.add_argument("--record", metavar="JOB",
                    help="store each stack's result as the gate record of the 3D weight file that coded it "
                         "(meta campaign_job = JOB-MODALITY, gate = curve + check points; training.gate.recheck)")
    ap.add_argument("--out", help="write all rows and the summary as JSON here")
    args = ap.parse_args(argv)
    if args.weights_dir:
        import os
        os.environ["MICROCOMP_WEIGHTS"] = str(Path(args.weights_dir).resolve())

    from napari_microcomp.datasets import stacks3d_split
    from napari_microcomp.errors import WeightsNotFoundError

    report = {"stacks": []}
    for name, vol in stacks3d_split("eval"):
        if args.stacks and name not in args.stacks:
            continue
        if args.crop:
            vol = np.ascontiguousarray(vol[tuple(slice(max(0, (s - c) // 2), max(0, (s - c) // 2) + c)
                                                 for s, c in zip(vol.shape, args.crop))])
        print(f"\n== {name}: {vol.dtype}{list(vol.shape)}, range {vol.min()}..{vol.max()}")
        step = 3 if args.sparse else 1
        curves: Dict[str, List[Dict]] = {"jpegxl": [], "jpeg2k": []}
        for d in JPEGXL_DISTANCES[::step]:
            curves["jpegxl"].append(measure(vol, get_codec("jpegxl", distance=d)))
        for lv in JPEG2K_LEVELS[::step]:
            curves["jpeg2k"].append(measure(vol, get_codec("jpeg2k", level=lv)))
        ours: List[Dict] = []
        for q in args.qualities:
            try:
                ours.append(measure(vol, get_codec(args.arch, quality=q)))
            except WeightsNotFoundError:
                continue
        for arch2d in args.slicewise:
            curves[f"{arch2d} (2D)"] = [measure(vol, get_codec(arch2d, quality=q)) for q in args.qualities]
        rows = [dict(r, series=k) for k, v in curves.items() for r in v] + [dict(r, series=args.arch) for r in ours]
        print(f"{'series':22} {'setting':>14} {'bpv':>8} {'PSNR':>7} {'SSIM':>7} {'r':>7} {'enc s':>6} {'dec s':>6}")
        for r in sorted(rows, key=lambda r: (r["series"], r["bpv"])):
            cfg = r["config"]
            setting = (f"q{cfg['quality']}" if cfg.get("quality") else
                       ",".join(f"{k}={v}" for k, v in cfg.items() if k not in ("id", "quality", "lossless")))
            print(f"{r['series']:22} {setting:>14} {r['bpv']:8.4f} {r['psnr']:7.2f} {r.get('ssim', float('nan')):7.4f} "
                  f"{r['pearson_r']:7.4f} {r['encode_s']:6.2f} {r['decode_s']:6.2f}")
        summary = {"name": name, "shape": list(vol.shape), "points": len(ours)}
        if ours:
            print(f"\n{args.arch} vs slice-wise classical at equal bits per voxel:")
            for r in ours:
                gains = {k: r["psnr"] - psnr_at(v, r["bpv"]) for k, v in curves.items()}
                r["gain_db"] = gains
                print(f"  q{r['config']['quality']}: {r['bpv']:.4f} bpv  PSNR {r['psnr']:.2f}  "
                      + "  ".join(f"vs {k} {g:+.2f} dB" for k, g in gains.items()))
            for k, v in curves.items():
                bd = bd_psnr([r["bpv"] for r in v], [r["psnr"] for r in v],
                             [r["bpv"] for r in ours], [r["psnr"] for r in ours])
                summary[f"bd_psnr_vs_{k}"] = bd
                print(f"  BD-PSNR vs {k}: {bd:+.2f} dB (over the common rate range)")
            g = [r["gain_db"]["jpegxl"] for r in ours if math.isfinite(r["gain_db"]["jpegxl"])]
            summary["min_gain_vs_jpegxl"] = min(g) if g else float("nan")
            summary["max_gain_vs_jpegxl"] = max(g) if g else float("nan")
            summary["target_met"] = bool(g) and max(g) >= 1.0
            print(f"  target ≥ +1 dB vs JPEG XL at equal bpv: "
                  f"{'MET' if summary['target_met'] else 'NOT met'} (gains {min(g) if g else float('nan'):+.2f} .. "
                  f"{max(g) if g else float('nan'):+.2f} dB)")
        else:
            print(f"\n(no {args.arch} weights found: only the classical curves were measured)")
        if args.record and ours:
            record(args.arch, name, vol, ours, summary, args.record)
        report["stacks"].append({"summary": summary, "rows": rows})
    if args.out:
        from napari_microcomp.io_write import atomic_write_bytes
        atomic_write_bytes(args.out, json.dumps(report, indent=1, default=float).encode())
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
