"""Tiled label-free inference is seam-free (issue 15): on a real phase image, the mean gradient of the
prediction where tiles start, end or their blending ramps begin, relative to the mean gradient everywhere, is
within 0.1 of the same ratio for the untiled prediction at the same rows and columns (the content there has its
own gradient: 1.19 along y for the 2D model of session 39, tiled or not); without overlap the measure sees the
seams."""
import numpy as np
import pytest

pytest.importorskip("torch")


def _seam_ratio(pred: np.ndarray, positions, tshape, overlap: int, axis: int) -> float:
    profile = np.abs(np.diff(pred, axis=axis)).mean(axis=1 - axis)
    cuts = set()
    for p in sorted({pos[axis] for pos in positions}):
        t = tshape[axis]
        for e in (p, p + t, p + overlap // 4, p + t - overlap // 4, p + overlap // 2, p + t - overlap // 2):
            if 1 <= e < len(profile):
                cuts.add(e - 1)   # the gradient between pixels e-1 and e
    return float(profile[sorted(cuts)].mean() / profile.mean())


@pytest.fixture(scope="module")
def model_and_image(shared_data):
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.samples import isl_phase_stack

    return load_model("unet2d-isl-dapi"), np.ascontiguousarray(isl_phase_stack()[6, :512, 256:768])


def test_blended_tiles_leave_no_seams(model_and_image):
    from napari_microcomp.labelfree.model import DEFAULT_INFERENCE
    from napari_microcomp.tiling import plan_tiles

    model, img = model_and_image
    overlap = DEFAULT_INFERENCE["overlap"]
    pred = model.predict(img, tile=256, overlap=overlap)   # 256² tiles: 9 of them, 8 seams to look at
    whole = model.predict(img, tile=1024, overlap=overlap)  # one tile: no seam can exist
    _, tshape, pos = plan_tiles(img.shape, 256, overlap, model.net.multiple)
    assert len(pos) > 1
    excess = [_seam_ratio(pred, pos, tshape, overlap, ax) - _seam_ratio(whole, pos, tshape, overlap, ax)
              for ax in (0, 1)]
    assert max(excess) <= 0.1, excess
    assert np.abs(pred - whole).max() <= 0.02 * np.ptp(whole)


def test_the_measure_sees_seams_without_overlap(model_and_image):
    from napari_microcomp.tiling import plan_tiles

    model, img = model_and_image
    pred = model.predict(img, tile=256, overlap=0)
    _, tshape, pos = plan_tiles(img.shape, 256, 0, model.net.multiple)
    assert max(_seam_ratio(pred, pos, tshape, 0, ax) for ax in (0, 1)) > 1.5
