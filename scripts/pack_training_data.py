"""Pack the documented TRAINING splits (napari_microcomp.datasets) into compressed TIFFs.

Usage: python scripts/pack_training_data.py OUT_DIR

OUT_DIR/isl/phase_stack_train.tif   13×1024×768 ISL phase z-stack, columns x < 768
OUT_DIR/isl/phase_z6_train.tif      its middle slice (the 2D label-free input)
OUT_DIR/isl/slices/phase_z{0..12}_train.tif   every slice on its own (the 2D model's training inputs since session 39)
OUT_DIR/isl/dapi_train.tif          DAPI target, x < 768
OUT_DIR/isl/map2_train.tif, nfh_train.tif   the other two stains of the same field, x < 768
OUT_DIR/codec2d/*.tif               other 2D training planes (codec2d_split("train") minus ISL)
OUT_DIR/codec3d/*.tif               other training stacks (stacks3d_split("train") minus ISL)

Evaluation data is never written here. The train commands read these files (`--data OUT_DIR/...`).
"""
import sys
from pathlib import Path

import numpy as np
import tifffile

from napari_microcomp import datasets


def _write(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, a, compression="zlib", predictor=a.dtype.kind in "ui")


def main(out: str) -> None:
    root = Path(out)
    phase, dapi = datasets.labelfree_split("train", zstack=True)
    _write(root / "isl" / "phase_stack_train.tif", phase)
    _write(root / "isl" / "phase_z6_train.tif", phase[6])
    for z, plane in enumerate(phase):
        _write(root / "isl" / "slices" / f"phase_z{z}_train.tif", plane)
    _write(root / "isl" / "dapi_train.tif", dapi)
    for stain in ("MAP2", "NFH"):
        _write(root / "isl" / f"{stain.lower()}_train.tif", datasets.isl_target(channel=stain)[:, :datasets.ISL_SPLIT_X])
    for name, a in datasets.codec2d_split("train"):
        if not name.startswith("isl_"):
            _write(root / "codec2d" / f"{name}.tif", a)
    for name, a in datasets.stacks3d_split("train"):
        if not name.startswith("isl_"):
            _write(root / "codec3d" / f"{name}.tif", a)
    total = sum(p.stat().st_size for p in root.rglob("*.tif"))
    print(f"packed {len(list(root.rglob('*.tif')))} files, {total / 1e6:.1f} MB in {root}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".gpu/data")
