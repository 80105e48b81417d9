"""Peak memory and throughput of tiled compression of a memory-mapped stack larger than RAM budgets.

Writes a synthetic-content uint16 stack of ``--size-gb`` GB (Z × 2048 × 2048 blurred blobs plus noise,
generated slab by slab) as a memory-mapped ``.npy``, then, each in a FRESH process so that each peak
is its own: compresses it tile by tile into one container file (:func:`napari_microcomp.tiled.compress_file`)
and decompresses that into a memory-mapped ``.npy``. Reports each phase's peak RSS (VmHWM: resident
anonymous AND file-backed pages, i.e. memory-mapped pages count), wall time and MB/s of raw data, and
checks the round trip (exact for lossless codecs; PSNR otherwise). Target (issue 4): 4 GB with peak RSS
≤ 1.5 GB in each phase.

    python benchmarks/volumetric_memory.py --size-gb 0.25 --codec zstd          # quick
    python benchmarks/volumetric_memory.py --size-gb 4 --codec jpegxl --quality 6 --dir /big/tmp
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

XY = 2048


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def generate(path: str, size_gb: float, xy: int) -> dict:
    """Write the synthetic stack slab by slab (bounded memory), return its shape."""
    from scipy.ndimage import gaussian_filter

    from napari_microcomp.tiled import release_pages

    z = max(1, int(round(size_gb * 1e9 / (xy * xy * 2))))
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(z, xy, xy))
    rng = np.random.default_rng(0)
    # One smooth texture, shifted per slice: nucleus-like blobs that drift through z, cheap to make.
    tex = gaussian_filter(rng.random((xy, xy), dtype=np.float32), 6)
    tex = ((tex - tex.min()) / (tex.max() - tex.min())) ** 3 * 3000.0
    slab = 16
    for z0 in range(0, z, slab):
        z1 = min(z, z0 + slab)
        for k in range(z0, z1):
            s = np.roll(tex, (3 * k, 2 * k), axis=(0, 1))
            mm[k] = (s + 100.0 + rng.normal(0.0, 12.0, s.shape).astype(np.float32)).clip(0, 65535)
        release_pages(mm, z0, z1)
    mm.flush()
    return {"shape": list(mm.shape), "bytes": int(mm.nbytes), "peak_rss_mb": _peak_rss_mb()}


def compress(src: str, dst: str, codec: str, quality, tile) -> dict:
    from napari_microcomp._progress import result_of
    from napari_microcomp.tiled import compress_file

    vol = np.load(src, mmap_mode="r")
    t = time.perf_counter()
    res = result_of(compress_file(vol, dst, codec, quality=quality, tile=tile))
    sec = time.perf_counter() - t
    return {"seconds": sec, "MBps": vol.nbytes / 1e6 / sec, "bytes": res["bytes"], "bpv": res["bpv"],
            "tiles": res["tiles"], "tile": res["tile"], "halo": res["halo"], "peak_rss_mb": _peak_rss_mb()}


def decompress(src: str, dst: str) -> dict:
    from napari_microcomp._progress import result_of
    from napari_microcomp.tiled import decompress_file

    t = time.perf_counter()
    out = result_of(decompress_file(src, dst))
    sec = time.perf_counter() - t
    return {"seconds": sec, "MBps": out.nbytes / 1e6 / sec, "peak_rss_mb": _peak_rss_mb()}


def verify(a_path: str, b_path: str) -> dict:
    """Exactness or PSNR of the round trip, slab by slab (bounded memory)."""
    from napari_microcomp.tiled import release_pages

    a = np.load(a_path, mmap_mode="r")
    b = np.load(b_path, mmap_mode="r")
    se, lo, hi, exact = 0.0, np.inf, -np.inf, True
    for z0 in range(0, a.shape[0], 16):
        x = np.asarray(a[z0:z0 + 16], dtype=np.float64)
        y = np.asarray(b[z0:z0 + 16], dtype=np.float64)
        d = x - y
        se += float((d * d).sum())
        exact &= bool((d == 0).all())
        lo, hi = min(lo, x.min()), max(hi, x.max())
        release_pages(a, z0, z0 + 16)
        release_pages(b, z0, z0 + 16)
    mse = se / a.size
    return {"exact": exact, "psnr": float("inf") if mse == 0 else float(10 * np.log10((hi - lo) ** 2 / mse)),
            "peak_rss_mb": _peak_rss_mb()}


def _child(*args) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, __file__, "--phase", *map(str, args)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"phase {args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=4.0, help="raw size of the stack in GB (1e9 bytes)")
    ap.add_argument("--xy", type=int, default=XY, help="Y and X size of each slice")
    ap.add_argument("--codec", default="jpegxl", help="any registered codec (e.g. zstd, jpegxl, factorized3d)")
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--tile", type=int, nargs=3, default=None, help="tile Z Y X (default: the codec's)")
    ap.add_argument("--dir", default=None, help="scratch folder (needs ~2.2× size-gb free)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    ap.add_argument("--out", help="write the report as JSON here")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        name, *rest = args.phase
        if name == "generate":
            res = generate(rest[0], float(rest[1]), int(rest[2]))
        elif name == "compress":
            tile = json.loads(rest[4])
            res = compress(rest[0], rest[1], rest[2], json.loads(rest[3]), tile)
        elif name == "decompress":
            res = decompress(rest[0], rest[1])
        else:
            res = verify(rest[0], rest[1])
        print(json.dumps(res))
        return 0

    work = Path(tempfile.mkdtemp(prefix="mc-mem-", dir=args.dir))
    src, stream, back = work / "stack.npy", work / "stack.mcz", work / "back.npy"
    try:
        report = {"size_gb": args.size_gb, "codec": args.codec, "quality": args.quality}
        report["generate"] = _child("generate", src, args.size_gb, args.xy)
        print(f"stack {report['generate']['shape']} uint16 = {report['generate']['bytes'] / 1e9:.2f} GB "
              f"(generation peak RSS {report['generate']['peak_rss_mb']:.0f} MB)")
        report["compress"] = c = _child("compress", src, stream, args.codec, json.dumps(args.quality),
                                        json.dumps(args.tile))
        print(f"compress   {c['seconds']:7.1f} s  {c['MBps']:7.1f} MB/s  peak RSS {c['peak_rss_mb']:7.0f} MB  "
              f"-> {c['bytes'] / 1e6:.1f} MB ({c['bpv']:.3f} bpv, {c['tiles']} tiles {c['tile']} halo {c['halo']})")
        report["decompress"] = d = _child("decompress", stream, back)
        print(f"decompress {d['seconds']:7.1f} s  {d['MBps']:7.1f} MB/s  peak RSS {d['peak_rss_mb']:7.0f} MB")
        report["verify"] = v = _child("verify", src, back)
        quality = "exact" if v["exact"] else f"PSNR {v['psnr']:.2f} dB"
        print(f"round trip: {quality}")
        peak = max(c["peak_rss_mb"], d["peak_rss_mb"])
        report["peak_rss_mb"] = peak
        report["target_met"] = peak <= 1536
        print(f"peak RSS {peak:.0f} MB: target ≤ 1536 MB {'MET' if report['target_met'] else 'NOT met'}")
        if args.out:
            from napari_microcomp.io_write import atomic_write_bytes
            atomic_write_bytes(args.out, json.dumps(report, indent=1).encode())
    finally:
        if not args.keep:
            for p in (src, stream, back):
                p.unlink(missing_ok=True)
            try:
                work.rmdir()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
