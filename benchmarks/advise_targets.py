"""Issue 13's targets for the advisor, on the four built-in real samples (SSIM ≥ 0.94 by default).

For each sample: the advisor's best compression ratio over the classical + lossless codecs vs the best
ratio among the 8 quality levels of every codec of the ``tuned`` preset (run through the benchmark
engine), the winner re-measured from a fresh encode, and the advisor's wall time (target ≤ 60 s per
1024² image for all classical codecs on 2 cores). ``--learned`` adds the learned codecs, reported apart.

    python benchmarks/advise_targets.py [--ssim 0.94] [--learned] [--out benchmarks/results/advise_targets]
"""
import argparse
import json
import time
from pathlib import Path

from napari_microcomp import metrics
from napari_microcomp._progress import drain
from napari_microcomp.advise import Tolerance, advise, default_codecs
from napari_microcomp.benchmark import get_preset, iter_benchmark
from napari_microcomp.codecs import codec_from_config, decode
from napari_microcomp.samples import benchmark_samples


def best_level_cr(name, image, ssim_min):
    plan = get_preset("tuned", learned=False)
    rows = drain(iter_benchmark({name: image}, plan.configs, with_ms_ssim=False), show=False)
    ok = [r for r in rows if r["status"] == "ok" and r["ssim"] >= ssim_min]
    best = max(ok, key=lambda r: r["compression_ratio"])
    return best["compression_ratio"], best["label"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ssim", type=float, default=0.94)
    ap.add_argument("--learned", action="store_true", help="also the learned codecs (slower), reported apart")
    ap.add_argument("--out", default="benchmarks/results/advise_targets")
    args = ap.parse_args(argv)
    tol = Tolerance(ssim=args.ssim)
    out = []
    for name, image in benchmark_samples():
        t0 = time.perf_counter()
        adv = advise([image], tol, default_codecs())
        secs = time.perf_counter() - t0
        w = adv.winner
        data = codec_from_config(w.config).encode(image)
        rec = decode(data)
        level_cr, level_label = best_level_cr(name, image, args.ssim)
        row = {"image": name, "shape": list(image.shape), "dtype": image.dtype.name,
               "advisor": f"{w.codec} {w.setting}", "advisor_cr": w.compression_ratio,
               "best_level": level_label, "best_level_cr": level_cr,
               "advisor_ge_levels": w.compression_ratio >= level_cr,
               "remeasured_ssim": metrics.ssim(image, rec), "remeasured_cr": metrics.compression_ratio(image, len(data)),
               "seconds": secs, "seconds_per_1024sq": secs * (1024 * 1024) / image.size}
        row["remeasured_ok"] = row["remeasured_ssim"] >= args.ssim
        if args.learned:
            from napari_microcomp.codecs import available_codecs

            t0 = time.perf_counter()
            la = advise([image], tol, available_codecs("learned"), max_trials=6)
            row["learned"] = [{"codec": r.codec, "setting": r.setting, "met": r.met, "cr": r.compression_ratio,
                               "seconds": r.seconds} for r in la.rows]
            row["learned_seconds"] = time.perf_counter() - t0
        out.append(row)
        print(f"{name:18} advisor {row['advisor']:28} CR {w.compression_ratio:8.2f} | best level {level_label:22} "
              f"CR {level_cr:8.2f} | ≥: {row['advisor_ge_levels']} | re-measured SSIM {row['remeasured_ssim']:.4f} | "
              f"{secs:5.1f} s ({row['seconds_per_1024sq']:.1f} s per 1024²)")
    p = Path(args.out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.with_suffix(".json").write_text(json.dumps({"ssim_min": args.ssim, "rows": out}, indent=1) + "\n")
    lines = ["| image | advisor | CR | best of 8 levels (tuned) | CR | advisor ≥ levels | re-measured SSIM | s per 1024² |",
             "|---|---|---:|---|---:|---|---:|---:|"]
    lines += [f"| {r['image']} | {r['advisor']} | {r['advisor_cr']:.2f} | {r['best_level']} | {r['best_level_cr']:.2f} | "
              f"{'yes' if r['advisor_ge_levels'] else 'NO'} | {r['remeasured_ssim']:.4f} | {r['seconds_per_1024sq']:.1f} |"
              for r in out]
    p.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {p.with_suffix('.json')} and {p.with_suffix('.md')}")
    return 0 if all(r["advisor_ge_levels"] and r["remeasured_ok"] for r in out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
