"""Where each input of a many-file command goes: `compress a.tif b.tif folder/ --out-dir out/`."""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import InputError
from ..io import check_output, image_files


@dataclass
class Job:
    source: Path
    output: Path
    in_folder: bool    # found in a named folder (not named itself)


def plan(paths: Sequence[str], ext: str, out_dir: Optional[str], overwrite: bool) -> List[Job]:
    """``INPUT [OUTPUT.ext]`` or ``INPUT... [--out-dir DIR]``: one job per input file, every output checked first.

    An output is the input's name plus ``ext`` beside it, or in ``out_dir`` (a named folder's files keep their
    sub-folders there). Existing outputs are refused before anything is written, unless ``overwrite``."""
    paths = [Path(p) for p in paths]
    if len(paths) == 2 and paths[1].suffix.lower() == ext and not paths[1].is_dir():
        if out_dir:
            raise InputError(f"give either an output file or --out-dir, not both ({paths[1].name})")
        if paths[0].is_dir():
            raise InputError(f"{paths[0]} is a folder: name an --out-dir for its files, not one output file")
        return [Job(_existing(paths[0]), check_output(paths[1], overwrite), False)]
    if len(paths) == 2 and not paths[1].exists() and paths[1].suffix:
        raise InputError(f"output must end in {ext}, got {paths[1].name}")
    jobs: List[Job] = []
    for given in paths:
        if given.suffix.lower() == ext and not given.is_dir():
            raise InputError(f"{given.name}: an output file goes after a single input; with several inputs use "
                             "--out-dir")
        if given.is_dir():
            for f in image_files([given]):
                rel = f.relative_to(given)
                base = Path(out_dir) / rel if out_dir else f
                jobs.append(Job(f, base.with_name(base.name + ext), True))
        else:
            f = _existing(given)
            base = Path(out_dir) / f.name if out_dir else f
            jobs.append(Job(f, base.with_name(base.name + ext), False))
    seen = {}
    for j in jobs:
        key = j.output.resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {j.source} would both be written to {j.output}")
        seen[key] = j.source
        check_output(j.output, overwrite)
    return jobs


def _existing(p: Path) -> Path:
    if not p.is_file():
        raise InputError(f"file not found: {p}")
    return p


__all__ = ["Job", "plan"]
