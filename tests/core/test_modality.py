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


def test_automatic_weights_of_another_modality_are_said(tmp_path, capsys):
    """bmshj2018-factorized ships transmitted-light weights only: on a fluorescence-like image the result says so
    (CLI: a note line), and says nothing where the weights match or were chosen by the user."""
    import tifffile

    from napari_microcomp.api import compress_array
    from napari_microcomp.cli import main

    rng = np.random.default_rng(1)
    dark = rng.poisson(20, (96, 96)).astype(np.uint16)
    dark[30:50, 40:60] += 3000                                   # sparse bright structure on a dark field
    assert detect_modality(dark) == "fluorescence"
    notes = compress_array(dark, "bmshj2018-factorized", quality=4).notes
    assert len(notes) == 1 and "looks like fluorescence" in notes[0] and "transmitted weights" in notes[0]
    assert compress_array(dark, "bmshj2018-factorized", quality=4, weights="transmitted").notes == []
    assert compress_array(dark, "mbt2018-mean-vbr", quality=4).notes == []     # has fluorescence weights
    assert compress_array(dark, "jpegxl", quality=4).notes == []
    from napari_microcomp.benchmark.rows import run_row    # a benchmark row carries it in its note column
    from napari_microcomp.codecs import get_codec

    row = run_row("dark", dark, get_codec("bmshj2018-factorized", quality=4).get_config(), with_ms_ssim=False)
    assert row["status"] == "ok" and "looks like fluorescence" in row["note"]
    tifffile.imwrite(tmp_path / "dark.tif", dark)
    assert main(["compress", str(tmp_path / "dark.tif"), "-c", "bmshj2018-factorized", "-q", "4"]) == 0
    assert "note: this image looks like fluorescence" in capsys.readouterr().err
