"""The plugin as napari sees it: manifest loaded through npe2, widgets, reader, writer, samples."""
import importlib.metadata
import subprocess
import warnings
import sys
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_microcomp
from napari_microcomp._qt.benchmark_widget import BenchmarkWidget
from napari_microcomp._qt.compress_widget import CompressWidget
from napari_microcomp._qt.labelfree_widget import LabelFreeWidget
from napari_microcomp._reader import napari_get_reader, read_mcz
from napari_microcomp._writer import DEFAULT_CODEC, write_single_image

pytestmark = pytest.mark.gui
MANIFEST = Path(napari_microcomp.__file__).parent / "napari.yaml"
ROOT = Path(__file__).resolve().parents[2]


def test_manifest_validates_and_imports():
    pm = PluginManifest.from_file(MANIFEST)
    pm.validate_imports()  # every python_name resolves
    assert pm.name == "napari-microcomp"
    assert {w.display_name for w in pm.contributions.widgets} == {"Compress", "Label-free prediction",
                                                                  "Benchmark", "Advise"}
    from napari_microcomp.io import VENDOR_SUFFIXES

    (patterns,) = [r.filename_patterns for r in pm.contributions.readers]   # the files the reader opens, no more
    assert sorted(patterns) == sorted(["*.mcz", "*.zarr"] + [f"*{s}" for s in VENDOR_SUFFIXES])
    assert [w.filename_extensions for w in pm.contributions.writers] == [[".mcz"], [".mcz"]]
    assert {s.key for s in pm.contributions.sample_data} == {"isl_phase_dapi", "hipsc_nuclei", "skimage_cell"}
    # the top-level napari.yaml is a relative link to the shipped one: one source of truth
    top = ROOT / "napari.yaml"
    assert top.is_symlink() and not Path(top.readlink()).is_absolute()
    assert top.resolve() == MANIFEST.resolve()


def test_npe2_validate_cli():
    out = subprocess.run([str(Path(sys.executable).parent / "npe2"), "validate", str(MANIFEST), "--imports"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout.lower()


def test_entry_point_when_installed():
    eps = [ep for ep in importlib.metadata.entry_points(group="napari.manifest") if ep.name == "napari-microcomp"]
    if not eps:
        pytest.skip("napari-microcomp is not pip-installed here (entry point absent)")
    assert eps[0].value == "napari_microcomp:napari.yaml"


@pytest.fixture
def plugin(npe2pm):
    npe2pm.register(PluginManifest.from_file(MANIFEST))
    return npe2pm


def test_widgets_open_from_the_plugins_menu(make_napari_viewer, plugin, qtbot, cell):
    viewer = make_napari_viewer()
    viewer.add_image(cell, name="cell")
    widgets = {}
    for name, cls in (("Compress", CompressWidget), ("Label-free prediction", LabelFreeWidget),
                      ("Benchmark", BenchmarkWidget)):
        dock, widget = viewer.window.add_plugin_dock_widget("napari-microcomp", name)
        assert isinstance(widget, cls)
        widgets[name] = widget
    # napari hands plugin widgets a public-only viewer proxy; a full run through it must neither
    # fail nor touch private attributes (napari warns on private access)
    w = widgets["Compress"]
    w.codec_combo.select("jpegxl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with qtbot.waitSignal(w.run_finished, timeout=60_000):
            w.run_button.click()
    private = [str(c.message) for c in caught if "private" in str(c.message).lower()]
    assert private == []
    assert "cell [jpegxl q4]" in viewer.layers
    # pickers follow the layer list (adds, renames) ...
    viewer.layers["cell"].name = "renamed cell"
    viewer.add_image(cell[:64, :64].copy(), name="crop")
    assert {"renamed cell", "crop"} <= {w.layer_picker.itemText(i) for i in range(w.layer_picker.count())}
    bench = widgets["Benchmark"]
    assert "crop" in [bench.layer_list.item(i).text() for i in range(bench.layer_list.count())]
    # ... and stop listening once their docks are closed: later layer changes raise nothing
    from napari_microcomp._qt._common import alive

    for widget in widgets.values():
        viewer.window.remove_dock_widget(widget)  # napari unparents the widget ...
        widget.deleteLater()                      # ... and Qt deletes it
    qtbot.waitUntil(lambda: not any(alive(x) for x in widgets.values()), timeout=5000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viewer.add_image(cell[:32, :32].copy(), name="after close")
        viewer.layers["crop"].name = "crop2"
        del viewer.layers["after close"]
    assert not [c for c in caught if "deleted" in str(c.message)]


def test_sample_data_opens(make_napari_viewer, plugin, isl_images):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-microcomp", "skimage_cell")
    viewer.open_sample("napari-microcomp", "hipsc_nuclei")
    viewer.open_sample("napari-microcomp", "isl_phase_dapi")
    shapes = {layer.name: (layer.data.shape, layer.data.dtype) for layer in viewer.layers}
    assert shapes["hiPSC nuclei"] == ((60, 256, 256), np.uint16)
    assert shapes["ISL phase contrast"] == ((13, 1024, 1024), np.uint16)
    assert shapes["ISL DAPI"] == ((1024, 1024), np.uint16)
    assert shapes["skimage cell"][1] == np.uint8
    assert tuple(viewer.layers["hiPSC nuclei"].scale) == (0.29, 0.26, 0.26)


def test_writer_then_reader_through_napari(make_napari_viewer, plugin, tmp_path, nuclei_crop):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei_crop, name="nuclei", scale=(0.29, 0.26, 0.26), translate=(1, 2, 3))
    path = tmp_path / "nuclei.mcz"
    written = viewer.layers.save(str(path), selected=False, plugin="napari-microcomp")
    assert [Path(p) for p in written] == [path]
    assert napari_get_reader(str(path)) is read_mcz
    viewer2 = make_napari_viewer()
    [layer] = viewer2.open(str(path), plugin="napari-microcomp")
    np.testing.assert_array_equal(layer.data, nuclei_crop)  # the default writer is lossless
    assert layer.name == "nuclei" and tuple(layer.scale) == (0.29, 0.26, 0.26)
    assert tuple(layer.translate) == (1, 2, 3)
    assert layer.metadata["microcomp"]["header"]["codec"]["id"] == DEFAULT_CODEC
    assert layer.metadata["microcomp"]["header"]["codec"]["lossless"] is True


def test_saving_a_reconstruction_writes_its_own_stream(tmp_path, cell):
    from napari_microcomp._qt._common import reconstruction_metadata
    from napari_microcomp.jobs import compress_with_crc

    res, crc = compress_with_crc(cell, "jpeg2k", quality=2)
    meta = {"name": "cell [jpeg2k q2]", "scale": (1.0, 1.0), "translate": (0.0, 0.0),
            "metadata": reconstruction_metadata(res, "cell", crc)}
    [p] = write_single_image(str(tmp_path / "rec"), res.reconstruction, meta)
    assert p.endswith("rec.mcz")
    [(data, kwargs, kind)] = read_mcz(p)
    np.testing.assert_array_equal(data, res.reconstruction)
    assert kwargs["metadata"]["microcomp"]["header"]["codec"] == res.config  # no re-encoding
    assert abs(Path(p).stat().st_size - len(res.data)) < 200  # same payloads, header + layer name
    # once edited, the layer is no longer that stream: it is saved losslessly instead
    edited = res.reconstruction.copy()
    edited[0, 0] ^= 1
    [p2] = write_single_image(str(tmp_path / "edited.mcz"), edited, meta)
    [(data2, kwargs2, _)] = read_mcz(p2)
    np.testing.assert_array_equal(data2, edited)
    assert kwargs2["metadata"]["microcomp"]["header"]["codec"]["lossless"] is True


def test_reader_refuses_foreign_and_reports_damaged_files(tmp_path, cell):
    from napari_microcomp.errors import StreamError

    foreign = tmp_path / "x.mcz"
    foreign.write_bytes(b"not a microcomp file")
    assert napari_get_reader(str(foreign)) is None
    assert napari_get_reader(str(tmp_path / "missing.mcz")) is None
    [p] = write_single_image(str(tmp_path / "ok.mcz"), cell, {"name": "cell"})
    damaged = tmp_path / "damaged.mcz"
    data = bytearray(Path(p).read_bytes())
    data[-10] ^= 0xFF
    damaged.write_bytes(bytes(data))
    reader = napari_get_reader(str(damaged))
    assert reader is read_mcz
    with pytest.raises(StreamError, match="checksum"):
        reader(str(damaged))


def test_float_layers_fall_back_to_a_lossless_codec_that_stores_them(tmp_path):
    a = np.linspace(0, 1, 64 * 80, dtype=np.float32).reshape(64, 80)
    [p] = write_single_image(str(tmp_path / "f.mcz"), a, {"name": "f"})
    [(data, kwargs, _)] = read_mcz(p)
    np.testing.assert_array_equal(data, a)
    assert kwargs["metadata"]["microcomp"]["header"]["codec"]["id"] != DEFAULT_CODEC


def test_triton_guard_keeps_learned_codecs_importable_after_opengl(tmp_path):
    """Opening a widget after napari's OpenGL context (Mesa llvmpipe here) must not segfault."""
    script = tmp_path / "late_import.py"
    script.write_text(
        "import napari, numpy as np\n"
        "v = napari.Viewer(show=False)\n"
        "v.add_image(np.zeros((32, 32), np.uint16))\n"
        "from napari_microcomp._qt.compress_widget import CompressWidget\n"
        "w = CompressWidget(v)\n"
        "names = [w.codec_combo.itemData(i) for i in range(w.codec_combo.count())]\n"
        "from napari_microcomp.codecs import available_codecs\n"
        "print('learned-imported', len(available_codecs()) > 0, 'jpegxl' in names)\n"
        "v.close()\n")
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "learned-imported True True" in out.stdout
