#!/usr/bin/env bash
# Issue 5's study on BPR (CPU): what injected noise costs Default, then Default / ADT-RL / l2rw /
# AutoDenoise-S with epoch, user and meta credit, on clean data and under the most harmful noise.
# Every cell uses the guide/select split (clean_valid_guide_ratio 0.5): learners learn from the
# guide half, every scheme (Default included) early-stops on the same select half.
#
#   bash benchmarks/credit_study.sh DATA_DIR [SEEDS] [NOISE_KIND] [NOISE_RATE]
#
# Without NOISE_KIND it runs the noise survey (3 kinds x 10 % / 20 %, Default) and stops; with it,
# the comparison: first the controller learning rate of the user and meta credit modes is tuned on
# the select half under that noise (seed 2020; benchmarks/properties/study-<mode>/), then every
# method runs SEEDS seeds. Meta credit runs with meta_interval META_INTERVAL (default 2: BPR's
# epoch is so short that a meta step every batch took 2.17x / 2.43x Default's training time per
# epoch on 2 CPU cores, clean / noisy, in this study at commit c009dde; every second batch 1.64x /
# 1.87x, docs/results.md). Results: benchmarks/results/ml-latest-small-study.jsonl (resumable).
set -eu
data=${1:?DATA_DIR} seeds=${2:-5} kind=${3:-} rate=${4:-0.2}
out=benchmarks/results/ml-latest-small-study.jsonl
# experimental=true: l2rw and the user and meta credit are in recbole_autodenoise.experimental (the
# opt-in is not part of a cell's key, so earlier rows still match)
common=(--dataset ml-latest-small --data-path "$data" --models BPR --seeds "$seeds" --out "$out" --set experimental=true
        --set show_progress=False --set epochs=100 --set clean_valid_guide_ratio=0.5 --set denoise_diagnostics=True
        --config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')

if [[ -z $kind ]]; then
  python -m benchmarks.table3 "${common[@]}" --schemes default
  for k in random popular foreign; do for r in 0.1 0.2; do
    python -m benchmarks.table3 "${common[@]}" --schemes default --set noise_kind=$k --set noise_rate=$r
  done; done
  exit 0
fi

tuning=(--dataset ml-latest-small --data-path "$data" --model BPR --scheme autodenoise_s --set experimental=true
        --set show_progress=False --set epochs=100 --set clean_valid_guide_ratio=0.5 --set denoise_diagnostics=True
        --set noise_kind="$kind" --set noise_rate="$rate" --grid controller_learning_rate=1e-4,1e-3,1e-2
        --config-files 'benchmarks/properties/{dataset}/{model}-default.yaml' 'benchmarks/properties/{dataset}/controller.yaml')
credit_args() {  # the --set arguments of one credit mode
  echo "--set controller_credit=$1"
  [[ $1 != meta ]] || echo "--set meta_interval=${META_INTERVAL:-2}"
}
for credit in user meta; do
  # shellcheck disable=SC2046
  python -m benchmarks.tune "${tuning[@]}" $(credit_args $credit) --properties-dir "benchmarks/properties/study-$credit"
done

for noise in "" "--set noise_kind=$kind --set noise_rate=$rate"; do
  # shellcheck disable=SC2086
  python -m benchmarks.table3 "${common[@]}" $noise --schemes default adt_rl l2rw
  for credit in epoch user meta; do
    tuned=()
    [[ $credit == epoch ]] || tuned=(--config-files 'benchmarks/properties/{dataset}/{model}-default.yaml'
      'benchmarks/properties/{dataset}/controller.yaml' "benchmarks/properties/study-$credit/{dataset}/{model}-autodenoise_s.yaml")
    # shellcheck disable=SC2086,SC2046
    python -m benchmarks.table3 "${common[@]}" $noise --schemes autodenoise_s $(credit_args $credit) "${tuned[@]}"
  done
done
