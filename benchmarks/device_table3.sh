#!/usr/bin/env bash
# Table 3 and Fig. 3 on one GPU in one call, sized for a 10-minute GPU lease. From the start: BPR x 6
# schemes x SEEDS seeds (BPR's learning rate and the controller settings were tuned on CPU, see
# benchmarks/properties), the Fig. 3 sweep (BPR, autodenoise_h, A = 2..6) and the tuning of GRU4Rec's
# and SASRec's learning rate on clean validation (default scheme, seed 2020); once tuned, GRU4Rec and
# SASRec x 6 schemes x SEEDS seeds, and what injected noise costs SASRec-Default (issue 5).
#
#   bash benchmarks/device_table3.sh DATA_DIR OUT_DIR [SEEDS] [EPOCHS]
#
# The GPU is shared by one stream per (model, seed), so every (model, seed) runs its six schemes one
# after another under the same contention; per-epoch times are comparable within a model, not with
# an idle GPU. Tuning stops after TUNE_SECONDS (default 200) and every stream at TOTAL_SECONDS (default
# 540) after the start, so the results always come back within a 10-minute command:
# OUT_DIR/gpu-grid.jsonl (rows of benchmarks.grid), gpu.txt, tuned yaml files and logs.tgz.
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} seeds=${3:-3} epochs=${4:-30}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
common=(--dataset ml-latest-small --data-path "$data" --device "${DEVICE:-cuda}" --set show_progress=False --set "epochs=$epochs")
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
start=$(date +%s)
deadline=$(( start + ${TOTAL_SECONDS:-540} ))
config_files=(--config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')
bpr=("${common[@]}" --set "epochs=${BPR_EPOCHS:-100}" --models BPR)
# BPR's part of Table 3 and Fig. 3, with BPR's epoch budget, one stream each per seed
for ((s = 0; s < seeds; s++)); do
  timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${bpr[@]}" --schemes all --seeds 1 \
    --seed-base $((2020 + s)) --out "$work/grid-BPR-$s.jsonl" "${config_files[@]}" >"$work/grid-BPR-$s.log" 2>&1 &
  (for a in 2 3 4 5 6; do
     timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${bpr[@]}" \
       --schemes autodenoise_h --seeds 1 --seed-base $((2020 + s)) \
       --set controller_num_actions=$a --out "$work/grid-fig3-$s.jsonl" "${config_files[@]}"
   done) >"$work/grid-fig3-$s.log" 2>&1 &
done

tune_pids=()
for model in GRU4Rec SASRec; do
  timeout -s INT -k 10 "${TUNE_SECONDS:-200}" python -m benchmarks.tune "${common[@]}" --model "$model" --scheme default \
    --grid learning_rate=5e-4,1e-3,3e-3 >"$work/tune-$model.log" 2>&1 &
  tune_pids+=($!)
done
wait "${tune_pids[@]}"
cp benchmarks/properties/ml-latest-small/{GRU4Rec,SASRec}-default.yaml "$out/" 2>/dev/null
echo "tuning done after $(( $(date +%s) - start )) s"; tail -n 4 "$work"/tune-*.log

for model in GRU4Rec SASRec; do
  [[ -f benchmarks/properties/ml-latest-small/$model-default.yaml ]] || echo "tuning of $model did not finish: its grid uses properties/model/$model.yaml's learning_rate"
  for ((s = 0; s < seeds; s++)); do
    timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${common[@]}" --models "$model" --schemes all \
      --seeds 1 --seed-base $((2020 + s)) --out "$work/grid-$model-$s.jsonl" "${config_files[@]}" \
      >"$work/grid-$model-$s.log" 2>&1 &
  done
done
# What known-truth noise costs SASRec-Default (issue 5): 3 kinds x 10 % / 20 %, seed 2020, one stream
(for kind in random popular foreign; do for rate in 0.1 0.2; do
   timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${common[@]}" --models SASRec --schemes default \
     --seeds 1 --set noise_kind=$kind --set noise_rate=$rate --out "$work/grid-noise.jsonl" "${config_files[@]}"
 done; done) >"$work/grid-noise.log" 2>&1 &
wait
echo "grid done after $(( $(date +%s) - start )) s"
cat "$work"/grid-*.jsonl >"$out/gpu-grid.jsonl" 2>/dev/null
grep -h -E "^\[|done:" "$work"/grid-*.log
tar czf "$out/logs.tgz" -C "$work" . -C "$PWD/benchmarks/results" tune 2>/dev/null
wc -l "$out/gpu-grid.jsonl"
