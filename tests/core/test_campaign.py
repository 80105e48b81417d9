"""The training campaign (issue 10): plan validation, stop/resume, the RD gate and promotion,
modality-aware weight lookup, the LR schedule, and checkpoints that never run code."""
import json
import pickle
import threading

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from helpers import smooth_image  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.container import unpack  # noqa: E402
from napari_microcomp.errors import MicrocompError  # noqa: E402
from napari_microcomp.models import registry  # noqa: E402
from napari_microcomp import weights as wt  # noqa: E402
from napari_microcomp.weights import locate  # noqa: E402
from napari_microcomp.training import campaign, gate  # noqa: E402
from napari_microcomp.training.codec import TrainConfig, export_checkpoint, lr_factor, train  # noqa: E402

TINY = {"arch": "mbt2018-mean-vbr", "modality": "transmitted", "patch": 64, "batch": 2,
        "widths": {"N": 8, "M": 8}, "warmup": 2, "ckpt_every": 2, "lr": 1e-3, "log_every": 1}


def _images(n=2, size=64):
    return [(f"img{i}", smooth_image((size, size), seed=i)) for i in range(n)]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Campaign pieces pointed at synthetic data and a temporary shipped folder."""
    data = tmp_path / "data"
    data.mkdir()
    for n, a in _images(3, 96):
        tifffile.imwrite(data / f"{n}.tif", a)
    monkeypatch.setattr(campaign, "ensure_data", lambda workdir, modality, root=None: data)
    monkeypatch.setattr(gate, "eval_images", lambda modality, crop=512, max_images=None, root=None: _images())
    monkeypatch.setattr(gate, "ANCHORS", {"transmitted": ("jpeg2k", "level", (20, 26, 32, 38, 44, 50, 56, 62))})
    shipped = tmp_path / "shipped"
    monkeypatch.setattr(locate, "SHIPPED_DIR", shipped)
    monkeypatch.delenv("MICROCOMP_WEIGHTS", raising=False)
    wt.clear_cache()
    yield tmp_path
    wt.clear_cache()


def _plan(tmp_path, jobs):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"version": 1, "jobs": jobs}))
    return p


def test_plan_validation(tmp_path):
    with pytest.raises(MicrocompError, match="lacks"):
        campaign.load_plan(_plan(tmp_path, [{"name": "a", "arch": "mbt2018-mean-vbr"}]))
    with pytest.raises(MicrocompError, match="twice"):
        campaign.load_plan(_plan(tmp_path, [{"name": "a", **TINY, "steps": 1}] * 2))
    with pytest.raises(MicrocompError, match="not an earlier job"):
        campaign.load_plan(_plan(tmp_path, [{"name": "a", **TINY, "steps": 1, "init": "b"}]))
    (tmp_path / "v2.json").write_text(json.dumps({"version": 2, "jobs": []}))
    with pytest.raises(MicrocompError, match="version"):
        campaign.load_plan(tmp_path / "v2.json")


def test_shipped_plan_is_valid():
    from pathlib import Path

    plan = Path(__file__).resolve().parents[2] / "scripts" / "train_plan.json"
    jobs = campaign.load_plan(plan)
    assert jobs[0]["arch"] == "mbt2018-mean-vbr"   # the GUI's default learned codec comes first
    for j in jobs:
        registry.get_arch(j["arch"])
        assert j["modality"] in ("transmitted", "fluorescence")


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(arch="mbt2018-mean", data=[], warmup=10)
    f = [lr_factor(s, s / 100, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0, abs=0.03)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.05
    step = TrainConfig(arch="mbt2018-mean", data=[], warmup=0, schedule="step")
    assert lr_factor(10, 0.5, step) == 1.0 and lr_factor(80, 0.8, step) == pytest.approx(0.1)


def test_stop_resume_gate_and_promote(sandbox):
    plan = _plan(sandbox, [{"name": "vbr-t", **TINY, "steps": 6}])
    wd = sandbox / "work"
    stop = threading.Event()
    log = []

    def stopping_log(msg):
        log.append(msg)
        if "step 3/" in msg:
            stop.set()   # as the SIGTERM handler does

    jobs = {j["name"]: j for j in campaign.load_plan(plan)}
    st = campaign.Status(wd) if wd.mkdir() is None else None
    out = campaign.run_job(jobs["vbr-t"], wd, jobs, stop, st, stopping_log, threads=1)
    assert out is None and st.data["vbr-t"]["state"].startswith("stopped")
    ck = torch.load(wd / "vbr-t.ckpt", weights_only=True)
    assert ck["step"] == 3
    # a second start resumes from the checkpoint, finishes, passes the gate and is promoted
    n = campaign.run(plan, wd, log=log.append, threads=1, gate_crop=64)
    assert any("resume" in m for m in log) and any("gate:" in m for m in log)
    status = json.loads((wd / "status.json").read_text())["vbr-t"]
    target = wt.SHIPPED_DIR / "transmitted" / "mbt2018-mean-vbr.pt"
    if n == 1:
        assert status["state"] == "promoted" and target.exists()
        meta = torch.load(target, weights_only=True)["meta"]
        assert meta["campaign_job"] == "vbr-t" and meta["steps"] == 6 and meta["gate"]["modality"] == "transmitted"
        assert meta["gate"]["verdict"].startswith("monotone")
        assert len(meta["gate"]["eval_mean"]) == 8
        # the file serves weights="transmitted" and re-measures as recorded
        assert wt.find_weights("mbt2018-mean-vbr", 3, "transmitted") == target
        assert gate.recheck(target) == []
    else:  # six steps rarely give a monotone curve; then it must say why and ship nothing
        assert status["state"] == "rejected" and "monotone" in status["gate"] and not target.exists()
    # finished jobs are skipped until their plan steps are raised
    log.clear()
    assert campaign.run(plan, wd, log=log.append, threads=1) == 0 and not any("start" in m for m in log)


def test_gate_rules():
    def rep(points):
        return {"learned_mean": [{"setting": q, "bpp": b, "psnr": p} for q, b, p in points]}

    good = rep([(1, 0.1, 30), (2, 0.2, 33), (3, 0.4, 36)])
    assert gate.gate(good, None)[0]
    assert not gate.gate(rep([(1, 0.1, 30), (2, 0.2, 29), (3, 0.4, 36)]), None)[0]
    worse = rep([(1, 0.1, 29), (2, 0.2, 32), (3, 0.4, 35)])
    assert gate.gate(good, worse)[0] and not gate.gate(worse, good)[0]
    # curves that do not overlap (the old file far worse): both are judged against the same anchor
    jxl = [{"bpp": b, "psnr": p} for b, p in ((0.05, 20), (0.1, 26), (0.2, 31), (0.4, 36), (0.8, 40))]
    new = {**good, "learned": {"a": good["learned_mean"]}, "anchor": {"codec": "jpegxl", "per_image": {"a": jxl}},
           "bd_rate_vs_anchor_median": gate._bd(jxl, good["learned_mean"])}
    far = {**rep([(1, 0.5, 21), (2, 0.7, 23), (3, 0.9, 25)])}
    far["learned"] = {"a": far["learned_mean"]}
    ok, why = gate.gate(new, far)
    assert ok and "do not overlap" in why, why
    assert not gate.gate({**new, "bd_rate_vs_anchor_median": 1e9}, far)[0]
    anchor = [{"bpp": 0.1, "psnr": 30.0}, {"bpp": 0.4, "psnr": 36.0}]
    assert gate.delta_db(anchor, {"bpp": 0.2, "psnr": 34.0}) == pytest.approx(1.0)
    assert np.isnan(gate.delta_db(anchor, {"bpp": 1.0, "psnr": 40.0}))
    # a promoted file keeps the gate's number (the workdir's log may be lost with the machine)
    pt = [{"setting": 4, "bpp": 0.2, "psnr": 34.0}]
    one = {"modality": "transmitted", "crop": 64, "images": ["a"], "learned_mean": pt, "learned": {"a": pt},
           "anchor": {"codec": "jpeg2k", "per_image": {"a": anchor}}}
    assert gate.gate_meta(one)["db_vs_anchor"] == pytest.approx(1.0)
    assert gate.gate_meta({k: v for k, v in one.items() if k != "anchor"})["db_vs_anchor"] is None


def test_window_db_does_not_depend_on_how_many_levels_sample_the_window():
    anchor = [{"bpp": 0.05, "psnr": 28.0}, {"bpp": 1.0, "psnr": 40.0}]
    two = [{"bpp": 0.1, "psnr": 31.0}, {"bpp": 0.5, "psnr": 33.0}]   # flatter than the anchor
    # a third level on the chord at the cheap end: a mean over points moves, the window mean does not
    three = two + [{"bpp": 0.15, "psnr": float(np.interp(np.log(0.15), np.log([0.1, 0.5]), [31.0, 33.0]))}]
    mean_pts = [np.mean([gate.delta_db(anchor, p) for p in c]) for c in (two, three)]
    assert abs(mean_pts[0] - mean_pts[1]) > 0.2
    assert gate.window_db(anchor, three) == pytest.approx(gate.window_db(anchor, two), abs=1e-9)
    # the gap itself: learned and anchor are both straight in log-rate here, so the mean is the mid-window gap
    r = np.log(np.sqrt(0.1 * 0.5))
    mid = np.interp(r, np.log([0.1, 0.5]), [31.0, 33.0]) - np.interp(r, np.log([0.05, 1.0]), [28.0, 40.0])
    assert gate.window_db(anchor, two) == pytest.approx(mid, abs=1e-6)
    assert np.isnan(gate.window_db(anchor, [{"bpp": 0.6, "psnr": 37.0}, {"bpp": 0.9, "psnr": 39.0}]))
    assert np.isnan(gate.window_db(anchor, two[:1]))


def test_set_order_warning():
    # each level is gated alone: a better q6 can overtake the q8 above it, which the set check reports
    ok = {2: {"bpp": 0.13, "psnr": 29.9}, 4: {"bpp": 0.28, "psnr": 32.3}, 8: {"bpp": 0.81, "psnr": 34.5}}
    assert gate.set_order_warning(ok) is None
    assert gate.set_order_warning({4: ok[4]}) is None
    bad = {**ok, 6: {"bpp": 0.50, "psnr": 34.6}}
    warn = gate.set_order_warning(bad)
    assert warn and "q6 0.500/34.60, q8 0.810/34.50" in warn


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/microcomp-pwned-$PPID",))


def test_crafted_checkpoint_runs_no_code(tmp_path):
    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"format": "napari-microcomp-ckpt/1", "x": _Boom()}, f)
    torch.save({"format": "napari-microcomp-ckpt/1", "arch": "mbt2018-mean", "payload": _Boom()}, tmp_path / "evil2.ckpt")
    import os
    marker = f"/tmp/microcomp-pwned-{os.getpid()}"
    for path in (bad, tmp_path / "evil2.ckpt"):
        for kw in ({"resume": str(path)}, {"init": str(path)}):
            cfg = TrainConfig(arch="mbt2018-mean", quality=3, data=[str(tmp_path)], **kw)
            with pytest.raises(MicrocompError, match="not a readable training checkpoint"):
                list(train(cfg))
        with pytest.raises(MicrocompError):
            export_checkpoint(path, tmp_path / "x.pt")
    assert not os.path.exists(marker)


def test_modality_weights_are_chosen_recorded_and_found_again(sandbox, tmp_path, monkeypatch):
    # one tiny VBR file as the general weights and another as the transmitted-light weights
    users = tmp_path / "user"
    for sub in ("", "transmitted"):
        (users / sub).mkdir(parents=True, exist_ok=True)
        cfg = TrainConfig(arch="mbt2018-mean-vbr", data=[str(campaign.ensure_data(None, "x"))], steps=1,
                          patch=[64], batch=2, widths={"N": 8, "M": 8}, threads=1, seed=len(sub),
                          out=str(users / sub / "mbt2018-mean-vbr.pt"))
        list(train(cfg))
    monkeypatch.setenv("MICROCOMP_WEIGHTS", str(users))
    wt.clear_cache()
    grey = smooth_image((80, 72), seed=5)                      # mid-grey texture: transmitted light
    dark = np.zeros((80, 72), np.uint16)
    dark[20:30, 30:40] = 3000                                  # dark background, bright spot
    dark += np.random.default_rng(0).integers(0, 20, dark.shape).astype(np.uint16)
    for img, want, path in ((grey, "transmitted", users / "transmitted" / "mbt2018-mean-vbr.pt"),
                            (dark, "fluorescence", users / "mbt2018-mean-vbr.pt")):
        data = get_codec("mbt2018-mean-vbr", quality=4).encode(img)
        header, _ = unpack(data)
        assert header.codec["weights"] == want
        assert header.codec["weights_id"] == wt.file_id(path)
        assert decode(data).shape == img.shape
    # an instance left on automatic weights decodes its own stream with the weights the stream records
    # (the main benchmark job decoded with the general file instead and got NaN)
    c = get_codec("mbt2018-mean-vbr", quality=4)
    assert c.decode(c.encode(grey)).shape == grey.shape
    # the user's explicit choice wins over detection
    header, _ = unpack(get_codec("mbt2018-mean-vbr", quality=4, weights="transmitted").encode(dark))
    assert header.codec["weights"] == "transmitted"
    # a stream whose named file moved still decodes from any file with its fingerprint
    data = get_codec("mbt2018-mean-vbr", quality=4).encode(grey)
    (users / "transmitted" / "mbt2018-mean-vbr.pt").rename(users / "kept.pt")
    (users / "elsewhere").mkdir()
    wt.clear_cache()
    monkeypatch.setenv("MICROCOMP_WEIGHTS", f"{users}:{users / 'elsewhere'}")
    (users / "kept.pt").rename(users / "elsewhere" / "mbt2018-mean-vbr.pt")
    assert decode(data).shape == grey.shape


def test_lower_bounds_survive_export_and_warm_start(tmp_path):
    """fp16 turned the likelihood bound 1e-9 into 0; warm-started training then hit log(0) = inf."""
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", smooth_image((96, 96), seed=1))
    out = tmp_path / "w.pt"
    list(train(TrainConfig(arch="mbt2018-mean-vbr", data=[str(tmp_path / "a.tif")], steps=1, patch=[64], batch=2,
                           widths={"N": 8, "M": 8}, threads=1, out=str(out))))
    sd = torch.load(out, weights_only=True)["state_dict"]
    bounds = {k: v for k, v in sd.items() if k.endswith("likelihood_lower_bound.bound")}
    assert bounds and all(v.dtype == torch.float32 and float(v) == pytest.approx(1e-9) for v in bounds.values())
    # an older file with the bounds rounded to 0: a warm start takes the architecture's bounds instead
    d = torch.load(out, weights_only=True)
    for k in bounds:
        d["state_dict"][k] = torch.zeros_like(d["state_dict"][k]).half()
    old = tmp_path / "old.pt"
    torch.save(d, old)
    again = tmp_path / "again.pt"
    list(train(TrainConfig(arch="mbt2018-mean-vbr", data=[str(tmp_path / "a.tif")], steps=1, patch=[64], batch=2,
                           threads=1, init=str(old), out=str(again))))
    sd2 = torch.load(again, weights_only=True)["state_dict"]
    assert all(float(sd2[k]) == pytest.approx(1e-9) for k in bounds)


def test_fresh_workdir_skips_a_job_whose_file_a_later_job_replaced(sandbox):
    """A machine that comes back without runs/ must not retrain a job from scratch when a job started from it
    (``init``) has since promoted its own file in the same place."""
    jobs = campaign.load_plan(_plan(sandbox, [{"name": "a", **TINY, "steps": 4},
                                              {"name": "b", **TINY, "steps": 4, "init": "a"}]))
    by_name = {j["name"]: j for j in jobs}
    target = campaign.shipped_path(by_name["b"])
    target.parent.mkdir(parents=True)
    torch.save({"meta": {"campaign_job": "b", "steps": 4}}, target)
    wd = sandbox / "work"
    assert campaign._start_point(by_name["a"], wd, wd / "a.ckpt", by_name) == (None, None, 4)
    assert campaign._start_point(by_name["b"], wd, wd / "b.ckpt", by_name) == (None, str(target), 4)


def test_a_gate_error_keeps_the_job_and_a_rerun_gates_it(sandbox, monkeypatch):
    """A gate that raises (seen when the code was edited under a long run) must not stop the queue or lose the
    trained job: the next job still runs, and running the job again gates it."""
    plan = _plan(sandbox, [{"name": "a", **TINY, "steps": 2}, {"name": "b", **TINY, "steps": 2, "init": "a"}])
    wd = sandbox / "work"
    real, log = campaign.promote, []

    def broken(job, *args, **kwargs):
        if job["name"] == "a":
            raise ImportError("cannot import name 'x'")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(campaign, "promote", broken)
    campaign.run(plan, wd, log=log.append, threads=1, gate_crop=64)
    status = json.loads((wd / "status.json").read_text())
    assert status["a"]["state"] == "trained (gate error)" and "ImportError" in status["a"]["gate"]
    assert (wd / "a.ckpt").exists() and any("[b] gate:" in m for m in log)
    # the way out it names gates the export as it is (a time-budgeted job run again would train on)
    assert any("train-zoo --gate-only --only a" in m for m in log)
    monkeypatch.setattr(campaign, "promote", real)
    log.clear()
    campaign.run(plan, wd, only=["a"], log=log.append, threads=1, gate_crop=64)
    assert any("[a] gate:" in m for m in log)
    assert json.loads((wd / "status.json").read_text())["a"]["state"] in ("promoted", "rejected")


def test_a_time_budget_without_gate_then_gate_only(sandbox):
    """The lent-GPU path: a job ends on its time budget, stays ungated with its checkpoint (that machine has no
    evaluation data), and ``gate_results`` gates and promotes the exported file where the project lives."""
    plan = _plan(sandbox, [{"name": "g", **TINY, "steps": 10_000}])
    wd, log = sandbox / "work", []
    assert campaign.run(plan, wd, log=log.append, threads=1, max_minutes=0.05, gate=False) == 0
    status = json.loads((wd / "status.json").read_text())["g"]
    assert status["state"] == "trained (not gated)" and (wd / "g.ckpt").exists() and (wd / "g.pt").exists()
    steps = torch.load(wd / "g.pt", weights_only=True)["meta"]["steps"]
    assert 0 < steps < 10_000 and not any("gate:" in m for m in log)
    with pytest.raises(MicrocompError, match="no job"):
        campaign.gate_results(plan, wd, ["nope"], log.append)
    n = campaign.gate_results(plan, wd, ["g"], log.append, crop=64)
    assert any("[g] gate:" in m for m in log) and not (wd / "g.ckpt").exists()
    state = json.loads((wd / "status.json").read_text())["g"]["state"]
    assert state == ("promoted" if n == 1 else "rejected")
    assert (wt.SHIPPED_DIR / "transmitted" / "mbt2018-mean-vbr.pt").exists() == (n == 1)


def test_init_file_and_job_lambda(sandbox):
    """A job may warm-start from a weight file (no earlier job) and train at its own fixed-rate λ."""
    small = {**TINY, "arch": "bmshj2018-factorized", "quality": 2, "steps": 2}
    with pytest.raises(MicrocompError, match="both"):
        campaign.load_plan(_plan(sandbox, [{"name": "a", **small},
                                           {"name": "b", **small, "init": "a", "init_file": "x.pt"}]))
    with pytest.raises(MicrocompError, match="bf16 must be true or false"):
        campaign.load_plan(_plan(sandbox, [{"name": "a", **small, "bf16": "no"}]))
    # bf16 false: the plan's way round a CPU whose bf16 kernels fail (they did on one AVX-512 machine)
    jobs = {j["name"]: j for j in campaign.load_plan(_plan(sandbox, [{"name": "f", **small, "lmbda": 0.5,
                                                                       "bf16": False}]))}
    wd = sandbox / "work"
    wd.mkdir()
    out = campaign.run_job(jobs["f"], wd, jobs, threading.Event(), campaign.Status(wd), lambda m: None, threads=1)
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["lambda"] == 0.5 and meta["bf16"] is False
    (wt.SHIPPED_DIR).mkdir(parents=True)
    src = wt.SHIPPED_DIR / "start.pt"
    src.write_bytes(out.read_bytes())
    job = {"name": "g", **small, "init_file": "start.pt"}
    assert campaign._start_point(job, wd, wd / "g.ckpt", {"g": job}) == (None, str(src), 0)
    with pytest.raises(MicrocompError, match="does not exist"):
        campaign._start_point({**job, "init_file": "gone.pt"}, wd, wd / "g.ckpt", {"g": job})


def test_a_crashed_campaign_is_restarted_and_a_stopped_one_is_not(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from napari_microcomp.cli.train_zoo import supervise

    flag = tmp_path / "ran"
    # dies of SIGABRT (as glibc's heap checks do) on the first run, succeeds on the second
    crash_once = ("import os, pathlib; p = pathlib.Path(%r)\n"
                  "if not p.exists(): p.write_text('1'); os.abort()\n" % str(flag))
    logs = []
    assert supervise([sys.executable, "-c", crash_once], 2, logs.append) == 0
    assert len(logs) == 1 and "SIGABRT" in logs[0] and "1/2" in logs[0]

    logs.clear()
    always = [sys.executable, "-c", "import os; os.abort()"]
    assert supervise(always, 1, logs.append) == 128 + signal.SIGABRT
    assert len(logs) == 2 and "no retries left" in logs[-1]

    # a stop we pass on is not a crash: no restart, and the child gets the signal (to checkpoint)
    started = tmp_path / "started"
    child = ("import pathlib, time; pathlib.Path(%r).write_text('1'); time.sleep(60)" % str(started))
    sup = subprocess.Popen([sys.executable, "-c",
                            "import sys; from napari_microcomp.cli.train_zoo import supervise; "
                            "sys.exit(supervise([sys.executable, '-c', %r], 3, print))" % child],
                           stdout=subprocess.PIPE, text=True)
    for _ in range(600):
        if started.exists():
            break
        time.sleep(0.1)
    sup.send_signal(signal.SIGTERM)
    out, _ = sup.communicate(timeout=30)
    assert sup.returncode == 128 + signal.SIGTERM and "restarting" not in out


def test_a_restarted_campaign_gets_what_is_left_of_its_time(tmp_path):
    import sys

    from napari_microcomp.cli.train_zoo import supervise

    flag, seen = tmp_path / "ran", tmp_path / "args"
    # records the --max-minutes it was given, dies of SIGABRT once
    child = ("import os, pathlib, sys; p = pathlib.Path(%r)\n"
             "open(%r, 'a').write(sys.argv[-1] + '\\n')\n"
             "if not p.exists(): p.write_text('1'); os.abort()\n" % (str(flag), str(seen)))
    assert supervise([sys.executable, "-c", child], 2, [].append, max_minutes=10) == 0
    first, second = (float(v) for v in seen.read_text().split())
    assert 9.9 < first <= 10.0 and second <= first   # one budget for both runs, not 10 minutes each


def test_a_diverged_run_is_restarted_in_a_fresh_process_and_an_error_is_not(tmp_path, monkeypatch, capsys):
    """After a heap error, a resumed cheng2020-attn process computed non-finite gradients from a checkpoint
    that trained fine in a fresh process; a divergence therefore gets the crash retries, other errors none."""
    import sys

    from napari_microcomp.cli import main
    from napari_microcomp.cli import train_zoo
    from napari_microcomp.errors import TrainingDiverged
    from napari_microcomp.training import campaign

    def diverges(*a, **k):
        raise TrainingDiverged("training diverged (13 loss explosions); lower --lr")
    monkeypatch.setattr(campaign, "run", diverges)
    assert main(["train-zoo", "--plan", "p.json", "--workdir", str(tmp_path / "wd")]) == TrainingDiverged.exit_code
    assert "training diverged" in capsys.readouterr().err

    flag = tmp_path / "ran"
    once = ("import pathlib, sys; p = pathlib.Path(%r)\n"
            "if not p.exists(): p.write_text('1'); sys.exit(%d)\n" % (str(flag), TrainingDiverged.exit_code))
    logs = []
    assert train_zoo.supervise([sys.executable, "-c", once], 2, logs.append) == 0
    assert len(logs) == 1 and "diverged" in logs[0] and "fresh process (1/2)" in logs[0]
    logs.clear()
    always = [sys.executable, "-c", "import sys; sys.exit(%d)" % TrainingDiverged.exit_code]
    assert train_zoo.supervise(always, 1, logs.append) == TrainingDiverged.exit_code
    assert "no retries left" in logs[-1]
    logs.clear()
    assert train_zoo.supervise([sys.executable, "-c", "import sys; sys.exit(2)"], 3, logs.append) == 2 and not logs
