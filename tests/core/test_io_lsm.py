"""Zeiss LSM files: planes laid out from CZ_LSMINFO (tifffile 2023's own series interleaves channels and planes),
read by the API, the CLI and napari's reader alike; damaged or unsupported ones refused with a message."""
import numpy as np
import pytest

from helpers import smooth_image, write_lsm
from napari_microcomp._reader import napari_get_reader, read_microscopy
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode
from napari_microcomp.errors import InputError
from napari_microcomp.io import channel_count, image_files, read_image


def _stack(n_t=1, n_z=4, n_c=3, y=48, x=56, seed=0):
    a = smooth_image((n_t * n_z * n_c, y, x), seed=seed, bits=12)
    return a.reshape(n_t, n_z, n_c, y, x)


def test_multichannel_stack_reads_each_channel_in_plane_order(tmp_path):
    data = _stack()
    path = tmp_path / "cells.lsm"
    write_lsm(path, data)
    for c in range(3):
        a, meta = read_image(path, channel=c)
        np.testing.assert_array_equal(a, data[0, :, c])   # Z, Y, X of that channel
        assert meta["channel"] == c
    a, meta = read_image(path)
    np.testing.assert_array_equal(a, data[0, :, 0])
    assert meta["pixel_size"] == pytest.approx([1.0, 0.2, 0.2])   # µm, from metres in CZ_LSMINFO
    assert meta["channel_names"] == ["Ch0", "Ch1", "Ch2"]
    assert any("3 channels" in n for n in meta["notes"])
    assert channel_count(path) == (3, ["Ch0", "Ch1", "Ch2"])


def test_time_series_stack_picks_the_time_point(tmp_path):
    data = _stack(n_t=3, n_z=2, n_c=2)
    path = tmp_path / "ts.lsm"
    write_lsm(path, data, scan_type=6)
    a, meta = read_image(path, channel=1, timepoint=2)
    np.testing.assert_array_equal(a, data[2, :, 1])
    assert meta["timepoint"] == 2
    with pytest.raises(InputError, match="time point"):
        read_image(path, timepoint=3)


def test_single_channel_plane_and_a_stack_without_thumbnails(tmp_path):
    data = _stack(n_z=1, n_c=1)
    write_lsm(tmp_path / "one.lsm", data)
    a, _ = read_image(tmp_path / "one.lsm")
    np.testing.assert_array_equal(a, data[0, 0, 0])
    data = _stack(n_c=1)
    write_lsm(tmp_path / "bare.lsm", data, thumbnails=False)
    np.testing.assert_array_equal(read_image(tmp_path / "bare.lsm")[0], data[0, :, 0])
    write_lsm(tmp_path / "lone.lsm", _stack(n_z=1, n_c=1), thumbnails=False)   # tifffile needs a second page
    with pytest.raises(InputError, match="lone.lsm: not a readable Zeiss LSM file"):
        read_image(tmp_path / "lone.lsm")


def test_cli_compresses_a_channel_and_folders_list_lsm(tmp_path, capsys):
    data = _stack(n_c=2)
    src = tmp_path / "z.lsm"
    write_lsm(src, data)
    assert main(["compress", str(src), str(tmp_path / "o.mcz"), "-c", "zstd", "--channel", "1",
                 "--no-metrics"]) == 0
    np.testing.assert_array_equal(decode((tmp_path / "o.mcz").read_bytes()), data[0, :, 1])
    assert image_files([tmp_path]) == [src]


def test_napari_reader_opens_one_layer_per_channel_with_scale(tmp_path):
    data = _stack(n_t=2, n_z=3, n_c=2)
    path = tmp_path / "ts.lsm"
    write_lsm(path, data, scan_type=6)
    assert napari_get_reader(str(path)) is read_microscopy
    (arr, kw, kind), = read_microscopy(str(path))
    assert kind == "image" and kw["channel_axis"] == 1 and kw["name"] == ["ts Ch0", "ts Ch1"]
    np.testing.assert_array_equal(np.asarray(arr), data.transpose(0, 2, 1, 3, 4))   # T, C, Z, Y, X
    assert tuple(kw["scale"]) == pytest.approx((1.0, 1.0, 0.2, 0.2))   # T, Z, Y, X
    assert kw["metadata"][1]["microcomp"]["axes"] == "TZYX"


@pytest.mark.parametrize("declare, match", [
    ({"DimensionZ": 9}, "holds 4 image page"),                 # truncated acquisition or damaged header
    ({"ScanType": 2}, "line scan"),
    ({"ScanType": 77}, "scan of type 77"),
    ({"DimensionP": 3}, "several positions"),
    ({"MagicNumber": 1234}, "CZ_LSMINFO"),                      # not an LSM information block
])
def test_damaged_or_unsupported_lsm_is_refused_clearly(tmp_path, capsys, declare, match):
    path = tmp_path / "bad.lsm"
    write_lsm(path, _stack(), declare=declare)
    with pytest.raises(InputError, match=match):
        read_image(path)
    with pytest.raises(InputError, match=match):
        read_microscopy(str(path))
    assert main(["compress", str(path), str(tmp_path / "o.mcz"), "-c", "zstd"]) == 2
    assert "bad.lsm" in capsys.readouterr().err and not (tmp_path / "o.mcz").exists()


def test_declared_size_is_held_to_the_decode_budget(tmp_path, monkeypatch):
    from napari_microcomp.container import ENV_BUDGET

    path = tmp_path / "big.lsm"
    write_lsm(path, _stack())
    monkeypatch.setenv(ENV_BUDGET, "1000")
    with pytest.raises(InputError, match="decode budget"):
        read_image(path)
