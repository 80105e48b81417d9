"""The training campaign: a versioned queue of codec trainings that runs in the background and resumes.

A plan file (JSON, ``scripts/train_plan.json``) lists jobs in order::

    {"version": 1, "jobs": [{"name": "mbt2018-mean-vbr-transmitted", "arch": "mbt2018-mean-vbr",
      "modality": "transmitted", "steps": 120000, "lr": 5e-4, "patch": 128, "batch": 8}, ...]}

Optional job keys: ``quality`` (fixed-rate architectures), ``widths``, ``init`` (the name of an earlier
job whose weights warm-start this one: λ-transfer), ``warmup``, ``continue_lr`` (peak lr when a job whose
steps were raised continues from its promoted weights), ``lambdas`` (VBR: the eight λ of its rate levels,
recorded in the weights; e.g. a wider range for transmitted light), ``lmbda`` (fixed-rate: the job's λ,
e.g. the level of a VBR table other models of the zoo were trained at), ``init_file`` (a weight file,
relative to the shipped codecs folder, that warm-starts a job with no ``init`` job), ``sample_power``
(images drawn ∝ size**power; default 1), ``quant`` ("mixed": the factorized models' decoder trains on rounded
latents; default "noise"), ``restretch`` (share of crops stretched by their own min/max; default 0), ``bf16``
(true/false: bf16 autocast on or off; default: on where the CPU has native bf16; false where its kernels fail).

For each job the runner packs the modality's training split once (``WORKDIR/data/MODALITY``), then
trains with checkpoints every ``ckpt_every`` steps. It resumes from ``WORKDIR/NAME.ckpt`` when the
machine kept it, else warm-starts from the job's last promoted weights (their metadata holds the steps
done), so a fresh machine loses nothing that was committed. SIGTERM/SIGINT stop the current job cleanly
(checkpoint + export). A finished job goes through the RD gate (:mod:`.gate`); a file that passes is
copied into the shipped folder ``weights/codecs/MODALITY/``. ``WORKDIR/status.json`` and ``status.md``
say where every job stands.
"""
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..errors import MicrocompError
from ..io_write import atomic_write_bytes
from .base import stop_on_signals

PLAN_VERSION = 1
REQUIRED = ("name", "arch", "modality", "steps")


def load_plan(path) -> List[Dict[str, Any]]:
    d = json.loads(Path(path).read_text())
    if d.get("version") != PLAN_VERSION:
        raise MicrocompError(f"{path}: plan version {d.get('version')!r}, expected {PLAN_VERSION}")
    jobs = d.get("jobs") or []
    names = set()
    for j in jobs:
        miss = [k for k in REQUIRED if k not in j]
        if miss:
            raise MicrocompError(f"{path}: job {j.get('name', '?')} lacks {', '.join(miss)}")
        if j["name"] in names:
            raise MicrocompError(f"{path}: job name {j['name']!r} appears twice")
        if j.get("init") and j["init"] not in names:
            raise MicrocompError(f"{path}: job {j['name']} starts from {j['init']!r}, which is not an earlier job")
        if j.get("init") and j.get("init_file"):
            raise MicrocompError(f"{path}: job {j['name']} gives both init and init_file")
        if "bf16" in j and not isinstance(j["bf16"], bool):
            raise MicrocompError(f"{path}: job {j['name']}: bf16 must be true or false, got {j['bf16']!r}")
        names.add(j["name"])
    return jobs


def shipped_path(job: Dict[str, Any]) -> Path:
    from ..models.registry import get_arch
    from ..weights import locate

    spec = get_arch(job["arch"])
    return locate.SHIPPED_DIR / job["modality"] / spec.weights_filename(int(job.get("quality") or 0))


def ensure_data(workdir: Path, modality: str, root=None) -> Path:
    """Pack the modality's training split into compressed TIFFs once (fast, restartable reads)."""
    import tifffile

    from ..datasets import codec2d_modality_split

    d = workdir / "data" / modality
    done = d / ".complete"
    if not done.exists():
        d.mkdir(parents=True, exist_ok=True)
        for name, a in codec2d_modality_split(modality, "train", root):
            tifffile.imwrite(d / f"{name}.tif", a, compression="zlib")
        done.write_text("ok\n")
    return d


class Status:
    def __init__(self, workdir: Path):
        self.path = workdir / "status.json"
        self.md = workdir / "status.md"
        self.data: Dict[str, Dict[str, Any]] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def set(self, name: str, **kw) -> None:
        self.data.setdefault(name, {}).update(kw, updated=time.strftime("%Y-%m-%d %H:%M:%S"))
        atomic_write_bytes(self.path, json.dumps(self.data, indent=1, default=str).encode())
        rows = ["| job | state | steps | train bpp | train PSNR | gate | updated |", "|---|---|---|---|---|---|---|"]
        for n, s in self.data.items():
            rows.append(f"| {n} | {s.get('state', '')} | {s.get('steps', '')} | {s.get('bpp', '')} | "
                        f"{s.get('psnr', '')} | {s.get('gate', '')} | {s.get('updated', '')} |")
        atomic_write_bytes(self.md, ("\n".join(rows) + "\n").encode())


def _ancestors(name: Optional[str], jobs_by_name: Dict[str, Dict]) -> List[str]:
    """The jobs ``name`` was started from (its ``init``, that job's ``init``, ...)."""
    out: List[str] = []
    while name in jobs_by_name and jobs_by_name[name].get("init") and jobs_by_name[name]["init"] not in out:
        name = jobs_by_name[name]["init"]
        out.append(name)
    return out


def _start_point(job: Dict[str, Any], workdir: Path, ckpt: Path, jobs_by_name: Dict[str, Dict]):
    """(resume, init, steps_done) for a job: checkpoint, else last promoted weights, else its init job."""
    import torch

    if ckpt.exists():   # the checkpoint's run may itself continue earlier weights: keep counting from there
        cfg = (torch.load(ckpt, map_location="cpu", weights_only=True).get("config") or {})
        return str(ckpt), None, int(cfg.get("steps_offset") or 0)
    shipped = shipped_path(job)
    if shipped.exists():
        meta = torch.load(shipped, map_location="cpu", weights_only=True).get("meta", {})
        if meta.get("campaign_job") == job["name"]:
            return None, str(shipped), int(meta.get("steps_total") or meta.get("steps") or 0)
        if job["name"] in _ancestors(meta.get("campaign_job"), jobs_by_name):
            return None, None, int(job["steps"])   # a job started from this one has replaced its file: done
    if job.get("init"):
        src = workdir / f"{job['init']}.pt"
        if not src.exists():
            src = shipped_path(jobs_by_name[job["init"]])
        if not src.exists():
            raise MicrocompError(f"{job['name']} starts from {job['init']}, which has no weights yet")
        return None, str(src), 0
    if job.get("init_file"):
        from ..weights import locate

        src = locate.SHIPPED_DIR / job["init_file"]
        if not src.exists():
            raise MicrocompError(f"{job['name']} starts from {src}, which does not exist")
        return None, str(src), 0
    return None, None, 0


def run_job(job: Dict[str, Any], workdir: Path, jobs_by_name: Dict[str, Dict], stop: threading.Event,
            status: Status, log: Callable[[str], None], threads: Optional[int] = None, root=None,
            device: str = "cpu", max_minutes: Optional[float] = None) -> Optional[Path]:
    from .codec import TrainConfig, train

    name = job["name"]
    data = ensure_data(workdir, job["modality"], root)
    ckpt = workdir / f"{name}.ckpt"
    out = workdir / f"{name}.pt"
    resume, init, done_steps = _start_point(job, workdir, ckpt, jobs_by_name)
    steps = int(job["steps"]) - int(done_steps or 0)
    lr = float(job.get("lr", 5e-4))
    if done_steps:   # continuing from promoted weights: a fresh schedule, from a gentler peak if the plan says so
        lr = float(job.get("continue_lr", lr))
    if steps <= 0:
        status.set(name, state="done", steps=done_steps, plan_steps=job["steps"])
        return None
    cfg = TrainConfig(arch=job["arch"], data=[str(data)], quality=job.get("quality"), steps=steps,
                      patch=[int(job.get("patch", 128))], batch=int(job.get("batch", 8)),
                      lr=lr, out=str(out), ckpt=str(ckpt), device=device, max_minutes=max_minutes,
                      ckpt_every=int(job.get("ckpt_every", 500)), resume=resume, init=init,
                      widths=dict(job.get("widths") or {}), threads=threads, warmup=int(job.get("warmup", 500)),
                      lambdas=job.get("lambdas"), lmbda=job.get("lmbda"),
                      modality=job["modality"], seed=int(job.get("seed", 0)),
                      sample_power=float(job.get("sample_power", 1.0)), quant=str(job.get("quant", "noise")),
                      restretch=float(job.get("restretch", 0.0)), bf16=job.get("bf16"),
                      log_every=int(job.get("log_every", 100)), steps_offset=int(done_steps or 0),
                      command=f"microcomp train-zoo --plan PLAN --only {name}")
    log(f"[{name}] start: {'resume ' + resume if resume else 'init ' + init if init else 'from scratch'}, "
        f"{steps} steps to go")
    status.set(name, state="training")
    gen = train(cfg, stop)
    try:
        while True:
            ev = next(gen)
            log(f"[{name}] {ev.message}")
            if ev.stage == "train" and "psnr" in ev.message:
                parts = ev.message.split()
                status.set(name, steps=ev.done, bpp=parts[parts.index("bpp") + 1],
                           psnr=parts[parts.index("psnr") + 1])
    except StopIteration as fin:
        result = fin.value
    if stop.is_set():
        status.set(name, state="stopped (resumable)")
        return None
    status.set(name, state="trained", steps=result["steps"])
    return out


def promote(job: Dict[str, Any], candidate: Path, status: Status, log: Callable[[str], None],
            crop: int = 512, root=None, final: bool = True) -> bool:
    """Run the RD gate on ``candidate``; copy it into the shipped folder if it passes.

    ``final=False`` gates a snapshot of a job that is still training (its state stays as it is).
    """
    from ..models.registry import get_arch
    from ..weights.load import clear_cache
    from . import gate

    spec = get_arch(job["arch"])
    new = gate.evaluate([candidate], job["arch"], job["modality"], crop=crop, root=root)
    target = shipped_path(job)
    # With no file for this modality yet, the candidate must beat the general file auto-selection uses today.
    current = target if target.exists() else target.parent.parent / target.name
    old = gate.evaluate([current], job["arch"], job["modality"], crop=crop, anchor=False, root=root) \
        if current.exists() else None
    ok, why = gate.gate(new, old) if spec.vbr else gate.gate_single(new, old)
    med, mean = new["bd_rate_vs_anchor_median"], new["bd_rate_vs_anchor_mean_curve"]
    bd = (f"; BD-rate vs {new['anchor']['codec']} median {med:+.1f} %, mean curve {mean:+.1f} %"
          if math.isfinite(med) and math.isfinite(mean) else "")   # a single-rate file has no curve
    log(f"[{job['name']}] gate: {'PASS' if ok else 'FAIL'} — {why}{bd}")
    if final:
        status.set(job["name"], state="promoted" if ok else "rejected", gate=why, plan_steps=job["steps"])
    else:
        status.set(job["name"], gate=f"snapshot {'promoted' if ok else 'rejected'}: {why}")
    if ok:
        from ..weights.export import with_meta
        with_meta(candidate, target, {"campaign_job": job["name"], "gate": {**gate.gate_meta(new), "verdict": why}})
        clear_cache()
        if not spec.vbr:
            warn = gate.set_order_warning(_set_points(job))
            if warn:
                log(f"[{job['name']}] warning: {warn}")
    report = Path(candidate).with_suffix(".gate.json")
    atomic_write_bytes(report, json.dumps(new, indent=1, default=str).encode())
    return ok


def _set_points(job: Dict[str, Any]) -> Dict[int, Dict[str, float]]:
    """The mean gate point each shipped level of the job's architecture and modality recorded when promoted."""
    import torch

    out = {}
    for q in range(1, 9):
        f = shipped_path({**job, "quality": q})
        if f.exists():
            pts = (torch.load(f, map_location="cpu", weights_only=True).get("meta", {}).get("gate") or {}).get("eval_mean")
            if pts and len(pts) == 1:
                out[q] = {"bpp": float(pts[0]["bpp"]), "psnr": float(pts[0]["psnr"])}
    return out


def promote_snapshot(plan_path, workdir, name: str, log: Callable[[str], None] = print,
                     crop: int = 512, root=None) -> bool:
    """Export the current checkpoint of a running job and gate/promote it (training goes on)."""
    from .codec import export_checkpoint

    workdir = Path(workdir)
    jobs = {j["name"]: j for j in load_plan(plan_path)}
    if name not in jobs:
        raise MicrocompError(f"no job {name!r} in {plan_path}")
    ckpt = workdir / f"{name}.ckpt"
    if not ckpt.exists():
        raise MicrocompError(f"{ckpt} does not exist (the job has not started or has finished)")
    snap = export_checkpoint(ckpt, workdir / f"{name}.snapshot.pt")
    return promote(jobs[name], snap, Status(workdir), log, crop, root, final=False)


def run(plan_path, workdir, only: Optional[List[str]] = None, log: Callable[[str], None] = print,
        threads: Optional[int] = None, gate_crop: int = 512, root=None, device: str = "cpu",
        max_minutes: Optional[float] = None, gate: bool = True) -> int:
    """Run every unfinished job of the plan in order; return the number of jobs promoted.

    ``max_minutes`` ends each job after that much training (a lent GPU's budget); the job then counts as
    trained. ``gate=False`` leaves the result ungated with its checkpoint (a machine without the evaluation
    data, whose shipped folder is not the project's): :func:`gate_results` gates it where it belongs.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = load_plan(plan_path)
    by_name = {j["name"]: j for j in jobs}
    status = Status(workdir)
    on_signal = (lambda signum: log(f"signal {signum}: stopping after this step (checkpoint + export)"))
    promoted = 0
    with stop_on_signals(on_signal, once=False) as stop:
        for job in jobs:
            if only and job["name"] not in only:
                continue
            st = status.data.get(job["name"], {})
            if st.get("state") in ("promoted", "rejected", "done") and st.get("plan_steps") == job["steps"]:
                continue  # raise a job's steps in the plan to train it further
            out = run_job(job, workdir, by_name, stop, status, log, threads, root, device, max_minutes)
            if stop.is_set():
                break
            if out is not None and not gate:
                status.set(job["name"], state="trained (not gated)")
                log(f"[{job['name']}] not gated: gate {out} with train-zoo --gate-only --only {job['name']}")
            elif out is not None:
                try:
                    ok = promote(job, out, status, log, gate_crop, root)
                except Exception as exc:   # e.g. code edited under a long run: the queue goes on, nothing is lost
                    # running the job again would train on (a fresh schedule): gate the export as it is
                    log(f"[{job['name']}] gate error ({type(exc).__name__}: {exc}); {out} and the checkpoint are kept: "
                        f"gate it with `microcomp train-zoo --gate-only --only {job['name']}` (same --plan, --workdir)")
                    status.set(job["name"], state="trained (gate error)", gate=f"{type(exc).__name__}: {exc}"[:200])
                    continue
                promoted += ok
                _close_ckpt(workdir, job["name"])
    return promoted


def _close_ckpt(workdir: Path, name: str) -> None:
    """A gated job's checkpoint is kept as ``.ckpt.done``: the next start begins from the promoted weights."""
    ckpt = workdir / f"{name}.ckpt"
    if ckpt.exists():
        ckpt.rename(workdir / f"{name}.ckpt.done")


def gate_results(plan_path, workdir, names: List[str], log: Callable[[str], None] = print,
                 crop: int = 512, root=None) -> int:
    """Gate each named job's exported result ``WORKDIR/NAME.pt`` (e.g. trained on a lent GPU with
    ``gate=False``) and promote it if it passes; return the number promoted."""
    workdir = Path(workdir)
    jobs = {j["name"]: j for j in load_plan(plan_path)}
    status = Status(workdir)
    promoted = 0
    for name in names:
        if name not in jobs:
            raise MicrocompError(f"no job {name!r} in {plan_path}")
        out = workdir / f"{name}.pt"
        if not out.exists():
            raise MicrocompError(f"{out} does not exist: nothing to gate for {name}")
        ok = promote(jobs[name], out, status, log, crop, root)
        promoted += ok
        _close_ckpt(workdir, name)
    return promoted
