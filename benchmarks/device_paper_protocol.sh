#!/usr/bin/env bash
# Issue 12's GPU cells in one device call (a 10-minute limit): SASRec and GRU4Rec on
# ml-latest-small under the paper's protocol (validation user_first, early stopping; every run's test
# set also under `interaction`), Default / ADT-RL / AutoDenoise-S / oracle (SCHEMES to change),
# one process per (model, seed) sharing the GPU, each stopped at the deadline so finished rows always
# come back; then, if ML1M_DATA_DIR holds ml-1m/ml-1m.inter, the same four schemes on ML-1M for
# SoftmaxMF, BPR, GRU4Rec and SASRec with one seed each. Beside every ml-latest-small cell, one of
# AutoDenoise-S with controller_credit explicit and one stray-click row per rated row (issue 13;
# EXPLICIT=0 leaves it out, EXPLICIT_NEGATIVES=k changes k, EXPLICIT_LABELS=observed labels every
# rated row 1, no rating used (the value was called interaction);
# 512-row guide batches as in the CPU study, GUIDE_BATCH_SIZE to change; EXPLICIT_SETS,
# space-separated KEY=VALUE words, adds settings to the explicit cells only, e.g. the ADT-TL prior:
# EXPLICIT_SETS="experimental=true controller_prior=adt_tl adt_gradual_unit=epoch adt_num_gradual=1
# adt_max_drop_rate=0.1"; the adt_tl prior is experimental: experimental=true imports it).
#
#   bash benchmarks/device_paper_protocol.sh DATA_DIR OUT_DIR [SEEDS]     (SEEDS default 5)
#
# Explicit credit learns from validation rows, which must not select the epoch: while explicit cells
# run (EXPLICIT != 0), every ml-latest-small cell uses the guide/select split,
# clean_valid_guide_ratio GUIDE_RATIO (default 0.5), so all its cells are selected on the same rows.
# The oracle reads the training ratings: its cells opt in (allow_rating_diagnostics) through
# <model>-oracle.yaml.
#
# NOISY=1: issue 13's noisy study instead: every ml-latest-small cell trains with 20 % foreign noise
# (noise_kind foreign, noise_rate 0.2), and ML-1M is left out; e.g. with
# SCHEMES="default adt_rl dcf autodenoise_s".
#
# Settings: benchmarks/properties/paper-protocol/<dataset>/ (written by
# `bash benchmarks/paper_protocol_study.sh DATA_DIR tune`; ML-1M's are ml-latest-small's, copied, with
# the paper's 20-core filter). Env: TOTAL_SECONDS (default 540), ML1M_DATA_DIR.
set -u
data=${1:?DATA_DIR} out=${2:?OUT_DIR} seeds=${3:-5}
mkdir -p "$out"
work=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } | tee "$out/gpu.txt"
deadline=$(( $(date +%s) + ${TOTAL_SECONDS:-540} ))
schemes=${SCHEMES:-default adt_rl autodenoise_s oracle}
props=benchmarks/properties/paper-protocol
n=0
noise=()
[ "${NOISY:-0}" = 1 ] && noise=(--set noise_kind=foreign --set noise_rate=0.2)
split=()  # ml-latest-small's guide/select split while explicit cells (learning from validation) run
[ "${EXPLICIT:-1}" = 0 ] || split=(--set "clean_valid_guide_ratio=${GUIDE_RATIO:-0.5}")
# the explicit cells' own settings: EXPLICIT_LABELS (observed: every rated row 1, stray clicks 0),
# EXPLICIT_SETS
explicit_args=()
[ -n "${EXPLICIT_LABELS:-}" ] && explicit_args=(--set "explicit_labels=$EXPLICIT_LABELS")
for setting in ${EXPLICIT_SETS:-}; do explicit_args+=(--set "$setting"); done
launch() {  # launch DATASET DATA_DIR MODEL SEED_BASE SEEDS PROPERTIES_DIR [SCHEMES [--set K=V ...]]
  local cell_schemes=${7:-$schemes}
  # shellcheck disable=SC2086
  timeout -s INT -k 10 $(( deadline - $(date +%s) )) python -m benchmarks.table3 --dataset "$1" --data-path "$2" \
    --device cuda --set show_progress=False --models "$3" --schemes $cell_schemes --seed-base "$4" --seeds "$5" \
    --config-files "$6/{dataset}/{model}-default.yaml" "$6/{dataset}/{model}-{scheme}.yaml" "${@:8}" "${noise[@]}" \
    --out "$work/cells-$n.jsonl" >"$work/cells-$n.log" 2>&1 &
  n=$((n + 1))
}
for model in SASRec GRU4Rec; do
  for seed in $(seq 2020 $((2020 + seeds - 1))); do
    launch ml-latest-small "$data" "$model" "$seed" 1 "$props" "$schemes" "${split[@]}"
    # issue 13: AutoDenoise-S taught by the validation period's explicit ratings, with EXPLICIT_NEGATIVES
    # (default 1) stray-click rows per rated row and 512-row guide batches, the sequential models' best
    # variant (EXPLICIT=0 skips it)
    [ "${EXPLICIT:-1}" = 0 ] || launch ml-latest-small "$data" "$model" "$seed" 1 "$props" autodenoise_s \
      --set controller_credit=explicit --set "explicit_negatives=${EXPLICIT_NEGATIVES:-1}" \
      --set "guide_batch_size=${GUIDE_BATCH_SIZE:-512}" "${split[@]}" "${explicit_args[@]}"
  done
done
if [ "${NOISY:-0}" != 1 ] && [ -f "${ML1M_DATA_DIR:-/nonexistent}/ml-1m/ml-1m.inter" ]; then
  for model in SoftmaxMF BPR GRU4Rec SASRec; do launch ml-1m "$ML1M_DATA_DIR" "$model" 2020 1 "$props"; done
fi
wait
cat "$work"/cells-*.jsonl >"$out/gpu-paper-protocol.jsonl" 2>/dev/null
grep -h -E "^\[|done:" "$work"/cells-*.log
tar czf "$out/cells-logs.tgz" -C "$work" .
wc -l "$out/gpu-paper-protocol.jsonl"
