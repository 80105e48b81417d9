"""Argument pieces the commands share: one wording, one place."""

OVERWRITE_HELP = "replace the output file if it exists"


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


def read_input(path, **select):
    """``io.read_image`` for a command: what it picked by default (channel 0 of several, ...) is said on stderr."""
    import sys

    from ..io import read_image

    array, meta = read_image(path, **select)
    for note in meta.get("notes", ()):
        print(f"note: {note}", file=sys.stderr)
    return array, meta
