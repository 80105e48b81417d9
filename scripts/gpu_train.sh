#!/usr/bin/env bash
# Train every shipped model at once on one GPU with the project's own commands, each with a wall-clock budget.
# Usage (from the repo root, on a CUDA machine; data packed by scripts/pack_training_data.py into $DATA):
#   DATA=.gpu/data OUT=/tmp/out MINUTES=7 scripts/gpu_train.sh
# Results: $OUT/weights.tar.partNN (cat them | tar -x), $OUT/logs.tar.gz, $OUT/summary.txt.
set -uo pipefail
DATA=${DATA:-.gpu/data}
OUT=${OUT:-/tmp/microcomp-gpu}
MINUTES=${MINUTES:-7}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
W=$OUT/w; L=$OUT/l; C=/tmp/ckpt
mkdir -p "$W" "$L" "$C"
PIDS=()
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
CLI="$PY -m napari_microcomp.cli"
CODEC2D="$DATA/codec2d $DATA/isl/phase_stack_train.tif $DATA/isl/dapi_train.tif"
CODEC3D="$DATA/codec3d $DATA/isl/phase_stack_train.tif"

codec() {  # arch quality extra-args...
  local arch=$1 q=$2; shift 2
  local tag=$arch${q:+-q$q}
  $CLI train-codec --arch "$arch" ${q:+--quality $q} --data $CODEC2D --device "$DEVICE" --max-minutes "$MINUTES" \
    --steps 1000000 --out "$W/$tag.pt" --ckpt "$C/$tag.ckpt" --ckpt-every 2000 --log-every 200 "$@" \
    >"$L/$tag.log" 2>&1 &
  PIDS+=($!)
}
codec3d() {
  local arch=$1 q=$2; shift 2
  $CLI train-codec --arch "$arch" --quality "$q" --data $CODEC3D --device "$DEVICE" --max-minutes "$MINUTES" \
    --steps 1000000 --out "$W/$arch-q$q.pt" --ckpt "$C/$arch-q$q.ckpt" --ckpt-every 2000 --log-every 200 "$@" \
    >"$L/$arch-q$q.log" 2>&1 &
  PIDS+=($!)
}
labelfree() {  # name extra-args...
  local name=$1; shift
  $CLI train-labelfree --base ${LFBASE:-16} --device "$DEVICE" --max-minutes "$MINUTES" --steps 1000000 --out "$W/$name.pt" \
    --ckpt "$C/$name.ckpt" --ckpt-every 1000 --log-every 100 "$@" >"$L/$name.log" 2>&1 &
  PIDS+=($!)
}

B2=${B2:-16}; P2=${P2:-256}; BAR=${BAR:-8}
for q in 2 4 6 8; do
  codec bmshj2018-factorized $q --batch $B2 --patch $P2
  codec bmshj2018-hyperprior $q --batch $B2 --patch $P2
  codec mbt2018-mean $q --batch $B2 --patch $P2
done
for q in 3 6; do
  codec bmshj2018-factorized-relu $q --batch $B2 --patch $P2
  codec mbt2018 $q --batch $BAR --patch $P2
  codec cheng2020-anchor $q --batch $BAR --patch $P2 --widths N=48
  codec cheng2020-attn $q --batch $BAR --patch $P2 --widths N=48
done
codec bmshj2018-hyperprior-vbr "" --batch $B2 --patch $P2 --widths N=64,M=96
codec mbt2018-mean-vbr "" --batch $B2 --patch $P2 --widths N=64,M=96
ARCH3D=${ARCH3D:-factorized3d}; P3=${P3:-8 128 128}; B3=${B3:-16}
for q in 2 4 6; do codec3d "$ARCH3D" $q --batch $B3 --patch $P3 --widths N=48,M=64; done
ISL=$DATA/isl
labelfree unet2d-isl-dapi --model unet --inputs $ISL/phase_z6_train.tif --targets $ISL/dapi_train.tif ${LF2D:-}
labelfree unet-zstack-isl-dapi --model unet --zstack --inputs $ISL/phase_stack_train.tif --targets $ISL/dapi_train.tif ${LFZ:-}
labelfree pix2pix-isl-dapi --model pix2pix --inputs $ISL/phase_z6_train.tif --targets $ISL/dapi_train.tif ${LFP:-}
labelfree unet2d-isl-dapi-jpegxr --model unet --compress-with jpegxr:4 --inputs $ISL/phase_z6_train.tif --targets $ISL/dapi_train.tif ${LF2D:-}

( while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done ) >"$L/nvidia-smi.log" 2>&1 &
MON=$!
wait "${PIDS[@]}"
kill $MON 2>/dev/null
{
  echo "jobs finished $(date -u)"
  for f in "$L"/*.log; do echo "== $(basename "$f")"; tail -n 3 "$f"; done
  ls -la "$W"
} >"$OUT/summary.txt"
# A call returns at most 64 MiB in 8 files of 16 MiB: split the weights; parts beyond the first four stay in
# /tmp/microcomp-parts for a second, immediate call (`cp /tmp/microcomp-parts/* $OUT`).
P=/tmp/microcomp-parts; rm -rf "$P"; mkdir -p "$P"
tar -cf - -C "$W" . | split -b 15M -d - "$P/weights.tar.part"
tar -czf "$OUT/logs.tar.gz" -C "$L" .
ls -la "$P" >>"$OUT/summary.txt"
for f in $(ls "$P" | head -n 4); do mv "$P/$f" "$OUT/"; done
