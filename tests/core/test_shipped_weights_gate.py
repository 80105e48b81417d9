"""Every promoted weight file (weights/codecs/MODALITY/) re-measures as its gate recorded it, and its
recorded evaluation curve is monotone (issue 10's RD gate, fast form: one evaluation crop per file)."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import weights as wt  # noqa: E402
from napari_microcomp.training import gate  # noqa: E402

PROMOTED = sorted(p for m in ("transmitted", "fluorescence") for p in (wt.SHIPPED_DIR / m).glob("*.pt"))


def test_promoted_files_are_fp16_and_small():
    # issue 10: all shipped weights together (codecs and label-free models) within 100 MB
    total = sum(p.stat().st_size for p in wt.SHIPPED_DIR.parent.rglob("*.pt"))
    assert total <= 100e6
    for p in PROMOTED:
        d = torch.load(p, map_location="cpu", weights_only=True)
        floats = [v for k, v in d["state_dict"].items()
                  if v.is_floating_point() and not k.endswith(("scale_table", ".bound"))]
        assert floats and all(v.dtype == torch.float16 for v in floats), p.name


@pytest.mark.parametrize("path", PROMOTED, ids=[f"{p.parent.name}/{p.name}" for p in PROMOTED])
def test_promoted_file_rechecks(path, shared_data):
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    assert meta.get("campaign_job") and meta.get("gate"), "promoted files carry their gate record"
    assert gate.monotone(meta["gate"]["eval_mean"]) or len(meta["gate"]["eval_mean"]) == 1
    assert gate.recheck(path) == []


def test_recheck_flags_a_file_worse_than_its_record_and_lets_a_better_one_pass(tmp_path, shared_data):
    src = wt.SHIPPED_DIR / "transmitted" / "bmshj2018-factorized-relu-q2.pt"
    d = torch.load(src, map_location="cpu", weights_only=True)
    point = d["meta"]["gate"]["check_points"]["2"]
    for shift, flagged in ((+0.5, True), (-0.5, False)):   # recorded better than measured: a regression
        d["meta"]["gate"]["check_points"]["2"] = dict(point, psnr=point["psnr"] + shift)
        torch.save(d, tmp_path / src.name)
        assert bool(gate.recheck(tmp_path / src.name)) == flagged
