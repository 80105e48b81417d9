"""Importing the core must not import Qt, napari or torch (checked in a fresh interpreter)."""
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
FORBIDDEN = ("torch", "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


def test_core_import_is_headless_and_torch_free():
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import napari_microcomp, napari_microcomp.codecs, napari_microcomp.metrics, napari_microcomp.api\n"
            "import napari_microcomp.container, napari_microcomp.io, napari_microcomp.cli\n"
            "bad = [m for m in %r if m in sys.modules]\n"
            "print(','.join(bad))") % (SRC, FORBIDDEN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported {out.stdout.strip()}"


def test_no_qt_imports_outside_qt_package():
    pkg = Path(SRC) / "napari_microcomp"
    allowed = {"_qt", "_reader.py", "_writer.py", "_sample_data.py", "_widgets.py"}
    offenders = []
    for py in pkg.rglob("*.py"):
        rel = py.relative_to(pkg).parts
        if rel[0] in allowed:
            continue
        text = py.read_text()
        for mod in ("qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui", "import napari\n", "from napari "):
            if mod in text and f"napari_microcomp" not in mod:
                offenders.append(f"{'/'.join(rel)}: {mod.strip()}")
    assert not offenders, offenders
