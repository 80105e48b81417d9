"""`microcomp advise`: the highest compression each codec reaches within a tolerance."""
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import IMAGE_SUFFIXES
from ..io_checks import real_path
from ..io_write import atomic_write_bytes, check_output
from ._args import CHANNEL_HELP, OVERWRITE_HELP, channel, command, names, read_inputs

_TOL_FLAGS = (("psnr", "DB", "PSNR floor in dB (against each image's value range)"),
              ("ssim", "X", "SSIM floor, e.g. 0.95"),
              ("ms_ssim", "X", "MS-SSIM floor (images ≥ 161 px)"),
              ("max_error", "V", "largest absolute error allowed, in data units"),
              ("r_drop", "X", "largest drop 1 − r between the label-free prediction from the reconstruction and "
                              "from the original (needs --labelfree)"),
              ("bpp", "B", "bits-per-pixel ceiling"))


def register(sub) -> None:
    p = command(sub, "advise", cmd_advise, "how hard can I compress? the highest compression per codec within a "
                                           "tolerance, ranked; optionally apply the best")
    p.add_argument("inputs", nargs="+", metavar="FILE", help="images or stacks, or folders of them (the worst case over all counts; a file in a "
                   "folder that cannot be read or coded is skipped, said, and the exit status is 1)")
    for name, metavar, text in _TOL_FLAGS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=float, metavar=metavar, help=text)
    p.add_argument("--labelfree", metavar="MODEL", help="label-free model name or file, for --r-drop")
    p.add_argument("--codecs", help="comma-separated codec names (default: every classical and lossless codec)")
    p.add_argument("--learned", action="store_true", help="also search the learned codecs (slower)")
    p.add_argument("--max-trials", type=int, default=10, help="encodes per codec and image set (default 10)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    p.add_argument("--plot", metavar="FILE.png", help="write the RD plot with the tolerance")
    p.add_argument("--apply", metavar="OUT_DIR", help="compress the inputs with the best setting into OUT_DIR")
    p.add_argument("--apply-format", choices=("mcz", "zarr"), default="mcz",
                   help="write .mcz streams (default) or Zarr arrays with the project's numcodecs codec")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--channel", type=channel, help=CHANNEL_HELP + " (the worst case over them)")
    p.add_argument("--scene", type=int, help="scene index (CZI/ND2, bioformats2raw OME-Zarr)")
    p.add_argument("--timepoint", type=int, help="time point index")


def _tolerance(args):
    from ..advise import Tolerance

    vals = {n: getattr(args, n) for n, _, _ in _TOL_FLAGS}
    if all(v is None for v in vals.values()):   # the library's message names fields, not flags
        raise InputError("give at least one tolerance, e.g. `microcomp advise FILE --ssim 0.95` "
                         "(or --psnr, --ms-ssim, --max-error, --r-drop with --labelfree, --bpp)")
    return Tolerance(**vals)


def _print(advice) -> None:
    tol = [k for k, _ in advice.tolerance.items() if k != "bpp"]
    head = f"{'#':>2} {'codec':26} {'setting':22} {'meets':5} {'CR':>9} {'bpp':>8} " + \
           " ".join(f"{'worst ' + k:>14}" for k in tol)
    print(f"tolerance: {advice.tolerance.describe()}")
    print(head)
    for i, r in enumerate(advice.rows, 1):
        vals = " ".join(f"{r.worst.get(k, float('nan')):>14.4g}" for k in tol)
        print(f"{i:>2} {r.codec:26} {r.setting:22} {'yes' if r.met else 'no':5} {r.compression_ratio:>9.2f} "
              f"{r.bpp:>8.4f} {vals}" + (f"  ({r.note})" if r.note else ""))
    print(advice.summary())
    for note in advice.notes:
        print(f"note: {note}", file=sys.stderr)


def _out_stem(src) -> str:
    """``cell.1.npy`` -> ``cell.1``, ``a.ome.tif`` -> ``a``, ``b.ome.zarr`` -> ``b``: only the image suffix goes."""
    name = Path(src).name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _outputs(inputs, out_dir: Path, fmt: str, overwrite: bool, channels=None):
    """One output path per input (``NAME.cK`` per channel under --channel all), all checked before anything is
    written (two inputs never share one)."""
    outs, seen = [], {}
    for src, c in zip(inputs, channels or [None] * len(inputs)):
        out = out_dir / f"{_out_stem(src)}{'' if c is None else f'.c{c}'}.{fmt}"
        if out in seen:
            raise InputError(f"{src} and {seen[out]} would both be written to {out}; rename one, or apply them "
                             "in separate runs")
        seen[out] = src
        if real_path(out) == real_path(src):   # b.zarr applied as zarr into its own folder
            raise InputError(f"{out} is the input itself; apply into another folder")
        if out.exists() and not overwrite:
            raise InputError(f"{out} exists; pass --overwrite to replace it")
        outs.append(out)
    return outs


def _check_apply(arrays, fmt: str) -> None:
    if fmt == "zarr":
        from ..zarr_codecs import DTYPE_NAMES, DTYPES

        for a, meta in arrays:
            if np.dtype(a.dtype).type not in DTYPES:
                raise InputError(f"{Path(meta.get('source', 'an input')).name}: a Zarr array cannot store "
                                 f"{a.dtype} with microcomp codecs ({DTYPE_NAMES}); use --apply-format mcz")


def _zarr_miss(advice, array, out, stored: int, model) -> str:
    """What the Zarr array written misses of the tolerance ('' if nothing): each chunk is normalised on its
    own, so the advised setting can land elsewhere there than on the whole image it was measured on."""
    from ..advise import image_metrics
    from ..zarr_codecs import open_zarr

    back = open_zarr(out)[...]
    needed = [k for k, _ in advice.tolerance.items()]
    pred = model.predict(array) if model is not None and "r_drop" in needed else None
    m = image_metrics(array, back, stored, needed, model, pred)
    if advice.tolerance.met(m):
        return ""
    return ", ".join(f"{k} {m.get(k, float('nan')):.4g}" for k in needed)


def _apply(advice, arrays, outs, fmt: str, overwrite: bool, model=None) -> int:
    codec = advice.winner_codec()
    outs[0].parent.mkdir(parents=True, exist_ok=True)
    missed = 0
    for (array, meta), out in zip(arrays, outs):
        if fmt == "zarr":
            from ..zarr_codecs import compress_to_zarr

            res = compress_to_zarr(array, str(out), codec, overwrite=overwrite)
            miss = _zarr_miss(advice, array, out, res["stored_bytes"], model)
            if miss:
                missed += 1
                print(f"warning: {out} misses the tolerance ({advice.tolerance.describe()}): {miss}; its chunks "
                      "are coded one by one; use --apply-format mcz for the measured result", file=sys.stderr)
        else:
            out = check_output(out, overwrite)
            keep = {k: v for k, v in meta.items() if k in ("pixel_size", "channel_names", "channel", "scene",
                                                            "source")}
            data = codec.encode(array, meta=keep)
            atomic_write_bytes(out, data)
            out = f"{out} (CR {array.nbytes / len(data):.2f} with its metadata)"
        print(f"wrote {out}: {codec.label}")
    return missed


def cmd_advise(args) -> int:
    from .._progress import drain
    from ..advise import default_codecs, iter_advise
    from .. import advise_report

    tol = _tolerance(args)
    for path in (args.json, args.markdown, args.plot):
        if path:
            check_output(path, args.overwrite)
    if args.max_trials < 1:
        raise InputError("--max-trials must be at least 1")
    items, skipped = read_inputs(args.inputs, channel=args.channel, scene=args.scene, timepoint=args.timepoint)
    for line in skipped:
        print(f"note: {line}", file=sys.stderr)
    args.inputs = [p for p, _, _ in items]
    arrays = [(a, meta) for _, a, meta in items]
    labels = [meta.get("label") or Path(p).name for p, _, meta in items]
    outs = None
    if args.apply:   # every output checked before the search, not after it
        _check_apply(arrays, args.apply_format)
        outs = _outputs(args.inputs, Path(args.apply), args.apply_format, args.overwrite,
                        [meta.get("channel") if "label" in meta else None for _, meta in arrays])
    codecs = names(args.codecs) if args.codecs else \
        default_codecs(learned=args.learned)
    model = None
    if args.labelfree:
        from ..labelfree import load_model

        model = load_model(args.labelfree)
    advice = drain(iter_advise([a for a, _ in arrays], tol, codecs, labelfree_model=model,
                               max_trials=args.max_trials, names=labels),
                   desc="advise")
    _print(advice)
    if args.json:
        print(f"wrote {advise_report.export_json(advice, args.json)}")
    if args.markdown:
        print(f"wrote {advise_report.export_markdown(advice, args.markdown)}")
    if args.plot:
        print(f"wrote {advise_report.export_plot(advice, args.plot)}")
    missed = _apply(advice, arrays, outs, args.apply_format, args.overwrite, model) if args.apply else 0
    if skipped:
        print(f"microcomp advise: {len(skipped)} file(s) skipped ({skipped[0]})", file=sys.stderr)
    return 1 if skipped or missed else 0
