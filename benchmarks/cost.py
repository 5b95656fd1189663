"""Cost of each scheme against Default, per epoch, train and validation apart (issue 15).

    python -m benchmarks.cost --dataset ml-latest-small --data-path /work/data \\
        --models BPR:15 GRU4Rec:4 --repetitions 2 \\
        --out benchmarks/results/ml-latest-small-cost.jsonl
    python -m benchmarks.cost --summarise benchmarks/results/ml-latest-small-cost.jsonl

Every cell is one ``python -m benchmarks.cell`` process (its own peak memory) training MODEL for
EPOCHS epochs (``stopping_step`` high, so every cell trains every epoch) with one scheme. Cells
run interleaved: per repetition, model by model, each scheme once, in an order rotated by the
repetition, so a load that drifts on a shared machine touches every scheme alike. ``--code
NAME=PATH`` (repeatable) runs the same cells on other checkouts of the plugin too (e.g. the
commit before a speed-up), interleaved with this one, as variants of the same table.

Per cell (``benchmarks/cost_cell.py``): the median over epochs after the first of the process CPU
seconds of each training and validation phase (validation includes the controller's reward pass
and update; CPU seconds count the work where other jobs share the cores: run with
OMP_NUM_THREADS=1), of the wall seconds (``AutoDenoiseTrainer.history``), the peak RSS and, on a
GPU (``--device cuda``), the peak GPU memory allocated. On a GPU the process CPU seconds count only
the host's share of the work: read the wall and GPU-memory columns there. Ratios are taken against
Default of the same variant, model and repetition (paired) and reported as the median over
repetitions with their range (min-max).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from benchmarks.grid import (
    REPO_ROOT,
    SCHEMES,
    Cell,
    SubprocessRunner,
    append_row,
    host_info,
    read_rows,
)
from benchmarks.table3 import DEVICE_OVERRIDES, parse_sets
from recbole_autodenoise.arguments import setting

PHASES = ("train", "valid", "total")


def parse_models(items: Sequence[str]) -> list[tuple[str, int]]:
    """``MODEL:EPOCHS`` pairs."""
    models = []
    for item in items:
        name, _, epochs = item.partition(":")
        if not name or not epochs.isdigit() or int(epochs) < 2:
            raise SystemExit(
                "--models expects MODEL:EPOCHS with EPOCHS >= 2 (the first epoch is not timed), "
                f"got {item!r}"
            )
        models.append((name, int(epochs)))
    return models


def parse_code(items: Sequence[str], name: str = "this") -> dict[str, Path]:
    """``NAME=PATH`` checkouts, after this repository (called ``name``)."""
    code = {name: REPO_ROOT}
    for item in items:
        name, _, path = item.partition("=")
        if not name or not path or not (Path(path) / "recbole_autodenoise").is_dir():
            raise SystemExit(
                "--code expects NAME=PATH with PATH a checkout holding recbole_autodenoise/, "
                f"got {item!r}"
            )
        code[name] = Path(path).resolve()
    return code


def schedule(
    models, schemes, variants, repetitions: int, other_schemes=None
) -> list[tuple[int, str, int, str, str]]:
    """(repetition, model, epochs, variant, scheme) in run order: per repetition and model, every
    (variant, scheme) once, the order rotated by the repetition. Variants after the first run
    ``other_schemes`` only (all where None)."""
    order = []
    pairs = [
        (variant, scheme)
        for scheme in schemes
        for i, variant in enumerate(variants)
        if i == 0 or other_schemes is None or scheme in other_schemes
    ]
    for repetition in range(repetitions):
        shift = repetition % len(pairs)
        for model, epochs in models:
            for variant, scheme in pairs[shift:] + pairs[:shift]:
                order.append((repetition, model, epochs, variant, scheme))
    return order


def cell_times(results: dict[str, Any]) -> dict[str, float]:
    """Median wall seconds per epoch after the first: train, validation and their sum."""
    epochs = results["epochs"][1:]
    return _phases([r["train_seconds"] for r in epochs], [r["valid_seconds"] for r in epochs])


def cpu_times(cpu_seconds: dict[str, list[float]]) -> dict[str, float]:
    """Median process CPU seconds per epoch after the first (``cost_cell``)."""
    return _phases(cpu_seconds["train"][1:], cpu_seconds["valid"][1:])


def _phases(train: list[float], valid: list[float]) -> dict[str, float]:
    train_median, valid_median = statistics.median(train), statistics.median(valid)
    return {"train": train_median, "valid": valid_median, "total": train_median + valid_median}


def run(args) -> int:
    models, code = parse_models(args.models), parse_code(args.code, args.name)
    out = Path(args.out)
    overrides = {
        "stopping_step": 1000,
        "stopping_min_epochs": 0,
        "show_progress": False,
        **DEVICE_OVERRIDES.get(args.device, {}),
        **parse_sets(args.sets),
    }
    command = shlex.join(["python", "-m", "benchmarks.cost", *sys.argv[1:]])
    host = host_info()
    order = schedule(models, args.schemes, list(code), args.repetitions, args.code_schemes)
    print(f"{len(order)} cells, results appended to {out}")
    for index, (repetition, model, epochs, variant, scheme) in enumerate(order, 1):
        cell = Cell(
            args.dataset,
            model,
            scheme,
            args.seed,
            {**overrides, "epochs": epochs},
            (),
            str(Path(args.data_path).resolve()) if args.data_path else None,
        )
        runner = SubprocessRunner(
            out.with_suffix(".logs") / variant,
            timeout=args.cell_timeout,
            root=code[variant],
            cell=[str(Path(__file__).resolve().parent / "cost_cell.py")],
        )
        started = time.time()
        row: dict[str, Any] = {
            "key": f"{cell.key}|{variant}|{repetition}",
            "model": model,
            "scheme": scheme,
            "variant": variant,
            "code": str(code[variant]),
            "repetition": repetition,
            "epochs": epochs,
            "command": command,
            "cell_command": cell.command(),
            "host": host,
        }
        try:
            outcome = runner(cell)
            row.update(
                status="ok",
                times=cell_times(outcome["results"]),
                cpu=cpu_times(outcome["cpu_seconds"]),
                peak_memory=outcome["peak_memory"],
                cpu_seconds=outcome["cpu_seconds"],
                per_epoch=[
                    {k: r.get(k) for k in ("epoch", "train_seconds", "valid_seconds")}
                    for r in outcome["results"]["epochs"]
                ],
            )
        except Exception as error:  # noqa: BLE001 - recorded, the run goes on
            row.update(status="failed", error=f"{type(error).__name__}: {error}")
        row.update(
            wall_seconds=time.time() - started,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        append_row(out, row)
        print(
            f"[{index}/{len(order)}] rep {repetition} {model} {variant} {scheme}: {row['status']} "
            f"in {row['wall_seconds']:.0f} s {json.dumps(row.get('times', {}))}",
            flush=True,
        )
    print(summarise(read_rows(out)))
    return 0


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    middle = statistics.median(values)
    return (
        f"{middle:.2f}x ({min(values):.2f}-{max(values):.2f})"
        if len(values) > 1
        else f"{middle:.2f}x"
    )


def summarise(rows: list[dict[str, Any]]) -> str:
    """Markdown table: per variant, model and scheme, the median CPU seconds per epoch and the
    ratios to Default (median over repetitions, min-max) of CPU seconds (train, validation,
    total), of wall seconds (total), of the peak RSS and of the peak GPU memory (cells on a GPU)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    default = {
        (r["variant"], r["model"], r["repetition"]): r for r in ok if r["scheme"] == "default"
    }
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in ok:
        groups.setdefault((row["variant"], row["model"], row["scheme"]), []).append(row)
    lines = [
        "| variant | model | scheme | train CPU s | valid CPU s | train | valid | train + valid | "
        "train + valid, wall | peak RSS | peak GPU memory |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rank = {name: i for i, name in enumerate(SCHEMES)}
    for (variant, model, scheme), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], 99))
    ):
        ratios: dict[str, list[float]] = {key: [] for key in (*PHASES, "wall", "rss", "gpu")}
        for row in group:
            base = default.get((variant, model, row["repetition"]))
            if base is None:
                continue
            for phase in PHASES:
                ratios[phase].append(row["cpu"][phase] / base["cpu"][phase])
            ratios["wall"].append(row["times"]["total"] / base["times"]["total"])
            ratios["rss"].append(
                row["peak_memory"]["peak_rss_mb"] / base["peak_memory"]["peak_rss_mb"]
            )
            gpu, base_gpu = (r["peak_memory"].get("cuda_max_allocated_mb") for r in (row, base))
            if gpu and base_gpu:
                ratios["gpu"].append(gpu / base_gpu)
        train = statistics.median(r["cpu"]["train"] for r in group)
        valid = statistics.median(r["cpu"]["valid"] for r in group)
        lines.append(
            f"| {variant} | {model} | {scheme} | {train:.3f} | {valid:.3f} | "
            f"{_spread(ratios['train'])} | "
            f"{_spread(ratios['valid'])} | {_spread(ratios['total'])} | "
            f"{_spread(ratios['wall'])} | "
            f"{_spread(ratios['rss'])} | {_spread(ratios['gpu'])} |"
        )
    reps = sorted({r["repetition"] for r in ok})
    return (
        "\n".join(lines)
        + f"\n\n{len(ok)} cells, repetitions {reps}; seconds per epoch: median over the epochs "
        "after the first; ratios against Default of the same variant, model and repetition: "
        "median (min-max)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--data-path", default=None)
    parser.add_argument(
        "--models", nargs="+", default=["BPR:15", "GRU4Rec:4"], metavar="MODEL:EPOCHS"
    )
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES))
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another checkout of the plugin to time beside this one (repeatable)",
    )
    parser.add_argument(
        "--code-schemes",
        nargs="+",
        default=None,
        metavar="SCHEME",
        help="the schemes the --code checkouts run (default: all; 'default' is always needed)",
    )
    parser.add_argument("--name", default="this", help="this checkout's name in the table")
    parser.add_argument(
        "--device",
        choices=sorted(DEVICE_OVERRIDES),
        default=None,
        help="cpu or cuda (sets RecBole's gpu_id; default: RecBole's own choice)",
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", type=setting
    )
    parser.add_argument("--cell-timeout", type=float, default=None)
    parser.add_argument("--out", default="benchmarks/results/cost.jsonl")
    parser.add_argument(
        "--summarise", metavar="JSONL", help="print the table of an earlier run and exit"
    )
    args = parser.parse_args(argv)
    if args.summarise:
        print(summarise(read_rows(args.summarise)))
        return 0
    if "default" not in args.schemes or (
        args.code_schemes is not None and "default" not in args.code_schemes
    ):
        parser.error("--schemes and --code-schemes need 'default': the ratios are taken against it")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
