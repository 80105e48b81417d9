"""``microcomp train-zoo``: run the training campaign (a plan file of codec trainings) in the background.

    nice -n 19 microcomp train-zoo --plan scripts/train_plan.json --workdir runs/zoo > runs/zoo/log 2>&1 &
    microcomp train-zoo --plan scripts/train_plan.json --workdir runs/zoo --status
    microcomp train-zoo --retire old/mbt2018-mean-vbr.pt   # before a promotion replaces a released file

Stop it with SIGTERM or Ctrl-C: the current job checkpoints and exports; the next start resumes it.
Jobs that finish go through the RD gate; the ones that pass are copied into the shipped weights folder.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Union

from ..errors import MicrocompError, TrainingDiverged
from ._args import command


HELP = "run the training campaign: a resumable queue of codec trainings with an RD gate"
DESCRIPTION = ("Train every unfinished job of a plan file in order (checkpointed, resumable after SIGTERM/SIGINT or on "
               "a fresh machine from the last promoted weights); gate each result on the evaluation split and promote "
               "it into the shipped weights if it passes.")


def register(subparsers) -> None:
    p = command(subparsers, "train-zoo", run, HELP, DESCRIPTION)
    p.add_argument("--plan", default="scripts/train_plan.json", help="the plan file (JSON, versioned)")
    p.add_argument("--workdir", default="runs/zoo", help="checkpoints, logs, packed data and status")
    p.add_argument("--only", nargs="+", default=None, help="run only these job names")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--device", default="cpu", help="torch device to train on (e.g. cuda on a lent GPU)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="end each job after this many minutes of training (it then counts as trained)")
    p.add_argument("--no-gate", action="store_true",
                   help="leave trained jobs ungated, checkpoint kept (where the evaluation data or the project's "
                        "weights folder is not at hand); gate them later with --gate-only")
    p.add_argument("--gate-only", action="store_true",
                   help="gate the exported results WORKDIR/JOB.pt of the --only jobs and promote those that pass")
    p.add_argument("--gate-crop", type=int, default=512, help="centre crop of each evaluation image for the gate")
    p.add_argument("--status", action="store_true", help="print the status table and exit")
    p.add_argument("--retries", type=int, default=0, metavar="N",
                   help="run the campaign in a child process and, when it dies of a native crash (a signal such "
                        "as SIGABRT or SIGSEGV), start it again from its checkpoints, up to N times")
    p.add_argument("--promote-snapshot", metavar="JOB", default=None,
                   help="gate the current checkpoint of a running job and promote it if it passes (training goes on)")
    p.add_argument("--retire", metavar="FILE", default=None,
                   help="keep a released weight file that a promotion replaces as a decode-only copy in the "
                        "project's weights-archive/retired/ (streams written with it still decode), then exit")


def run(args) -> int:
    from ..training import campaign

    if args.retire:
        from ..weights.export import retire
        from ..weights.locate import ARCHIVE_DIR, RETIRED

        print(f"wrote {retire(args.retire, ARCHIVE_DIR / RETIRED)}")
        return 0
    wd = Path(args.workdir)
    if args.status:
        md = wd / "status.md"
        print(md.read_text() if md.exists() else f"no campaign status in {wd} yet")
        return 0
    if args.gate_only and not args.only:
        raise MicrocompError("--gate-only needs --only JOB [JOB ...]")
    wd.mkdir(parents=True, exist_ok=True)
    if args.retries > 0 and not (args.promote_snapshot or args.gate_only):
        cmd = [sys.executable, "-m", "napari_microcomp.cli", "train-zoo", "--plan", str(args.plan),
               "--workdir", str(wd), "--gate-crop", str(args.gate_crop)]
        cmd += (["--only", *args.only] if args.only else []) + (["--threads", str(args.threads)] if args.threads else [])
        cmd += ["--device", args.device] + (["--no-gate"] if args.no_gate else [])
        return supervise(cmd, args.retries, lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True),
                         args.max_minutes)
    logf = open(wd / "campaign.log", "a", buffering=1)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")

    if args.gate_only:
        try:
            n = campaign.gate_results(args.plan, wd, args.only, log, args.gate_crop)
        finally:
            logf.close()
        print(f"done: {n} of {len(args.only)} job(s) promoted")
        return 0 if n == len(args.only) else 1
    if args.promote_snapshot:
        try:
            ok = campaign.promote_snapshot(args.plan, wd, args.promote_snapshot, log, args.gate_crop)
        finally:
            logf.close()
        return 0 if ok else 1
    try:
        n = campaign.run(args.plan, wd, only=args.only, log=log, threads=args.threads, gate_crop=args.gate_crop,
                         device=args.device, max_minutes=args.max_minutes, gate=not args.no_gate)
    finally:
        logf.close()
    print(f"done: {n} job(s) promoted; status in {wd / 'status.md'}")
    return 0


def supervise(cmd: Union[List[str], Callable[[int], List[str]]], retries: int, log: Callable[[str], None],
              max_minutes: Optional[float] = None, name: str = "campaign") -> int:
    """Run ``cmd`` (or ``cmd(attempt)``, 0 first); restart it when it dies of a signal we did not send, or stops
    because its training diverged (:class:`TrainingDiverged`'s exit status), up to ``retries`` times in all.
    ``max_minutes`` is one budget for all the runs: each (re)start gets ``--max-minutes`` of what is left,
    so a restart does not begin a fresh budget (the lr cosine follows it: a fresh one sent it back up).

    Why: a native fault in a long unattended run (seen: glibc heap errors in cheng2020-attn training after
    1,000–1,500 steps) kills the whole process; the campaign's checkpoints make a restart lose at most
    the steps since the last one. SIGTERM/SIGINT are passed on to the child, which checkpoints and stops.
    """
    stopping = False
    child = None

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        attempt = 0
        end = None if max_minutes is None else time.monotonic() + 60.0 * float(max_minutes)
        while True:
            left = None if end is None else max((end - time.monotonic()) / 60.0, 0.0)
            argv = cmd(attempt) if callable(cmd) else list(cmd)
            child = subprocess.Popen(argv + ([] if left is None else ["--max-minutes", f"{left:.2f}"]))
            rc = child.wait()
            if stopping or (rc >= 0 and rc != TrainingDiverged.exit_code):
                return rc if rc >= 0 else 128 - rc
            if rc >= 0:   # a real divergence diverges again from the same checkpoint and uses up the retries
                what = "stopped: its training diverged"
            else:
                try:
                    what = f"died of {signal.Signals(-rc).name}"
                except ValueError:
                    what = f"died of signal {-rc}"
            if attempt == retries or (end is not None and end - time.monotonic() < 30.0):
                log(f"{name} {what}; " + ("no retries left" if attempt == retries else "its time is spent"))
                return rc if rc >= 0 else 128 - rc
            attempt += 1
            log(f"{name} {what}; restarting from its checkpoints in a fresh process ({attempt}/{retries})")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
