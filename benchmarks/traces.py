"""Weight traces of study variants:
``python -m benchmarks.traces FILE.jsonl ... [--model M] [--from-epoch 15]``.

For every variant (grouped as ``benchmarks.compare`` groups rows) whose runs kept a weight study,
the mean weight of the injected rows and of the false positives, each as a ratio to the true
positives' mean weight: over the whole run (every sample of every epoch, as ``weight_study``
counts them) and averaged over the epochs from ``--from-epoch`` on (where the ratio settles once
training does). Each cell is the mean over seeds with the seeds' range; a seed whose run stopped
before ``--from-epoch`` has no settled value, and the epochs column says how long the runs were.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from benchmarks.compare import condition_label, groups
from benchmarks.grid import read_rows
from benchmarks.report import mean

GROUPS = ("injected", "fp")  # each as a ratio to the true positives' mean weight


def run_ratio(row: dict[str, Any], group: str) -> float | None:
    """The group's mean weight over the run over the true positives'."""
    study = row["results"].get("weight_study", {})
    mine, tp = study.get(f"{group}_mean_weight"), study.get("tp_mean_weight")
    return mine / tp if isinstance(mine, (int, float)) and tp else None


def settled_ratio(row: dict[str, Any], group: str, from_epoch: int) -> float | None:
    """The per-epoch ratio averaged over the epochs numbered ``from_epoch`` and later."""
    epochs = row["results"].get("weight_study", {}).get("per_epoch", [])
    ratios = [
        e[f"{group}_mean_weight"] / e["tp_mean_weight"]
        for e in epochs
        if e["epoch"] >= from_epoch
        and e.get(f"{group}_mean_weight") is not None
        and e.get("tp_mean_weight")
    ]
    return mean(ratios) if ratios else None


def spread(found: Sequence[float | None]) -> str:
    """``mean (min-max)`` of the values present, ``n/a`` where none is (a single value alone)."""
    present = [v for v in found if v is not None]
    if not present:
        return "n/a"
    if len(present) == 1:
        return f"{present[0]:.3f}"
    return f"{mean(present):.3f} ({min(present):.3f}-{max(present):.3f})"


def epochs_text(runs: Sequence[dict[str, Any]]) -> str:
    counts = [len(r["results"].get("weight_study", {}).get("per_epoch", [])) for r in runs]
    return f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(counts[0])


def line(label: str, runs: Sequence[dict[str, Any]], from_epoch: int) -> str:
    cells = []
    for group in GROUPS:
        cells += [
            spread([run_ratio(r, group) for r in runs]),
            spread([settled_ratio(r, group, from_epoch) for r in runs]),
        ]
    return f"| {label} | {len(runs)} | {' | '.join(cells)} | {epochs_text(runs)} |"


def render(rows: Sequence[dict[str, Any]], models: Sequence[str] | None, from_epoch: int) -> str:
    found = {k: list(g.values()) for k, g in groups(rows).items() if not models or k[0] in models}
    found = {
        k: runs for k, runs in found.items() if all("weight_study" in r["results"] for r in runs)
    }
    if not found:
        raise SystemExit("no finished rows with a weight study")
    out = []
    for model, condition in sorted({k[:2] for k in found}, key=str):
        out += [
            f"### {model}, {condition_label(condition, 'no injected noise')}",
            "",
            "Mean weight over the true positives' (mean over seeds, range); "
            f"settled: epochs {from_epoch} and later.",
            "",
            "| variant | seeds | injected / TP, run | injected / TP, settled "
            "| FP / TP, run | FP / TP, settled | epochs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        out += [
            line(k[2], found[k], from_epoch)
            for k in sorted(k for k in found if k[:2] == (model, condition))
        ] + [""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="JSONL rows of benchmarks.table3 (several merge)")
    parser.add_argument("--model", nargs="*", help="only these models")
    parser.add_argument(
        "--from-epoch", type=int, default=15, help="first epoch of the settled average (default 15)"
    )
    args = parser.parse_args(argv)
    if args.from_epoch < 0:
        parser.error(f"--from-epoch must be 0 or more, got {args.from_epoch}")
    print(
        render([row for path in args.files for row in read_rows(path)], args.model, args.from_epoch)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
