"""Label-free accuracy on the evaluation split: prediction from original vs compressed input vs ground truth.

For each model (shipped names or .pt files) the ISL evaluation strip (x >= 768, never trained on) is
predicted from the original phase image and from reconstructions of each codec/quality; SSIM, PSNR and
Pearson r are computed against the ground truth, DAPI or (``--target``) MAP2 / NFH, normalized like the
model's training target (see ``napari_microcomp.labelfree.compare``). Rows go to a CSV and a markdown table.

    PYTHONPATH=src python benchmarks/labelfree_accuracy.py                       # shipped models
    PYTHONPATH=src python benchmarks/labelfree_accuracy.py --models a.pt b.pt \\
        --codecs jpegxl:2,4,6 jpeg2k:2,4,6 mbt2018-mean:2,4,6 --out results/labelfree_accuracy.csv
    PYTHONPATH=src python benchmarks/labelfree_accuracy.py --tiny                # smoke test (~1 min)
"""
import argparse
import csv
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from napari_microcomp._progress import drain
from napari_microcomp.errors import MicrocompError

DEFAULT_CODECS = ["jpegxl:2,4,6", "jpeg2k:2,4,6", "jpegxr:2,4,6"]
COLUMNS = ["model", "input", "codec", "quality", "bpp", "compression_ratio", "ssim", "psnr", "pearson",
           "pearson_vs_pred_orig", "seconds", "note"]


def _codec_levels(specs: List[str]) -> List[Tuple[str, int]]:
    out = []
    for spec in specs:
        name, _, qs = spec.partition(":")
        out += [(name, int(q)) for q in (qs or "4").split(",")]
    return out


def _rows_for_model(name: str, codecs: List[Tuple[str, int]], tiny: bool, threads_note: str,
                    tta: bool = False, target: str = "DAPI") -> List[Dict]:
    from napari_microcomp.codecs import get_codec
    from napari_microcomp.datasets import labelfree_split
    from napari_microcomp.labelfree import iter_compare, load_model

    model = load_model(name)
    phase, dapi = labelfree_split("eval", zstack=model.zstack, target=target)
    if tiny:
        phase, dapi = phase[..., 384:640, :], dapi[384:640, :]
    label = Path(name).stem + (" +tta" if tta else "") + ("" if target == "DAPI" else f" -> {target}")
    t0 = time.perf_counter()
    base = drain(iter_compare(model, phase, dapi, return_arrays=True, tta=tta), desc=f"{label} original")
    rows = [{"model": label, "input": f"{'stack' if model.zstack else 'slice z6'} {tuple(phase.shape)}",
             "codec": "none", "quality": "", "bpp": 8.0 * phase.itemsize, "compression_ratio": 1.0,
             "ssim": base["ssim_orig"], "psnr": base["psnr_orig"], "pearson": base["pearson_orig"],
             "pearson_vs_pred_orig": math.nan,   # the reference row: nothing to compare with itself
             "seconds": time.perf_counter() - t0, "note": threads_note}]
    pred_orig = base["arrays"]["original"]
    for cname, q in codecs:
        t0 = time.perf_counter()
        row = {"model": label, "input": rows[0]["input"], "codec": cname, "quality": q}
        try:
            codec = get_codec(cname, quality=q)
            r = drain(iter_compare(model, phase, dapi, codec=codec, prediction_original=pred_orig, tta=tta),
                      desc=f"{label} {cname} q{q}")
        except MicrocompError as exc:   # codec unavailable / learned weights missing: say so, go on
            row.update(note=f"skipped: {exc}")
            rows.append(row)
            print(f"  {cname} q{q}: skipped ({exc})", file=sys.stderr)
            continue
        row.update(bpp=r["bpp"], compression_ratio=r["compression_ratio"], ssim=r["ssim_rec"],
                   psnr=r["psnr_rec"], pearson=r["pearson_rec"], pearson_vs_pred_orig=r["pearson_rec_vs_orig"],
                   seconds=time.perf_counter() - t0, note="")
        rows.append(row)
    return rows


def _arcadia_rows(models: List[str]) -> List[Dict]:
    """Independent test set: Arcadia ND2 bright-field (channel 0) -> DAPI (channel 1), 2D models only.

    A different microscope AND modality (bright-field, not phase contrast): this measures how far the
    ISL-trained models transfer, nothing was tuned on it.
    """
    from napari_microcomp.io import read_image
    from napari_microcomp.labelfree import compare, load_model
    from napari_microcomp.samples import shared_data_dir

    root = shared_data_dir()
    rows = []
    for fname in ("example-pbmc.nd2", "example-multichannel.nd2"):
        path = root / "arcadia_brightfield_fluorescence" / fname if root else None
        if path is None or not path.is_file():
            continue
        bf, _ = read_image(path, channel=0)
        dapi, _ = read_image(path, channel=1)
        for name in models:
            model = load_model(name)
            if model.zstack:
                continue
            r = compare(model, bf, dapi)
            rows.append({"model": Path(name).stem, "input": f"{fname} bright-field {bf.shape}", "codec": "none",
                         "quality": "", "ssim": r["ssim_orig"], "psnr": r["psnr_orig"],
                         "pearson": r["pearson_orig"], "note": "independent test set"})
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def markdown(rows: List[Dict]) -> str:
    cols = ["model", "input", "codec", "quality", "bpp", "compression_ratio", "ssim", "psnr", "pearson",
            "pearson_vs_pred_orig"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_fmt(r.get(c, "")) for c in cols]
        if str(r.get("note", "")).startswith("skipped"):
            cells[2] += " (skipped: see CSV note)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="model names or .pt files (default: shipped)")
    ap.add_argument("--codecs", nargs="+", default=DEFAULT_CODECS, help="CODEC:Q1,Q2,... entries")
    ap.add_argument("--out", default="results/labelfree_accuracy.csv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="256-row strip, one quality per codec (smoke test)")
    ap.add_argument("--tta", action="store_true", help="predict with 8-view test-time augmentation")
    ap.add_argument("--target", choices=["DAPI", "MAP2", "NFH"], default="DAPI",
                    help="the ISL stain the models predict (ground truth of the evaluation strip)")
    ap.add_argument("--arcadia", action="store_true", help="also score the Arcadia ND2 bright-field -> DAPI files")
    args = ap.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from napari_microcomp.labelfree import available_models

    models = args.models or available_models()
    if not models:
        print("no label-free weights installed and no --models given", file=sys.stderr)
        return 2
    codecs = _codec_levels(args.codecs)
    if args.tiny:
        codecs = list({name: (name, q) for name, q in codecs}.values())
    rows: List[Dict] = []
    for m in models:
        rows += _rows_for_model(m, codecs, args.tiny, f"{args.threads} threads", tta=args.tta, target=args.target)
    if args.arcadia:
        rows += _arcadia_rows(models)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({c: r.get(c, "") for c in COLUMNS} for r in rows)
    tmp.replace(out)
    print(markdown(rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
