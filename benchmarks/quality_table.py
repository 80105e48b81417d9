"""Quality level -> (bpp, PSNR, SSIM) of every classical codec on one real image (ISL DAPI 1024², uint16).

    python benchmarks/quality_table.py [--image isl_dapi|isl_phase|nuclei]
"""
import argparse

from napari_microcomp import metrics
from napari_microcomp._progress import drain
from napari_microcomp.benchmark import iter_benchmark
from napari_microcomp.codecs import available_codecs, codec_class


def image(name: str):
    from napari_microcomp import samples
    if name == "isl_dapi":
        return samples.isl_dapi()
    if name == "isl_phase":
        return samples.isl_phase_stack()[6]
    return samples.hipsc_nuclei()[0][30]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="isl_dapi", choices=["isl_dapi", "isl_phase", "nuclei"])
    args = ap.parse_args(argv)
    a = image(args.image)
    names = [n for n in available_codecs("classical") + available_codecs("lossless")
             if codec_class(n).__module__ == "napari_microcomp.codecs.classical"]
    configs = [{"id": n, "quality": q, "lossless": False} for n in names if not codec_class(n).lossless_only
               for q in range(1, 9)]
    configs += [{"id": n, "quality": None, "lossless": True} for n in names]
    rows = drain(iter_benchmark({args.image: a}, configs, with_ms_ssim=False), desc="quality table")
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"failed rows: {[(r['label'], r['error']) for r in bad]}")
    print(f"{args.image}: {a.shape} {a.dtype}, data range {metrics.data_range(a):.0f}; cells: bpp / PSNR dB / SSIM\n")
    print("| codec | " + " | ".join(f"q{q}" for q in range(1, 9)) + " | lossless |")
    print("|---|" + "---|" * 9)
    for name in names:
        mine = [r for r in rows if r["codec"] == name]
        by_q = {r["quality"]: r for r in mine if not r["config"].get("lossless")}
        cells = [f"{by_q[q]['bpp']:.3f} / {by_q[q]['psnr']:.1f} / {by_q[q]['ssim']:.3f}" if q in by_q else "–"
                 for q in range(1, 9)]
        cells.append(next(f"{r['bpp']:.2f}" for r in mine if r["config"].get("lossless")))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
