"""Checkpoints written before the trainer base existed still resume, and every shipped weight file
loads through the weights module (``torch.load(weights_only=True)`` throughout)."""
from pathlib import Path

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp._progress import result_of  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "train"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, (rng.random((96, 128)) * 4000).astype(np.uint16))
    tifffile.imwrite(b, (rng.random((96, 128)) * 4000).astype(np.uint16))
    return a, b


def test_old_codec_checkpoint_resumes_and_exports(images, tmp_path):
    from napari_microcomp.codecs import decode, get_codec
    from napari_microcomp.training.codec import TrainConfig, export_checkpoint, train

    old = FIX / "codec-v1.ckpt"
    d = torch.load(old, map_location="cpu", weights_only=True)
    assert d["format"] == "napari-microcomp-ckpt/1" and d["step"] == 2
    ck, out = tmp_path / "run.ckpt", tmp_path / "mbt2018-mean-vbr.pt"
    cfg = TrainConfig(arch="mbt2018-mean-vbr", data=[str(images[0])], steps=3, patch=[64], batch=1,
                      resume=str(old), ckpt=str(ck), out=str(out), threads=1, log_every=1, command="test",
                      warmup=10)
    res = result_of(train(cfg))
    assert res["steps"] == 3 and res["meta"]["widths"] == {"N": 4, "M": 4}
    assert torch.load(ck, map_location="cpu", weights_only=True)["step"] == 3
    img = tifffile.imread(images[0])
    assert decode(get_codec("mbt2018-mean-vbr", quality=2, weights=str(out)).encode(img)).shape == img.shape
    exported = export_checkpoint(old, tmp_path / "from-ckpt.pt")
    assert torch.load(exported, weights_only=True)["meta"]["from_checkpoint"] is True


def test_old_labelfree_checkpoint_resumes(images, tmp_path):
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import TrainConfig, iter_train

    old = FIX / "labelfree-v1.ckpt"
    assert torch.load(old, map_location="cpu", weights_only=True)["step"] == 2
    out = tmp_path / "lf.pt"
    cfg = TrainConfig(inputs=[str(images[0])], targets=[str(images[1])], steps=3, crop=32, batch=2, depth=2,
                      base=4, resume=str(old), ckpt=str(tmp_path / "lf.ckpt"), out=str(out), command="test",
                      log_every=1)
    res = result_of(iter_train(cfg))
    assert res["steps"] == 3 and [h["step"] for h in res["history"]][:2] == [1, 2]
    assert load_model(out).predict(tifffile.imread(images[0])).shape == (96, 128)


@pytest.mark.parametrize("path", sorted((ROOT / "runs" / "zoo").glob("*.ckpt")), ids=lambda p: p.name)
def test_campaign_checkpoints_load(path):
    """The running campaign's checkpoints (when this checkout has them) load safely (read only)."""
    d = torch.load(path, map_location="cpu", weights_only=True)
    assert d["format"] == "napari-microcomp-ckpt/1" and "model" in d and "opt" in d
