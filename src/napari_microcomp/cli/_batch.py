"""Where each input of a many-file command goes: `compress a.tif b.tif folder/ --out-dir out/`."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence

from ..errors import InputError
from ..io import is_folder, regular_file
from ..io_checks import real_path
from ..io_write import check_output


@dataclass
class Job:
    source: Path
    output: Path
    in_folder: bool    # found in a named folder (not named itself)
    channel: Optional[int] = None   # under --channel all: the one this job reads


def per_channel(jobs: List[Job], count, overwrite: bool) -> List[Job]:
    """``--channel all``: each job as one job per channel of its input (``count(path) -> (n, names)``), writing
    ``NAME.cK.mcz``; every new output checked before anything is written."""
    out = []
    for j in jobs:
        try:
            n, _ = count(j.source)
        except InputError:
            if not j.in_folder:
                raise
            n = 1   # a stray file in a folder: its own job says why it is skipped
        if n == 1:
            out.append(j)
            continue
        stem, dot, ext = j.output.name.rpartition(".")
        for c in range(n):
            name = f"{stem}.c{c}.{ext}" if dot else f"{j.output.name}.c{c}"
            out.append(Job(j.source, check_output(j.output.with_name(name), overwrite), j.in_folder, c))
    return out


@dataclass
class Kind:
    """What a command reads and writes."""
    outputs: Sequence[str]                      # suffixes an output file may have
    output_name: Callable[[str], str]           # input file name -> output file name
    folder_files: Callable[[Path], Iterable[Path]]
    source: Callable[[Path], Path] = regular_file   # a named input as a Path, or a clear error


def plan(paths: Sequence[str], kind: Kind, out_dir: Optional[str], overwrite: bool,
         output: Optional[str] = None) -> List[Job]:
    """``INPUT [OUTPUT]``, ``INPUT -o OUTPUT`` or ``INPUT... [--out-dir DIR]``: one job per input file, every output
    checked first.

    An output is named by ``kind.output_name`` beside its input, or in ``out_dir`` (a named folder's files keep
    their sub-folders there). Existing outputs are refused before anything is written, unless ``overwrite``."""
    paths = [Path(p) for p in paths]
    if output is not None:
        paths = _with_output(paths, Path(output), kind)
    last = paths[-1]
    if len(paths) == 2 and _is_output(last, kind) and not last.is_dir():
        if out_dir:
            raise InputError(f"give either an output file or --out-dir, not both ({last.name})")
        if is_folder(paths[0]):
            raise InputError(f"{paths[0]} is a folder: name an --out-dir for its files, not one output file")
        return [Job(kind.source(paths[0]), check_output(last, overwrite), False)]
    if len(paths) == 2 and not last.exists() and last.suffix:
        raise InputError(f"output must end in {' or '.join(kind.outputs)}, got {last.name}")
    jobs: List[Job] = []
    for given in paths:
        if is_folder(given):
            try:
                found = list(kind.folder_files(given))
            except InputError as exc:
                if given == last and len(paths) > 1:   # `compress a.tif out/` meant an output folder
                    raise InputError(f"{exc}; to write the outputs into {given}, use --out-dir {given}") from exc
                raise
            for f in found:
                rel = f.relative_to(given)
                base = Path(out_dir) / rel if out_dir else f
                jobs.append(Job(f, base.with_name(kind.output_name(f.name)), True))
        elif _is_output(given, kind) and not given.exists():
            raise InputError(f"{given.name}: an output file goes after a single input; with several inputs use "
                             "--out-dir")
        else:
            f = kind.source(given)
            jobs.append(Job(f, (Path(out_dir) if out_dir else f.parent) / kind.output_name(f.name), False))
    if not jobs:
        raise InputError(f"nothing to do in {', '.join(map(str, paths))}")
    seen = {}
    for j in jobs:
        key = real_path(j.output)
        if key in seen and real_path(seen[key]) == real_path(j.source):
            raise InputError(f"{j.source} is named more than once")
        if key in seen:
            raise InputError(f"{seen[key]} and {j.source} would both be written to {j.output}")
        if key == real_path(j.source):
            raise InputError(f"{j.source} would be overwritten by its own output; use --out-dir")
        seen[key] = j.source
    for j in jobs:   # after the plan is known to be consistent: "exists" is not the first thing to fix
        check_output(j.output, overwrite)
    return jobs


def _with_output(paths: List[Path], output: Path, kind: Kind) -> List[Path]:
    """``-o OUTPUT`` as the positional output, checked so that it cannot be read as one more input."""
    if len(paths) != 1:
        raise InputError(f"-o/--output names the output of a single input, got {len(paths)} inputs; use --out-dir")
    if output.is_dir():
        raise InputError(f"-o/--output {output} is a folder; use --out-dir {output}")
    if not _is_output(output, kind):
        raise InputError(f"output must end in {' or '.join(kind.outputs)}, got {output.name}")
    return paths + [output]


def _is_output(p: Path, kind: Kind) -> bool:
    return p.name.lower().endswith(tuple(kind.outputs))


__all__ = ["Job", "Kind", "plan"]
