#!/usr/bin/env bash
# Train one or a few campaign jobs on a lent GPU (the `device` tool), one process, one job at a time,
# and gate the results here. Three steps, all from the repo root:
#
#   1. here:        scripts/gpu_train.sh stage JOB...
#        packs the jobs' training data (runs/zoo/data), downloads the two wheels the GPU image lacks into .whl/,
#        and moves every weight file the jobs do not start from to /tmp/microcomp-aside: the tracked weights
#        (~230 MB) exceed the 64 MiB working tree that travels.
#   2. the device:  run(command="MINUTES=10 scripts/gpu_train.sh train JOB...", carry=[".whl", "runs/zoo/data"])
#        trains each job for MINUTES on cuda (time budget, no gate: the device has no evaluation data) and puts
#        the exported weights, status and log under $OUT. The device keeps runs/zoo-gpu (checkpoints) while warm,
#        so an immediate second call continues the same jobs.
#   3. here:        scripts/gpu_train.sh collect FILES_AT JOB...
#        puts the weights back, copies the results into runs/zoo and runs the RD gate (train-zoo --gate-only):
#        only files that pass are promoted. Then retire the replaced files and commit, as for CPU jobs.
#
# Steps, lr, batch and patch come from the job in scripts/train_plan.json: add a GPU job there (e.g. batch 32)
# rather than changing a CPU one, so the plan stays the record of how each file was trained.
set -euo pipefail
MODE=${1:?usage: scripts/gpu_train.sh stage|train|collect ...}; shift
PLAN=${PLAN:-scripts/train_plan.json}
ASIDE=${ASIDE:-/tmp/microcomp-aside}
WEIGHT_DIRS=(src/napari_microcomp/weights/codecs src/napari_microcomp/weights/labelfree weights-archive)

case "$MODE" in
stage)
  [ $# -ge 1 ] || { echo "name the jobs to train" >&2; exit 2; }
  [ ! -e "$ASIDE" ] || { echo "$ASIDE exists: run collect (or restore it) first" >&2; exit 1; }
  PY=${PY:-.venv/bin/python}
  # the files each job may start from (its own promoted file and its init job's) travel; the rest waits aside
  KEEP=$("$PY" - "$PLAN" "$@" <<'EOF'
import sys
from pathlib import Path
from napari_microcomp.training import campaign
jobs = {j["name"]: j for j in campaign.load_plan(sys.argv[1])}
for name in sys.argv[2:]:
    job = jobs[name]
    campaign.ensure_data(Path("runs/zoo"), job["modality"])
    for j in (job, jobs.get(job.get("init"))):
        if j is not None and campaign.shipped_path(j).exists():   # both: a new job may start from its init's
            print(campaign.shipped_path(j).resolve().relative_to(Path.cwd()))
EOF
)
  mkdir -p "$ASIDE"
  for d in "${WEIGHT_DIRS[@]}"; do
    [ -d "$d" ] && mkdir -p "$ASIDE/$(dirname "$d")" && mv "$d" "$ASIDE/$d"
  done
  for f in $KEEP; do mkdir -p "$(dirname "$f")"; cp "$ASIDE/$f" "$f"; done
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    -d .whl compressai==1.2.8 pytorch-msssim==1.0.0
  echo "kept: ${KEEP:-nothing}"; echo "travels: $(du -sh --exclude=.git --exclude=.venv --exclude=runs . | cut -f1)"
  echo "plus the carried runs/zoo/data ($(du -sh runs/zoo/data | cut -f1)); the tool's limit is 64 MiB in all"
  ;;
train)
  : "${OUT:?run this on the device machine (OUT is its result folder)}"
  PY=${PY:-python3}
  export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  if ! "$PY" -c "import compressai, pytorch_msssim" 2>/dev/null; then   # the GPU image has neither
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PYTHONPATH:/tmp/site
  fi
  ( while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done ) \
    > "$OUT/nvidia-smi.log" 2>&1 &
  MON=$!
  rc=0
  if [ -n "${PARALLEL:-}" ]; then
    # one process per job, each in its own workdir (status.json is per workdir): small models leave the GPU
    # mostly idle waiting for kernel launches, so a few side by side each train at nearly full speed
    pids=()
    for n in "$@"; do
      WD=runs/zoo-gpu-$n; mkdir -p "$WD"; ln -sfn ../zoo/data "$WD/data"
      "$PY" -m napari_microcomp.cli train-zoo --plan "$PLAN" --workdir "$WD" --device "${DEVICE:-cuda}" \
        --max-minutes "${MINUTES:-10}" --no-gate --only "$n" > "$WD/train.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    for n in "$@"; do
      WD=runs/zoo-gpu-$n; cat "$WD/train.log" >> "$OUT/train.log"; [ -f "$WD/$n.pt" ] && cp "$WD/$n.pt" "$OUT/"
    done
  else
    WD=runs/zoo-gpu; mkdir -p "$WD"; ln -sfn ../zoo/data "$WD/data"
    "$PY" -m napari_microcomp.cli train-zoo --plan "$PLAN" --workdir "$WD" --device "${DEVICE:-cuda}" \
      --max-minutes "${MINUTES:-10}" --no-gate --only "$@" 2>&1 | tee "$OUT/train.log" || rc=$?
    for n in "$@"; do [ -f "$WD/$n.pt" ] && cp "$WD/$n.pt" "$OUT/"; done
    cp "$WD/status.json" "$OUT/" 2>/dev/null || true
  fi
  kill $MON 2>/dev/null || true
  cat "$OUT/nvidia-smi.log" >> "$OUT/train.log" && rm -f "$OUT/nvidia-smi.log"
  exit $rc
  ;;
collect)
  SRC=${1:?usage: scripts/gpu_train.sh collect FILES_AT JOB...}; shift
  if [ -d "$ASIDE" ]; then   # the kept start files are in $ASIDE too: put every file back as it was
    for d in "${WEIGHT_DIRS[@]}"; do [ -d "$ASIDE/$d" ] && rm -rf "$d" && mv "$ASIDE/$d" "$d"; done
    rm -rf "$ASIDE"
  fi
  GWD=${GATE_WORKDIR:-runs/zoo}   # a workdir of its own when CPU jobs are writing runs/zoo's status
  mkdir -p "$GWD"
  for n in "$@"; do cp "$SRC/$n.pt" "$GWD/$n.pt"; done
  ${MICROCOMP:-.venv/bin/microcomp} train-zoo --plan "$PLAN" --workdir "$GWD" --gate-only --only "$@"
  ;;
*)
  echo "unknown mode $MODE (stage, train or collect)" >&2; exit 2 ;;
esac
