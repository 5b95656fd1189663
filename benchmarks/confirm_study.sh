#!/usr/bin/env bash
# The pre-registered confirmation study (benchmarks/preregistration.yaml), one `select` per data set and
# model, in the file's order: bash benchmarks/confirm_study.sh DATA_DIR [DATASET:MODEL ...]
# DATA_DIR holds <data set>/<data set>.inter (made with `python -m recbole_autodenoise.prepare`).
# Every select is resumable: run the same command again (at the same commit) to continue; finished cells
# are kept under benchmarks/results/confirm/<data set>-<model>.json.cells/. JOBS (default 2) cells at once.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: confirm_study.sh DATA_DIR [DATASET:MODEL ...]}
shift
out=${OUT:-benchmarks/results/confirm}
jobs=${JOBS:-2}
plan=(
  amazon-musical-instruments:BPR amazon-musical-instruments:SoftmaxMF
  amazon-musical-instruments:GRU4Rec amazon-musical-instruments:SASRec
  ml-latest-small:BPR ml-latest-small:SoftmaxMF ml-latest-small:GRU4Rec ml-latest-small:SASRec
  ml-1m:BPR ml-1m:SoftmaxMF ml-1m:GRU4Rec
)
[ "$#" -gt 0 ] && plan=("$@")
config_files() {  # the base settings of a data set and model, as the pre-registration names them
  case "$1" in
    amazon-musical-instruments) echo "benchmarks/properties/confirm/$1/$2-default.yaml" ;;
    *) echo "benchmarks/properties/paper-protocol/$1/$2-default.yaml" ;;
  esac
}
mkdir -p "$out"
for cell in "${plan[@]}"; do
  dataset=${cell%%:*}
  model=${cell##*:}
  files=$(config_files "$dataset" "$model")
  [ -f "$files" ] || { echo "error: no base settings $files for $cell" >&2; exit 2; }
  echo "== $dataset $model ($(date -u +%FT%TZ))" >&2
  python -m recbole_autodenoise.select --model="$model" --dataset="$dataset" --data_path="$data" \
    --config_files="$files" --tune=3 --tune_seed=2020 --seed=2021 --seeds=5 --test=all \
    --jobs="$jobs" --clean_valid_guide_order=chronological --out="$out/$dataset-$model.json" || \
    echo "select $dataset $model ended with status $?: run the study again to continue" >&2
done
