#!/usr/bin/env bash
# select's pick on the EvalDenoisingRec ML-100K split (issue 34, part 4): the plan, fixed before the
# first cell, and the command that runs it.
#   bash benchmarks/audit_select.sh SPLIT_DIR WORK_DIR [MODEL ...]   (MODEL: GMF NeuMF; default both)
# SPLIT_DIR holds their ml100k.train.rating, ml100k.valid.rating, ml100k.test.negative (e.g.
# ../shared/data/evaldenoisingrec-ml100k); WORK_DIR gets the converted split (WORK_DIR/data) and the
# reports (WORK_DIR/select-<MODEL>.json with their cells); run it again to resume.
#
# Plan:
# - data: their split as given (pre-split route, validation with every rating); select's guide/select
#   split of it (clean_valid_guide_ratio 0.5, select's default), the same for every candidate;
# - models: GMF and NeuMF, with the audit's protocol.yaml and <MODEL>-ERM.yaml (their settings, the
#   epoch of lowest validation loss); select ranks by validation NDCG@20 at that epoch;
# - candidates: select's default seven (default, default_guide, adt_rl, adt_tl, dcf, autodenoise_s,
#   explicit) with their settings as given: no tuning (--tune=0) for any of them;
# - seeds: the audit's, 2023, 2024, 2025;
# - test: read once, for the recommended candidate and Default (--test=recommended), test NDCG@20 with
#   a two-level bootstrap interval (seeds x users); one comparison per model, so no correction;
#   reported beside the audit's table whatever it shows.
set -euo pipefail
cd "$(dirname "$0")/.."
split=${1:?usage: audit_select.sh SPLIT_DIR WORK_DIR [MODEL ...]}
work=${2:?usage: audit_select.sh SPLIT_DIR WORK_DIR [MODEL ...]}
shift 2
models=("$@")
[ "${#models[@]}" -gt 0 ] || models=(GMF NeuMF)
name=evaldenoisingrec-ml100k
props=benchmarks/properties/evaldenoisingrec
for model in "${models[@]}"; do
  case "$model" in
    GMF | NeuMF) ;;
    *) echo "error: model $model is not in the plan (GMF, NeuMF)" >&2; exit 2 ;;
  esac
done
mkdir -p "$work/data"
if [ ! -f "$work/data/$name/$name.test.inter" ]; then
  python -m recbole_autodenoise.prepare --name "$name" --data-path "$work/data" \
    --allow-valid-test-overlap --split-files "$split/ml100k.train.rating" \
    "$split/ml100k.valid.rating" "$split/ml100k.test.negative"
fi
for model in "${models[@]}"; do
  echo "== $model ($(date -u +%FT%TZ))" >&2
  python -m recbole_autodenoise.select --model=NeuMF --dataset="$name" --data_path="$work/data" \
    --config_files="$props/protocol.yaml $props/$model-ERM.yaml" --tune=0 --seed=2023 --seeds=3 \
    --test=recommended --jobs="${JOBS:-1}" --out="$work/select-$model.json"
done
