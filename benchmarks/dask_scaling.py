"""Scale-out of the benchmark on dask.distributed: 16 real images, 2 worker processes vs 1.

The 16 images are the ISL field's 13 phase-contrast slices and its 3 confocal channels (1024²,
uint16). Each run starts a local cluster (loopback, one thread per worker), preloads the workers,
then times only the benchmark itself. Rows of both runs are checked to be identical (timings
aside). Target: ≥ 1.7× with 2 workers (on a machine with ≥ 2 free cores).

    python benchmarks/dask_scaling.py                                  # the full measurement
    python benchmarks/dask_scaling.py --images 4 --size 128 --levels 2   # a tiny smoke setting
"""
import argparse
import math
import os
import time

import numpy as np

from napari_microcomp._progress import result_of
from napari_microcomp.benchmark import comparable, iter_benchmark
from napari_microcomp.benchmark.distributed import open_client, preload


def isl_images(n: int, size: int):
    import imageio.v3 as iio

    from napari_microcomp import samples
    names = [f"z_depth-{k}_channel-PHASE_CONTRAST.png" for k in range(13)] + [
        f"depth_computation-MAXPROJECT_channel-{c}_CONFOCAL.png" for c in ("DAPI", "MAP2", "NFH")]
    out = []
    for name in names[:n]:
        a = np.asarray(iio.imread(samples.isl_file(name)))
        c = (a.shape[0] - size) // 2
        out.append((name.split(".")[0], np.ascontiguousarray(a[c:c + size, c:c + size])))
    return out


def timed(images, codecs, levels, workers):
    with open_client(workers=workers) as client:
        client.run(preload)
        t0 = time.perf_counter()
        rows = result_of(iter_benchmark(images, codecs, qualities=levels, client=client, with_ms_ssim=False))
        return time.perf_counter() - t0, rows


def _same(a, b):
    return all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--codecs", nargs="+", default=["jpeg2k", "jpegxl", "htj2k", "jpegxr"])
    ap.add_argument("--levels", type=int, nargs="+", default=[2, 5, 8])
    args = ap.parse_args(argv)
    images = isl_images(args.images, args.size)
    print(f"{len(images)} images {images[0][1].shape}, codecs {args.codecs} × levels {args.levels}, "
          f"{os.cpu_count()} CPUs")
    t1, rows1 = timed(images, args.codecs, args.levels, 1)
    t2, rows2 = timed(images, args.codecs, args.levels, 2)
    same = len(rows1) == len(rows2) and all(_same(comparable(a), comparable(b)) for a, b in zip(rows1, rows2))
    print(f"| workers | rows | wall s |\n|---:|---:|---:|\n| 1 | {len(rows1)} | {t1:.1f} |\n| 2 | {len(rows2)} | {t2:.1f} |")
    print(f"speed-up {t1 / t2:.2f}× (target ≥ 1.7×); rows identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
