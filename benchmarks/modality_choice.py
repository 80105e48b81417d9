"""Does the automatic weight choice (``modality.detect_modality``) cost anything where it disagrees with the label?

For every 2D image of both modalities' splits whose detected modality differs from its folder's label (and,
with ``--all``, every image), code a centre crop with both weight sets of ``mbt2018-mean-vbr`` at q1/q3/q5/q7
and report the BD-rate of the labelled set against the detected one (positive: the detected set codes it in
fewer bits at equal PSNR, i.e. the "miss" picked the better weights).

    python benchmarks/modality_choice.py --out benchmarks/results/modality_choice.json
"""
import argparse
import json
from pathlib import Path

from napari_microcomp.api import compress_array
from napari_microcomp.bdrate import bd_rate
from napari_microcomp.datasets import codec2d_modality_split
from napari_microcomp.modality import MODALITIES, detect_modality, median_position
from napari_microcomp.training.gate import centre_crop

QUALITIES = (1, 3, 5, 7)


def curve(img, weights, codec):
    pts = [compress_array(img, codec, quality=q, weights=weights, with_ms_ssim=False).metrics for q in QUALITIES]
    return [p["bpp"] for p in pts], [p["psnr"] for p in pts]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="mbt2018-mean-vbr")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--all", action="store_true", help="every image, not only those the rule labels otherwise")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = []
    for label in MODALITIES:
        for split in ("train", "eval"):
            for name, a in codec2d_modality_split(label, split):
                detected = detect_modality(a)
                if detected == label and not args.all:
                    continue
                img = centre_crop(a, args.crop)
                c = {w: curve(img, w, args.codec) for w in MODALITIES}
                other = next(m for m in MODALITIES if m != detected)
                row = {"image": name, "split": split, "label": label, "detected": detected,
                       "median_position": round(median_position(a), 3), "curves": c,
                       "bd_rate_other_vs_detected_pct": bd_rate(*c[detected], *c[other])}
                rows.append(row)
                print(f"{split:5s} {name:24s} label {label:12s} detected {detected:12s} "
                      f"BD-rate of {other} vs {detected}: {row['bd_rate_other_vs_detected_pct']:+.1f} %", flush=True)
    misses = [r for r in rows if r["label"] != r["detected"]]
    better = [r for r in misses if r["bd_rate_other_vs_detected_pct"] > 0]
    print(f"{len(misses)} images labelled otherwise; the detected weights code {len(better)} of them in fewer bits")
    if args.out:
        args.out.write_text(json.dumps({"codec": args.codec, "crop": args.crop, "qualities": QUALITIES,
                                        "rows": rows}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
