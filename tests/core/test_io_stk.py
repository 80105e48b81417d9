"""MetaMorph STK files (one TIFF page, every plane after it, a UIC2Tag entry per plane): z-stacks and time series
read by the API and CLI through tifffile's series (aicsimageio would pick Bio-Formats for them)."""
import numpy as np
import pytest

from helpers import smooth_image, write_stk
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode
from napari_microcomp.errors import InputError
from napari_microcomp.io import image_files, read_image

STACK = smooth_image((4, 40, 48), seed=8, bits=12)


def test_z_stack_reads_whole(tmp_path):
    write_stk(tmp_path / "z.stk", STACK)
    a, meta = read_image(tmp_path / "z.stk")
    np.testing.assert_array_equal(a, STACK)
    assert "notes" not in meta


def test_time_series_reads_a_time_point_and_compresses(tmp_path, capsys):
    src = tmp_path / "t.stk"
    write_stk(src, STACK, times=[0, 100, 200, 300])
    a, meta = read_image(src)
    np.testing.assert_array_equal(a, STACK[0])
    assert any("4 time points" in n for n in meta["notes"])
    assert meta["pixel_size"] == [None, None, None]   # resolution tags without a unit are not a pixel size
    np.testing.assert_array_equal(read_image(src, timepoint=-1)[0], STACK[3])
    with pytest.raises(InputError, match="time point"):
        read_image(src, timepoint=4)
    assert main(["compress", str(src), str(tmp_path / "o.mcz"), "-c", "zstd", "--timepoint", "2",
                 "--no-metrics"]) == 0
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), STACK[2])
    assert image_files([tmp_path]) == [src]


def test_truncated_stk_is_refused(tmp_path, capsys):
    path = tmp_path / "cut.stk"
    write_stk(path, STACK)
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(InputError, match="cut.stk"):
        read_image(path)
    assert main(["compress", str(path), str(tmp_path / "o.mcz"), "-c", "zstd"]) == 2
    assert "cut.stk" in capsys.readouterr().err and not (tmp_path / "o.mcz").exists()


@pytest.mark.parametrize("calibration, times, want", [
    ((0.325, 0.33, "um", 1), None, [0.5, 0.33, 0.325]),              # z from the planes' equal z distance
    ((650.0, 650.0, "nm", 1), None, [0.5, 0.65, 0.65]),
    ((0.325, 0.325, "um", 1), [0, 100, 200, 300], [None, 0.325, 0.325]),   # a time series: no z step
    ((0.325, 0.325, "um", 0), None, None),                           # calibration switched off
    ((0.325, 0.325, "pixel", 1), None, None),                        # not a length unit
])
def test_metamorph_calibration_gives_the_pixel_size(tmp_path, calibration, times, want):
    src = tmp_path / "cal.stk"
    write_stk(src, STACK, times=times, calibration=calibration)
    a, meta = read_image(src, timepoint=0 if times else None)
    if want is None:
        assert not any(meta.get("pixel_size") or [])
    else:
        assert meta["pixel_size"] == [pytest.approx(v) if v else None for v in want]
    if times is None:
        assert main(["compress", str(src), str(tmp_path / "o.mcz"), "-c", "zstd", "--no-metrics"]) == 0
        assert main(["decompress", str(tmp_path / "o.mcz"), str(tmp_path / "o.ome.tif")]) == 0
        assert read_image(tmp_path / "o.ome.tif")[1].get("pixel_size") == meta.get("pixel_size")
