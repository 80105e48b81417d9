"""A DeltaVision file dropped on napari opens through the plugin's reader: one layer per channel, µm scale."""
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
