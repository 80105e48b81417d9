"""A Zeiss LSM file dropped on napari opens through the plugin's reader: one layer per channel, planes in order."""
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from helpers import smooth_image, write_lsm

pytestmark = pytest.mark.gui
MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"


def test_lsm_opens_in_napari_one_layer_per_channel(make_napari_viewer, npe2pm, tmp_path):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    data = smooth_image((4 * 2, 40, 48), seed=5, bits=12).reshape(1, 4, 2, 40, 48)   # T, Z, C, Y, X
    path = tmp_path / "confocal.lsm"
    write_lsm(path, data)
    layers = make_napari_viewer().open(str(path), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == ["confocal Ch0", "confocal Ch1"]
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data), data[0, :, c])
        assert tuple(layer.scale) == pytest.approx((1.0, 0.2, 0.2))
        assert layer.metadata["microcomp"]["axes"] == "ZYX"
