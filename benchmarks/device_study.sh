#!/usr/bin/env bash
# Issue 5's SASRec comparison on one GPU in one short call: Default, ADT-RL, L2RW and AutoDenoise-S
# with epoch / user / meta credit, on clean data and with NOISE_KIND at NOISE_RATE, one process per
# cell (all at once), each stopped at TOTAL_SECONDS so the rows always come back.
#
#   bash benchmarks/device_study.sh DATA_DIR OUT_DIR [SEED] [EPOCHS] [NOISE_KIND] [NOISE_RATE]
#
# Same settings as benchmarks/credit_study.sh (guide/select split 0.5, diagnostics on) with the
# SASRec learning rate tuned on the GPU (benchmarks/properties/ml-latest-small/SASRec-default.yaml).
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} seed=${3:-2020} epochs=${4:-20} kind=${5:-foreign} rate=${6:-0.2}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
deadline=$(( $(date +%s) + ${TOTAL_SECONDS:-150} ))
common=(--dataset ml-latest-small --data-path "$data" --device "${DEVICE:-cuda}" --models SASRec --seeds 1 --seed-base "$seed"
        --set show_progress=False --set "epochs=$epochs" --set clean_valid_guide_ratio=0.5 --set denoise_diagnostics=True
        --config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')
n=0
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
cat "$work"/study-*.jsonl >"$out/gpu-study.jsonl" 2>/dev/null
grep -h -E "^\[|done:" "$work"/study-*.log
tar czf "$out/study-logs.tgz" -C "$work" .
wc -l "$out/gpu-study.jsonl"
