"""napari dock widgets. The only place (with the npe2 entry points) that imports Qt or napari.

Importing this package installs one guard, :func:`avoid_triton_crash`, before any widget can
import torch/CompressAI.
"""
import sys
from pathlib import Path


def avoid_triton_crash() -> None:
    """Keep ``triton`` from being imported into a process that already renders with Mesa's LLVM.

    CompressAI imports torch_geometric, which imports ``torch._dynamo``, which imports ``triton``
    when it is installed (CUDA builds of torch ship it). Loading triton's bundled LLVM after
    napari's OpenGL context has loaded Mesa's ``libLLVM`` (llvmpipe under Xvfb or remote
    desktops, radeonsi on AMD GPUs) kills the process with a segmentation fault (measured here:
    napari 0.9.2, Mesa llvmpipe, triton 3.8). The codecs never use triton (no ``torch.compile``),
    so when libLLVM is already mapped we make ``import triton`` raise ImportError, which torch
    handles as "triton not installed". Nothing changes when triton is already imported or when
    no libLLVM is loaded.
    """
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return
    if "libLLVM" in maps:
        sys.modules["triton"] = None


avoid_triton_crash()
