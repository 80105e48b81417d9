"""Issue 12, point 4: CZI, ND2 and OME-TIFF files open in napari through the plugin's reader,
one layer per channel, with channel names and pixel sizes as scale (real files from ../shared/data)."""
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from napari_microcomp._reader import napari_get_reader, read_microscopy

MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ND2 = DATA / "arcadia_brightfield_fluorescence" / "example-multichannel.nd2"
CZI = DATA / "fluorescence" / "CellDivision_T3_Z5_CH2_X240_Y170.czi"

pytestmark = pytest.mark.skipif(not ND2.is_file() or not CZI.is_file(), reason="shared data not present")


@pytest.fixture
def plugin(npe2pm):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    return npe2pm


def test_nd2_opens_with_channel_names_and_scale(make_napari_viewer, plugin):
    import nd2

    viewer = make_napari_viewer()
    layers = viewer.open(str(ND2), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == [f"example-multichannel {c}"
                                                for c in ("Mono", "DAPI", "FITC BP", "TRITC BP")]
    with nd2.ND2File(str(ND2)) as f:
        raw = f.asarray()  # (C, Y, X) as the vendor library reads it
        px = f.voxel_size()
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer.data), raw[c])
        assert tuple(layer.scale) == pytest.approx((px.y, px.x))
        assert layer.metadata["microcomp"]["axes"] == "YX"


def test_czi_time_lapse_z_stack_has_t_and_z_axes(make_napari_viewer, plugin):
    viewer = make_napari_viewer()
    layers = viewer.open(str(CZI), plugin="napari-microcomp")
    assert len(layers) == 2 and layers[0].name.endswith("LED555") and layers[1].name.endswith("LED470")
    assert layers[0].data.shape == (3, 5, 170, 240)  # T, Z, Y, X
    assert layers[0].metadata["microcomp"]["axes"] == "TZYX"
    assert tuple(layers[0].scale)[1:] == pytest.approx((0.32, 0.0905767, 0.0905767), rel=1e-4)
    assert layers[0].data.dtype == np.uint16


def test_ome_tiff_written_from_real_data_opens_per_channel(make_napari_viewer, plugin, tmp_path):
    import tifffile

    from aicsimageio import AICSImage

    raw = AICSImage(str(ND2)).get_image_data("CYX")[:2]
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, raw, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                                                    "Channel": {"Name": ["bright-field", "DAPI"]}})
    assert napari_get_reader(str(path)) is read_microscopy
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == ["two.ome bright-field", "two.ome DAPI"]
    np.testing.assert_array_equal(np.asarray(layers[1].data), raw[1])
    assert tuple(layers[0].scale) == (0.5, 0.5)


def test_unreadable_vendor_file_names_the_file(tmp_path):
    from napari_microcomp.errors import InputError

    bad = tmp_path / "broken.czi"
    bad.write_bytes(b"not a czi file at all" * 10)
    reader = napari_get_reader(str(bad))
    assert reader is read_microscopy
    with pytest.raises(InputError, match="cannot open broken.czi"):
        reader(str(bad))
    assert napari_get_reader(str(tmp_path / "plain.tif")) is None  # plain TIFF stays with napari


def test_czi_without_scaling_metadata_opens(make_napari_viewer, plugin):
    """DAPI_GFP.czi has no Scaling/X entry, which aicsimageio's CZI reader needs: read through aicspylibczi."""
    czi = DATA / "fluorescence" / "DAPI_GFP.czi"
    if not czi.is_file():
        pytest.skip("DAPI_GFP.czi not in the shared data")
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="physical pixel size unknown"):
        layers = viewer.open(str(czi), plugin="napari-microcomp")
    assert [layer.name for layer in layers] == ["DAPI_GFP DAPI", "DAPI_GFP GFP"]
    assert layers[1].data.shape == (640, 640) and tuple(layers[1].scale) == (1.0, 1.0)


def test_rgb_ome_tiff_opens_one_layer_per_sample(make_napari_viewer, plugin, tmp_path):
    import tifffile

    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, np.dstack([np.full((16, 16), v, np.uint8) for v in (10, 20, 30)]), photometric="rgb")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-microcomp")
    assert [layer.name.split()[-1] for layer in layers] == ["0", "1", "2"]
    assert [int(np.asarray(layer.data)[0, 0]) for layer in layers] == [10, 20, 30]
