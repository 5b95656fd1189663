"""The pre-registered confirmation study's test: ``python -m benchmarks.confirm REPORT.json ...
[--out FILE.md] [--draws N]``.

Reads the ``select --test=all`` reports of the study (one per data set and model) and their cells'
per-query test records, and for every pre-registered comparison
(``benchmarks/preregistration.yaml``: A, every candidate against ``default``; B, each denoiser
against ``default_guide``) gives the relative difference of test NDCG@20 (``user_first``), a 95 %
two-level bootstrap interval (seeds, then the users, one user draw shared by both sides and all
seeds: paired), a two-sided bootstrap p and its Holm-adjusted value over every comparison present.
Beside each (data set, model): select's pick (from validation only) and the Spearman correlation of
the candidates' validation and test means.
Prints one table per data set; exits 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REFERENCE = "default"
EQUAL_INFORMATION = "default_guide"
DENOISERS = ("adt_rl", "adt_tl", "dcf", "autodenoise_s", "explicit")
METRIC = "ndcg@20"
PROTOCOL = "user_first"
DRAWS = 10_000
BOOTSTRAP_SEED = 0
CHUNK = 500


@dataclass
class Arm:
    """One candidate of one (data set, model): per-seed per-user test scores, seeds in order."""

    seeds: list[int]
    users: np.ndarray  # [seeds, users]
    valid_mean: float


def paired_draws(a: np.ndarray, b: np.ndarray, draws: int, rng: np.random.Generator):
    """Bootstrap means of ``a`` and ``b`` ([seeds, users], the same users in the same order): each
    draw resamples the seeds, then the users (one draw shared by every seed and both sides)."""
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired arms need equal, non-empty shapes, got {a.shape} and {b.shape}")
    seeds, users = a.shape
    mean_a, mean_b = np.empty(draws), np.empty(draws)
    for start in range(0, draws, CHUNK):
        size = min(CHUNK, draws - start)
        seed_w = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=size) / seeds
        user_w = rng.multinomial(users, np.full(users, 1 / users), size=size) / users
        mean_a[start : start + size] = ((user_w @ a.T) * seed_w).sum(axis=1)
        mean_b[start : start + size] = ((user_w @ b.T) * seed_w).sum(axis=1)
    return mean_a, mean_b


def relative_difference(
    a: np.ndarray, b: np.ndarray, draws: int, rng: np.random.Generator
) -> dict[str, float]:
    """``mean(a) / mean(b) - 1`` with its 95 % percentile interval and two-sided bootstrap p."""
    mean_a, mean_b = paired_draws(a, b, draws, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(mean_b > 0, mean_a / mean_b - 1, np.nan)
    relative = relative[np.isfinite(relative)]
    low, high = np.percentile(relative, [2.5, 97.5])
    p = min(1.0, 2 * min(float(np.mean(relative <= 0)), float(np.mean(relative >= 0))))
    return {"relative": float(a.mean() / b.mean() - 1), "ci": [float(low), float(high)], "p": p}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (m - position) * p_values[index]))
        adjusted[index] = running
    return [float(value) for value in adjusted]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with fewer than 3 points."""
    if len(x) < 3:
        return None

    def ranks(values):
        values = np.asarray(values, dtype=float)
        order = values.argsort(kind="stable")
        found = np.empty(len(values))
        found[order] = np.arange(len(values), dtype=float)
        for value in np.unique(values):
            tied = values == value
            found[tied] = found[tied].mean()
        return found

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def per_user(record: dict[str, Any]) -> np.ndarray:
    from recbole_autodenoise.evaluation.per_query import metric_per_query

    return metric_per_query(record, METRIC)


def read_arms(report_path: Path) -> tuple[dict[str, Any], dict[str, Arm]]:
    """A select report and its candidates' test arms, read from its cells folder."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    test = (report.get("recommended") or {}).get("test") or {}
    tested = test.get("candidates")
    if not tested:
        raise ValueError(f"{report_path}: no test of every candidate (run select with --test=all)")
    cells = Path(str(report_path) + ".cells")
    valid = {entry["candidate"]: entry["valid_mean"] for entry in report["ranking"]}
    arms, digests = {}, set()
    for name, found in tested.items():
        rows, seeds = [], []
        for seed_entry in found["per_seed"]:
            outcome = json.loads(
                (cells / seed_entry["cell"] / "test.json").read_text(encoding="utf-8")
            )
            record = outcome["per_query"][PROTOCOL]
            digests.add(record["users_digest"])
            rows.append(per_user(record))
            seeds.append(seed_entry["seed"])
        arms[name] = Arm(seeds, np.vstack(rows), valid[name])
    if len(digests) != 1:
        raise ValueError(
            f"{report_path}: the candidates' test queries differ ({len(digests)} user lists)"
        )
    return report, arms


def comparisons(arms: dict[str, Arm]) -> list[tuple[str, str]]:
    """The pre-registered pairs present in ``arms``: A then B."""
    pairs = [(name, REFERENCE) for name in arms if name != REFERENCE]
    pairs += [
        (name, EQUAL_INFORMATION)
        for name in DENOISERS
        if name in arms and EQUAL_INFORMATION in arms
    ]
    return pairs


def analyse(paths: Sequence[Path], draws: int) -> dict[str, Any]:
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    cells, rows = [], []
    for path in paths:
        report, arms = read_arms(path)
        args = report["settings"]["args"]
        names = list(arms)
        cell = {
            "dataset": args["dataset"],
            "model": args["model"],
            "report": str(path),
            "commits": report["settings"].get("cell_commits"),
            "select_pick": report["recommended"]["candidate"],
            "test": {name: float(arm.users.mean()) for name, arm in arms.items()},
            "valid": {name: arm.valid_mean for name, arm in arms.items()},
            "spearman_valid_test": spearman(
                [arms[n].valid_mean for n in names], [float(arms[n].users.mean()) for n in names]
            ),
        }
        cells.append(cell)
        for name, against in comparisons(arms):
            found = relative_difference(arms[name].users, arms[against].users, draws, rng)
            rows.append(
                {
                    "dataset": args["dataset"],
                    "model": args["model"],
                    "candidate": name,
                    "against": against,
                    **found,
                }
            )
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["holm_p"] = adjusted
    return {"cells": cells, "comparisons": rows, "family_size": len(rows), "draws": draws}


def markdown(found: dict[str, Any]) -> str:
    lines = []
    by_cell = {(c["dataset"], c["model"]): c for c in found["cells"]}
    for dataset in dict.fromkeys(c["dataset"] for c in found["cells"]):
        lines += [
            f"### {dataset}",
            "",
            "| model | candidate | test NDCG@20 | vs default (95 % CI) | Holm p "
            "| vs default_guide | Holm p |",
            "| --- | --- | ---: | --- | ---: | --- | ---: |",
        ]
        for (d, model), cell in by_cell.items():
            if d != dataset:
                continue
            for name, value in sorted(cell["test"].items(), key=lambda kv: -kv[1]):
                parts = []
                for against in (REFERENCE, EQUAL_INFORMATION):
                    row = next(
                        (
                            r
                            for r in found["comparisons"]
                            if r["dataset"] == d
                            and r["model"] == model
                            and r["candidate"] == name
                            and r["against"] == against
                        ),
                        None,
                    )
                    parts += (
                        ["", ""]
                        if row is None
                        else [
                            f"{100 * row['relative']:+.1f} % "
                            f"({100 * row['ci'][0]:+.1f}, {100 * row['ci'][1]:+.1f})",
                            f"{row['holm_p']:.3f}",
                        ]
                    )
                pick = " (select's pick)" if name == cell["select_pick"] else ""
                lines.append(
                    f"| {model} | {name}{pick} | {100 * value:.3f} % | {' | '.join(parts)} |"
                )
            rho = cell["spearman_valid_test"]
            lines.append(
                f"| {model} | Spearman(valid, test) over candidates | "
                f"{'n/a' if rho is None else f'{rho:.2f}'} | | | | |"
            )
        lines.append("")
    lines.append(
        f"Holm over {found['family_size']} comparisons; {found['draws']} bootstrap draws "
        f"(seed {BOOTSTRAP_SEED})."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="select --test=all reports (JSON)")
    parser.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    parser.add_argument("--json", default=None, help="also write every number to this JSON file")
    parser.add_argument(
        "--draws", type=int, default=DRAWS, help=f"bootstrap draws (default {DRAWS})"
    )
    args = parser.parse_args(argv)
    if args.draws < 100:
        parser.error(f"--draws must be >= 100, got {args.draws}")
    try:
        found = analyse([Path(p) for p in args.reports], args.draws)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = markdown(found)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
