#!/usr/bin/env bash
# Issue 15's cost table on a GPU in one device call: BPR, GRU4Rec and SASRec on ml-latest-small,
# Default against ADT-RL, AutoDenoise-H and AutoDenoise-S, interleaved, every cell its own process
# (`python -m benchmarks.cost --device cuda`). A row is written after every cell, so what finished
# before the deadline comes back; on a GPU read the wall and GPU-memory columns of the summary.
#
#   bash benchmarks/device_cost.sh DATA_DIR OUT_DIR [REPETITIONS]     (REPETITIONS default 2)
#
# Env: TOTAL_SECONDS (default 540), MODELS (default "BPR:15 GRU4Rec:4 SASRec:3").
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} reps=${3:-2}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
rows="$out/ml-latest-small-cost-gpu.jsonl"
# shellcheck disable=SC2086
timeout -s INT -k 10 "${TOTAL_SECONDS:-540}" python -m benchmarks.cost --device cuda --dataset ml-latest-small \
  --data-path "$data" --models ${MODELS:-BPR:15 GRU4Rec:4 SASRec:3} --schemes default adt_rl autodenoise_h autodenoise_s \
  --repetitions "$reps" --name gpu --out "$rows" >"$out/cost.log" 2>&1
grep -E "^\[" "$out/cost.log"
[ -s "$rows" ] && python -m benchmarks.cost --summarise "$rows" | tee "$out/cost-summary.md"
exit 0
