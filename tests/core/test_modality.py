"""Modality detection (transmitted light vs fluorescence) that picks a learned codec's weights."""
import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp.modality import detect_modality, median_position


def test_synthetic_rules(rng):
    grey = smooth_image((128, 128), seed=1)
    assert detect_modality(grey) == "transmitted"
    dark = rng.integers(90, 110, (128, 128)).astype(np.uint16)
    dark[40:60, 40:60] = 4000
    assert detect_modality(dark) == "fluorescence"
    padded = np.zeros((200, 200), np.uint8)       # a well scan: black outside, grey inside
    padded[50:150, 50:150] = (smooth_image((100, 100), seed=2) >> 8).astype(np.uint8) // 2 + 60
    assert detect_modality(padded) == "transmitted"
    assert detect_modality(np.stack([dark, dark])) == "fluorescence"
    assert median_position(np.full((8, 8), 7)) == 0.5
    assert detect_modality(np.array([[np.nan, 1.0], [2.0, 3.0]], np.float32)) in ("transmitted", "fluorescence")


def test_rule_on_real_splits(shared_data):
    from napari_microcomp import datasets

    for modality, least in (("transmitted", 1.0), ("fluorescence", 0.8)):
        planes = datasets.codec2d_modality_split(modality, "eval") + datasets.codec2d_modality_split(modality, "train")
        right = np.mean([detect_modality(a) == modality for _, a in planes])
        assert right >= least, (modality, right)


def test_splits_are_disjoint(shared_data):
    from napari_microcomp import datasets

    for m in datasets.MODALITIES:
        tr = {(rel, str(c)) for rel, c, crop in getattr(datasets, f"{m.upper()}_TRAIN") if crop is None}
        ev = {(rel, str(c)) for rel, c, crop in getattr(datasets, f"{m.upper()}_EVAL") if crop is None}
        assert not tr & ev
    with pytest.raises(Exception):
        datasets.codec2d_modality_split("phase", "train")
