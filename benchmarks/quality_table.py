"""Quality level -> (bpp, PSNR, SSIM) of every classical codec on one real image (ISL DAPI 1024², uint16).

    python benchmarks/quality_table.py [--image isl_dapi|isl_phase|nuclei]
"""
import argparse

from napari_microcomp import metrics
from napari_microcomp.codecs import available_codecs, codec_class, decode, get_codec


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
    print(f"{args.image}: {a.shape} {a.dtype}, data range {metrics.data_range(a):.0f}; cells: bpp / PSNR dB / SSIM\n")
    print("| codec | " + " | ".join(f"q{q}" for q in range(1, 9)) + " | lossless |")
    print("|---|" + "---|" * 9)
    for name in available_codecs("classical") + available_codecs("lossless"):
        cls = codec_class(name)
        if cls.__module__ != "napari_microcomp.codecs.classical":
            continue
        cells = []
        for q in range(1, 9):
            if cls.lossless_only:
                cells.append("–")
                continue
            d = get_codec(name, quality=q).encode(a)
            r = decode(d)
            cells.append(f"{metrics.bpp(a, len(d)):.3f} / {metrics.psnr(a, r):.1f} / {metrics.ssim(a, r):.3f}")
        ll = get_codec(name) if cls.lossless_only else get_codec(name, lossless=True)
        cells.append(f"{metrics.bpp(a, len(ll.encode(a))):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
