"""The layer contract (issue 14), checked by parsing every module's imports, lazy ones included.

Lowest first; a module may import its own layer and the layers below, never above::

    0 errors, _progress, _validate, _triton_guard, slice_ranges, modality, strips, memory, the package itself
    1 container, outliers, io, io_checks, io_lsm, io_lif, io_dv, io_oib, cfb_check, io_planes, io_describe, io_zarr, io_zarr3, io_zarr_raw, io_write, codestreams, tiff_check, czi_check, metrics, bdrate, tiling, samples, datasets
    2 models                       (architectures: CompressAI 1-channel, 3D, label-free nets)
    3 weights                      (finding, loading, exporting, downloading weight files)
    4 codecs                       (every codec, the tiling wrapper included)
    5 ratecontrol, advise, api, zarr_codecs, tiled (files tile by tile)
    6 benchmark, labelfree, training, advise_report, jobs, _jobhost (the docks' work, in a worker process)
    7 cli, _qt, _reader, _writer, _sample_data   (the user interfaces and npe2 entry points)

Qt and napari may only be imported by layer 7's GUI modules, and the module graph has no cycles.
"""
import ast
from pathlib import Path
from typing import Dict, Set

PKG = Path(__file__).resolve().parents[2] / "src" / "napari_microcomp"
LAYERS = {
    0: ("errors", "_progress", "_validate", "_triton_guard", "slice_ranges", "modality", "strips", "memory", ""),
    1: ("container", "outliers", "io", "io_checks", "io_lsm", "io_lif", "io_dv", "io_oib", "cfb_check", "io_planes", "io_describe", "io_zarr", "io_zarr3", "io_zarr_raw", "io_write", "codestreams", "tiff_check", "czi_check", "metrics", "bdrate", "tiling", "samples", "datasets"),
    2: ("models",),
    3: ("weights",),
    4: ("codecs",),
    5: ("ratecontrol", "advise", "api", "zarr_codecs", "tiled"),
    6: ("benchmark", "labelfree", "training", "advise_report", "jobs", "_jobhost"),
    7: ("cli", "_qt", "_reader", "_writer", "_sample_data"),
}
GUI = ("_qt", "_reader", "_writer", "_sample_data")
QT = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "superqt", "vispy")
# Debts still being paid off (issue 14); the list may only shrink.
KNOWN: Set[str] = set()
KNOWN_CYCLES: list = []


def _name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Set[str]:
    """Every napari_microcomp module (relative name) and third-party top package ``path`` imports."""
    mod = _name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".") if pkg else []
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                out.add("napari_microcomp" + ("." + target if target else ""))
                out.update(f"napari_microcomp.{target + '.' if target else ''}{a.name}" for a in node.names)
            else:
                out.add(node.module or "")
                out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.startswith("napari_microcomp.") and node.value.replace(".", "").replace("_", "").isalnum():
            out.add(node.value)   # a module named in a string, imported by importlib somewhere
    return out


def _modules() -> Dict[str, Set[str]]:
    mods = {_name(p): _imports(p) for p in PKG.rglob("*.py")}
    known = set(mods)
    graph = {}
    for m, imps in mods.items():
        deps = set()
        for i in imps:
            if i == "napari_microcomp" or i.startswith("napari_microcomp."):
                rel = i[len("napari_microcomp."):] if i != "napari_microcomp" else ""
                while rel and rel not in known:          # "pkg.mod.Name" -> "pkg.mod"
                    rel = rel.rpartition(".")[0]
                if rel != m:
                    deps.add(rel)
            else:
                deps.add("ext:" + i.split(".")[0])
        graph[m] = deps
    return graph


def _layer(mod: str) -> int:
    top = mod.split(".")[0]
    for n, names in LAYERS.items():
        if top in names:
            return n
    raise AssertionError(f"module {mod!r} is in no layer: add its package to LAYERS (and to the docstring)")


def test_every_module_has_a_layer():
    for m in _modules():
        _layer(m)


def test_no_upward_imports():
    bad = sorted(f"{m} -> {d}" for m, deps in _modules().items() for d in deps
                 if not d.startswith("ext:") and _layer(d) > _layer(m))
    new = [b for b in bad if b not in KNOWN]
    assert not new, "upward imports:\n" + "\n".join(new)



def test_qt_and_napari_only_in_the_gui_modules():
    bad = sorted(f"{m} -> {d[4:]}" for m, deps in _modules().items() for d in deps
                 if d.startswith("ext:") and d[4:] in QT and m.split(".")[0] not in GUI)
    assert not bad, bad


def test_no_import_cycles():
    graph = {m: {d for d in deps if not d.startswith("ext:")} for m, deps in _modules().items()}
    # a package's __init__ re-exporting its submodules is not a cycle with them
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not (d and m.startswith(d + ".")) and not (m and d.startswith(m + "."))
                    and not (m == "" or d == "")}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"



def test_modules_and_functions_stay_small():
    """Modules ≤ 400 lines, functions ≤ 80 (issue 14): split by concern before adding more."""
    big = []
    for p in PKG.rglob("*.py"):
        text = p.read_text()
        if text.count("\n") > 400:
            big.append(f"{p.relative_to(PKG)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                big.append(f"{p.relative_to(PKG)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not big, big
