"""What one flash or saturated frame in a stack costs the other slices, with and without per-slice ranges.

Real stacks from ``../shared/data`` (or files given), cropped; slice ``--slice`` is replaced by a saturated plane
(the type's maximum) or a flash (the same plane ``--flash`` times brighter, clipped). Every codec codes the clean
and the damaged stack at one quality, once as it does now (``slice_ranges``) and once with one stack-wide range.
Reported: bits per voxel and PSNR over the *other* slices against the clean stack's range.

    python benchmarks/bad_frame.py [--quality 4] [--out benchmarks/results/bad_frame.json] [FILES]
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
import _damage  # noqa: E402  (beside this script)
DEFAULT = ["paired_more/colicoords_ecoli_bf_fluo/ds1_brightfield.tif",
           "paired_more/colicoords_ecoli_bf_fluo/ds1_fluorescence.tif",
           "fluorescence/cancer_cell_migration_crop.tif"]
CODECS = ["jpeg2k", "jpegxl", "lerc", "mbt2018-mean-vbr", "mbt2018-mean-vbr3d"]


def damaged(stack: np.ndarray, z: int, how: str, flash: float) -> np.ndarray:
    bad = stack.copy()
    top = np.iinfo(stack.dtype).max
    bad[z] = top if how == "saturated" else np.clip(stack[z].astype(np.float64) * flash, 0, top)
    return bad


def main(argv=None) -> int:
    from napari_microcomp import slice_ranges
    from napari_microcomp.api import compress_array
    from napari_microcomp.io import read_image

    p = _damage.parser(__doc__, CODECS, quality=4)
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--slice", type=int, default=3)
    p.add_argument("--flash", type=float, default=12.0)
    args = p.parse_args(argv)
    files = _damage.input_files(args, DEFAULT)
    warnings.simplefilter("ignore")
    rows, split = [], slice_ranges.split
    for f in files:
        a, _ = read_image(f)
        clean = np.ascontiguousarray(a[: args.slices, : args.crop, : args.crop])
        others = [i for i in range(len(clean)) if i != args.slice]
        span = float(clean.max()) - float(clean.min())
        cases = [("clean", clean, True)] + [(how, damaged(clean, args.slice, how, args.flash), handled)
                                            for how in ("saturated", "flash") for handled in (False, True)]
        for codec in args.codecs:
            for label, img, handled in cases:
                slice_ranges.split = split if handled else slice_ranges.one_range
                try:
                    r = compress_array(img, codec, quality=args.quality, with_ms_ssim=False)
                finally:
                    slice_ranges.split = split
                err = r.reconstruction[others].astype(np.float64) - clean[others]
                psnr = 10 * np.log10(span ** 2 / max(np.mean(err ** 2), 1e-12))
                rows.append({"file": Path(f).name, "codec": codec, "stack": label, "per_slice": handled,
                             "bpv": round(r.metrics["bpp"], 4), "psnr_other_slices": round(float(psnr), 2)})
                print(f"{Path(f).name:34s} {codec:20s} {label:9s} {'on ' if handled else 'off'} "
                      f"bpv {r.metrics['bpp']:.4f}  PSNR(other slices) {psnr:6.2f} dB", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"quality": args.quality, "slice": args.slice, "flash": args.flash,
                                              "crop": args.crop, "slices": args.slices, "rows": rows},
                                             indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
