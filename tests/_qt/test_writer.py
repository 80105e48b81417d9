"""Issue 12, point 2: the writer's refusals reach the user in the plugin's words; the codec and
quality can be chosen when saving (second writer with a small dialog)."""
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from napari_microcomp._reader import read_mcz

MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"


@pytest.fixture
def plugin(npe2pm):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    return npe2pm


@pytest.mark.parametrize("kind, expected", [
    ("rgb", "is RGB"), ("nan", "NaN"), ("4d", "4D"),
])
def test_refusals_are_napari_notifications_in_the_plugins_words(make_napari_viewer, plugin, tmp_path,
                                                                 errors_shown, cell, kind, expected):
    viewer = make_napari_viewer()
    if kind == "rgb":
        c = cell[:64, :64]
        layer = viewer.add_image(np.stack([c, c[::-1], c], axis=-1), name="colour", rgb=True)
    elif kind == "nan":
        a = cell[:64, :64].astype(np.float32)
        a[3, 4] = np.nan
        layer = viewer.add_image(a, name="with nan")
    else:
        layer = viewer.add_image(np.zeros((2, 3, 32, 32), np.uint16), name="hyperstack")
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(tmp_path / "x.mcz"), selected=True, plugin="napari-microcomp")
    assert written == []
    shown = [m for m in errors_shown() if "napari-microcomp did not save x.mcz" in m]
    assert shown, errors_shown()
    assert expected in shown[0] and repr(layer.name) in shown[0]
    assert not (tmp_path / "x.mcz").exists()


def test_grey_image_saved_as_rgb_is_stored_as_its_one_channel(make_napari_viewer, plugin, tmp_path, cell):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.stack([cell] * 3, axis=-1), name="grey", rgb=True)
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(tmp_path / "g.mcz"), selected=True, plugin="napari-microcomp")
    assert [Path(p) for p in written] == [tmp_path / "g.mcz"]
    [(data, _, _)] = read_mcz(str(tmp_path / "g.mcz"))
    np.testing.assert_array_equal(data, cell)   # lossless, one channel


def test_a_boolean_mask_layer_is_stored_as_uint8(make_napari_viewer, plugin, tmp_path, cell, infos_shown):
    viewer = make_napari_viewer()
    layer = viewer.add_image(cell > 100, name="mask")
    viewer.layers.selection = {layer}
    viewer.layers.save(str(tmp_path / "m.mcz"), selected=True, plugin="napari-microcomp")
    [(data, _, _)] = read_mcz(str(tmp_path / "m.mcz"))
    np.testing.assert_array_equal(data, (cell > 100).astype(np.uint8))
    assert any("1-bit" in m for m in infos_shown())
    assert layer.data.dtype == bool   # the layer is untouched


def test_choose_codec_writer_uses_the_dialogs_codec_and_quality(make_napari_viewer, plugin, tmp_path,
                                                                cell, monkeypatch):
    from napari_microcomp._qt import save_dialog

    asked = []
    monkeypatch.setattr(save_dialog, "ask_codec", lambda name, ndim: asked.append(name) or ("jpeg2k", 3))
    viewer = make_napari_viewer()
    layer = viewer.add_image(cell, name="cell")
    viewer.layers.selection = {layer}
    writer = plugin.get_manifest("napari-microcomp").contributions.writers[1]
    assert writer.display_name == "microcomp, choose codec"
    path = tmp_path / "cell.mcz"
    written = viewer.layers.save(str(path), selected=True, _writer=writer)
    assert [Path(p) for p in written] == [path] and asked == ["cell"]
    [(data, kwargs, _)] = read_mcz(str(path))
    codec = kwargs["metadata"]["microcomp"]["header"]["codec"]
    assert codec["id"] == "jpeg2k" and codec["quality"] == 3
    from napari_microcomp.api import compress_array

    np.testing.assert_array_equal(data, compress_array(cell, "jpeg2k", quality=3).reconstruction)
    # cancelling the dialog writes nothing and shows no error
    monkeypatch.setattr(save_dialog, "ask_codec", lambda name, ndim: None)
    assert viewer.layers.save(str(tmp_path / "none.mcz"), selected=True, _writer=writer) == []
    assert not (tmp_path / "none.mcz").exists()


def test_save_dialog_offers_only_levels_with_weights(qtbot, tmp_path, monkeypatch):
    from qtpy.QtCore import QSettings

    from napari_microcomp._qt._codecs import quality_levels
    from napari_microcomp._qt.save_dialog import SaveDialog

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))
    d = SaveDialog("cell")
    qtbot.addWidget(d)
    d.codec_combo.select("jpeg2k")
    d.quality.setValue(5)
    assert d.choice() == ("jpeg2k", 5)
    levels = quality_levels("mbt2018")
    if levels == list(range(1, 9)):
        pytest.skip("mbt2018 has weights for every level here")
    d.codec_combo.select("mbt2018")
    assert d.quality.value() in levels
    for q in range(1, 9):
        d.quality.setValue(q)
        assert d.quality.value() in levels
    d.accept()
    assert QSettings("napari-microcomp", "writer").value("codec") == "mbt2018"
