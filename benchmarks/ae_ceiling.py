"""The quality ceiling of a learned codec: its transforms with no quantisation at all, ``g_s(g_a(x))``.

No rate, however high, reconstructs better than this; a codec whose ceiling is below a quality target can
never reach it. Measured on the evaluation crops of ``rd_gate.py`` (same split, same crops), beside the
real stream at the codec's top level, so one can see whether the top level is limited by its rate (far
below the ceiling) or by its transforms (at the ceiling).

    python benchmarks/ae_ceiling.py --archs mbt2018-mean-vbr mbt2018 --out benchmarks/results/ae_ceiling.json
"""
import argparse
import json
from pathlib import Path

import numpy as np

from napari_microcomp import metrics
from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.training import gate

SSIM_MIN = 0.94   # issue 10's compression-ratio target is set at this SSIM


def ceiling(model, img: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    lo, hi = float(img.min()), float(img.max())
    h, w = img.shape
    x = torch.from_numpy(((img.astype(np.float64) - lo) / (hi - lo)).astype(np.float32))[None, None]
    x = F.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")   # as the codec pads its tiles
    with torch.no_grad():
        xh = model.g_s(model.g_a(x)).clamp(0, 1)[0, 0, :h, :w]
    r = xh.numpy().astype(np.float64) * (hi - lo) + lo
    return np.round(r).astype(img.dtype) if img.dtype.kind in "iu" else r.astype(img.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modality", choices=("transmitted", "fluorescence"), default="transmitted")
    ap.add_argument("--archs", nargs="+", default=["mbt2018-mean-vbr", "mbt2018"])
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    images = gate.eval_images(args.modality, args.crop)
    out = {"modality": args.modality, "crop": args.crop, "ssim_min": SSIM_MIN, "archs": {}}
    for arch in args.archs:
        codec = get_codec(arch, quality=8, weights=args.modality)
        lm = codec.load(args.modality)
        model = lm.model.eval()
        rows = {}
        for name, img in images:
            data = codec.encode(img)
            r, rec = ceiling(model, img), decode(data)
            rows[name] = {"ceiling_psnr": metrics.psnr(img, r), "ceiling_ssim": metrics.ssim(img, r),
                          "top_psnr": metrics.psnr(img, rec), "top_ssim": metrics.ssim(img, rec),
                          "top_bpp": 8 * len(data) / img.size}
            print(f"{arch:18s} {name[:32]:32s} " + " ".join(f"{k} {v:.3f}" for k, v in rows[name].items()),
                  flush=True)
        reach = sum(v["ceiling_ssim"] >= SSIM_MIN for v in rows.values())
        out["archs"][arch] = {"widths": lm.meta.get("widths"), "source": Path(lm.source).name, "images": rows,
                              "ceiling_reaches_ssim_min": reach}
        print(f"{arch}: the ceiling reaches SSIM {SSIM_MIN} on {reach} of {len(rows)} images")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
