#!/usr/bin/env bash
# Issue 5's SASRec comparison on one GPU in one short call: Default, ADT-RL, L2RW and AutoDenoise-S
# with epoch / user / meta credit, on clean data and with NOISE_KIND at NOISE_RATE. One wave per
# seed: the wave's 12 cells run as 12 processes at once (24 at once ran slower than two waves on an
# H200), each stopped at the wave's deadline so the rows always come back.
#
#   bash benchmarks/device_study.sh DATA_DIR OUT_DIR [SEEDS] [EPOCHS] [NOISE_KIND] [NOISE_RATE]
#
# SEEDS: one seed or a comma-separated list (e.g. 2020,2021,2022,2023,2024). Env: WAVE_SECONDS
# (per wave, default 110; a wave took about 80 s on an H200), TOTAL_SECONDS (all waves, default
# 560: one 10-minute device call), DEVICE (default cuda).
# Same settings as benchmarks/credit_study.sh (guide/select split 0.5, diagnostics on) with the
# SASRec learning rate tuned on the GPU (benchmarks/properties/ml-latest-small/SASRec-default.yaml).
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} seeds=${3:-2020} epochs=${4:-20} kind=${5:-foreign} rate=${6:-0.2}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
end=$(( $(date +%s) + ${TOTAL_SECONDS:-560} ))
n=0
for seed in ${seeds//,/ }; do
  left=$(( end - $(date +%s) ))
  (( left > 20 )) || { echo "no time left for seed $seed"; break; }
  wave=$(( left < ${WAVE_SECONDS:-110} ? left : ${WAVE_SECONDS:-110} ))
  deadline=$(( $(date +%s) + wave ))
  common=(--dataset ml-latest-small --data-path "$data" --device "${DEVICE:-cuda}" --models SASRec --seeds 1 --seed-base "$seed"
          --set show_progress=False --set "epochs=$epochs" --set clean_valid_guide_ratio=0.5 --set denoise_diagnostics=True
          --set experimental=true  # l2rw, the user and meta credit: recbole_autodenoise.experimental
          --config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')
  for noise in "" "--set noise_kind=$kind --set noise_rate=$rate"; do
    for method in default adt_rl l2rw epoch user meta; do
      case $method in
        epoch|user|meta) scheme=(--schemes autodenoise_s --set controller_credit=$method) ;;
        *) scheme=(--schemes "$method") ;;
      esac
      # shellcheck disable=SC2086
      timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 "${common[@]}" $noise "${scheme[@]}" \
        --out "$work/study-$n.jsonl" >"$work/study-$n.log" 2>&1 &
      n=$((n + 1))
    done
  done
  wait
  echo "seed $seed: wave of ${wave} s done"
done
cat "$work"/study-*.jsonl >"$out/gpu-study.jsonl" 2>/dev/null
grep -h -E "^\[|done:" "$work"/study-*.log
tar czf "$out/study-logs.tgz" -C "$work" .
wc -l "$out/gpu-study.jsonl"
