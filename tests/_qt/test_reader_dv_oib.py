"""DeltaVision and Olympus OIB files dropped on napari open through the plugin's reader: one layer per channel."""
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from helpers import smooth_image, write_dv

pytestmark = pytest.mark.gui
MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"


def test_dv_opens_in_napari_one_layer_per_channel(make_napari_viewer, npe2pm, tmp_path):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    stack = smooth_image((2 * 4, 40, 48), seed=7, bits=12).reshape(1, 2, 4, 40, 48)   # T, C, Z, Y, X
    path = tmp_path / "omx.dv"
    write_dv(path, stack, sizes=(0.125, 0.08, 0.08), waves=[525, 683], imgseq=2)
    layers = make_napari_viewer().open(str(path), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == ["omx 525 nm", "omx 683 nm"]
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data), stack[0, c])
        assert tuple(layer.scale) == pytest.approx((0.125, 0.08, 0.08))
        assert layer.metadata["microcomp"]["axes"] == "ZYX"


@pytest.mark.parametrize("suffix", [".oib", ".oif"])
def test_oib_and_oif_open_in_napari_one_layer_per_channel(make_napari_viewer, npe2pm, tmp_path, suffix):
    from helpers import write_oib

    npe2pm.register(PluginManifest.from_file(MANIFEST))
    stack = smooth_image((2 * 3, 40, 48), seed=8, bits=12).reshape(2, 3, 40, 48)   # C, Z, Y, X
    path = tmp_path / f"fv{suffix}"
    write_oib(path, stack, um_per_px=0.31, dyes=["DAPI", "Alexa Fluor 568"])
    layers = make_napari_viewer().open(str(path), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == ["fv DAPI", "fv Alexa Fluor 568"]
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data), stack[c])
        assert tuple(layer.scale) == pytest.approx((0.5, 0.31, 0.31))
