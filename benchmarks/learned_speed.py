"""Encode/decode speed of the learned 2D codecs on one 1024×1024 uint16 image (MB/s of 16-bit raw).

Image: ISL phase contrast z=6 (real, 1024² uint16). Each codec runs with ``threads`` torch threads
(the thread count is part of the stream); times are the best of ``--repeat`` runs after one warm-up
and include everything the codec does (normalisation, padding, the reconstruction checksum at
encode, the container). Weights: the shipped/user ones when present, else randomly initialised
models of the zoo's default widths for that quality (speed depends on the widths, not the values).

For the autoregressive architectures (mbt2018, cheng2020-*) the script also times CompressAI's own
reference ``compress``/``decompress`` (raster-order context model) on the same model and padded input,
to compare with the codec's wavefront coder. Targets (issue 3): non-autoregressive encode+decode
≥ 4 MB/s on 2 cores; autoregressive decode faster than CompressAI's reference.

With ``--refine N`` the script also times one encode with N steps of encode-time latent refinement
(architectures that support it; issue 10 asks for its seconds per 1024² image) and reports the bytes saved.

    python benchmarks/learned_speed.py                    # all nine, quality 4, 2 threads
    python benchmarks/learned_speed.py --archs mbt2018 --size 256 --repeat 1     # quick
"""
import argparse
import json
import time
from typing import Dict

import numpy as np
import torch

from napari_microcomp.codecs import get_codec
from napari_microcomp.models.coding import fixed_threads
from napari_microcomp.models.registry import get_arch, list_archs
from napari_microcomp.weights.load import LoadedModel
from napari_microcomp.weights.locate import available_qualities

RAW_MB = lambda a: a.size * 2 / 1e6  # noqa: E731  (MB of 16-bit raw, as the issue counts)


def _image(size: int) -> np.ndarray:
    from napari_microcomp.datasets import isl_phase

    a = isl_phase()[6]
    return np.ascontiguousarray(a[:size, :size])


def _best(fn, repeat: int) -> float:
    fn()  # warm-up: model load, oneDNN kernel selection
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _codec(arch: str, quality: int, threads: int):
    codec = get_codec(arch, quality=quality, threads=threads)
    try:
        codec.load()
        return codec, "trained"
    except Exception:  # no weights here: a random model of the default widths times the same
        spec = get_arch(arch)
        model = spec.factory(**spec.widths(quality)).eval()
        model.update(force=True)
        model.to(memory_format=torch.channels_last)
        lm = LoadedModel(model, arch, "random-init", "random")
        codec.load = lambda: lm
        return codec, "random-init"


def _reference_ar(model, img: np.ndarray, repeat: int) -> Dict[str, float]:
    """CompressAI's own compress/decompress on the same normalised, padded input.

    Run in its most favourable setting: a contiguous-format copy of the model and one thread
    (its raster loop is thousands of tiny ops, which thread barriers and channels-last only slow down).
    """
    import copy

    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = torch.from_numpy(((img - img.min()) / max(1, np.ptp(img))).astype(np.float32))[None, None]
    x = torch.nn.functional.pad(x, (0, -x.shape[-1] % 64, 0, -x.shape[-2] % 64), mode="replicate")
    with fixed_threads(1), torch.inference_mode():
        out = {}
        t = time.perf_counter()
        enc = model.compress(x)
        out["ref_encode_s"] = time.perf_counter() - t
        out["ref_decode_s"] = _best(lambda: model.decompress(enc["strings"], enc["shape"]), max(1, repeat - 1))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="*", default=None)
    p.add_argument("--quality", type=int, default=4, help="preferred quality (nearest one with weights is used)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-reference", action="store_true", help="skip CompressAI's (slow) reference AR coding")
    p.add_argument("--refine", type=int, default=0, help="also time one encode with N refinement steps")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    img = _image(args.size)
    mb = RAW_MB(img)
    rows = []
    print(f"image {img.shape} {img.dtype} = {mb:.2f} MB raw; threads {args.threads}; best of {args.repeat}")
    print(f"{'arch':28s} {'weights':12s} {'enc s':>7s} {'dec s':>7s} {'enc MB/s':>9s} {'dec MB/s':>9s} "
          f"{'enc+dec MB/s':>13s}  reference (CompressAI) enc/dec s")
    for arch in args.archs or list_archs(ndim=2):
        have = sorted(available_qualities(arch))
        # a quality that has trained weights (nearest to the requested one): trained latents cost
        # more entropy coding than a random model's near-zero ones
        quality = min(have, key=lambda q: (abs(q - args.quality), q)) if have else args.quality
        codec, source = _codec(arch, quality, args.threads)
        holder = {}
        t_enc = _best(lambda: holder.__setitem__("s", codec.encode(img)), args.repeat)
        t_dec = _best(lambda: codec.decode(holder["s"]), args.repeat)
        row = {"arch": arch, "quality": quality, "weights": source, "encode_s": t_enc, "decode_s": t_dec,
               "encode_MBps": mb / t_enc, "decode_MBps": mb / t_dec, "enc_dec_MBps": mb / (t_enc + t_dec),
               "bytes": len(holder["s"])}
        ref = ""
        if get_arch(arch).coding == "ar" and not args.no_reference:
            row.update(_reference_ar(codec.load().model, img, args.repeat))
            ref = f"{row['ref_encode_s']:.2f} / {row['ref_decode_s']:.2f} (decode ×{row['ref_decode_s'] / t_dec:.1f} slower)"
        if args.refine and "refine" in codec.extra_params() and get_arch(arch).coding != "ar":
            rcodec = get_codec(arch, quality=quality, threads=args.threads, refine=args.refine)
            rcodec.load = codec.load   # the same model (random-init included)
            t = time.perf_counter()
            row["refine_bytes"] = len(rcodec.encode(img))
            row["refine_steps"], row["refine_encode_s"] = args.refine, time.perf_counter() - t
            ref += (f" refine {args.refine}: {row['refine_encode_s']:.1f} s encode, "
                    f"{row['refine_bytes']:,} vs {row['bytes']:,} bytes")
        rows.append(row)
        print(f"{arch + f' q{quality}':28s} {source:12s} {t_enc:7.2f} {t_dec:7.2f} {row['encode_MBps']:9.2f} "
              f"{row['decode_MBps']:9.2f} {row['enc_dec_MBps']:13.2f}  {ref}", flush=True)
    if args.out:
        from pathlib import Path

        from napari_microcomp.io_write import atomic_write_bytes
        atomic_write_bytes(Path(args.out), json.dumps(rows, indent=1).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
