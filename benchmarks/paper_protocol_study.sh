#!/usr/bin/env bash
# Table 3 on the paper's own terms (issue 12), on the CPU, resumable: every step skips what its
# JSONL already holds, so the study can be split across sessions and its rows merge.
#
#   bash benchmarks/paper_protocol_study.sh DATA_DIR STEP [SEEDS]
#
# DATA_DIR holds ml-latest-small/ml-latest-small.inter (python -m recbole_autodenoise.prepare).
# STEP: tune   - SoftmaxMF's learning rate, then every baseline's (DCF's too) and AutoDenoise's settings on
#                BPR (a BPR epoch costs 1/10 of a SoftmaxMF or GRU4Rec epoch on this CPU), on the clean
#                validation set under the precise `interaction` protocol (one seed; 604 user_first
#                queries are too noisy to rank settings), written to
#                benchmarks/properties/paper-protocol/ml-latest-small/ and copied for the other models
#       bpr    - BPR x (the paper's six schemes + oracle) x SEEDS (default 5)
#       softmaxmf, gru - SoftmaxMF / GRU4Rec x (default, adt_rl, autodenoise_s, oracle; SCHEMES=all
#                for the paper's six + oracle) x SEEDS (default 3)
#       sasrec - SASRec x (default, adt_rl, autodenoise_s, oracle) x SEEDS (default 1; a GPU runs more)
#       noisy  - issue 13's noisy study: MODEL (default GRU4Rec) with 20 % foreign noise in training
#                (noise_kind foreign, noise_rate 0.2) x (default, adt_rl, dcf, autodenoise_s, and
#                AutoDenoise-S with explicit credit, one stray-click row per rated row, 512-row guide
#                batches, under explicit_labels rating and observed) x SEEDS (default 3), into OUT
#                (default <dataset>-noisy.jsonl); every cell on the guide/select split
#                (clean_valid_guide_ratio 0.5): explicit credit learns from validation rows, which
#                must not select the epoch, and the others are selected on the same rows
#       models - issue 16's check of models beyond the paper's: LightGCN and NeuMF x (default, adt_rl,
#                autodenoise_s) x SEEDS (default 3), RecBole's default learning rate, the scheme
#                settings tuned on BPR
# DATASET (default ml-latest-small), DEVICE (cpu | cuda) and OUT (the JSONL) may be set; --seed-base
# style splits: SEED_BASE (default 2020) lets several processes share a GPU, each on its own seeds.
# Validation and early stopping use eval_protocol user_first (the paper's, the default); every run
# also reports its test set under `interaction` (results' test_by_protocol), so one run gives both
# protocols. Runs end by early stopping (stopping_step 6, never before stopping_min_epochs 10);
# `epochs` 300 is a safety cap the report flags. The oracle reads the training ratings: its cells
# opt in (allow_rating_diagnostics) through $props/<dataset>/<model>-oracle.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?DATA_DIR}
step=${2:?STEP: tune | bpr | softmaxmf | gru | sasrec | noisy | models}
props=benchmarks/properties/paper-protocol
dataset=${DATASET:-ml-latest-small}
device=${DEVICE:-cpu}
out=${OUT:-benchmarks/results/$dataset-paper-protocol.jsonl}
common=(--dataset "$dataset" --data-path "$data" --device "$device" --set show_progress=False)
files=(--config-files "$props/{dataset}/{model}-default.yaml" "$props/{dataset}/{model}-{scheme}.yaml")

tune() {  # tune MODEL SCHEME GRID... (config files: the model's tuned learning rate)
  local model=$1 scheme=$2; shift 2
  local grids=(); for g in "$@"; do grids+=(--grid "$g"); done
  python -m benchmarks.tune "${common[@]}" --set eval_protocol=interaction --properties-dir "$props" \
    --model "$model" --scheme "$scheme" "${grids[@]}" --config-files "$props/{dataset}/{model}-default.yaml"
}

case "$step" in
  tune)
    mkdir -p "$props/$dataset"
    for model in BPR GRU4Rec SASRec; do  # learning rates tuned earlier (benchmarks/properties/<dataset>/)
      { echo "# copied from benchmarks/properties/$dataset/$model-default.yaml"; cat "benchmarks/properties/$dataset/$model-default.yaml"; } \
        > "$props/$dataset/$model-default.yaml"
    done
    tune SoftmaxMF default learning_rate=5e-3,1e-2
    tune BPR adt_rl adt_beta=0.05,0.1,0.2,0.4
    tune BPR adt_tl adt_gradual_unit=epoch adt_num_gradual=1,5,10 adt_max_drop_rate=0.1,0.2
    tune BPR heuristic heuristic_alpha=0.25,0.5,1
    # DCF (issue 13): ADT's schedule keys as for adt_tl, lambda around the authors' 1e-4 and one that
    # bounds (lambda * s / (n + 1), about 0.05 at epoch 20 against damped losses of 0.1-0.7); their time_step, relabel ratio
    tune BPR dcf adt_gradual_unit=epoch adt_num_gradual=1,5 adt_max_drop_rate=0.1,0.2 dcf_co_lambda=1e-4,1e-2 \
      dcf_time_step=3 dcf_relabel_ratio=0.05
    tune BPR autodenoise_s controller_learning_rate=1e-3,1e-2 controller_weight_decay=0,1e-4
    cp "$props/$dataset/BPR-autodenoise_s.yaml" "$props/$dataset/BPR-autodenoise_h.yaml"
    for model in SoftmaxMF GRU4Rec SASRec; do  # the scheme settings tuned on BPR, used for every model
      for scheme in adt_rl adt_tl dcf heuristic autodenoise_s autodenoise_h; do
        { echo "# copied from BPR-$scheme.yaml (tuned on BPR only: the CPU budget)";
          cat "$props/$dataset/BPR-$scheme.yaml"; } > "$props/$dataset/$model-$scheme.yaml"
      done
    done ;;
  bpr)
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$out" --models BPR \
      --schemes default heuristic adt_tl adt_rl autodenoise_h autodenoise_s oracle --seeds "${3:-5}" --seed-base "${SEED_BASE:-2020}" ;;
  softmaxmf|gru)  # the key comparison first; the rest of the six with SCHEMES=all
    model=$([ "$step" = gru ] && echo GRU4Rec || echo SoftmaxMF)
    schemes=${SCHEMES:-default adt_rl autodenoise_s oracle}
    [ "$schemes" = all ] && schemes="default heuristic adt_tl adt_rl autodenoise_h autodenoise_s oracle"
    # shellcheck disable=SC2086
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$out" --models "$model" \
      --schemes $schemes --seeds "${3:-3}" --seed-base "${SEED_BASE:-2020}" ;;
  sasrec)
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$out" --models SASRec \
      --schemes default adt_rl autodenoise_s oracle --seeds "${3:-1}" --seed-base "${SEED_BASE:-2020}" ;;
  noisy)
    model=${MODEL:-GRU4Rec} noisy_out=${OUT:-benchmarks/results/$dataset-noisy.jsonl}
    noisy_cells=(--set clean_valid_guide_ratio=0.5 --set noise_kind=foreign --set noise_rate=0.2
                 --seeds "${3:-3}" --seed-base "${SEED_BASE:-2020}")
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$noisy_out" --models "$model" \
      --schemes default adt_rl dcf autodenoise_s "${noisy_cells[@]}"
    explicit=(--schemes autodenoise_s --set controller_credit=explicit --set explicit_negatives=1 --set guide_batch_size=512)
    # the rating labels (the key's default, left unset so earlier rows still match), then observed
    # (every rated row 1, no rating used; the value was called interaction)
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$noisy_out" --models "$model" \
      "${explicit[@]}" "${noisy_cells[@]}"
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$noisy_out" --models "$model" \
      "${explicit[@]}" --set explicit_labels=observed "${noisy_cells[@]}" ;;
  models)
    python -m benchmarks.table3 "${common[@]}" "${files[@]}" --out "$out" --models LightGCN NeuMF \
      --schemes default adt_rl autodenoise_s --seeds "${3:-3}" --seed-base "${SEED_BASE:-2020}" ;;
  *) echo "unknown step $step (tune | bpr | softmaxmf | gru | sasrec | noisy | models)" >&2; exit 2 ;;
esac
