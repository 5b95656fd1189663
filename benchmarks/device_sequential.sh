#!/usr/bin/env bash
# Issue 4's GPU part in one call, sized for a 10-minute GPU lease: tune the recommender learning rate
# of GRU4Rec and SASRec on the clean validation set (default scheme, seed 2020), then run both models
# x 6 schemes x SEEDS seeds with the tuned rate and the controller settings tuned on BPR, and beside
# them the Fig. 3 sweep (BPR, autodenoise_h, A = 2..6, SEEDS seeds) in two more streams.
#
#   bash benchmarks/device_sequential.sh DATA_DIR OUT_DIR [SEEDS] [EPOCHS]
#
# The GPU is shared by one stream per (model, seed), so every (model, seed) runs its six schemes one
# after another under the same contention; per-epoch times are comparable within a stream, not with
# an idle GPU. Each stream stops at GRID_TIMEOUT seconds (default 400) so the results always come back:
# OUT_DIR/gpu-grid.jsonl (rows of benchmarks.grid), gpu.txt, tuned yaml files and logs.tgz.
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} seeds=${3:-3} epochs=${4:-30}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
common=(--dataset ml-latest-small --data-path "$data" --device "${DEVICE:-cuda}" --set show_progress=False --set "epochs=$epochs")
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
start=$(date +%s)

for model in GRU4Rec SASRec; do
  python -m benchmarks.tune "${common[@]}" --model "$model" --scheme default \
    --grid learning_rate=5e-4,1e-3,3e-3 >"$work/tune-$model.log" 2>&1 &
done
wait
cp benchmarks/properties/ml-latest-small/{GRU4Rec,SASRec}-default.yaml "$out/" 2>/dev/null
echo "tuning done after $(( $(date +%s) - start )) s"; tail -n 4 "$work"/tune-*.log

deadline=$(( $(date +%s) + ${GRID_TIMEOUT:-400} ))
config_files=(--config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')
for model in GRU4Rec SASRec; do
  for ((s = 0; s < seeds; s++)); do
    timeout $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${common[@]}" --models "$model" --schemes all \
      --seeds 1 --seed-base $((2020 + s)) --out "$work/grid-$model-$s.jsonl" "${config_files[@]}" \
      >"$work/grid-$model-$s.log" 2>&1 &
  done
done
# Fig. 3 (BPR, with BPR's epoch budget), seeds split over two streams
for half in 0 1; do
  (for a in 2 3 4 5 6; do
     timeout $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${common[@]}" --set "epochs=${BPR_EPOCHS:-100}" \
       --models BPR --schemes autodenoise_h --seeds $(( (seeds + 1 - half) / 2 )) --seed-base $((2020 + half * ((seeds + 1) / 2))) \
       --set controller_num_actions=$a --out "$work/grid-fig3-$half.jsonl" "${config_files[@]}"
   done) >"$work/grid-fig3-$half.log" 2>&1 &
done
wait
echo "grid done after $(( $(date +%s) - start )) s"
cat "$work"/grid-*.jsonl >"$out/gpu-grid.jsonl" 2>/dev/null
grep -h -E "^\[|done:" "$work"/grid-*.log
tar czf "$out/logs.tgz" -C "$work" . -C "$PWD/benchmarks/results" tune 2>/dev/null
wc -l "$out/gpu-grid.jsonl"
