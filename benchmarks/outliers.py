"""What a few hot pixels cost each codec, with and without coding them beside the image (``outliers.py``).

Real images from ``../shared/data`` (or files given) get N pixels set to the type's maximum (a hot pixel or a
burnt-in marker); every codec codes the clean and the damaged image at one quality, once with outlier
handling and once with it switched off. Reported: bpp and PSNR over the *other* pixels against the clean
image's range (what the biology sees; the full-range PSNR is inflated by the hot pixels' span).

    python benchmarks/outliers.py [--hot 5] [--quality 3] [--out benchmarks/results/outliers.json] [FILES]
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
import _damage  # noqa: E402  (beside this script)
DEFAULT = ["fluorescence/BBBC022_IXMtest_A02_s9.tif", "transmitted_light/isl_dic.png",
           "paired_more/colicoords_ecoli_bf_fluo/ds1_fluorescence.tif"]
CODECS = ["jpeg2k", "jpegxl", "lerc", "mbt2018-mean-vbr"]


def _crop(a: np.ndarray, size: int = 512) -> np.ndarray:
    return a[: size, : size]


def main(argv=None) -> int:
    from napari_microcomp import outliers
    from napari_microcomp.api import compress_array
    from napari_microcomp.io import read_image

    p = _damage.parser(__doc__, CODECS, quality=3)
    p.add_argument("--hot", type=int, default=5)
    args = p.parse_args(argv)
    files = _damage.input_files(args, DEFAULT)
    warnings.simplefilter("ignore")
    rows, split = [], outliers.split
    for f in files:
        a, _ = read_image(f)
        clean = _crop(a if a.ndim == 2 else a[0])
        hot = clean.copy()
        idx = np.sort(np.random.default_rng(0).choice(clean.size, args.hot, replace=False))
        hot.reshape(-1)[idx] = np.iinfo(clean.dtype).max if clean.dtype.kind in "iu" else clean.max() * 16
        keep = np.ones(clean.size, bool)
        keep[idx] = False
        span = float(clean.max()) - float(clean.min())
        for codec in args.codecs:
            for label, img, handled in (("clean", clean, True), ("hot", hot, False), ("hot", hot, True)):
                outliers.split = split if handled else (lambda x: (x, None))
                try:
                    r = compress_array(img, codec, quality=args.quality, with_ms_ssim=False)
                finally:
                    outliers.split = split
                err = r.reconstruction.reshape(-1)[keep].astype(np.float64) - clean.reshape(-1)[keep]
                psnr = 10 * np.log10(span ** 2 / max(np.mean(err ** 2), 1e-12))
                rows.append({"file": Path(f).name, "codec": codec, "image": label, "handled": handled,
                             "bpp": round(r.metrics["bpp"], 4), "psnr_other_pixels": round(float(psnr), 2)})
                print(f"{Path(f).name:34s} {codec:18s} {label:5s} {'on ' if handled else 'off'} "
                      f"bpp {r.metrics['bpp']:.4f}  PSNR(other pixels) {psnr:6.2f} dB", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"hot": args.hot, "quality": args.quality, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
