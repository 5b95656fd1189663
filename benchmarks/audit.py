"""The EvalDenoisingRec study's ML-100K table with this plugin: ``python -m benchmarks.audit --data
DIR [--models ...] [--methods ...] [--seeds ...] [--out FILE] [--epochs N] [--extra]``.

The RecSys 2025 reproducibility study "Are We Really Making Recommendations Robust?" (repository
``bachml/EvalDenoisingRec``) published its ML-100K split, its hyper-parameters and its results.
``DIR`` holds its three files (``ml100k.train.rating``, ``ml100k.valid.rating``,
``ml100k.test.negative``) and ``reported/ml100k-<MODEL>.csv``. The split is converted with the
pre-split route (``prepare --split-files --allow-valid-test-overlap``) into ``<out>.work/data``;
then every (model, method, seed) cell runs once in its own process with
``benchmarks/properties/evaldenoisingrec/protocol.yaml`` and ``<MODEL>-<METHOD>.yaml``, each
finished cell appended to ``--out`` (JSON lines) at once: re-running the command skips finished
cells, retries failed ones and continues stopped ones (``benchmarks.grid``). The table printed at
the end sets ours (mean and min-max over the seeds) beside theirs, says for each cell whether
theirs lies within our seed spread or our mean within 10 % of theirs, and checks the study's two
orderings: ERM_RE >= ERM on every model and DCF < ERM on GMF and NeuMF (test NDCG@20). UDT (the
audit's user- and interaction-level reweighting, ``denoise_scheme: udt``) runs on GMF, NeuMF and
LightGCN; not on CDAE.

Not in their configs, so chosen here: epochs (GMF and NeuMF 50, LightGCN 300, CDAE 500: the
epochs of their DeCA configs and their README's commands; ``--epochs`` overrides them for smoke
runs, as a separate cell), and CDAE's hidden activation (their CDAE model file is not published).
``--extra`` adds rows for this plugin's AutoDenoise-S (epoch credit, its reward read from the
validation set as given) and its explicit controller (``select``'s candidate ``explicit``: fitted
to the ratings of half of each user's validation rows, the other half selecting the epoch) on GMF,
NeuMF and LightGCN (the controller needs item embeddings: none on CDAE).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from benchmarks.grid import (
    REPO_ROOT,
    Cell,
    SubprocessRunner,
    check_settings,
    latest_rows,
    read_rows,
    run_grid,
)
from recbole_autodenoise import arguments
from recbole_autodenoise.arguments import check_output_path, positive_seconds
from recbole_autodenoise.select.candidates import BUILTIN as CANDIDATES
from recbole_autodenoise.select.command import SELECT_RATIO

DATASET = "evaldenoisingrec-ml100k"
SPLIT_FILES = ("ml100k.train.rating", "ml100k.valid.rating", "ml100k.test.negative")
PROPERTIES = REPO_ROOT / "benchmarks" / "properties" / "evaldenoisingrec"
PROTOCOL_FILE = PROPERTIES / "protocol.yaml"
# their model name -> RecBole / plugin model
MODELS = {
    "GMF": "NeuMF",
    "NeuMF": "NeuMF",
    "LightGCN": "LightGCNPointwise",
    "CDAE": "CDAEPointwise",
}
METHODS = ("ERM", "ERM_RE", "TCE", "RCE", "DCF", "UDT")
# our method name -> the method column of their reported/ml100k-<MODEL>.csv
REPORTED_NAMES = {
    "ERM": "ERM",
    "ERM_RE": "ERMrevised",
    "TCE": "TCE",
    "RCE": "RCE",
    "DCF": "DCF",
    "UDT": "UDT",
}
# methods run on some models only: UDT's CDAE variant (their separate code/CDAE/, batches of whole
# users) is not built here
METHOD_MODELS = {"UDT": ("GMF", "NeuMF", "LightGCN")}
# --extra: name -> (scheme, overrides on top of the model's ERM file); not on CDAE
EXTRA = {
    "AutoDenoise-S": ("autodenoise_s", {}),
    # select's candidate "explicit", on select's default split
    "Explicit": (
        CANDIDATES["explicit"].scheme,
        {**CANDIDATES["explicit"].settings, "clean_valid_guide_ratio": SELECT_RATIO},
    ),
}
EXTRA_MODELS = ("GMF", "NeuMF", "LightGCN")
SEEDS = (2023, 2024, 2025)
METRICS = ("ndcg@20", "recall@20")
METRIC_LABELS = {"ndcg@20": "NDCG@20", "recall@20": "Recall@20"}
ORDER_METRIC = "ndcg@20"
TOLERANCE = 0.10
DEVICE_OVERRIDES = {"cpu": {"gpu_id": ""}, "cuda": {"gpu_id": "0"}}


# --- arguments -------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.audit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        required=True,
        help="folder with ml100k.train.rating, ml100k.valid.rating, ml100k.test.negative and "
        "reported/ml100k-<MODEL>.csv (e.g. ../shared/data/evaldenoisingrec-ml100k)",
    )
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=arguments.seed, default=list(SEEDS))
    p.add_argument(
        "--out",
        default=f"benchmarks/results/{DATASET}.jsonl",
        help="the cells' results, one JSON line per cell (resumable); its converted split goes "
        "to <out>.work/data and the cells' logs to <out>.logs/",
    )
    p.add_argument(
        "--epochs",
        type=arguments.count(100_000),
        default=None,
        help="train every cell this many epochs (smoke runs; other cells than the full ones)",
    )
    p.add_argument(
        "--extra",
        action="store_true",
        help="also run this plugin's candidates: " + ", ".join(EXTRA),
    )
    p.add_argument("--json", default=None, help="also write the table as JSON to this file")
    p.add_argument("--device", choices=sorted(DEVICE_OVERRIDES), default=None)
    p.add_argument("--cell-timeout", type=positive_seconds, default=None)
    p.add_argument(
        "--table-only", action="store_true", help="train nothing: the table of the finished cells"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the cells and their state, train nothing"
    )
    return p


def check_arguments(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    """What argparse cannot check: the data folder and its files, distinct seeds and models, the
    output paths (ValueError). Returns (data folder, out, json)."""
    data = Path(args.data)
    if not data.is_dir():
        raise ValueError(f"--data {args.data}: no such folder")
    missing = [name for name in SPLIT_FILES if not (data / name).is_file()]
    missing += [
        f"reported/ml100k-{model}.csv"
        for model in args.models
        if not (data / "reported" / f"ml100k-{model}.csv").is_file()
    ]
    if missing:
        raise ValueError(f"--data {args.data} lacks {', '.join(missing)}")
    for option, values in (
        ("--seeds", args.seeds),
        ("--models", args.models),
        ("--methods", args.methods),
    ):
        if len(set(values)) != len(values):
            raise ValueError(f"{option} {' '.join(map(str, values))} names one twice")
    out = check_output_path(args.out, "--out")
    work = out.with_name(out.name + ".work")
    if work.exists() and not work.is_dir():
        raise ValueError(f"{work} (the converted split's folder) exists and is not a folder")
    table = check_output_path(args.json, "--json") if args.json else None
    for model in args.models:
        read_reported(data / "reported" / f"ml100k-{model}.csv")
    return data, out, table


# --- cells -----------------------------------------------------------------------------------
def method_file(model: str, method: str) -> Path:
    return PROPERTIES / f"{model}-{method}.yaml"


def file_scheme(path: Path) -> str:
    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    scheme = settings.get("denoise_scheme")
    if not isinstance(scheme, str):
        raise ValueError(f"{path} sets no denoise_scheme")
    return scheme


def make_cells(
    models: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    data_path: Path,
    epochs: int | None = None,
    extra: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[Cell, tuple[str, str]]:
    """Each cell and its (model, method) in their names, in run order: model, method, seed."""
    common = dict(overrides or {})
    if epochs is not None:
        common["epochs"] = epochs
    rows = [
        (model, method)
        for model in models
        for method in methods
        if model in METHOD_MODELS.get(method, MODELS)
    ]
    if extra:
        rows += [(m, name) for m in models if m in EXTRA_MODELS for name in EXTRA]
    cells: dict[Cell, tuple[str, str]] = {}
    for (model, method), seed in itertools.product(rows, seeds):
        if method in EXTRA:
            scheme, settings = EXTRA[method]
            path = method_file(model, "ERM")
        else:
            path, settings = method_file(model, method), {}
            scheme = file_scheme(path)
        cell = Cell(
            DATASET,
            MODELS[model],
            scheme,
            seed,
            {**settings, **common},
            (str(PROTOCOL_FILE), str(path)),
            str(Path(data_path).resolve()),
        )
        cells[cell] = (model, method)
    return cells


def convert_split(data: Path, work: Path):
    """Their three files as this plugin's pre-split files in ``work``."""
    from recbole_autodenoise.prepare import prepare_split

    return prepare_split(
        [data / name for name in SPLIT_FILES],
        DATASET,
        data_path=work,
        force=True,
        allow_valid_test_overlap=True,
    )


# --- their numbers and the table ---------------------------------------------------------------
def read_reported(path: Path) -> dict[str, dict[str, float]]:
    """Their table of one model: method -> {metric (lower case): value}."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "method" not in reader.fieldnames:
            raise ValueError(f"{path}: no 'method' column")
        found = {}
        for line, row in enumerate(reader, start=2):
            values = {}
            for key, value in row.items():
                if key == "method":
                    continue
                try:
                    values[key.lower()] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{path}, line {line}: {key} = {value!r} is not a number")
            found[row["method"]] = values
    return found


def spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def verdict(ours: dict[str, float] | None, theirs: float | None) -> str:
    """'within spread', 'within 10 %', 'miss', or why there is nothing to compare."""
    if ours is None:
        return "not run"
    if theirs is None:
        return "not reported"
    if ours["min"] <= theirs <= ours["max"]:
        return "within spread"
    if abs(ours["mean"] - theirs) <= TOLERANCE * abs(theirs):
        return f"within {TOLERANCE:.0%}"
    return "miss"


def collect(
    rows: Sequence[dict[str, Any]], cells: dict[Cell, tuple[str, str]]
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """The finished cells' test metrics by (model, method): metric -> one value per seed."""
    latest = latest_rows(rows)
    found: dict[tuple[str, str], dict[str, list[float]]] = {}
    for cell, name in cells.items():
        row = latest.get(cell.key)
        if row is None or row.get("status") != "ok":
            continue
        test = (row.get("results") or {}).get("test") or {}
        for metric in METRICS:
            if isinstance(test.get(metric), (int, float)) and math.isfinite(test[metric]):
                found.setdefault(name, {}).setdefault(metric, []).append(float(test[metric]))
    return found


def orderings(means: dict[tuple[str, str], float], models: Sequence[str]) -> list[dict[str, Any]]:
    """The study's orderings on ``means`` ((model, method) -> mean): ERM_RE >= ERM on each model,
    DCF < ERM on GMF and NeuMF; ``holds`` is None where a side was not run."""
    checks = []
    for model in models:
        checks.append(_order(means, model, "ERM_RE", ">=", "ERM"))
    for model in ("GMF", "NeuMF"):
        if model in models:
            checks.append(_order(means, model, "DCF", "<", "ERM"))
    return checks


def _order(means, model: str, left: str, op: str, right: str) -> dict[str, Any]:
    a, b = means.get((model, left)), means.get((model, right))
    holds = None if a is None or b is None else (a >= b if op == ">=" else a < b)
    return {"model": model, "claim": f"{left} {op} {right}", "left": a, "right": b, "holds": holds}


def build_table(
    found: dict[tuple[str, str], dict[str, list[float]]],
    reported: dict[str, dict[str, dict[str, float]]],
    names: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """Ours beside theirs for every (model, method) of ``names``, and the orderings on ours."""
    cells = []
    for model, method in names:
        theirs_row = reported.get(model, {}).get(REPORTED_NAMES.get(method, ""), {})
        entry = {"model": model, "method": method, "metrics": {}}
        for metric in METRICS:
            ours = spread(found.get((model, method), {}).get(metric, []))
            theirs = theirs_row.get(metric)
            entry["metrics"][metric] = {
                "ours": ours,
                "theirs": theirs,
                "verdict": verdict(ours, theirs),
            }
        cells.append(entry)
    means = {
        (c["model"], c["method"]): c["metrics"][ORDER_METRIC]["ours"]["mean"]
        for c in cells
        if c["metrics"][ORDER_METRIC]["ours"] is not None
    }
    models = list(dict.fromkeys(model for model, _ in names))
    return {"cells": cells, "orderings": orderings(means, models), "metric": ORDER_METRIC}


def render(table: dict[str, Any], seeds: Sequence[int]) -> str:
    lines = [
        f"EvalDenoisingRec ML-100K, test metrics: ours = mean [min, max] over seeds "
        f"{' '.join(map(str, seeds))} (n: seeds finished); theirs = reported mean; check: theirs "
        f"within our seed spread, or our mean within {TOLERANCE:.0%} of theirs"
    ]
    for metric in METRICS:
        lines += ["", METRIC_LABELS[metric]]
        lines.append(
            f"{'model':<9}{'method':<15}{'ours':<28}{'theirs':>8}  {'ours/theirs':>11}  check"
        )
        for cell in table["cells"]:
            found = cell["metrics"][metric]
            ours, theirs = found["ours"], found["theirs"]
            text = (
                "-"
                if ours is None
                else f"{ours['mean']:.4f} [{ours['min']:.4f}, {ours['max']:.4f}] ({ours['n']})"
            )
            ratio = f"{ours['mean'] / theirs - 1:+.1%}" if ours is not None and theirs else "-"
            their_text = "-" if theirs is None else f"{theirs:.4f}"
            lines.append(
                f"{cell['model']:<9}{cell['method']:<15}{text:<28}{their_text:>8}  "
                f"{ratio:>11}  {found['verdict']}"
            )
    lines += ["", f"orderings on our mean {table['metric']} (the study's claims):"]
    for check in table["orderings"]:
        if check["holds"] is None:
            state = "not run"
        else:
            state = (
                f"{'holds' if check['holds'] else 'fails'} "
                f"({check['left']:.4f} vs {check['right']:.4f})"
            )
        lines.append(f"  {check['model']:<9}{check['claim']:<14}{state}")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        data, out, table_path = check_arguments(args)
        work = out.with_name(out.name + ".work")
        reported = {
            model: read_reported(data / "reported" / f"ml100k-{model}.csv") for model in args.models
        }
        overrides = DEVICE_OVERRIDES.get(args.device, {}) if args.device else {}
        cells = make_cells(
            args.models,
            args.methods,
            args.seeds,
            work / "data",
            args.epochs,
            args.extra,
            overrides,
        )
        rows = read_rows(out)  # an unreadable results file stops the command before any cell
        runner = SubprocessRunner(
            out.with_name(out.name + ".logs"), timeout=args.cell_timeout, resumable=True
        )
        if args.dry_run:
            latest = latest_rows(rows)
            for cell, (model, method) in cells.items():
                status = latest.get(cell.key, {}).get("status", "todo")
                print(f"{status:>7}  {model:<9}{method:<15}{cell.seed}  {cell.command()}")
            return 0
        if not args.table_only:
            check_settings(list(cells))  # every cell's config as its run builds it
            summary = convert_split(data, work / "data")
            sizes = ", ".join(f"{part.rows:,} {part.path.name}" for part in summary.parts)
            print(
                f"split converted: {sizes} ({summary.valid_test_overlap:,} test pairs also in "
                "validation)"
            )
    except (ValueError, FileNotFoundError) as error:
        p.error(str(error))
    failed = 0
    if not args.table_only:
        command = shlex.join(
            ["python", "-m", "benchmarks.audit", *(sys.argv[1:] if argv is None else argv)]
        )
        failed = run_grid(list(cells), out, runner, command=command)["failed"]
    names = list(dict.fromkeys(cells.values()))
    table = build_table(collect(read_rows(out), cells), reported, names)
    print(render(table, args.seeds))
    if table_path is not None:
        table_path.parent.mkdir(parents=True, exist_ok=True)
        table_path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
