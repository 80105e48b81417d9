"""What the damaged-input benchmarks (``outliers.py``, ``bad_frame.py``) share: their command line and inputs."""
import argparse
from pathlib import Path
from typing import List, Sequence

ROOT = Path(__file__).resolve().parents[1]


def parser(doc: str, codecs: Sequence[str], quality: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("files", nargs="*")
    p.add_argument("--quality", type=int, default=quality)
    p.add_argument("--codecs", nargs="+", default=list(codecs))
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=None)
    return p


def input_files(args: argparse.Namespace, default: Sequence[str]) -> List[str]:
    """The files given, else the default ones under ``--data``."""
    return args.files or [str(Path(args.data) / f) for f in default]
