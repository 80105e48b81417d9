"""2D label-free models across focus: Pearson r on the ISL evaluation strip from each of its 13 phase slices.

A user's single bright-field/phase image is rarely the plane a model was trained on; this says how a 2D model
holds up away from it (slice z6 is the usual evaluation plane).

    python benchmarks/labelfree_focus.py [--models unet2d-isl-dapi pix2pix-isl-dapi] [--out results/focus.json]
"""
import argparse
import json

import numpy as np

from napari_microcomp.datasets import labelfree_split
from napari_microcomp.labelfree import compare, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["unet2d-isl-dapi", "pix2pix-isl-dapi"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    phase, dapi = labelfree_split("eval", zstack=True)
    rows = {}
    for name in args.models:
        model = load_model(name)
        rs = [float(compare(model, plane, dapi)["pearson_orig"]) for plane in phase]
        rows[name] = {"r_per_slice": rs, "z6": rs[6], "mean": float(np.mean(rs)), "worst": float(np.min(rs))}
        print(f"{name:32s} z6 {rs[6]:.3f}  mean {np.mean(rs):.3f}  worst {np.min(rs):.3f} | "
              + " ".join(f"{v:.2f}" for v in rs), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
