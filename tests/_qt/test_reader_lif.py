"""A Leica LIF project dropped on napari opens through the plugin's reader: one layer per channel and image."""
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from helpers import lif_image, smooth_image, write_lif

pytestmark = pytest.mark.gui
MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"


def test_lif_opens_in_napari_one_layer_per_channel_and_image(make_napari_viewer, npe2pm, tmp_path):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    stack = smooth_image((2 * 4, 40, 48), seed=5, bits=12).reshape(1, 2, 4, 40, 48)   # T, C, Z, Y, X
    snap = smooth_image((32, 36), seed=6, bits=12).reshape(1, 1, 1, 32, 36)
    path = tmp_path / "confocal.lif"
    write_lif(path, [lif_image("stack", stack, luts=["Green", "Red"]), lif_image("snap", snap)], block_order=[1, 0])
    layers = make_napari_viewer().open(str(path), plugin="napari-microcomp")
    assert len(layers) == 3 and all("confocal" in layer.name for layer in layers)
    for c, layer in enumerate(layers[:2]):
        np.testing.assert_array_equal(np.asarray(layer.data), stack[0, c])
        assert tuple(layer.scale) == pytest.approx((1.0, 0.2, 0.2))
        assert layer.metadata["microcomp"]["axes"] == "ZYX"
    np.testing.assert_array_equal(np.asarray(layers[2].data), snap[0, 0, 0])
