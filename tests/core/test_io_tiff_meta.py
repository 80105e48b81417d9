"""What a TIFF records beside its pixels, kept by ``read_image`` (and so by compress → decompress): the pixel size
of OME-, ImageJ- and centimetre-resolution TIFFs, and colour samples stored planar (never read as z planes)."""
import warnings

import numpy as np
import pytest
import tifffile

from helpers import smooth_image
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode
from napari_microcomp.errors import InputError
from napari_microcomp.io import read_image

STACK = smooth_image((3, 40, 48), seed=6, bits=12)


@pytest.mark.parametrize("unit, factor", [(None, 1.0), ("nm", 1e-3), ("mm", 1e3)])
def test_ome_tiff_z_stack_keeps_its_physical_size(tmp_path, unit, factor):
    path = tmp_path / "s.ome.tif"
    md = {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
    if unit:
        md.update(PhysicalSizeXUnit=unit, PhysicalSizeYUnit=unit, PhysicalSizeZUnit=unit)
    tifffile.imwrite(path, STACK, ome=True, metadata=md)
    a, meta = read_image(path)
    np.testing.assert_array_equal(a, STACK)
    assert meta["pixel_size"] == pytest.approx([2.0 * factor, 0.5 * factor, 0.5 * factor])


def test_imagej_stack_and_hyperstack_keep_their_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "z.tif", STACK, imagej=True, resolution=(10.0, 10.0),
                     metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    assert read_image(tmp_path / "z.tif")[1]["pixel_size"] == pytest.approx([0.5, 0.1, 0.1])
    hyper = np.stack([STACK, STACK[::-1]], 1)[None]   # T, Z, C, Y, X: read through aicsimageio
    tifffile.imwrite(tmp_path / "h.tif", hyper, imagej=True, resolution=(5.0, 4.0),
                     metadata={"axes": "TZCYX", "spacing": 0.7, "unit": "micron"})
    a, meta = read_image(tmp_path / "h.tif", channel=1)
    np.testing.assert_array_equal(a, STACK[::-1])
    assert meta["pixel_size"] == pytest.approx([0.7, 0.25, 0.2])


def test_resolution_in_centimetres_is_a_pixel_size_and_in_inches_is_not(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", STACK[0], resolution=(40000.0, 40000.0), resolutionunit="CENTIMETER")
    assert read_image(tmp_path / "cm.tif")[1]["pixel_size"] == pytest.approx([None, 0.25, 0.25])
    tifffile.imwrite(tmp_path / "dpi.tif", STACK[0], resolution=(72.0, 72.0), resolutionunit="INCH")
    assert "pixel_size" not in read_image(tmp_path / "dpi.tif")[1]


def test_crafted_sizes_are_dropped_not_used(tmp_path):
    tifffile.imwrite(tmp_path / "nan.ome.tif", STACK, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": -1.0, "PhysicalSizeZ": float("nan")})
    assert read_image(tmp_path / "nan.ome.tif")[1].get("pixel_size") is None
    tifffile.imwrite(tmp_path / "odd.tif", STACK, imagej=True, resolution=(10.0, 10.0),
                     metadata={"axes": "ZYX", "spacing": "inf", "unit": "parsec"})
    assert "pixel_size" not in read_image(tmp_path / "odd.tif")[1]


def test_pixel_size_survives_compress_and_decompress(tmp_path, capsys):
    src = tmp_path / "s.ome.tif"
    tifffile.imwrite(src, STACK, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3,
                                                     "PhysicalSizeZ": 1.5})
    assert main(["compress", str(src), str(tmp_path / "s.mcz"), "-c", "zstd", "--no-metrics"]) == 0
    assert main(["decompress", str(tmp_path / "s.mcz"), str(tmp_path / "back.ome.tif")]) == 0
    a, meta = read_image(tmp_path / "back.ome.tif")
    np.testing.assert_array_equal(a, STACK)
    assert meta["pixel_size"] == pytest.approx([1.5, 0.3, 0.3])


def test_planar_rgb_is_colour_samples_not_three_z_planes(tmp_path, capsys):
    rgb = np.stack([STACK[0], STACK[1], STACK[2]])   # S, Y, X
    path = tmp_path / "planar.tif"   # as a camera's software writes it (no tifffile "shape")
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate", metadata=None)
    a, _ = read_image(path)
    assert a.shape == (40, 48, 3)
    np.testing.assert_array_equal(a, np.moveaxis(rgb, 0, -1))
    assert main(["compress", str(path), str(tmp_path / "o.mcz"), "-c", "zstd"]) == 2
    assert "RGB" in capsys.readouterr().err and not (tmp_path / "o.mcz").exists()
    assert main(["compress", str(path), str(tmp_path / "g.mcz"), "-c", "zstd", "--channel", "1", "--no-metrics"]) == 0
    np.testing.assert_array_equal(decode((tmp_path / "g.mcz").read_bytes()), STACK[1])
    grey = tmp_path / "grey_planar.tif"   # equal samples: a grey image, read as its one channel
    tifffile.imwrite(grey, np.stack([STACK[0]] * 3), photometric="rgb", planarconfig="separate", metadata=None)
    a, meta = read_image(grey)
    np.testing.assert_array_equal(a, STACK[0])
    assert any("one channel" in n for n in meta["notes"])
    with pytest.raises(InputError, match="channel"):
        read_image(path, channel=5)


def test_three_plane_stack_tifffile_tags_as_rgb_stays_a_stack(tmp_path):
    """tifffile.imwrite(path, (3, Y, X) array) tags the file planar RGB but records the array's shape: the
    user's z-stack, as tifffile.imread and napari give it back."""
    path = tmp_path / "three.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # tifffile: (3, Y, X) stored as planar RGB
        tifffile.imwrite(path, STACK)
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "SYX" and tf.is_shaped
    a, _ = read_image(path)
    np.testing.assert_array_equal(a, STACK)


def test_palette_and_min_is_white_tiffs_are_coded_as_stored_and_said(tmp_path):
    """ImageJ saves an 8-bit image with a LUT as a palette TIFF (the indices are the intensities); a MinIsWhite
    TIFF's values decode to a MinIsBlack TIFF: both are coded as stored, and the user is told what is not kept."""
    idx = (smooth_image((40, 48), seed=3) // 257).astype(np.uint8)
    lut = np.stack([np.zeros(256), np.arange(256) * 257, np.zeros(256)]).astype(np.uint16)   # ImageJ's "Green"
    tifffile.imwrite(tmp_path / "green.tif", idx, photometric="palette", colormap=lut)
    tifffile.imwrite(tmp_path / "hyper.tif", np.stack([idx, idx]), imagej=True, metadata={"axes": "CYX"},
                     photometric="palette", colormap=lut)
    tifffile.imwrite(tmp_path / "white.tif", STACK, photometric="miniswhite")
    tifffile.imwrite(tmp_path / "black.tif", STACK)
    for name, want, said in [("green.tif", idx, "colour map is not kept"), ("hyper.tif", idx, "colour map"),
                             ("white.tif", STACK, "MinIsWhite"), ("black.tif", STACK, None)]:
        a, meta = read_image(tmp_path / name)
        np.testing.assert_array_equal(a, want)
        notes = " ".join(meta.get("notes", []))
        assert (said in notes) if said else "colour" not in notes and "White" not in notes, (name, notes)
    assert "2 channels" in " ".join(read_image(tmp_path / "hyper.tif")[1]["notes"])   # the other notes stay
