"""The weights module: every shipped weight file (codecs and label-free models) loads through it."""
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "napari_microcomp" / "weights"
CODEC_FILES = sorted((SHIPPED / "codecs").rglob("*.pt"))
LABELFREE_FILES = sorted((SHIPPED / "labelfree").glob("*.pt"))


def test_there_are_shipped_files():
    assert len(CODEC_FILES) >= 20 and len(LABELFREE_FILES) >= 4


@pytest.mark.parametrize("path", CODEC_FILES, ids=lambda p: str(p.relative_to(SHIPPED)))
def test_every_shipped_codec_file_loads(path):
    from napari_microcomp.models import zoo

    lm = zoo.load_weights(path)
    assert lm.arch and len(lm.weights_id) == 16 and not lm.model.training


@pytest.mark.parametrize("path", LABELFREE_FILES, ids=lambda p: p.name)
def test_every_shipped_labelfree_file_loads(path):
    from napari_microcomp.labelfree import load_model

    m = load_model(path)
    assert m.meta["kind"] in ("unet", "pix2pix") and m.meta["source"] == str(path.resolve())
