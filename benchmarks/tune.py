"""Small validation-set grid search, writing the winner as a property yaml for ``table3``.

    python -m benchmarks.tune --dataset ml-latest-small --data-path DIR --model BPR \\
        --scheme default --grid learning_rate=1e-3,5e-3 --grid embedding_size=32,64 \\
        --set epochs=100

Every combination is a grid cell (one subprocess each, resumable JSONL under
benchmarks/results/tune/), ranked by the mean over seeds of ``best_valid_score`` (the clean
validation ``valid_metric``, NDCG@20 by default); the test set is never looked at. The winner is
written to ``benchmarks/properties/<dataset>/<model>-<scheme>.yaml`` (replacing it, with any
settings of the old file that the grid does not tune kept); use it with
``python -m benchmarks.table3 ...
--config-files 'benchmarks/properties/{dataset}/{model}-{scheme}.yaml'``.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import math
import shlex
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import yaml

from benchmarks.grid import (
    DEFAULT_SEED,
    EXTRA_SCHEMES,
    SCHEMES,
    Runner,
    SubprocessRunner,
    check_settings,
    latest_rows,
    make_cells,
    read_rows,
    run_grid,
)
from benchmarks.table3 import add_common_arguments, check_common_arguments, overrides_from
from recbole_autodenoise.arguments import (
    MAX_SEEDS,
    check_output_path,
    count,
    model_name,
    read_text,
    seed,
)
from recbole_autodenoise.config import parse_cli_value
from recbole_autodenoise.files import atomic_write


class NoWinner(RuntimeError):
    """No candidate of a search finished on every seed."""


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``key=v1,v2,...`` -> {key: [v1, v2, ...]}; ``key=[10,20],[10]`` gives list values."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        key, text = item.split("=", 1)
        try:
            values = ast.literal_eval(f"[{text}]")
        except (ValueError, SyntaxError):
            values = [parse_cli_value(part) for part in text.split(",")]
        grid[key.strip()] = list(values)
    return grid


def candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def kept_keys(previous: str | None, out_yaml: Path, grid: dict[str, list[Any]]) -> dict[str, Any]:
    """The settings of the file being replaced (``previous``, its text) that the grid does not tune:
    the new file keeps them (a model's default yaml may also hold, e.g., ML-1M's 20-core filter)."""
    if previous is None:
        return {}
    try:
        existing = yaml.safe_load(previous)
    except yaml.YAMLError as error:
        raise ValueError(
            f"{out_yaml} is not valid YAML, so its settings cannot be kept: {error}"
        ) from error
    if existing is None:
        return {}
    if not isinstance(existing, dict):
        raise ValueError(f"{out_yaml} holds a {type(existing).__name__}, not a mapping of settings")
    return {k: v for k, v in existing.items() if k not in grid}


def replaced_comments(previous: str | None) -> list[str]:
    """The comment lines of the file being replaced (how its kept settings came about), indented."""
    comments = [line for line in (previous or "").splitlines() if line.startswith("#")]
    return (
        ["# the file this replaced said:"] + ["#   " + line[1:].strip() for line in comments]
        if comments
        else []
    )


def tune(
    dataset: str,
    model: str,
    scheme: str,
    grid: dict[str, list[Any]],
    seeds: Sequence[int],
    results: Path,
    out_yaml: Path,
    runner: Runner,
    overrides: dict[str, Any] | None = None,
    config_files: Sequence[str] = (),
    data_path: str | None = None,
    command: str = "",
) -> tuple[dict[str, Any], float]:
    """Run every candidate, pick the best mean validation score, write it to ``out_yaml``."""
    overrides = dict(overrides or {})
    clash = sorted(set(grid) & set(overrides))
    if clash:
        raise ValueError(f"{clash} are both tuned (--grid) and fixed (--set)")
    check_output_path(out_yaml, "the tuned yaml")
    check_output_path(results, "the results file")
    previous = read_text(out_yaml) if out_yaml.exists() else None  # read once, before any cell runs
    kept = kept_keys(previous, out_yaml, grid)
    per_candidate = [
        (
            c,
            make_cells(
                dataset, [model], [scheme], seeds, {**overrides, **c}, config_files, data_path
            ),
        )
        for c in candidates(grid)
    ]
    check_settings([cell for _, cells in per_candidate for cell in cells])
    read_rows(results)  # an unreadable results file stops the search here, not after a cell
    run_grid(
        [cell for _, cells in per_candidate for cell in cells], results, runner, command=command
    )
    latest = latest_rows(read_rows(results))
    scored = []
    for candidate, cells in per_candidate:
        scores = [
            latest[c.key]["results"]["best_valid_score"]
            for c in cells
            if latest.get(c.key, {}).get("status") == "ok"
        ]
        scores = [s for s in scores if isinstance(s, (int, float)) and math.isfinite(s)]
        if len(scores) == len(cells):  # only fully finished candidates compete
            scored.append((statistics.mean(scores), candidate))
        print(
            f"  {candidate}: valid {statistics.mean(scores) if scores else float('nan'):.6f} "
            f"({len(scores)}/{len(cells)} seeds)"
        )
    if not scored:
        raise NoWinner(f"no candidate finished on every seed; see {results} and its .logs folder")
    score, best = max(scored, key=lambda pair: pair[0])
    out_yaml.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# Tuned by benchmarks.tune on {datetime.now(timezone.utc).date()} "
        f"for {model} / {scheme} on {dataset}:",
        f"# best mean clean-validation score {score:.6f} over seeds {list(seeds)} "
        "(valid_metric; test never used).",
        f"# grid: {grid}",
        f"# fixed overrides: {overrides}",
    ] + ([f"# command: {command}"] if command else [])
    header += [f"# kept from the file this replaced: {', '.join(sorted(kept))}"] if kept else []
    header += replaced_comments(previous)
    with atomic_write(out_yaml) as handle:
        handle.write("\n".join(header) + "\n" + yaml.safe_dump({**kept, **best}, sort_keys=True))
    print(f"best {best} (valid {score:.6f}) -> {out_yaml}")
    return best, score


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--model", required=True, type=model_name)
    parser.add_argument("--scheme", default="default", choices=SCHEMES + EXTRA_SCHEMES)
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="values to try (repeatable)",
    )
    parser.add_argument("--seeds", type=count(MAX_SEEDS), default=1)
    parser.add_argument("--seed-base", type=seed, default=DEFAULT_SEED)
    parser.add_argument("--properties-dir", default="benchmarks/properties")
    args = parser.parse_args(argv)
    name = f"{args.model}-{args.scheme}"
    results = Path("benchmarks/results/tune") / args.dataset / f"{name}.jsonl"
    command = shlex.join(
        ["python", "-m", "benchmarks.tune", *(sys.argv[1:] if argv is None else argv)]
    )
    try:
        check_common_arguments(args, args.seeds, args.seed_base)
        grid = parse_grid(args.grid)
        overrides = overrides_from(args)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    try:
        seeds = range(args.seed_base, args.seed_base + args.seeds)
        tune(
            args.dataset,
            args.model,
            args.scheme,
            grid,
            seeds,
            results,
            Path(args.properties_dir) / args.dataset / f"{name}.yaml",
            SubprocessRunner(results.with_suffix(".logs"), args.cell_timeout, resumable=True),
            overrides,
            args.config_files,
            args.data_path,
            command,
        )
    except (ValueError, FileNotFoundError) as error:  # raised before any cell runs
        parser.error(str(error))
    except NoWinner as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
