"""`microcomp codecs | compress | decompress | info`."""
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import codecs as _codecs
from .. import container
from ..errors import CodecError, InputError, MicrocompError, out_of_memory_message
from ..io import IMAGE_SUFFIXES, READ_FORMATS, image_files, image_source, is_folder, regular_file
from ..io_checks import real_path
from ..io_write import atomic_write_bytes, write_image
from ..weights.locate import PROVISIONAL_NOTE
from ._args import CHANNEL_HELP, OVERWRITE_HELP, channel, command, read_input

EXT = ".mcz"


def register(sub) -> None:
    p = command(sub, "codecs", cmd_codecs, "list codecs, their quality 1–8 mapping and availability")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command(sub, "compress", cmd_compress, "compress image files to .mcz streams",
                description=f"INPUT [OUTPUT{EXT}] compresses one file; several inputs or folders compress each image "
                            f"to its own INPUT{EXT}, beside it or in --out-dir (a file there that cannot be read or "
                            "coded is skipped, said, and the exit status is 1).")
    p.add_argument("paths", nargs="+", metavar="INPUT",
                   help=f"{READ_FORMATS}, or folders of them; "
                        f"after a single input, optionally the output {EXT} file (default: INPUT{EXT})")
    p.add_argument("--output", "-o", metavar=f"OUTPUT{EXT}", help="the output file of a single input (the same as "
                                                                  "naming it after the input)")
    p.add_argument("--out-dir", metavar="DIR", help=f"write the {EXT} files here (a folder's files keep their "
                                                    "sub-folders)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--codec", "-c", default="jpegxl", help="codec name (see `microcomp codecs`)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quality", "-q", type=int, help="1 (smallest) … 8 (best); default 4")
    g.add_argument("--lossless", action="store_true", help="lossless mode where the codec has one")
    g.add_argument("--target", help="rate control: psnr=40, ssim=0.95, bpp=0.5 or cr=20 (a target no setting meets: "
                                     "the closest is written, said, and the exit status is 1)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="native codec parameter for experts, e.g. --param distance=1.5")
    p.add_argument("--weights", help="learned codecs: auto (default: by the image's modality), transmitted, "
                                     "fluorescence, or a weight file")
    p.add_argument("--refine", type=int, metavar="N",
                   help="learned codecs: N steps of encode-time latent refinement (slower encode, smaller/better "
                        "stream, same decoder)")
    p.add_argument("--channel", type=channel, help=CHANNEL_HELP + " (one NAME.cK.mcz per channel)")
    p.add_argument("--scene", type=int, help="scene index (CZI/ND2, bioformats2raw OME-Zarr)")
    p.add_argument("--timepoint", type=int, help="time point index")
    p.add_argument("--zarr", metavar="OUT.zarr", help="write a chunked zarr array with this codec instead")
    p.add_argument("--chunks", help="zarr chunk shape, e.g. 1,512,512")
    p.add_argument("--no-metrics", action="store_true", help="skip the decode + metrics step")

    p = command(sub, "decompress", cmd_decompress, "decode .mcz streams to TIFF/OME-TIFF or NPY",
                description=f"INPUT{EXT} OUTPUT decodes one stream; several streams or folders of them decode each "
                            f"to its name without {EXT} (a.tif.mcz -> a.tif; else NAME.tif), best in --out-dir (a "
                            "stream that cannot be decoded is skipped, said, and the exit status is 1).")
    p.add_argument("paths", nargs="+", metavar="INPUT",
                   help=f"{EXT} files or folders of them, or zarr arrays written by `compress --zarr`; after a "
                        "single input, the output .tif / .ome.tif / .npy")
    p.add_argument("--output", "-o", metavar="OUTPUT", help="the output file of a single input (the same as naming "
                                                            "it after the input)")
    p.add_argument("--out-dir", metavar="DIR", help="write the images here (a folder's files keep their sub-folders)")
    p.add_argument("--format", choices=("tif", "npy"), help="output type (default: the output name's, else the "
                                                            "input name's, else tif)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-verify", action="store_true",
                   help="data rescue: write the reconstruction even if it does not match the checksum its encoder "
                        "recorded (a stream from a computer whose decoder rounds a few pixels differently)")

    p = command(sub, "info", cmd_info, "show the header of a .mcz stream, or what an image file holds (its "
                                       "scenes, axes, channels and pixel size)")
    p.add_argument("input")
    p.add_argument("--json", action="store_true")


def _parse_params(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise CodecError(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _parse_chunks(text: str):
    try:
        chunks = tuple(int(c) for c in text.split(","))
    except ValueError:
        chunks = ()
    if not chunks or min(chunks) < 1:
        raise InputError(f"--chunks must be comma-separated positive integers (e.g. 1,512,512), got {text!r}")
    return chunks


def codec_table() -> List[Dict[str, Any]]:
    """One row per registered codec: name, family, availability, native parameter, quality table."""
    rows = []
    for name in _codecs.available_codecs(include_unavailable=True):
        cls = _codecs.codec_class(name)
        row = {"name": name, "family": cls.family, "available": cls.available(),
               "native": cls.native_param or ("λ" if hasattr(cls, "weights_available") else "-"),
               "meaning": cls.native_meaning,
               "lossless": "only" if cls.lossless_only else ("yes" if cls.supports_lossless else "no"),
               "qualities": {} if cls.lossless_only else {str(q): v for q, v in cls.quality_table.items()},
               "relative": bool(getattr(cls, "relative_native", False)),
               "description": cls.description}
        found = getattr(cls, "weights_available", None)  # learned/volumetric: levels with weight files
        if callable(found):
            w = found()
            row.update(weights=sorted(w), weights_source={str(q): src for q, src in w.items()})
        rows.append(row)
    return rows


def _fmt(v: Any, relative: bool = False) -> str:
    if relative:  # a fraction of the image range
        return f"R/{round(1 / v)}"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_codecs(args) -> int:
    rows = codec_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'codec':26} {'family':11} {'avail':5} {'lossless':8} {'native':10} quality 1 … 8")
    for r in rows:
        qs = " ".join(_fmt(v, r["relative"]) for v in r["qualities"].values()) or "-"
        weights = f"  weights: q{','.join(map(str, r['weights']))}" if r.get("weights") else ""
        if "provisional" in (r.get("weights_source") or {}).values():
            weights += f" ({PROVISIONAL_NOTE})"
        print(f"{r['name']:26} {r['family']:11} {'yes' if r['available'] else 'no':5} {r['lossless']:8} "
              f"{r['native']:10} {qs}{weights}")
    print("\nR = the image's value range (max - min). Native parameters:")
    for r in rows:
        if r["meaning"] and r["qualities"]:
            print(f"  {r['name']:24} {r['native']}: {r['meaning']}")
    return 0


def _print_metrics(m: Dict[str, Any]) -> None:
    import math

    from ..advise import MIN_SIDE

    keys = ["compressed_bytes", "compression_ratio", "bpp", "mse", "psnr", "ssim", "ms_ssim", "pearson_r",
            "mean_error"]
    shown = {k: m[k] for k in keys if k in m}
    undefined = [k for k, v in shown.items() if isinstance(v, float) and math.isnan(v)]
    print("  ".join(f"{k}=n/a" if k in undefined else f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in shown.items()))
    for k in undefined:   # "nan" read as a failure; say why there is no value
        why = f"undefined below {MIN_SIDE[k]} px a side" if k in MIN_SIDE else "undefined for this image"
        print(f"  ({k}: {why})")


def cmd_compress(args) -> int:
    from . import _batch

    if args.chunks is not None and not args.zarr:
        raise InputError("--chunks sets the chunks of a --zarr array; give --zarr OUT.zarr too")
    chunks = _parse_chunks(args.chunks) if args.zarr and args.chunks is not None else None  # before the read
    params = _parse_params(args.param)
    for key in ("weights", "refine"):
        if getattr(args, key, None) is not None:
            params[key] = getattr(args, key)
    _codecs.get_codec(args.codec, quality=args.quality, lossless=args.lossless, **params)  # a bad codec: now
    if args.zarr:
        if len(args.paths) != 1 or args.out_dir or args.output or is_folder(args.paths[0]):
            raise InputError("--zarr writes one array: give one input file (and no -o/--out-dir)")
        if args.channel == "all":
            raise InputError("--zarr writes one array, --channel all one stream per channel: pick one channel "
                             "for --zarr, or drop --zarr")
        if args.target:   # each chunk is its own stream: one setting for all, no search over the whole
            raise InputError("--target does not work with --zarr; give --quality (or find it first with "
                             "`microcomp advise`)")
        if real_path(args.zarr) == real_path(args.paths[0]):
            raise InputError(f"{args.zarr} is the input itself; write the zarr array elsewhere")
        if Path(args.zarr).exists() and not args.overwrite:
            raise InputError(f"{args.zarr} exists; pass --overwrite to replace it")
        array, _ = read_input(args.paths[0], channel=args.channel, scene=args.scene, timepoint=args.timepoint)
        from ..zarr_codecs import compress_to_zarr

        codec = _codecs.get_codec(args.codec, quality=args.quality, lossless=args.lossless, **params)
        compress_to_zarr(array, args.zarr, codec, chunks=chunks, overwrite=args.overwrite)
        print(f"wrote {args.zarr} ({codec.label}, shape {array.shape})")
        return 0
    jobs = _batch.plan(args.paths, _batch.Kind((EXT,), lambda name: name + EXT, lambda d: image_files([d]),
                                               image_source), args.out_dir, args.overwrite, args.output)
    if args.channel == "all":
        from ..io import channel_count

        jobs = _batch.per_channel(jobs, lambda f: channel_count(f, args.scene, args.timepoint), args.overwrite)
    if len(jobs) == 1 and not jobs[0].in_folder:
        return 0 if _compress_one(args, jobs[0], params)[2] else 1
    skipped, missed, done, raw, coded = [], [], 0, 0, 0
    for job in jobs:
        try:
            n_in, n_out, met = _compress_one(args, job, dict(params))
        except (MicrocompError, MemoryError) as exc:
            why = out_of_memory_message(exc) if isinstance(exc, MemoryError) else str(exc)
            skipped.append(f"{job.source}: {why}")
            print(f"skipped {job.source}: {why}", file=sys.stderr)
            continue
        done, raw, coded = done + 1, raw + n_in, coded + n_out
        missed += [] if met else [str(job.source)]
    ratio = f", CR {raw / coded:.2f}" if coded else ""
    what = "image(s)" if args.channel == "all" else "file(s)"   # one per channel
    print(f"compressed {done} of {len(jobs)} {what}: {raw / 1e6:.1f} MB of pixels in {coded / 1e6:.2f} MB{ratio}")
    if skipped:
        print(f"microcomp compress: {len(skipped)} {what} skipped (first: {skipped[0]})", file=sys.stderr)
    if missed:
        print(f"microcomp compress: {len(missed)} file(s) missed --target {args.target} (first: {missed[0]})",
              file=sys.stderr)
    return 1 if skipped or missed else 0


def _compress_one(args, job, params: Dict[str, Any]):
    """Compress one job's input to its output; return (pixel bytes, stream bytes, whether a --target was met)."""
    from ..api import compress_array

    out = job.output
    array, meta = read_input(job.source, channel=job.channel if args.channel == "all" else args.channel,
                             scene=args.scene, timepoint=args.timepoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in meta.items()
            if k in ("pixel_size", "channel_names", "channel", "scene", "timepoint", "source")}
    if args.lossless:
        params["lossless"] = True
    if args.no_metrics and not args.target:   # a target needs the decode: it is measured
        codec = _codecs.get_codec(args.codec, quality=args.quality, **params)
        data = codec.encode(array, meta=keep)
        atomic_write_bytes(out, data)
        print(f"wrote {out} ({codec.label}, {len(data)} bytes)")
        return array.nbytes, len(data), True
    res = compress_array(array, args.codec, quality=args.quality, target=args.target, meta=keep,
                         with_ms_ssim=not args.no_metrics, **params)
    atomic_write_bytes(out, res.data)
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out}: {res.codec.label}, shape {list(array.shape)} {array.dtype}, "
          f"encode {res.encode_seconds:.2f}s, decode {res.decode_seconds:.2f}s")
    if res.target:
        t = res.target
        print(f"target {t['target']}={t['value']:g}: achieved {t['achieved']:.4g} "
              f"({'met' if t['met'] else 'NOT met, closest setting used'}, {t['trials']} trials)")
    if args.no_metrics:
        return array.nbytes, len(res.data), bool(res.target["met"])
    _print_metrics(res.metrics)
    if array.ndim == 3:
        from ..metrics import per_slice
        ps = per_slice(array, res.reconstruction)
        print("per-slice PSNR: " + " ".join(f"{v:.1f}" for v in ps["psnr"]))
    return array.nbytes, len(res.data), not res.target or bool(res.target["met"])


_IMAGE_OUT = (".ome.tif", ".tif", ".tiff", ".npy")


def _decoded_name(name: str, fmt: Optional[str]) -> str:
    """a.tif.mcz -> a.tif (or a.npy with ``fmt="npy"``); x.mcz -> x.tif."""
    stem = name[: -len(EXT)] if name.lower().endswith(EXT) else name
    own = next((e for e in _IMAGE_OUT if stem.lower().endswith(e)), None)
    if own and (fmt is None or own.endswith(fmt)):
        return stem
    return (stem[: -len(own)] if own else stem) + "." + (fmt or "tif")


def _hidden(f: Path, folder: Path) -> bool:
    """A dot-file, or a file in a dot-folder (.git, .ipynb_checkpoints) below ``folder``: skipped in a walk."""
    return any(part.startswith(".") for part in f.relative_to(folder).parts)


def cmd_decompress(args) -> int:
    from . import _batch

    kind = _batch.Kind(_IMAGE_OUT, lambda name: _decoded_name(name, args.format),
                       lambda d: sorted(f for f in d.rglob("*" + EXT) if f.is_file() and not _hidden(f, d)),
                       _coded_source)
    jobs = _batch.plan(args.paths, kind, args.out_dir, args.overwrite, args.output)
    named = args.output is not None or (len(args.paths) == 2 and jobs[0].output == Path(args.paths[1]))
    if named and args.format and not jobs[0].output.name.lower().endswith("." + args.format):
        raise InputError(f"--format {args.format} contradicts the output name {jobs[0].output.name}: "
                         "give one or the other")
    if len(jobs) == 1 and not jobs[0].in_folder:
        _decompress_one(jobs[0].source, jobs[0].output, not args.no_verify)
        return 0
    skipped = []
    for job in jobs:
        try:
            _decompress_one(job.source, job.output, not args.no_verify)
        except (MicrocompError, MemoryError) as exc:
            why = out_of_memory_message(exc) if isinstance(exc, MemoryError) else str(exc)
            skipped.append(f"{job.source}: {why}")
            print(f"skipped {job.source}: {why}", file=sys.stderr)
    print(f"decompressed {len(jobs) - len(skipped)} of {len(jobs)} file(s)")
    if skipped:
        print(f"microcomp decompress: {len(skipped)} file(s) skipped (first: {skipped[0]})", file=sys.stderr)
        return 1
    return 0


def _coded_source(p: Path) -> Path:
    """A ``.mcz`` file, or a zarr array written by ``compress --zarr`` (its chunks are microcomp streams)."""
    from ..io_zarr import is_zarr, zarr_compressor

    if not is_zarr(p):
        return regular_file(p)
    comp = zarr_compressor(p) if (p / ".zarray").is_file() else "group"
    if comp != "microcomp":
        what = "an OME-Zarr image or zarr group" if comp == "group" else f"a zarr array of {comp or 'raw'} chunks"
        raise InputError(f"{p.name} is {what}, not microcomp streams; `microcomp compress` codes it")
    return p


def _decompress_zarr(source: Path, out: Path) -> None:
    from ..io_checks import check_declared
    from ..zarr_codecs import open_zarr

    z = open_zarr(source)
    check_declared(source.name, z.shape, z.dtype)
    try:
        array = z[...]
    except MicrocompError:
        raise
    except Exception as exc:   # zarr wraps nothing: a damaged chunk raises what its decoder raised
        raise InputError(f"{source.name}: {type(exc).__name__}: {str(exc)[:200]}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, array)
    print(f"wrote {out}: {array.dtype}{list(array.shape)} from the microcomp zarr array {source.name}")


def _decompress_one(source: Path, out: Path, verify: bool) -> None:
    import warnings

    if source.is_dir():   # a zarr array of microcomp streams (``_coded_source``)
        return _decompress_zarr(source, out)
    data = source.read_bytes()
    header = _codecs.info(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for noise in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", noise)   # torch/compressai's, not about this file
        array = _codecs.decode(data, verify=verify)
    for w in caught:
        print(f"warning: {source.name}: {w.message}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_image(out, array, header.get("meta"))
    print(f"wrote {out}: {array.dtype}{list(array.shape)} from {header['codec']['id']}")


def cmd_info(args) -> int:
    p = image_source(args.input)
    if p.is_dir() or (p.suffix.lower() in IMAGE_SUFFIXES and not container.is_stream(p)):
        from ..io_describe import describe_image, format_description

        d = describe_image(p)
        print(json.dumps(d, indent=2) if args.json else "\n".join(format_description(d)))
        return 0
    data = p.read_bytes()
    d = _codecs.info(data)
    container.unpack(data)  # the payloads too: a truncated or corrupted file is reported, not described
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"file:       {p} ({d['total_bytes']} bytes: header {d['header_bytes']}, payload {d['payload_bytes']})")
    print(f"format:     microcomp container v{d['format_version']}")
    print(f"codec:      {json.dumps(d['codec'])}")
    print(f"array:      {d['dtype']} {d['shape']}  layout={d['layout']} ({len(d['payloads'])} payload(s))")
    if d["norm"]:
        print(f"norm:       {json.dumps(d['norm'])}")
    if d["check"]:
        print(f"check:      {json.dumps(d['check'])}")
    tiles = d["meta"].get("tiles")
    if tiles:
        print(f"tiling:     {json.dumps(tiles) if not isinstance(tiles, list) else f'{len(tiles)} tiles'}")
    meta = {k: v for k, v in d["meta"].items() if k != "tiles"}
    if meta:
        print(f"meta:       {json.dumps(meta)}")
    return 0
