"""Keep ``triton`` out of a process that already renders with Mesa's LLVM (it would segfault).

Root cause (measured: napari 0.9.2, torch 2.14 CUDA build, triton 3.8, compressai 1.2.8, Mesa
llvmpipe under Xvfb): ``import compressai`` runs its package ``__init__``, which imports
``compressai.registry.transforms`` -> ``torch_geometric`` and ``compressai.datasets`` ->
``torchvision.ops``. Both import ``torch._dynamo``, and ``torch._dynamo.utils`` imports ``triton``
when it is installed (CUDA builds of torch depend on it). ``libtriton.so`` bundles its own LLVM;
loading it after napari's OpenGL context has mapped Mesa's ``libLLVM`` (llvmpipe, radeonsi)
kills the process with a segmentation fault. Loading triton *before* the OpenGL context is
harmless, which is why the bug hid in tests that import the codecs first.

The plugin never uses triton (no ``torch.compile``). Importing :mod:`napari_microcomp` (which
every npe2 contribution does: reader, writer, sample data, widgets) installs one meta-path
finder, :class:`TritonGuard`. It does nothing until something imports ``triton``; at that
moment, and only if ``libLLVM`` is already mapped into the process, the import fails with
``ModuleNotFoundError``, which torch treats as "triton not installed". Everywhere else
(headless CLI, training, a process whose OpenGL does not use LLVM) triton loads as usual.
"""
import sys
from pathlib import Path
from typing import Optional

BLOCKED = "triton"


def llvm_mapped() -> bool:
    """True when a Mesa-style ``libLLVM`` shared library is mapped into this process (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return "libLLVM" in maps


class TritonGuard:
    """Meta-path finder refusing ``triton`` (and its submodules) once ``libLLVM`` is mapped."""

    def find_spec(self, name: str, path=None, target=None) -> Optional[object]:
        if name != BLOCKED and not name.startswith(BLOCKED + "."):
            return None
        if not llvm_mapped():
            return None  # let the normal finders load it
        sys.modules[BLOCKED] = None  # later imports and find_spec calls stop here cheaply
        raise ModuleNotFoundError(
            "napari-microcomp blocked 'import triton': this process renders with Mesa's libLLVM "
            "and triton's bundled LLVM would crash it (the plugin does not use triton)", name=name)

    def invalidate_caches(self) -> None:  # importlib protocol
        pass


def install() -> None:
    """Install the guard once (idempotent); no effect when triton is already imported."""
    if BLOCKED in sys.modules:
        return
    if not any(isinstance(f, TritonGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, TritonGuard())


def avoid_triton_crash() -> None:
    """Install the guard and, when ``libLLVM`` is already mapped, refuse triton right away."""
    install()
    if BLOCKED not in sys.modules and llvm_mapped():
        sys.modules[BLOCKED] = None
