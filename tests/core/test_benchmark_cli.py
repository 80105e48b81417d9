"""`microcomp benchmark` in-process: outputs, errors, and the main job's plan (not run: too long here)."""
import numpy as np
import pytest
import tifffile

from helpers import smooth_image
from napari_microcomp.benchmark import load_csv, load_json
from napari_microcomp.cli import build_parser, main


@pytest.fixture
def two_images(tmp_path):
    paths = []
    for k, shape in enumerate([(40, 56), (48, 48)]):
        p = tmp_path / f"img{k}.tif"
        tifffile.imwrite(p, smooth_image(shape, np.uint16, seed=k, bits=12))
        paths.append(str(p))
    return paths


def test_benchmark_files_writes_all_outputs(two_images, tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["benchmark", *two_images, "--codecs", "jpegxl,jpeg2k", "zstd", "--qualities", "2", "6",  # as advise
               "--out", str(out), "--no-ms-ssim", "--anchor", "jpeg2k"])
    assert rc == 0
    rows = load_csv(out / "results.csv")
    assert len(rows) == 2 * 5 and {r["image"] for r in rows} == {"img0.tif", "img1.tif"}
    assert load_json(out / "results.json")[3]["label"] == rows[3]["label"]
    assert (out / "results.md").read_text().count("\n| img") >= 10
    assert (out / "rd_psnr.png").is_file() and (out / "rd_ssim.png").is_file()
    printed = capsys.readouterr().out
    assert "Highest compression ratio at SSIM ≥ 0.94" in printed and "BD-rate vs jpeg2k" in printed


def test_paper_preset_on_a_file(two_images, tmp_path):
    out = tmp_path / "paper"
    assert main(["benchmark", two_images[0], "--preset", "paper", "--no-learned", "--out", str(out), "--quiet"]) == 0
    rows = load_csv(out / "results.csv")
    assert [r["config"]["compression"] for r in rows if r["codec"] == "tiff-tiles"] == ["jpegxr", "jpeg2000", "lerc"]
    assert all(r["status"] == "ok" for r in rows)


def test_clear_errors(two_images, tmp_path, capsys):
    assert main(["benchmark", two_images[0], "--codecs", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown codec 'nope'" in capsys.readouterr().err
    assert main(["benchmark", *two_images, "--ground-truth", two_images[0], "--model", "m",
                 "--out", str(tmp_path / "x")]) == 2
    assert "one file per image" in capsys.readouterr().err
    assert main(["benchmark", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "x")]) == 2
    # arguments that would fail every row, or skip phase 2 the user asked for, fail before any work
    for extra, said in ((["--qualities", "9"], "levels 1..8"), (["--phase2-qualities", "0"], "levels 1..8"),
                        (["--data-range", "-5"], "positive"), (["--model", "no-such-model"], "no-such-model")):
        assert main(["benchmark", two_images[0], "--codecs", "jpeg2k", *extra, "--out", str(tmp_path / "y")]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
    (tmp_path / "afile").write_text("keep")   # a results folder that cannot be one fails before the run
    assert main(["benchmark", two_images[0], "--codecs", "jpeg2k", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file; name a folder" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "keep"


def test_main_job_plan_without_running_it(shared_data):
    from napari_microcomp.cli.benchmark import resolve

    args = build_parser().parse_args(["benchmark"])
    run = resolve(args)
    names = [n for n, _ in run["images"]]
    assert names[:4] == ["isl_phase_z6", "isl_dapi", "skimage_cell", "hipsc_nuclei_z30"]
    ids = {c["id"] for c in run["configs"]}
    assert {"jpeg2k", "htj2k", "jpegxr", "lerc", "jpegxl", "jpegls", "zstd"} <= ids
    if run["predictor"] is None:  # weights not installed: a note, not an error
        assert any("phase 2 skipped" in n for n in run["notes"])
    else:
        assert list(run["ground_truth"]) == ["isl_phase_z6"]


def test_a_folder_stands_for_the_images_in_it(two_images, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in two_images:
        (folder / p.rsplit("/", 1)[-1]).write_bytes(open(p, "rb").read())
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "res"
    assert main(["benchmark", str(folder), "--codecs", "jpegxl", "--qualities", "2", "--out", str(out),
                 "--no-ms-ssim", "--quiet"]) == 0
    assert [r["image"] for r in load_csv(out / "results.csv")] == ["img0.tif", "img1.tif"]
    assert main(["advise", str(folder), "--ssim", "0.9", "--codecs", "jpegxl", "--max-trials", "3"]) == 0
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["benchmark", str(empty), "--out", str(tmp_path / "x")]) == 2
    assert "no image files" in capsys.readouterr().err


def test_a_stray_file_in_a_folder_is_skipped_and_said_a_named_one_is_an_error(two_images, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "img0.tif").write_bytes(open(two_images[0], "rb").read())
    (folder / "broken.tif").write_bytes(open(two_images[1], "rb").read()[:40])      # truncated
    tifffile.imwrite(folder / "rgb.tif", np.dstack([np.full((32, 32), v, np.uint8) for v in (0, 1, 2)]), photometric="rgb")
    out = tmp_path / "res"
    assert main(["benchmark", str(folder), "--codecs", "jpegxl", "--qualities", "2", "--out", str(out),
                 "--no-ms-ssim", "--quiet"]) == 1     # results for the rest, a non-zero exit for the skipped
    assert [r["image"] for r in load_csv(out / "results.csv")] == ["img0.tif"]
    err = capsys.readouterr().err
    assert "2 file(s) skipped" in err and "broken.tif" in err
    assert "rgb.tif" in (out / "results.md").read_text()      # the notes name every skipped file
    assert main(["advise", str(folder), "--ssim", "0.9", "--codecs", "jpegxl", "--max-trials", "3"]) == 1
    err = capsys.readouterr().err
    assert "note: skipped" in err and "rgb.tif" in err
    named = [str(folder / "img0.tif"), str(folder / "rgb.tif")]
    for cmd in (["benchmark", *named, "--out", str(tmp_path / "x"), "--codecs", "jpegxl"],
                ["advise", *named, "--ssim", "0.9"]):
        assert main(cmd) == 2
        assert "rgb.tif: shape (32, 32, 3) looks like an RGB" in capsys.readouterr().err
    # --ground-truth pairs by order, so nothing may be skipped there
    assert main(["benchmark", str(folder), "--ground-truth", *two_images, "--model", "m", "--no-ms-ssim",
                 "--out", str(tmp_path / "y")]) == 2
    assert "every image must be readable" in capsys.readouterr().err


def test_integer_lists_take_commas_like_codec_lists(capsys):
    """`--qualities 2,6` was "invalid int value" while `--codecs a,b` and `--chunks 1,512,512` took commas."""
    parse = build_parser().parse_args
    for given in (["2", "6", "8"], ["2,6,8"], ["2,6", "8"], ["2,", "6,8"]):
        args = parse(["benchmark", "x.tif", "--qualities", *given, "--phase2-qualities", *given])
        assert args.qualities == args.phase2_qualities == [2, 6, 8]
    tiled = parse(["compress-tiled", "a.npy", "b.mcz", "--tile", "32,512,512", "--halo", "2", "8,8"])
    assert tiled.tile == [32, 512, 512] and tiled.halo == [2, 8, 8]
    train = parse(["train-codec", "--arch", "factorized3d", "--data", "d", "--out", "o.pt", "--patch", "16,64,64"])
    assert train.patch == [16, 64, 64]
    for bad in ("2,x", ","):
        with pytest.raises(SystemExit):
            parse(["benchmark", "x.tif", "--qualities", bad])
        assert "--qualities" in capsys.readouterr().err
