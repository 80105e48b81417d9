"""Importing the core must not import Qt, napari or torch (checked in a fresh interpreter).

Every module outside the GUI (``_qt``, the npe2 entry modules) and outside the modules whose job is torch
(learned codecs, architectures, trainers, label-free inference) is imported; which modules may import Qt at
all is checked statically by ``test_layers.py``.
"""
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "napari_microcomp"
FORBIDDEN = ("torch", "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")
GUI = ("_qt", "_reader", "_writer", "_sample_data")
TORCH = ("codecs.learned", "codecs.volumetric", "codecs.refine", "codecs.autoregressive", "models.", "training.",
         "labelfree.model", "labelfree.train", "weights.load", "weights.export", "tests")


def core_modules():
    out = []
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not name or name.split(".")[0] in GUI or name == "cli.__main__" or \
                any(name == t.rstrip(".") or name.startswith(t) for t in TORCH):
            continue
        out.append("napari_microcomp." + name)
    return out


def test_core_import_is_headless_and_torch_free():
    mods = core_modules()
    assert len(mods) > 40, mods
    code = ("import importlib, sys; sys.path.insert(0, %r)\n"
            "for m in %r: importlib.import_module(m)\n"
            "print(','.join(m for m in %r if m in sys.modules))") % (str(SRC), mods, FORBIDDEN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported {out.stdout.strip()}"


def test_listing_codecs_never_loads_torch():
    """The GUI's process lists codecs and their weight levels; the work (and torch) is in the worker."""
    code = ("import sys\n"
            "from napari_microcomp.codecs import available_codecs, codec_class, codec_from_config\n"
            "for name in available_codecs():\n"
            "    cls = codec_class(name)\n"
            "    cls.served_qualities()\n"
            "c = codec_from_config({'id': 'mbt2018-mean-vbr', 'quality': 3})\n"
            "assert c.label\n"
            "bad = [m for m in ('torch', 'compressai', 'triton') if m in sys.modules]\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
