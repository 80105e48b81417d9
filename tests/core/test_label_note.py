"""A label image or mask coded lossily is said: lossy codecs change values at object borders."""
import numpy as np
import pytest

from napari_microcomp._validate import label_like
from napari_microcomp.api import compress_array


def _labels(shape=(96, 120), n=12, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint16)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for k in range(1, n + 1):
        cy, cx, r = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10), rng.integers(4, 10)
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
    return lab


@pytest.fixture(scope="module")
def cell():
    from napari_microcomp.samples import skimage_cell

    return np.ascontiguousarray(skimage_cell()[100:356, 100:356])


def test_labels_and_masks_are_recognised_microscopy_is_not(cell):
    lab = _labels()
    assert label_like(lab) == len(np.unique(lab))
    assert label_like((lab > 0).astype(np.uint8) * 255) == 2
    assert label_like(np.stack([lab, lab[::-1]])) is not None          # a stack of label planes
    assert label_like(cell) is None                                     # bright-field, uint8
    rng = np.random.default_rng(1)
    few_photons = rng.poisson(0.2 + 3.0 * (lab > 0)).astype(np.uint16)  # fluorescence at a few photons
    assert label_like(few_photons) is None
    assert label_like(lab.astype(np.float32)) is None                   # floats are never labels here
    assert label_like(np.full((32, 32), 7, np.uint16)) is None          # constant: nothing off the background
    y, x = np.mgrid[:256, :256]
    vignette = (128 + 6 * np.exp(-((x - 128) ** 2 + (y - 128) ** 2) / 2 / 80 ** 2)).astype(np.uint8)
    assert label_like(vignette) is None              # smooth and noiseless: plateaus one level apart
    assert label_like((lab > 0).astype(np.uint8)) == 2                  # a 0/1 mask: unit steps, still a mask


@pytest.mark.parametrize("codec, said", [("jpeg2k", True), ("jpegxl", True), ("zstd", False), ("jpegxl-lossless", False)])
def test_lossy_coding_of_labels_is_said(codec, said):
    res = compress_array(_labels(), codec, quality=4, with_ms_ssim=False)
    assert any("looks like a label image" in n for n in res.notes) is said, res.notes


def test_microscopy_gets_no_label_note(cell):
    assert not any("label image" in n for n in compress_array(cell, "jpeg2k", quality=4).notes)


def test_advise_says_so_unless_every_value_is_kept():
    from napari_microcomp.advise import Tolerance, advise

    lab = _labels()
    said = advise([lab], Tolerance(ssim=0.95), ["jpeg2k", "zstd"], names=["nuclei labels"]).notes
    assert any(n.startswith("nuclei labels looks like a label image") for n in said), said
    assert not advise([lab], Tolerance(max_error=0), ["zstd"], names=["nuclei labels"]).notes


def test_large_images_are_judged_on_evenly_spaced_rows(monkeypatch):
    import napari_microcomp._validate as v

    lab = np.tile(_labels((96, 120)), (40, 1))          # 3840 rows
    monkeypatch.setattr(v, "LABEL_SAMPLE_PX", 120 * 64)  # 64 rows looked at
    assert v.label_like(lab) == len(np.unique(lab))
