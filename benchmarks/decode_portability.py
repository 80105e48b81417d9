"""Do learned streams decode under another float arithmetic? oneDNN off stands in for another CPU type.

Each evaluation crop (transmitted light, up to ``--crop``²) is encoded normally, then decoded twice: with the
same arithmetic (must be bit-exact) and with ``torch.backends.mkldnn.enabled = False`` (other convolution
kernels, other summation orders, as on another CPU). Outcomes: ``exact``; ``drift`` (returned with a
DecodeDriftWarning: the latent symbols matched, some pixels rounded differently); ``refused`` (the symbols
desynchronised: a StreamError instead of a wrong image). Compared for the entropy-parameter arithmetic of new
streams (``ep=64``) and of streams written before it (``ep=32``), with encode/decode seconds.

    python benchmarks/decode_portability.py --crop 1024 --out benchmarks/results/decode_portability.json
"""
import argparse
import json
import time
import warnings

import torch

from napari_microcomp.codecs import decode, get_codec
from napari_microcomp.errors import DecodeDriftWarning, StreamError
from napari_microcomp.training import gate


def _other_arithmetic(data: bytes):
    prev = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = decode(data)
        drift = any(isinstance(w.message, DecodeDriftWarning) for w in caught)
        return ("drift" if drift else "exact"), out
    except StreamError:
        return "refused", None
    finally:
        torch.backends.mkldnn.enabled = prev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codecs", nargs="+", default=["mbt2018-mean-vbr", "bmshj2018-hyperprior-vbr", "mbt2018"])
    ap.add_argument("--quality", type=int, default=4)
    ap.add_argument("--crop", type=int, default=1024)
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    images = gate.eval_images("transmitted", args.crop, args.max_images)
    rows = []
    for cid in args.codecs:
        for ep in (32, 64):
            c = get_codec(cid, quality=args.quality, weights="transmitted", ep=ep)
            for name, img in images:
                t0 = time.perf_counter()
                data = c.encode(img)
                t1 = time.perf_counter()
                ref = decode(data)
                t2 = time.perf_counter()
                outcome, out = _other_arithmetic(data)
                n = -1 if out is None else int((out != ref).sum())
                rows.append({"codec": cid, "ep": ep, "image": name, "shape": list(img.shape), "outcome": outcome,
                             "pixels_differing": n, "encode_s": round(t1 - t0, 3), "decode_s": round(t2 - t1, 3)})
                print(f"{cid:26s} ep{ep} {name[:28]:28s} {str(img.shape):13s} {outcome:8s} {n:6d} px  "
                      f"enc {t1 - t0:.2f}s dec {t2 - t1:.2f}s", flush=True)
    summary = {}
    for r in rows:
        s = summary.setdefault(f"{r['codec']} ep{r['ep']}", {"exact": 0, "drift": 0, "refused": 0, "encode_s": 0.0,
                                                             "decode_s": 0.0})
        s[r["outcome"]] += 1
        s["encode_s"] += r["encode_s"]
        s["decode_s"] += r["decode_s"]
    for k, s in summary.items():
        print(f"{k:32s} exact {s['exact']:2d}  drift {s['drift']:2d}  refused {s['refused']:2d}  "
              f"encode {s['encode_s']:.1f}s  decode {s['decode_s']:.1f}s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"crop": args.crop, "quality": args.quality, "summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
