"""Structure-aware stream fuzzer (issue 11), run as a child process by ``tests/core/test_fuzz.py``.

Seeds are valid streams of every codec family (classical whole/slicewise/float, lossless, learned
fixed-rate/VBR/factorized, learned multi-tile, constant). Each case mutates *fields*, not only bytes:
header shape/dtype/layout/norm/codec parameters/checksums, the payload table, learned payload internals
(string counts, latent shapes, lengths), payload bytes; then re-packs the stream with valid CRCs so the
mutation reaches the decoders (a share of cases keeps raw byte damage). A case passes when decode returns
exactly the seed's reconstruction or raises a one-line MicrocompError; anything else (another exception, a
different array, a crash, a hang) fails. The last case started is written to ``--progress`` so the parent
can name a case that crashed or hung the process.

    python tests/fuzz_streams.py --cases 2000 --seed 0 --progress /tmp/p --report /tmp/r.json
"""
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_harness import arguments, run_cases  # noqa: E402
from helpers import smooth_image  # noqa: E402

WEIRD = [0, -1, 1, 2, 7, 64, 1000, 2 ** 16, 2 ** 31, 2 ** 40, 1.5, -0.0, float("nan"), float("inf"), 1e308,
         "x", "", None, True, [], [1, 2], {}, {"a": 1}]


def make_seeds(tmp: Path):
    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.models.registry import build_model, get_arch, model_widths
    from napari_microcomp.weights.export import export_weights
    from napari_microcomp.weights.locate import find_weights

    wdir = tmp / "weights"
    wdir.mkdir()
    for arch, q in (("mbt2018-mean-vbr", None), ("bmshj2018-factorized", 3), ("bmshj2018-hyperprior", 3)):
        m = build_model(arch, 3, N=8, M=8)
        export_weights(m, arch, wdir / get_arch(arch).weights_filename(q or 0), q, model_widths(m),
                       {"note": "fuzz seed, untrained"})
    os.environ["MICROCOMP_WEIGHTS"] = str(wdir)
    img = smooth_image((72, 88), seed=1)
    stack = (smooth_image((3, 40, 48), seed=2) >> 8).astype(np.uint8)
    flt = smooth_image((48, 40), np.float32, seed=3)
    specs = [("jpeg2k", dict(quality=3), img), ("jpegxl", dict(quality=4), stack), ("lerc", dict(quality=5), flt),
             ("zstd", dict(lossless=True), flt), ("jpegls", dict(quality=4), img), ("htj2k", dict(quality=6), img),
             ("jpegxr", dict(quality=5), stack), ("jpegxl-lossless", dict(), img),
             ("mbt2018-mean-vbr", dict(quality=5), img), ("bmshj2018-factorized", dict(quality=3), img),
             ("bmshj2018-hyperprior", dict(quality=3, tile=64), smooth_image((130, 70), seed=4)),
             ("mbt2018-mean-vbr", dict(quality=2), np.full((40, 40), 77, np.uint16)),
             # integers spanning more than 65,536 levels, coded as float32 and rounded back (int_as_float)
             ("zstd", dict(lossless=True), img.astype(np.int32) * 8 - 200_000),
             ("jpeg2k", dict(quality=4), (img.astype(np.uint32) * 40))]
    seeds = []
    for cid, kw, a in specs:
        data = get_codec(cid, **kw).encode(a)
        seeds.append((f"{cid}{kw}", data, decode(data)))
    from napari_microcomp.codecs.tiled import TiledCodec

    for inner in ("zstd", "jpeg2k"):
        t = TiledCodec(inner=inner, tile=(2, 32, 32), halo=(0, 4, 4))
        vol = smooth_image((3, 50, 45), seed=5)
        data = t.encode(vol)
        seeds.append((f"tiled-{inner}", data, decode(data)))
    if find_weights("mbt2018-mean-vbr3d", 4, "fluorescence"):   # the shipped 3D weights (volumetric layout)
        vol = smooth_image((8, 64, 64), seed=6)
        data = get_codec("mbt2018-mean-vbr3d", quality=4).encode(vol)
        seeds.append(("mbt2018-mean-vbr3d", data, decode(data)))
    return seeds


def _learned_payload_edit(p: bytes, rng) -> bytes:
    if len(p) < 2:
        return p
    n, nd = struct.unpack_from("<BB", p, 0)
    what = rng.integers(0, 4)
    if what == 0:
        return struct.pack("<BB", int(rng.integers(0, 256)), nd) + p[2:]
    if what == 1:
        return struct.pack("<BB", n, int(rng.integers(0, 256))) + p[2:]
    if what == 2 and len(p) >= 2 + 2 * nd:
        shape = [int(rng.choice([0, 1, 2, 255, 4096, 65535])) for _ in range(nd)]
        return p[:2] + struct.pack(f"<{nd}H", *shape) + p[2 + 2 * nd:]
    off = 2 + 2 * nd
    if len(p) >= off + 4 * n and n:
        i = int(rng.integers(0, n))
        return p[:off + 4 * i] + struct.pack("<I", int(rng.choice([0, 1, 2 ** 31, 2 ** 32 - 1]))) + p[off + 4 * i + 4:]
    return p


def _bytes_edit(p: bytes, rng) -> bytes:
    b = bytearray(p)
    what = rng.integers(0, 5)
    if what == 0 and b:
        for _ in range(int(rng.integers(1, 8))):
            b[int(rng.integers(0, len(b)))] ^= int(rng.integers(1, 256))
    elif what == 1:
        b = b[:int(rng.integers(0, len(b) + 1))]
    elif what == 2:
        b += bytes(rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8))
    elif what == 3:
        b = bytearray(len(b))
    elif b:
        i = int(rng.integers(0, len(b)))
        b[i:i] = b[:int(rng.integers(0, min(len(b), 256)))]
    return bytes(b)


def mutate(data: bytes, rng) -> bytes:
    from napari_microcomp import container, codecs

    if rng.random() < 0.1:
        return _bytes_edit(data, rng)    # raw damage: the container's own checks must catch it
    h, payloads = container.unpack(data)
    for _ in range(int(rng.integers(1, 4))):
        field = rng.integers(0, 9)
        if field == 0:
            shape = list(h.shape)
            i = int(rng.integers(0, len(shape)))
            shape[i] = int(rng.choice([1, 2, shape[i] * 2, shape[i] + 1, shape[i] - 1 or 1, 2 ** 16, 2 ** 30]))
            if rng.random() < 0.2:
                shape = shape[1:] if len(shape) == 3 else [int(rng.integers(1, 9))] + shape
            h.shape = shape
        elif field == 1:
            h.dtype = str(rng.choice(list(container.DTYPES) + ["int64", "float64", "bool"]))
        elif field == 2:
            h.layout = str(rng.choice(list(container.LAYOUTS) + ["zigzag"]))
        elif field == 3:
            key = str(rng.choice(list(h.norm) + ["kind", "offset", "scale", "lo", "hi", "shift", "mode"]))
            h.norm[key] = WEIRD[int(rng.integers(0, len(WEIRD)))]
        elif field == 4:
            key = str(rng.choice(list(h.codec) + ["threads", "tile", "quality", "weights_id", "lossless",
                                                  "weights", "refine", "level", "distance"]))
            if key == "id":
                h.codec["id"] = str(rng.choice(codecs.available_codecs() + ["nope"]))
            else:
                h.codec[key] = WEIRD[int(rng.integers(0, len(WEIRD)))]
        elif field == 5:
            # (Removing the checksum is not tried: a stream without one is the legacy v1 form, decoded
            # unchecked for compatibility; whoever can delete it could as well recompute it.)
            h.check["crc32"] = int(rng.integers(0, 2 ** 32))
        elif field == 6 and payloads:
            i = int(rng.integers(0, len(payloads)))
            payloads[i] = _learned_payload_edit(payloads[i], rng)
        elif field == 7 and payloads:
            i = int(rng.integers(0, len(payloads)))
            payloads[i] = _bytes_edit(payloads[i], rng)
        elif field == 8:
            what = rng.integers(0, 3)
            if what == 0 and payloads:
                payloads.pop(int(rng.integers(0, len(payloads))))
            elif what == 1 and payloads:
                payloads.append(payloads[int(rng.integers(0, len(payloads)))])
            elif len(payloads) > 1:
                payloads.reverse()
        h.meta["bits"] = h.meta.get("bits", 16) if rng.random() < 0.8 else WEIRD[int(rng.integers(0, len(WEIRD)))]
    return container.pack(h, payloads)


def main() -> int:
    args = arguments(1000)
    from napari_microcomp.codecs import decode

    seeds = make_seeds(Path(tempfile.mkdtemp(prefix="mcz-fuzz-")))
    rng = np.random.default_rng(args.seed)

    def case(k):
        name, data, ref = seeds[int(rng.integers(0, len(seeds)))]
        mut = mutate(data, np.random.default_rng([args.seed, k]))

        def attempt():
            out = decode(mut)
            if isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.shape == ref.shape \
                    and np.array_equal(out, ref, equal_nan=ref.dtype.kind == "f"):
                return None
            return f"wrong result {getattr(out, 'dtype', '?')}{getattr(out, 'shape', '?')}"
        return name, attempt

    run_cases(args, case, "exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
