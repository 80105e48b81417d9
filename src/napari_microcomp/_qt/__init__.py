"""napari dock widgets. The only place (with the npe2 entry points) that imports Qt or napari.

The triton guard (:mod:`napari_microcomp._triton_guard`) is installed by the package itself, so
it protects the reader, writer and sample data as well as these widgets.
"""
from .._triton_guard import avoid_triton_crash

__all__ = ["avoid_triton_crash"]
