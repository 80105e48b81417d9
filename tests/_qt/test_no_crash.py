"""Issue 12, point 1: a fresh napari viewer (no microcomp dock opened) saves and opens learned
``.mcz`` files without crashing.

Each case runs in its own Python process: this test session imported the learned codecs (and
triton) before any OpenGL context (see conftest), which is exactly the order that hides the bug.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import numpy as np
import napari
from qtpy.QtWidgets import QApplication

v = napari.Viewer(show=True)          # a real OpenGL context first (Mesa llvmpipe under Xvfb)
QApplication.processEvents()
opened = v.open(sys.argv[1], plugin="napari-microcomp")
QApplication.processEvents()
print("opened", opened[0].name, opened[0].data.shape, opened[0].data.dtype)
layer = v.add_image(np.load(sys.argv[2]), name="cell")
v.layers.selection = {layer}
QApplication.processEvents()
print("saved", v.layers.save(sys.argv[3], selected=True, plugin="napari-microcomp"))
print("reopened", v.open(sys.argv[3], plugin="napari-microcomp")[0].data.shape)
v.open_sample("napari-microcomp", "skimage_cell")
print("triton", sys.modules.get("triton", "absent"))
v.close()
"""


@pytest.fixture(scope="module")
def learned_file(tmp_path_factory, cell):
    from napari_microcomp.codecs import get_codec

    folder = tmp_path_factory.mktemp("fresh")
    path = folder / "learned.mcz"
    path.write_bytes(get_codec("bmshj2018-factorized", quality=4).encode(np.ascontiguousarray(cell[:128, :192])))
    np.save(folder / "cell.npy", np.ascontiguousarray(cell[:96, :128]))
    return path


def test_fresh_viewer_saves_and_opens_learned_mcz_without_crash(learned_file, tmp_path):
    script = tmp_path / "fresh_viewer.py"
    script.write_text(SCRIPT)
    out_path = tmp_path / "saved.mcz"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(script), str(learned_file), str(learned_file.parent / "cell.npy"),
                          str(out_path)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "opened learned (128, 192) uint8" in out.stdout
    assert out_path.is_file(), out.stdout
    assert "reopened (96, 128)" in out.stdout
    # triton is either absent or was refused by the guard; it was never loaded after OpenGL
    assert "triton None" in out.stdout or "triton absent" in out.stdout


def test_guard_refuses_triton_only_when_libllvm_is_mapped(monkeypatch):
    from napari_microcomp import _triton_guard as guard

    finder = guard.TritonGuard()
    monkeypatch.setattr(guard, "llvm_mapped", lambda: False)
    assert finder.find_spec("triton") is None and finder.find_spec("numpy") is None
    monkeypatch.setattr(guard, "llvm_mapped", lambda: True)
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    with pytest.raises(ModuleNotFoundError, match="libLLVM"):
        finder.find_spec("triton.runtime")
    assert sys.modules["triton"] is None
    assert finder.find_spec("torch") is None
    assert any(isinstance(f, guard.TritonGuard) for f in sys.meta_path)  # installed by the package


DOCKS = """
import sys
import napari
from qtpy.QtWidgets import QApplication

v = napari.Viewer(show=True)
QApplication.processEvents()
for name in ("Compress", "Label-free prediction", "Benchmark", "Advise"):
    v.window.add_plugin_dock_widget("napari-microcomp", name)
    QApplication.processEvents()
print("loaded", [m for m in ("torch", "compressai", "triton") if sys.modules.get(m) is not None])  # None: refused
v.close()
"""


def test_opening_every_dock_loads_no_torch(tmp_path):
    """The docks list codecs and weight levels only; torch runs in the worker process (and cannot crash
    the viewer's OpenGL process through triton), and the Compress dock no longer takes seconds to open."""
    script = tmp_path / "docks.py"
    script.write_text(DOCKS)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "loaded []" in out.stdout, out.stdout


CLOSE_BUSY = """
import napari
from qtpy.QtWidgets import QApplication

v = napari.Viewer(show=True)
QApplication.processEvents()
_, w = v.window.add_plugin_dock_widget("napari-microcomp", "Benchmark")
QApplication.processEvents()
rows = [{"status": "ok", "codec": "jpeg2000", "label": "jpeg2000 q1", "image": "a", "bpp": 1.0, "psnr": 30.0}]
w.plot.draw(rows, "psnr", per_image=False)   # a render job starts in the worker process
print("busy", w.plot.busy)
v.close()                                    # and Python exits at once
"""


def test_quitting_while_a_dock_job_runs_exits_cleanly(tmp_path):
    """The relaying thread used to emit on Qt objects Python had already deleted: PyQt aborted (exit -6)."""
    script = tmp_path / "close_busy.py"
    script.write_text(CLOSE_BUSY)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert "busy True" in out.stdout
    assert "has been deleted" not in out.stderr
