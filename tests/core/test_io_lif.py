"""Leica LIF files: each image found by its memory block id, each pixel by the byte increments the file declares,
read by the API, the CLI and napari's reader alike; damaged or unsupported ones refused with a message."""
import numpy as np
import pytest

from helpers import lif_image, smooth_image, write_lif
from napari_microcomp._reader import napari_get_reader, read_microscopy
from napari_microcomp.cli import main
from napari_microcomp.codecs import decode
from napari_microcomp.errors import InputError
from napari_microcomp.io import channel_count, image_files, open_aics, read_image


def _data(n_t=1, n_c=2, n_z=3, y=40, x=48, seed=0, dtype=np.uint16, bits=12):
    return smooth_image((n_t * n_c * n_z, y, x), dtype=dtype, seed=seed, bits=bits).reshape(n_t, n_c, n_z, y, x)


@pytest.mark.parametrize("layout", ["planes", "channels-last", "interleaved"])
def test_every_layout_reads_each_channel_exactly(tmp_path, layout):
    data = _data(n_t=2)
    path = tmp_path / "stack.lif"
    write_lif(path, [lif_image("Series001", data, layout, bits=12, luts=["Green", "Red"])])
    img = open_aics(path)
    assert img.dims.order == "TCZYX" and img.shape == data.shape and img.scenes == ("Project/Series001",)
    np.testing.assert_array_equal(img.data, data)
    np.testing.assert_array_equal(img.dask_data.compute(), data)
    for c in range(2):
        a, meta = read_image(path, channel=c, timepoint=1)
        np.testing.assert_array_equal(a, data[1, c])
    assert meta["pixel_size"] == pytest.approx([1.0, 0.2, 0.2])   # µm, from metres over (n - 1) steps
    assert meta["channel_names"] == ["Green", "Red"]
    assert channel_count(path) == (2, ["Green", "Red"])


def test_images_are_paired_with_blocks_by_id_not_by_order(tmp_path):
    a, b, c = _data(seed=1), _data(n_c=1, n_z=1, seed=2, dtype=np.uint8, bits=8), _data(n_c=1, seed=3)
    path = tmp_path / "project.lif"
    write_lif(path, [lif_image("A", a), lif_image("B", b), lif_image("A", c)], block_order=[2, 0, 1])
    img = open_aics(path)
    assert img.scenes == ("Project/A", "Project/B", "Project/A (2)")   # scene ids unique
    for scene, want in enumerate((a, b, c)):
        img.set_scene(scene)
        np.testing.assert_array_equal(img.data, want)
        assert img.dtype == want.dtype
    got, meta = read_image(path, scene=1)
    np.testing.assert_array_equal(got, b[0, 0, 0])
    assert meta["scene"] == "Project/B"


def test_rgb_camera_image_names_its_colours_and_version_1_files_read(tmp_path):
    rgb = _data(n_c=3, n_z=1, dtype=np.uint8, bits=8)
    write_lif(tmp_path / "he.lif", [lif_image("Snap", rgb, "interleaved", tags=[1, 2, 3])], version=1)
    img = open_aics(tmp_path / "he.lif")
    assert img.channel_names == ["red", "green", "blue"]
    np.testing.assert_array_equal(img.data, rgb)


def test_float_channels_and_an_image_without_pixel_sizes(tmp_path):
    data = np.random.default_rng(0).random((1, 1, 1, 32, 40)).astype(np.float32)
    write_lif(tmp_path / "f.lif", [lif_image("ratio", data, voxel_m=(0.0, 0.0, 0.0))])
    a, meta = read_image(tmp_path / "f.lif")
    np.testing.assert_array_equal(a, data[0, 0, 0])
    assert "pixel_size" not in meta or not any(meta["pixel_size"] or [])


def test_cli_compresses_a_channel_keeps_pixel_sizes_and_folders_list_lif(tmp_path):
    data = _data()
    src = tmp_path / "z.lif"
    write_lif(src, [lif_image("Series001", data)])
    out = tmp_path / "o.mcz"
    assert main(["compress", str(src), str(out), "-c", "zstd", "--channel", "1", "--no-metrics"]) == 0
    np.testing.assert_array_equal(decode(out.read_bytes()), data[0, 1])
    assert main(["decompress", str(out), str(tmp_path / "o.ome.tif")]) == 0
    _, meta = read_image(tmp_path / "o.ome.tif")
    assert meta["pixel_size"] == pytest.approx([1.0, 0.2, 0.2])
    assert set(image_files([tmp_path])) == {src, tmp_path / "o.ome.tif"}


def test_napari_reader_opens_one_layer_per_channel_and_scene(tmp_path):
    data, other = _data(n_t=2), _data(n_c=1, n_z=1, seed=4)
    path = tmp_path / "exp.lif"
    write_lif(path, [lif_image("ts", data, luts=["Green", "Red"]), lif_image("snap", other)])
    assert napari_get_reader(str(path)) is read_microscopy
    (arr, kw, kind), (arr2, kw2, _) = read_microscopy(str(path))
    assert kind == "image" and kw["channel_axis"] == 1 and len(kw["name"]) == 2
    np.testing.assert_array_equal(np.asarray(arr), data)
    assert tuple(kw["scale"]) == pytest.approx((1.0, 1.0, 0.2, 0.2))   # T, Z, Y, X
    np.testing.assert_array_equal(np.squeeze(np.asarray(arr2)), other[0, 0, 0])


def _rename_block(path, old, new):
    """The block's own name only (the XML header names it too, in the same encoding, earlier in the file)."""
    b, old = path.read_bytes(), old.encode("utf-16-le")
    at = b.rfind(old)
    path.write_bytes(b[:at] + new.encode("utf-16-le") + b[at + len(old):])


def _cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("edit, match", [
    (lambda p: _cut(p, p.stat().st_size - 100), "truncated"),
    (lambda p: _cut(p, 40), "XML header runs past"),
    (lambda p: p.write_bytes(b"\x71" + p.read_bytes()[1:]), "no LIF header"),
    (lambda p: _rename_block(p, "MemBlock_101", "MemBlock_999"), "not in the file"),
    (lambda p: p.write_bytes(p.read_bytes()[:13] + b"\x00\xd8" + p.read_bytes()[15:]), "damaged"),
])
def test_damaged_lif_is_refused_clearly(tmp_path, capsys, edit, match):
    path = tmp_path / "bad.lif"
    write_lif(path, [lif_image("Series001", _data())])
    edit(path)
    with pytest.raises(InputError, match=match):
        read_image(path)
    with pytest.raises(InputError, match=match):
        read_microscopy(str(path))
    assert main(["compress", str(path), str(tmp_path / "o.mcz"), "-c", "zstd"]) == 2
    assert "bad.lif" in capsys.readouterr().err and not (tmp_path / "o.mcz").exists()


@pytest.mark.parametrize("kw, match", [
    (dict(declare={"memory": 12}), "header says 12"),
    (dict(declare={3: {"NumberOfElements": 9}}), "memory block holds"),        # planes past the block
    (dict(declare={2: {"BytesInc": 2}}), "overlap"),                            # rows on top of each other
    (dict(declare={1: {"BytesInc": 0}}), "increment of 0"),
    (dict(declare={1: {"NumberOfElements": "4x"}}), "not a number"),
    (dict(extra_dims=[(10, 4)]), "mosaic tiles"),
    (dict(extra_dims=[(5, 32)]), "spectral"),
    (dict(declare={2: {"DimID": 4}}), "line or point scan"),                   # x-t: no y
    (dict(bits=24), "24-bit integer"),
])
def test_unsupported_or_inconsistent_layouts_are_refused(tmp_path, kw, match):
    path = tmp_path / "odd.lif"
    write_lif(path, [lif_image("Series001", _data(), **kw)])
    with pytest.raises(InputError, match=match):
        read_image(path)


def test_a_project_without_images_and_the_decode_budget(tmp_path, monkeypatch):
    from napari_microcomp.container import ENV_BUDGET

    write_lif(tmp_path / "empty.lif", [])
    with pytest.raises(InputError, match="holds no images"):
        read_image(tmp_path / "empty.lif")
    write_lif(tmp_path / "big.lif", [lif_image("Series001", _data())])
    monkeypatch.setenv(ENV_BUDGET, "1000")
    with pytest.raises(InputError, match="decode budget"):
        read_image(tmp_path / "big.lif")


def test_unsupported_images_are_skipped_with_a_warning_when_others_read(tmp_path):
    data = _data(seed=6)
    path = tmp_path / "mixed.lif"
    write_lif(path, [lif_image("TileScan", _data(), extra_dims=[(10, 4)]), lif_image("Series002", data)])
    with pytest.warns(UserWarning, match="TileScan.*mosaic tiles"):
        img = open_aics(path)
    assert img.scenes == ("Project/Series002",)
    np.testing.assert_array_equal(img.data, data)


def test_cli_info_lists_the_scenes_channels_and_pixel_sizes(tmp_path, capsys):
    import json

    path = tmp_path / "exp.lif"
    write_lif(path, [lif_image("stack", _data(), luts=["Green", "Red"]), lif_image("snap", _data(n_c=1, n_z=1))])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Leica LIF image, 2 scenes" in out and "Project/stack: uint16 C=2 Z=3 Y=40 X=48" in out
    assert "0=Green, 1=Red" in out and "1 µm, 0.2 µm, 0.2 µm" in out and "scene 1:" in out
    assert main(["info", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [s["axes"] for s in d["scenes"]] == [{"C": 2, "Z": 3, "Y": 40, "X": 48}, {"Y": 40, "X": 48}]
    _cut(path, path.stat().st_size - 10)
    assert main(["info", str(path)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_a_file_cut_short_after_opening_raises_instead_of_crashing(tmp_path):
    from napari_microcomp.io_planes import PlaneChannel

    data = _data(n_t=2)
    path = tmp_path / "live.lif"
    write_lif(path, [lif_image("ts", data, "interleaved")])
    img = open_aics(path)
    lazy = img.dask_data
    ch = PlaneChannel(img.reader._images[0], 1)
    np.testing.assert_array_equal(ch[1, 2], data[1, 1, 2])                 # ints drop their axes
    np.testing.assert_array_equal(ch[:, ::2, 5:9, -3:], data[:, 1, ::2, 5:9, -3:])
    _cut(path, path.stat().st_size - 4000)
    with pytest.raises(InputError, match="ends inside a plane"):
        lazy[1, 1, 2].compute()


def test_an_image_with_a_damaged_layout_is_skipped_when_others_read(tmp_path):
    data = _data(seed=7)
    path = tmp_path / "partly.lif"
    write_lif(path, [lif_image("bad", _data(), declare={2: {"BytesInc": 2}}), lif_image("good", data)])
    with pytest.warns(UserWarning, match="'Project/bad'.*overlap.*header is damaged"):
        img = open_aics(path)
    assert img.scenes == ("Project/good",)
    np.testing.assert_array_equal(img.data, data)


def test_napari_reader_caps_scenes_and_channel_layers_and_says_so(tmp_path, monkeypatch):
    from napari_microcomp import _reader

    monkeypatch.setattr(_reader, "MAX_CHANNEL_LAYERS", 3)
    plates = tmp_path / "plate.lif"
    write_lif(plates, [lif_image(f"well{i}", np.full((1, 1, 1, 4, 5), i, np.uint8)) for i in range(18)])
    with pytest.warns(UserWarning, match="holds 18 scenes; opened the first 16"):
        layers = _reader.read_microscopy(str(plates))
    assert len(layers) == 16 and [int(np.asarray(d).max()) for d, _, _ in layers] == list(range(16))
    spectral = tmp_path / "lambda.lif"
    write_lif(spectral, [lif_image("cube", np.arange(5 * 20, dtype=np.uint8).reshape(1, 5, 1, 4, 5))])
    with pytest.warns(UserWarning, match="holds 5 channels; opened the first 3"):
        (data, kwargs, _), = _reader.read_microscopy(str(spectral))
    assert np.asarray(data).shape == (3, 4, 5) and len(kwargs["name"]) == 3
