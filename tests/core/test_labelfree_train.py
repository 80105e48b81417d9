"""Label-free training: tiny CPU runs of the U-Net, z-stack U-Net, Pix2Pix, compression-aware, resume, CLI."""
import json

import numpy as np
import pytest

from napari_microcomp._progress import result_of
from napari_microcomp.errors import InputError

torch = pytest.importorskip("torch")

TINY = dict(depth=2, base=8, crop=32, batch=4, log_every=1, seed=0)


@pytest.fixture(scope="module")
def isl_files(tmp_path_factory):
    """A 96×128 patch of the ISL train region as TIFF files, like the packed GPU inputs."""
    import tifffile

    from napari_microcomp.samples import shared_data_dir
    if shared_data_dir() is None:
        pytest.skip("shared data not available")
    from napari_microcomp.datasets import isl_target, labelfree_split
    stack, dapi = labelfree_split("train", zstack=True)
    d = tmp_path_factory.mktemp("isl")
    win = (slice(400, 496), slice(300, 428))
    paths = {"z6": d / "phase_z6.tif", "stack": d / "phase_stack.tif", "dapi": d / "dapi.tif", "map2": d / "map2.tif"}
    tifffile.imwrite(paths["z6"], stack[6][win])
    tifffile.imwrite(paths["map2"], isl_target(channel="MAP2")[:, :768][win])
    tifffile.imwrite(paths["stack"], np.ascontiguousarray(stack[(slice(None),) + win]))
    tifffile.imwrite(paths["dapi"], dapi[win])
    return paths


def _cfg(files, tmp_path, **kw):
    from napari_microcomp.labelfree.train import TrainConfig
    base = dict(inputs=[str(files["z6"])], targets=[str(files["dapi"])], out=str(tmp_path / "m.pt"),
                command="test", **TINY)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_unet_training_lowers_the_loss_and_exports(isl_files, tmp_path):
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import iter_train

    summary = result_of(iter_train(_cfg(isl_files, tmp_path, steps=25, lr=3e-3)))
    mse = [h["mse"] for h in summary["history"]]
    assert summary["steps"] == 25 and summary["stopped_by"] == "steps"
    assert np.mean(mse[-5:]) < 0.7 * np.mean(mse[:3]), mse
    model = load_model(tmp_path / "m.pt")
    meta = model.meta
    json.dumps(meta)   # JSON-able
    assert meta["kind"] == "unet" and meta["training"]["steps"] == 25 and meta["training"]["finished"]
    assert meta["normalization"]["input"] == {"scheme": "percentile", "low": 1.0, "high": 99.0}
    assert {d["role"] for d in meta["training"]["data"]} == {"input", "target"}
    pred = model.predict(np.asarray(__import__("tifffile").imread(isl_files["z6"])))
    assert pred.shape == (96, 128) and pred.dtype == np.float32


def test_zstack_and_pix2pix_runs(isl_files, tmp_path):
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import iter_train

    result_of(iter_train(_cfg(isl_files, tmp_path, inputs=[str(isl_files["stack"])], zstack=True, steps=3,
                              out=str(tmp_path / "z.pt"))))
    z = load_model(tmp_path / "z.pt")
    assert z.zstack and z.n_slices == 13 and z.meta["arch"]["in_channels"] == 13
    assert z.predict(__import__("tifffile").imread(isl_files["stack"])).shape == (96, 128)
    s = result_of(iter_train(_cfg(isl_files, tmp_path, model="pix2pix", steps=4, pretrain_frac=0.5,
                                  out=str(tmp_path / "p.pt"))))
    p = load_model(tmp_path / "p.pt")
    assert p.meta["kind"] == "pix2pix" and p.meta["training"]["gan_started_step"] == 2
    assert p.meta["training"]["loss_weights"] == {"gan": 1.0, "feature_matching": 10.0, "reconstruction": 1000.0}
    assert all(np.isfinite(h["mse"]) for h in s["history"])
    with pytest.raises(InputError, match="--zstack"):
        result_of(iter_train(_cfg(isl_files, tmp_path, inputs=[str(isl_files["stack"])], steps=1)))


def test_compress_with_trains_on_reconstructions(isl_files, tmp_path):
    from napari_microcomp.codecs import available_codecs
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import iter_train, load_pairs

    codec = "jpegxr" if "jpegxr" in available_codecs() else "jpegxl"
    plain, _, _ = load_pairs(_cfg(isl_files, tmp_path))
    comp, targets, info = load_pairs(_cfg(isl_files, tmp_path, compress_with=f"{codec}:1"))
    assert info["compress_with"]["codec"]["id"] == codec and info["compress_with"]["streams"][0]["ratio"] > 2
    assert not np.array_equal(plain[0], comp[0])
    assert np.corrcoef(plain[0].ravel(), comp[0].ravel())[0, 1] > 0.8   # same image, compressed
    result_of(iter_train(_cfg(isl_files, tmp_path, compress_with=f"{codec}:1", steps=2)))
    assert load_model(tmp_path / "m.pt").meta["training"]["compress_with"]["codec"]["quality"] == 1
    with pytest.raises(Exception, match="unknown codec"):
        load_pairs(_cfg(isl_files, tmp_path, compress_with="nocodec:3"))


def test_checkpoint_resume_and_stops(isl_files, tmp_path):
    from napari_microcomp.labelfree.train import iter_train

    ck = str(tmp_path / "c.ckpt")
    first = result_of(iter_train(_cfg(isl_files, tmp_path, steps=3, ckpt=ck, ckpt_every=2)))
    assert first["steps"] == 3
    second = result_of(iter_train(_cfg(isl_files, tmp_path, steps=5, ckpt=ck, resume=ck)))
    assert second["steps"] == 5 and [h["step"] for h in second["history"]][:3] == [1, 2, 3]
    with pytest.raises(InputError, match="checkpoint is for"):
        result_of(iter_train(_cfg(isl_files, tmp_path, steps=6, model="pix2pix", resume=ck)))
    stopped = result_of(iter_train(_cfg(isl_files, tmp_path, steps=50), stop=lambda: True))
    assert stopped["stopped_by"] == "signal" and stopped["steps"] == 0
    timed = result_of(iter_train(_cfg(isl_files, tmp_path, steps=50, max_minutes=1e-6)))
    assert timed["stopped_by"] == "time" and timed["steps"] < 50


def test_cli_train_then_predict(isl_files, tmp_path, capsys):
    import tifffile

    from napari_microcomp.cli import main

    out = tmp_path / "cli.pt"
    rc = main(["train-labelfree", "--inputs", str(isl_files["z6"]), "--targets", str(isl_files["dapi"]),
               "--steps", "2", "--crop", "32", "--batch", "2", "--depth", "2", "--base", "8",
               "--log-every", "1", "--out", str(out)])
    assert rc == 0 and out.is_file()
    assert "step 2/2" in capsys.readouterr().out
    again = ["train-labelfree", "--inputs", str(isl_files["z6"]), "--targets", str(isl_files["dapi"]), "--steps", "1",
             "--crop", "32", "--batch", "2", "--depth", "2", "--base", "8", "--out", str(out)]
    before = out.read_bytes()
    assert main(again) == 2 and "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    pred_path = tmp_path / "pred.tif"
    assert main(["predict", str(isl_files["z6"]), str(pred_path), "--model", str(out), "--tile", "64"]) == 0
    pred = tifffile.imread(pred_path)
    assert pred.shape == (96, 128) and pred.dtype == np.float32
    said = capsys.readouterr().out    # where the model was trained, so a confident-looking map is not over-read
    assert f"trained on {isl_files['z6'].name} → {isl_files['dapi'].name} (2 steps)" in said
    assert "a single training field of view" in said and "unvalidated" in said
    assert main(["predict", str(isl_files["z6"]), str(pred_path), "--model", "unet2d-nope", "--overwrite"]) == 2
    assert "unknown label-free model" in capsys.readouterr().err
    assert main(["predict", str(isl_files["stack"]), str(pred_path), "--model", str(out), "--overwrite"]) == 2
    assert "--slice" in capsys.readouterr().err
    assert main(["predict", str(isl_files["stack"]), str(pred_path), "--model", str(out), "--slice", "6", "--overwrite"]) == 0
    six = tifffile.imread(pred_path)
    n = tifffile.imread(isl_files["stack"]).shape[0]
    # a negative slice counts from the end, as --channel does
    assert main(["predict", str(isl_files["stack"]), str(pred_path), "--model", str(out), "--slice", str(6 - n),
                 "--overwrite"]) == 0
    np.testing.assert_array_equal(tifffile.imread(pred_path), six)
    assert main(["predict", str(isl_files["stack"]), str(pred_path), "--model", str(out), "--slice", str(-n - 1),
                 "--overwrite"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_validation_strip_picks_the_exported_weights_and_patience_stops(isl_files, tmp_path):
    """Issue 15 point 1: a held-out strip (never sampled) scores every log step; the export is the best state."""
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import iter_train

    ckpt = tmp_path / "m.ckpt"
    summary = result_of(iter_train(_cfg(isl_files, tmp_path, steps=40, lr=3e-2, val_frac=0.25, patience=3,
                                        augment="strong", ckpt=str(ckpt))))
    hist = summary["history"]
    r_val = [h["r_val"] for h in hist]
    assert all(-1 <= r <= 1 for r in r_val)
    best = int(np.argmax(r_val))
    if summary["stopped_by"] == "patience":      # stopped 3 validations after the best
        assert len(r_val) - 1 - best == 3
    meta = load_model(tmp_path / "m.pt").meta["training"]
    assert meta["validation"]["best_step"] == hist[best]["step"]
    assert abs(meta["validation"]["best_pearson_r"] - r_val[best]) < 1e-3
    assert meta["validation"]["exported"] == "best" and "noise" in meta["augmentation"]
    exported = torch.load(tmp_path / "m.pt", map_location="cpu", weights_only=True)["state_dict"]
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["validation"]["best_state"]
    for k, v in saved.items():   # the exported (fp16) weights are the best state's
        torch.testing.assert_close(exported[k].float(), v.float(), atol=2e-3, rtol=2e-3)


def test_validation_strip_must_leave_room_for_a_crop(isl_files, tmp_path):
    from napari_microcomp.labelfree.train import iter_train

    with pytest.raises(InputError, match="validation strip"):
        result_of(iter_train(_cfg(isl_files, tmp_path, steps=2, val_frac=0.45, crop=80)))


def test_auxiliary_targets_train_beside_the_main_one_and_are_dropped_on_export(isl_files, tmp_path):
    """Issue 15 point 2: other stains of the same field as extra outputs; the export predicts the main one."""
    from napari_microcomp.labelfree import load_model
    from napari_microcomp.labelfree.train import iter_train

    ckpt = tmp_path / "m.ckpt"
    summary = result_of(iter_train(_cfg(isl_files, tmp_path, steps=4, val_frac=0.25, ckpt=str(ckpt),
                                        aux_targets=[str(isl_files["map2"])], aux_weight=0.5,
                                        aux_out=[str(tmp_path / "map2.pt")])))
    assert summary["steps"] == 4
    full = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert full["arch"]["out_channels"] == 2 and full["G"]["head.weight"].shape[0] == 2
    model = load_model(tmp_path / "m.pt")
    assert model.meta["arch"]["out_channels"] == 1 and model.meta["training"]["aux_targets"]["weight"] == 0.5
    assert [d["role"] for d in model.meta["training"]["data"]] == ["input", "target", "aux-target"]
    exported = torch.load(tmp_path / "m.pt", map_location="cpu", weights_only=True)["state_dict"]
    best = full["validation"]["best_state"]
    torch.testing.assert_close(exported["head.weight"].float(), best["head.weight"][:1].float(), atol=2e-3, rtol=2e-3)
    aux = torch.load(tmp_path / "map2.pt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(aux["state_dict"]["head.bias"].float(), best["head.bias"][1:].float(), atol=2e-3, rtol=2e-3)
    assert aux["meta"]["training"]["exported_output"] == "auxiliary target 1"
    pred = model.predict(np.asarray(__import__("tifffile").imread(isl_files["z6"])))
    assert pred.shape == (96, 128) and load_model(tmp_path / "map2.pt").predict(pred).shape == (96, 128)
    for bad, msg in ((dict(aux_targets=[str(isl_files["map2"])] * 3, inputs=[str(isl_files["z6"])] * 2,
                           targets=[str(isl_files["dapi"])] * 2), "same number of files"),
                     (dict(aux_targets=[str(isl_files["stack"])]), "must be 2D"),
                     (dict(aux_targets=[str(isl_files["map2"])], aux_weight=-1.0), "aux-weight"),
                     (dict(aux_targets=[str(isl_files["map2"])], model="pix2pix"), "U-Net"),
                     (dict(aux_targets=[str(isl_files["map2"])], aux_out=["a.pt", "b.pt"]), "at most one")):
        with pytest.raises(InputError, match=msg):
            result_of(iter_train(_cfg(isl_files, tmp_path, steps=1, **bad)))
