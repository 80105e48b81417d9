"""Presets resolve on this installation; the study's tiled-TIFF codec writes exactly the study's file."""
import io

import numpy as np
import pytest
import tifffile

from helpers import smooth_image
from napari_microcomp.benchmark import get_preset
from napari_microcomp.benchmark.presets import PAPER_LEARNED
from napari_microcomp.codecs.tiff_tiles import TiffTiles
from napari_microcomp import container
from napari_microcomp.codecs import available_codecs, decode, get_codec
from napari_microcomp.errors import CodecError, MicrocompError


def test_tuned_has_every_whole_image_classical_codec_at_every_level():
    plan = get_preset("tuned", learned=False)
    ids = [c["id"] for c in plan.configs]
    for name in ("jpeg2k", "htj2k", "jpegxr", "lerc", "jpegxl", "jpegls"):
        assert [c["quality"] for c in plan.configs if c["id"] == name] == list(range(1, 9))
    for name in available_codecs("lossless"):
        assert ids.count(name) == 1
    assert "tiff-tiles" not in ids and "tiled" not in ids  # the study's setting and wrappers are not methods
    assert not any(c["id"] in PAPER_LEARNED for c in plan.configs)


def test_tuned_skips_learned_levels_without_weights_with_a_note(monkeypatch):
    from napari_microcomp.benchmark import presets

    have = {"bmshj2018-factorized": [2, 4]}
    monkeypatch.setattr(presets, "weighted_qualities", lambda n: have.get(n, [1, 2, 3, 4, 5, 6, 7, 8]
                                                                            if n not in PAPER_LEARNED else []))
    plan = get_preset("tuned", levels=[2, 3, 4])
    learned = [(c["id"], c["quality"]) for c in plan.configs if c["id"] in PAPER_LEARNED]
    assert learned == [("bmshj2018-factorized", 2), ("bmshj2018-factorized", 4)]
    assert "bmshj2018-factorized: levels [2, 4] (weights installed for [2, 4])" in plan.notes
    assert any(n.startswith("skipped, no weights installed") and "mbt2018-mean" in n for n in plan.notes)
    paper = get_preset("paper")
    assert ("bmshj2018-factorized", 4) in [(c["id"], c["quality"]) for c in paper.configs]


def test_paper_preset_is_the_studys_methods():
    plan = get_preset("paper")
    tiff = [c for c in plan.configs if c["id"] == "tiff-tiles"]
    assert [(c["compression"], c["tile"], c["level"]) for c in tiff] == [
        ("jpegxr", 16, 8), ("jpeg2000", 16, 8), ("lerc", 16, 8)]
    assert len(plan.configs) + sum("skipped" in n or "not in this" in n for n in plan.notes) == 12
    with pytest.raises(MicrocompError, match="unknown preset"):
        get_preset("fastest")


@pytest.mark.parametrize("comp", ["jpegxr", "jpeg2000", "lerc"])
def test_tiff_tiles_payload_is_the_studys_tiff_file(comp):
    a = smooth_image((64, 48), np.uint16, seed=1)
    codec = get_codec("tiff-tiles", compression=comp, level=8)
    stream = codec.encode(a)
    _, payloads = container.unpack(stream)
    buf = io.BytesIO()
    tifffile.imwrite(buf, a, bigtiff=True, photometric="minisblack", tile=(16, 16), compression=comp.upper(),
                     compressionargs={"level": 8}, metadata={"axes": "YX"})
    assert payloads == [buf.getvalue()]
    out = decode(stream)
    np.testing.assert_array_equal(out, tifffile.imread(io.BytesIO(buf.getvalue())))
    assert isinstance(codec, TiffTiles) and "16² tiles" in codec.label
    with pytest.raises(CodecError):
        get_codec("tiff-tiles", compression="png")


def test_autoregressive_levels_are_capped_evenly(monkeypatch):
    from napari_microcomp.benchmark import presets

    assert presets.spread([1, 2, 3, 4, 5, 6, 7, 8], 2) == [1, 8]
    assert presets.spread([1, 2, 3, 4, 5, 6, 7, 8], 3) == [1, 5, 8]
    assert presets.spread([3, 6], 4) == [3, 6]
    monkeypatch.setattr(presets, "weighted_qualities", lambda n: [1, 2, 3, 4, 5, 6, 7, 8])
    plan = get_preset("tuned", max_autoregressive_levels=2)
    levels = {}
    for c in plan.configs:
        levels.setdefault(c["id"], []).append(c["quality"])
    assert levels["mbt2018"] == [1, 8] and levels["cheng2020-attn"] == [1, 8]
    assert levels["mbt2018-mean"] == list(range(1, 9))  # not autoregressive: every level
    assert presets.is_autoregressive("mbt2018") and not presets.is_autoregressive("jpegxl")
