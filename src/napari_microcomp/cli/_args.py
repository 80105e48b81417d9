"""Argument pieces the commands share: one wording, one place."""
import argparse

OVERWRITE_HELP = "replace the output file if it exists"


def names(values) -> list:
    """``--codecs a,b c``: names given with commas, spaces or both (benchmark took only spaces, advise commas)."""
    if isinstance(values, str):
        values = [values]
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


class Ints(argparse.Action):
    """``nargs="+"`` integers given with spaces, commas or both (``--qualities 2,6`` as ``--codecs a,b`` and
    ``--chunks 1,512,512``; only spaces were taken)."""

    def __call__(self, parser, namespace, values, option_string=None):
        out = []
        for token in (t.strip() for v in values for t in v.split(",")):
            try:
                out.append(int(token)) if token else None
            except ValueError:
                raise argparse.ArgumentError(self, f"invalid integer {token!r}") from None
        if not out:
            raise argparse.ArgumentError(self, "expected at least one integer")
        setattr(namespace, self.dest, out)


CHANNEL_HELP = "channel index of multi-channel files (CZI/ND2/OME-Zarr/OME-TIFF, RGB samples), or 'all'"


def channel(value: str):
    """``--channel``: an index (negative counts from the end) or ``all`` (every channel, one image each)."""
    if value.strip().lower() == "all":
        return "all"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a channel index or 'all', got {value!r}") from None


def channel_label(path, c: int, names) -> str:
    """How channel ``c`` of ``path`` is named when every channel is read: ``cells.nd2 c1 DAPI``."""
    from pathlib import Path

    return f"{Path(path).name} c{c}" + (f" {names[c]}" if c < len(names) else "")


def each_channel(path, channel, scene=None, timepoint=None):
    """The channel indices to read from ``path``: ``[channel]``, or every channel for ``"all"`` (``[None]``
    when the file has one), with the file's channel names."""
    if channel != "all":
        return [channel], []
    from ..io import channel_count

    n, names = channel_count(path, scene, timepoint)
    return (list(range(n)) if n > 1 else [None]), names


def command(sub, name: str, func, help: str, description: str = None):
    """A subcommand whose ``func(args) -> int`` runs it."""
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def in_out(p, input_help: str = None, output_help: str = None, optional_output: bool = False) -> None:
    """INPUT, OUTPUT and --overwrite (outputs are never replaced silently)."""
    p.add_argument("input", help=input_help)
    p.add_argument("output", nargs="?" if optional_output else None, help=output_help)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def run_args(p, ckpt_every: int, log_every: int, out_help: str) -> None:
    """What every trainer takes: device, budget, output, checkpoints, resume, seed, logging, threads."""
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops cleanly, then exports")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--ckpt", default=None, help="full checkpoint for --resume, written atomically "
                                                "(every --ckpt-every steps and at the end)")
    p.add_argument("--ckpt-every", type=int, default=ckpt_every)
    p.add_argument("--resume", default=None, help="continue from this checkpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=log_every)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 with cuda)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (a --resume run may always write its own)")


def check_train_out(out, args) -> None:
    """Refuse, before training starts, to replace a weight file that exists: it may hold hours of training."""
    from pathlib import Path

    from ..errors import InputError

    if out and Path(out).exists() and not (args.overwrite or args.resume):
        raise InputError(f"{out} exists; pass --overwrite to replace it (or --resume the run that wrote it)")


def read_input(path, **select):
    """``io.read_image`` for a command: what it picked by default (channel 0 of several, ...) is said on stderr."""
    import sys

    from ..io import read_image

    array, meta = read_image(path, **select)
    for note in meta.get("notes", ()):
        print(f"note: {note}", file=sys.stderr)
    return array, meta


def read_inputs(paths, allow_3d: bool = True, **select):
    """Read the named files and the images of the named folders: ``([(path, array, meta)], skipped)``.

    A named file that cannot be read or coded (damaged, RGB, a mask, ...) is an error that names it; one found in
    a folder is skipped with a line in ``skipped``, so that one stray file does not stop a folder's run."""
    from pathlib import Path

    from .._validate import check_image
    from ..errors import InputError
    from ..io import image_files, is_folder

    out, skipped = [], []
    for given in map(Path, paths):
        in_folder = is_folder(given)
        for p in image_files([given]):
            try:
                chans, names = each_channel(p, select.get("channel"), select.get("scene"), select.get("timepoint"))
                read = []
                for c in chans:
                    array, meta = read_input(p, **{**select, "channel": c})
                    check_image(array, allow_3d=allow_3d)
                    if len(chans) > 1:
                        meta["label"] = channel_label(p, c, names)
                    read.append((str(p), array, meta))
            except InputError as exc:
                if not in_folder:
                    raise InputError(f"{p.name}: {exc}" if p.name not in str(exc) else str(exc)) from None
                skipped.append(f"skipped {p}: {exc}")
                continue
            out += read
    if not out:
        raise InputError("no readable single-channel image in " + ", ".join(map(str, paths))
                         + (f" ({len(skipped)} skipped; first: {skipped[0]})" if skipped else ""))
    return out, skipped
