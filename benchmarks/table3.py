"""Table 3 grid: ``python -m benchmarks.table3 --dataset=ml-latest-small --data-path DIR``.

Runs model x scheme x seed, one fresh subprocess per cell, appending each finished cell to a JSONL
file at once; re-running the same command skips finished cells and retries failed ones, so an
interrupted benchmark loses at most the cell in flight. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.grid import (
    DEFAULT_SEED,
    EXTRA_SCHEMES,
    SCHEMES,
    SubprocessRunner,
    check_settings,
    latest_rows,
    make_cells,
    read_rows,
    run_grid,
)
from recbole_autodenoise.arguments import (
    MAX_SEED,
    MAX_SEEDS,
    check_dataset,
    check_output_path,
    count,
    model_name,
    positive_seconds,
    seed,
    setting,
)
from recbole_autodenoise.config import parse_cli_value

DEVICE_OVERRIDES = {
    "cpu": {"gpu_id": ""},
    "cuda": {"gpu_id": "0"},
}  # RecBole 1.2.1 picks the device from gpu_id


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs, values parsed like the CLI's ``--key=value``."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = parse_cli_value(value)
    return overrides


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="data set name, e.g. ml-latest-small")
    parser.add_argument(
        "--data-path",
        default=None,
        help="folder holding <dataset>/<dataset>.inter (from recbole_autodenoise.prepare)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=setting,
        help="config override for every cell (repeatable), e.g. --set epochs=100",
    )
    parser.add_argument(
        "--config-files",
        nargs="+",
        default=[],
        help="yaml files for every cell; {model}, {scheme}, {dataset} are filled in per cell and "
        "such a templated file is skipped where it does not exist, e.g. "
        "'benchmarks/properties/{dataset}/{model}-{scheme}.yaml'",
    )
    parser.add_argument(
        "--device",
        choices=sorted(DEVICE_OVERRIDES),
        default=None,
        help="force CPU or GPU (default: RecBole's choice, GPU when available)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=positive_seconds,
        default=None,
        help="seconds before a cell is killed and recorded as failed; "
        "its next run continues after its last finished epoch",
    )


def check_common_arguments(args: argparse.Namespace, seeds: int, seed_base: int) -> None:
    """What argparse cannot check alone, before any cell runs: the data set can be found and the
    seeds stay seeds (ValueError)."""
    check_dataset(args.dataset, args.data_path)
    if seed_base + seeds - 1 > MAX_SEED:
        raise ValueError(
            f"--seed-base {seed_base} with --seeds {seeds} goes past the largest seed {MAX_SEED}"
        )


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides = parse_sets(args.sets)
    if args.device:
        overrides.update(DEVICE_OVERRIDES[args.device])
    return overrides


def dry_run(cells: Sequence[Any], out: Path, runner: SubprocessRunner) -> None:
    """Each cell's status (ok, failed, todo; ``partial`` where a stopped run left a state to
    continue from), key and command."""
    latest = latest_rows(read_rows(out))
    for cell in cells:
        status = latest.get(cell.key, {}).get("status", "todo")
        if status != "ok" and runner.saved_state(cell) is not None:
            status = "partial"
        print(f"{status:>7}  {cell.key}  {cell.command()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--models", nargs="+", type=model_name, default=["BPR", "GRU4Rec", "SASRec"]
    )
    parser.add_argument(
        "--schemes",
        nargs="+",
        default=["all"],
        help=f"'all' (the paper's six) or some of {', '.join(SCHEMES + EXTRA_SCHEMES)}",
    )
    parser.add_argument(
        "--seeds", type=count(MAX_SEEDS), default=5, help="number of seeds per (model, scheme)"
    )
    parser.add_argument(
        "--seed-base", type=seed, default=DEFAULT_SEED, help="first seed; seeds are consecutive"
    )
    parser.add_argument(
        "--out", default=None, help="JSONL results (default benchmarks/results/<dataset>.jsonl)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cells and whether they are finished (or partly run), run nothing",
    )
    args = parser.parse_args(argv)

    schemes = list(SCHEMES) if args.schemes == ["all"] else args.schemes
    unknown = sorted(set(schemes) - set(SCHEMES + EXTRA_SCHEMES))
    if unknown:
        parser.error(f"unknown scheme(s) {unknown}; choose from {SCHEMES + EXTRA_SCHEMES} or 'all'")
    try:
        check_common_arguments(args, args.seeds, args.seed_base)
        out = check_output_path(args.out or f"benchmarks/results/{args.dataset}.jsonl")
        seeds = range(args.seed_base, args.seed_base + args.seeds)
        cells = make_cells(
            args.dataset,
            args.models,
            schemes,
            seeds,
            overrides_from(args),
            args.config_files,
            args.data_path,
        )
        check_settings(cells)
        read_rows(out)  # an unreadable results file stops the command here, not after a cell
        runner = SubprocessRunner(
            out.with_suffix(".logs"), timeout=args.cell_timeout, resumable=True
        )
        if args.dry_run:
            dry_run(cells, out, runner)
            return 0
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    command = shlex.join(
        ["python", "-m", "benchmarks.table3", *(sys.argv[1:] if argv is None else argv)]
    )
    counts = run_grid(cells, out, runner, command=command)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
