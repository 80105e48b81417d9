"""Label-free models on other microscopes (issue 15): every paired set of the shared data, per dataset.

The shipped models were trained on the ISL phase-contrast → DAPI strip; here they predict the nuclear or
fluorescence channel of the paired sets in ``paired_more/`` and of the Arcadia bright-field → DAPI ND2, none of
which they saw. Reported per dataset: Pearson r, SSIM and PSNR against the target normalised like the
model's training target (``labelfree.compare``), with and without test-time augmentation. Masked pixels (the
zeroed rectangle of the mAIcrobe DNA image) are left out of r. Numbers, not targets: they show how far a
model trained on one microscope transfers.

    python benchmarks/labelfree_cross.py [--models unet2d-isl-dapi] [--tta] [--out benchmarks/results/labelfree_cross]
"""
import argparse
import json
from pathlib import Path

import numpy as np

from napari_microcomp import metrics
from napari_microcomp.io import read_image
from napari_microcomp.labelfree import compare, load_model
from napari_microcomp.samples import shared_data_dir

# (dataset, input file, input plane or None, target file, target plane or None, what the target is)
PAIRS = [
    ("sephace bright-field -> DAPI (mammalian, Nikon 90i)", "paired_more/sephace_bf_dapi/set1_bf_zstack_m10_0_p10um.tif",
     1, "paired_more/sephace_bf_dapi/set1_dapi.tif", None, "nuclear"),
    ("mAIcrobe phase -> DNA dye (S. aureus)", "paired_more/maicrobe_saureus_phase_dna/phase.tif", None,
     "paired_more/maicrobe_saureus_phase_dna/dna.tif", None, "nuclear"),
    ("ColiCoords bright-field -> fluorescence (E. coli, ds1 frame 0)", "paired_more/colicoords_ecoli_bf_fluo/ds1_brightfield.tif",
     0, "paired_more/colicoords_ecoli_bf_fluo/ds1_fluorescence.tif", 0, "not nuclear"),
    ("rcell2 bright-field -> YFP (yeast, pos12)", "paired_more/rcell2_yeast_bf_yfp/pos12_BF.tif", None,
     "paired_more/rcell2_yeast_bf_yfp/pos12_YFP.tif", None, "partly nuclear"),
]


def _plane(a: np.ndarray, z):
    a = np.asarray(a)
    return a[z] if z is not None and a.ndim == 3 else a


def _rows(model_name: str, tta: bool):
    root = shared_data_dir()
    model = load_model(model_name)
    out = []
    for name, fin, zin, ftg, ztg, kind in PAIRS:
        x = _plane(read_image(root / fin)[0], zin)
        y = _plane(read_image(root / ftg)[0], ztg)
        row = compare(model, x, y, return_arrays=True, tta=tta)
        a = row.pop("arrays")
        mask = np.ones(y.shape, bool)
        if "maicrobe" in fin:
            mask[478:768, 322:652] = False   # the zeroed rectangle of dna.tif (data README)
        r = metrics.pearson(a["original"][mask], a["target"][mask])
        out.append({"model": model_name + (" +tta" if tta else ""), "dataset": name, "target": kind,
                    "shape": list(x.shape), "pearson_r": r, "ssim": row["ssim_orig"], "psnr": row["psnr_orig"]})
        print(f"{out[-1]['model']:22} {name:62} r {r:+.3f}  SSIM {row['ssim_orig']:.3f}  PSNR {row['psnr_orig']:.1f}",
              flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["unet2d-isl-dapi", "pix2pix-isl-dapi"])
    ap.add_argument("--tta", action="store_true", help="also with test-time augmentation (8x slower)")
    ap.add_argument("--out", default="benchmarks/results/labelfree_cross")
    args = ap.parse_args(argv)
    rows = [r for m in args.models for tta in ((False, True) if args.tta else (False,)) for r in _rows(m, tta)]
    p = Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| model | dataset | target | Pearson r | SSIM | PSNR dB |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['dataset']} | {r['target']} | {r['pearson_r']:+.3f} | {r['ssim']:.3f} | "
              f"{r['psnr']:.1f} |" for r in rows]
    p.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {p.with_suffix('.json')} and {p.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
