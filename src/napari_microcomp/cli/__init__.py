"""`microcomp` command line: ``main(argv) -> int``.

Each subcommand lives in its own module exposing ``register(subparsers)``; the parser's
``func(args) -> int`` runs it. Project errors print one clear line (no traceback) and exit 2.
"""
import argparse
import importlib
import os
import sys
from typing import List, Optional

from ..errors import MicrocompError, out_of_memory_message

# One module per command group; each defines register(subparsers).
COMMAND_MODULES = [
    "napari_microcomp.cli.codec_commands",   # codecs, compress, decompress, info
    "napari_microcomp.cli.labelfree",        # predict, train-labelfree
    "napari_microcomp.cli.train_codec",      # train-codec
    "napari_microcomp.cli.train_zoo",        # train-zoo (the campaign)
    "napari_microcomp.cli.benchmark",        # benchmark
    "napari_microcomp.cli.advise",           # advise (issue 13)
    "napari_microcomp.cli.tiled_commands",   # compress-tiled, decompress-tiled (issue 4)
]


class _IntermixedParser(argparse.ArgumentParser):
    """A subcommand parser that takes options between positionals (``compress in.tif --channel 1 out.mcz``);
    plain argparse stops at the first option and then calls ``out.mcz`` unrecognised."""
    _mixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._mixing:   # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microcomp",
        description="Compress microscopy images with classical and learned codecs and measure what it costs.")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_IntermixedParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _exit_cleanly_on_sigterm():
    """SIGTERM unwinds like Ctrl-C, so temporary files are removed and nothing half-written stays behind.

    Returns a function that restores the previous handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return lambda: None

    def _term(signum, frame):
        raise KeyboardInterrupt("terminated")
    prev = signal.signal(signal.SIGTERM, _term)
    return lambda: signal.signal(signal.SIGTERM, prev)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if "" in argv:   # `microcomp compress "$F"` with F unset would read "" as "." and walk the current folder
        i = argv.index("")
        what = f"{argv[i - 1]} is given" if i and argv[i - 1].startswith("-") else f"argument {i + 1} is"
        print(f"microcomp: error: {what} an empty value (an unset shell variable?)", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    restore = _exit_cleanly_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except MicrocompError as exc:
        if args.verbose:
            raise
        print(f"microcomp {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except BrokenPipeError:   # the reader stopped reading (`| head`): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # else Python's exit flush prints the error again
        return 141
    except OSError as exc:   # unwritable folder, full disk, missing path: one line, not a traceback
        if args.verbose:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"microcomp {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except MemoryError as exc:   # a numpy allocation the machine cannot hold: one line and the way round it
        if args.verbose:
            raise
        print(f"microcomp {args.command}: error: {out_of_memory_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
