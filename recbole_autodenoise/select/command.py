"""``python -m recbole_autodenoise.select``: which denoiser wins on *your* data, chosen on
validation, with the test set read once.

1. Every candidate (named settings, ``candidates.py``) trains at the same seeds on the same
   data, with the same ``clean_valid_guide_ratio``: every one is ranked on the same *select* part
   of the clean validation set. With ``--tune=K`` each first tries the first K configurations of its
   own grid at the first seed and keeps its best by validation (the same K for every candidate).
   Cells never read the test set (``evaluate_test: false``).
2. Candidates are ranked by their mean validation score (the config's ``valid_metric``) over
   seeds, with 95 % intervals from a two-level bootstrap over seeds and queries (``stats.py``); the
   recommendation is the simplest candidate whose paired difference to the best has an interval
   containing 0.
3. Only then the test set is read, once, for the recommended candidate and Default: each seed's
   best checkpoint is evaluated on it (the config and data rebuilt as the cell built them).

Progress goes to stderr, the table and the command line to use to stdout, everything to the JSON
report at ``--out``. Cells live in ``<out>.cells/``: an interrupted run, started again with the
same arguments, skips the finished ones.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recbole_autodenoise.select import cells, stats
from recbole_autodenoise.select.candidates import (
    BUILTIN,
    REFERENCE,
    RESERVED_KEYS,
    Candidate,
    load_candidates_file,
    resolve,
    simplicity_order,
)
from recbole_autodenoise.select.cells import CellSpec, Job, Store

FIRST_SEED = 2020  # RecBole's default seed
TEST_CHOICES = ("recommended", "all")
SELECT_RATIO = 0.5


class SelectError(ValueError):
    """Bad input to select: reported as ``error: ...`` with exit status 2, before any cell."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise SelectError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m recbole_autodenoise.select",
        allow_abbrev=False,
        description="Train every candidate denoiser on your data, rank them on validation, "
        "recommend the simplest within noise of the best, and read the test set once for it and "
        "Default.",
        epilog="Any other --key=value is a RecBole/plugin config override applied to every "
        "candidate (a candidate's own settings win over it).",
    )
    parser.add_argument(
        "--model", "-m", required=True, help="RecBole model: BPR, GRU4Rec, SASRec, ..."
    )
    parser.add_argument(
        "--dataset", "-d", required=True, help="data set name (ml-100k is embedded)"
    )
    parser.add_argument(
        "--data_path", default=None, help="folder holding <dataset>/<dataset>.inter"
    )
    parser.add_argument(
        "--config_files", default=None, help="space-separated yaml files, applied after ours"
    )
    parser.add_argument(
        "--candidates",
        default=None,
        help=f"comma-separated candidate names (default: {','.join(_default_names())}); "
        f"known: {', '.join(BUILTIN)}; '{REFERENCE}' is always run",
    )
    parser.add_argument(
        "--candidates-file",
        "--candidates_file",
        dest="candidates_file",
        default=None,
        help="yaml defining or overriding candidates (name -> scheme, settings, grid, simplicity)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per candidate (default 3)")
    parser.add_argument(
        "--seed",
        type=int,
        default=FIRST_SEED,
        help=f"first seed; the others follow it (default {FIRST_SEED}); also seeds the bootstrap",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs cap for every cell (default: the config's)"
    )
    parser.add_argument(
        "--tune",
        type=int,
        default=0,
        help="configurations of each candidate's own grid tried at the first seed (0: none)",
    )
    parser.add_argument(
        "--tune_seed",
        type=int,
        default=None,
        help="run the tuning cells at this seed, apart from the ranking seeds (default: the "
        "first seed, whose tuning cell of the chosen configuration is reused)",
    )
    parser.add_argument(
        "--test",
        choices=TEST_CHOICES,
        default="recommended",
        help="whose test set is read, once, after the ranking: the recommended candidate and "
        "Default (default), or every ranked candidate (a pre-registered study)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cells run at once, one thread each (default 1)"
    )
    parser.add_argument(
        "--clean_valid_guide_ratio",
        type=float,
        default=SELECT_RATIO,
        help="share of validation that guides the denoisers, the same for all "
        f"(default {SELECT_RATIO})",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=stats.DRAWS,
        help=f"bootstrap draws per interval (default {stats.DRAWS})",
    )
    parser.add_argument(
        "--out", required=True, help="the JSON report; cells are kept in <out>.cells/"
    )
    return parser


def _default_names() -> list[str]:
    from recbole_autodenoise.select.candidates import DEFAULT_CANDIDATES

    return list(DEFAULT_CANDIDATES)


@dataclass
class Plan:
    """Everything decided before the first cell."""

    model: str
    dataset: str
    out: Path
    seeds: list[int]
    tune: int
    tune_seed: int
    test: str
    jobs: int
    draws: int
    ratio: float
    overrides: dict[str, Any]
    config_files: tuple[str, ...]
    file_digests: tuple[str, ...]
    data_path: str | None
    candidates: list[Candidate]
    configs: dict[str, list[dict[str, Any]]]  # per candidate: the distinct configurations tried
    simplicity: dict[str, tuple[float, int]]
    metric: str
    bigger: bool
    eval_protocol: str
    argv: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def cells_dir(self) -> Path:
        return Path(str(self.out) + ".cells")

    def settings(self, candidate: Candidate, config: dict[str, Any]) -> dict[str, Any]:
        """A candidate's own keys under one grid configuration (what the report lists)."""
        return {**candidate.settings, **config}

    def spec(self, candidate: Candidate, config: dict[str, Any], seed: int) -> CellSpec:
        config_dict = {
            "show_progress": False,
            **self.overrides,
            **self.settings(candidate, config),
            "denoise_scheme": candidate.scheme,
            "seed": seed,
            "clean_valid_guide_ratio": self.ratio,
            "evaluate_test": False,
        }
        if self.data_path is not None:
            config_dict["data_path"] = self.data_path
        return CellSpec(self.model, self.dataset, config_dict, self.config_files, self.file_digests)

    def command(self, candidate: Candidate, config: dict[str, Any]) -> str:
        """The single-run command line that trains ``candidate`` as select measured it."""
        parts = [
            "python",
            "run_recbole_denoise.py",
            f"--model={self.model}",
            f"--dataset={self.dataset}",
            f"--scheme={candidate.scheme}",
        ]
        if self.data_path is not None:
            parts.append(f"--data_path={self.data_path}")
        if self.config_files:
            parts.append(f"--config_files={' '.join(self.config_files)}")
        keys = {
            **self.overrides,
            **self.settings(candidate, config),
            "clean_valid_guide_ratio": self.ratio,
        }
        keys.pop("show_progress", None)
        parts += [f"--{key}={cli_value(value)}" for key, value in keys.items()]
        return shlex.join(parts)


def cli_value(value: Any) -> str:
    """A ``--key=value`` text that the command line parses back to ``value``."""
    from recbole_autodenoise.config import parse_cli_value

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if parse_cli_value(value) == value else repr(value)
    return repr(value)


# --- planning: every check before the first cell -------------------------------------------------
def _check_count(name: str, value: int, least: int) -> None:
    if value < least:
        raise SelectError(f"--{name}={value} is invalid: expected an integer >= {least}")


def _overrides(rest: Sequence[str]) -> dict[str, Any]:
    from recbole_autodenoise.config import parse_cli_value

    overrides: dict[str, Any] = {}
    for item in rest:
        if not item.startswith("--") or "=" not in item or item.startswith("--="):
            raise SelectError(f"unrecognised argument {item!r}: overrides are written --key=value")
        key, value = item[2:].split("=", 1)
        if key in RESERVED_KEYS:
            raise SelectError(
                f"--{key} is set by select for every cell (the scheme by each candidate; "
                "cells keep their checkpoints in <out>.cells/ and never evaluate the test set)"
            )
        overrides[key] = parse_cli_value(value)
    return overrides


def _check_out(out: str) -> Path:
    path = Path(out)
    if path.is_dir():
        raise SelectError(f"--out={out} is a folder: expected a .json file path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SelectError(f"--out={out} cannot be written: {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SelectError(f"--out={out} cannot be written: {error.strerror or error}") from None
    if not os.access(path.parent, os.W_OK):
        raise SelectError(
            f"--out={out} cannot be written: its folder {path.parent} is not writable"
        )
    return path.resolve()


def plan(argv: Sequence[str]) -> Plan:
    """The selection ``argv`` asks for, every setting checked (a ``SelectError`` otherwise): the
    candidates, their configurations' configs built and their schemes' keys read."""
    args, rest = build_parser().parse_known_args(list(argv))
    overrides = _overrides(rest)
    _check_count("seeds", args.seeds, 1)
    _check_count("seed", args.seed, 0)
    _check_count("tune", args.tune, 0)
    if args.tune_seed is not None:
        _check_count("tune_seed", args.tune_seed, 0)
    _check_count("jobs", args.jobs, 1)
    _check_count("bootstrap", args.bootstrap, 100)
    if args.epochs is not None:
        _check_count("epochs", args.epochs, 1)
        overrides["epochs"] = args.epochs
    if not 0 < args.clean_valid_guide_ratio < 1:
        raise SelectError(
            f"--clean_valid_guide_ratio={args.clean_valid_guide_ratio} is invalid: expected a "
            "number in (0, 1): the candidates that learn from validation need a guide part, "
            "and all are ranked on the rest"
        )
    out = _check_out(args.out)
    try:
        registry, added = dict(BUILTIN), []
        if args.candidates_file is not None:
            registry, added = load_candidates_file(args.candidates_file, registry)
        names = None
        if args.candidates is not None:
            names = [name.strip() for name in args.candidates.split(",")]
            if not all(names):
                raise SelectError(f"--candidates={args.candidates!r} holds an empty name")
        candidates = resolve(names, registry, added)
    except (ValueError, FileNotFoundError) as error:
        raise SelectError(str(error)) from None
    config_files = tuple(str(Path(f).resolve()) for f in (args.config_files or "").split())
    for file in config_files:
        if not Path(file).is_file():
            raise SelectError(f"config file not found: {file}")
    data_path = str(Path(args.data_path).resolve()) if args.data_path else None
    result = Plan(
        model=args.model,
        dataset=args.dataset,
        out=out,
        seeds=list(range(args.seed, args.seed + args.seeds)),
        tune=args.tune,
        tune_seed=args.seed if args.tune_seed is None else args.tune_seed,
        test=args.test,
        jobs=args.jobs,
        draws=args.bootstrap,
        ratio=args.clean_valid_guide_ratio,
        overrides=overrides,
        config_files=config_files,
        file_digests=tuple(cells.file_digest(f) for f in config_files),
        data_path=data_path,
        candidates=candidates,
        configs={},
        simplicity=simplicity_order(candidates, registry),
        metric="",
        bigger=True,
        eval_protocol="",
        argv=list(argv),
    )
    _check_configs(result)
    return result


def _check_configs(plan: Plan) -> None:
    """Build every configuration's config (unknown or misspelt keys, bad values, an unknown model
    fail here), construct its scheme (which reads and checks its keys), check the data folder, and
    keep per candidate the first ``max(tune, 1)`` configurations that differ in effect."""
    from recbole_autodenoise.config import make_config
    from recbole_autodenoise.schemes import SCHEMES

    wanted = max(plan.tune, 1)
    seen_notes: set[str] = set()
    for candidate in plan.candidates:
        kept, effects = [], []
        tuned_keys = sorted({key for config in candidate.grid for key in config})
        for config in candidate.grid:
            if len(kept) == wanted:
                break
            spec = plan.spec(candidate, config, plan.seeds[0])
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    built = make_config(
                        plan.model, plan.dataset, list(spec.config_files) or None, spec.config_dict
                    )
                    SCHEMES.get(candidate.scheme)(built, "cpu")
            except (ValueError, FileNotFoundError) as error:
                raise SelectError(
                    f"candidate {candidate.name!r} ({_describe(config)}): {error}"
                ) from None
            for warning in caught:
                note = f"candidate {candidate.name!r}: {warning.message}"
                if issubclass(warning.category, UserWarning) and note not in seen_notes:
                    seen_notes.add(note)
                    plan.notes.append(note)
            effect = tuple(str(built[key]) for key in tuned_keys)
            if effect not in effects:
                kept.append(config)
                effects.append(effect)
        plan.configs[candidate.name] = kept
        if not plan.metric:
            plan.metric = str(built["valid_metric"]).lower()
            plan.bigger = bool(built["valid_metric_bigger"])
            plan.eval_protocol = str(built["eval_protocol"])
            folder = built["data_path"]
            if not os.path.isdir(folder):
                raise SelectError(
                    f"data set folder {folder} not found "
                    "(--data_path holds <dataset>/<dataset>.inter)"
                )


def _describe(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "as given"


# --- scores -----------------------------------------------------------------------------------
def _record_scores(
    record: dict[str, Any] | None, metric: str
) -> tuple[float, np.ndarray, str | None] | None:
    """The mean and per-query scores of a per-query record (``metric`` ndcg@k / recall@k, one
    positive per query) and its users' digest; None where there is no usable record."""
    from recbole_autodenoise.evaluation.per_query import metric_per_query

    if not record:
        return None
    try:
        values = metric_per_query(record, metric)
    except ValueError:
        return None
    return (float(values.mean()), values, record.get("users_digest")) if len(values) else None


def valid_scores(
    result: dict[str, Any], metric: str
) -> tuple[float, np.ndarray | None, str | None]:
    """A train cell's mean validation ``metric`` at its best epoch, its per-query scores where the
    run kept them, and their users' digest. Without per-query scores the mean is the best epoch's
    ``metric`` (``best_valid_result``), never ``best_valid_score``: a run that picks its epoch by a
    validation loss (``valid_selection``) scores that loss there."""
    found = _record_scores(result.get("valid_per_query"), metric)
    if found:
        return found
    best = result.get("best_valid_result") or {}
    if metric not in best:
        raise ValueError(
            f"the cell's result has no validation {metric} at its best epoch "
            f"(best_valid_result holds {sorted(best)})"
        )
    return float(best[metric]), None, None


def test_scores(
    outcome: dict[str, Any], metric: str, protocol: str
) -> tuple[float, np.ndarray | None, str | None]:
    """A test cell's mean score under ``protocol``, its per-query scores and users' digest."""
    found = _record_scores((outcome.get("per_query") or {}).get(protocol), metric)
    return found or (float(outcome["test"][metric]), None, None)


def _seed_scores(
    pairs: list[tuple[int, tuple[float, np.ndarray | None, str | None]]],
) -> stats.Scores:
    return stats.Scores(
        [stats.SeedScore(seed, mean, queries, digest) for seed, (mean, queries, digest) in pairs]
    )


# --- the selection -------------------------------------------------------------------------------
Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_select(
    plan: Plan, runner: cells.Runner | None = None, log: Log = _stderr
) -> tuple[dict[str, Any], int]:
    """Run the plan's cells, rank, recommend, test once; the report and the exit status (0, or 1
    where cells failed: then nothing is recommended and the test set is not read)."""
    runner = runner or cells.subprocess_runner
    store = Store(plan.cells_dir)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for note in plan.notes:
        log(f"note: {note}")
    with store.locked():
        tuning, chosen, failed = _tune(plan, store, runner, log)
        runs, failed = _seed_runs(plan, store, runner, log, chosen, failed)
        report = {"ranking": [], "recommended": None, "tuning": tuning, "failed": failed}
        scores = {
            name: _seed_scores(
                [(seed, valid_scores(result, plan.metric)) for seed, result in by_seed]
            )
            for name, by_seed in runs.items()
            if name not in failed
        }
        if scores:
            ranking, recommended = stats.rank(
                scores,
                {n: plan.simplicity[n] for n in scores},
                plan.seeds[0],
                plan.draws,
                plan.bigger,
            )
            by_name = {c.name: c for c in plan.candidates}
            for entry in ranking:
                candidate = by_name[entry["candidate"]]
                entry.update(
                    scheme=candidate.scheme,
                    simplicity=candidate.simplicity,
                    settings=plan.settings(candidate, chosen[candidate.name]),
                    per_seed=_per_seed(plan, candidate, chosen, scores, runs),
                )
            report["ranking"] = ranking
        status = 0
        if failed:
            log(
                f"{len(failed)} candidate(s) failed: {', '.join(failed)}; nothing is recommended "
                "and the test set is not read. Run the same command again to retry the failed "
                "cells (finished ones are kept)."
            )
            status = 1
        else:
            report["recommended"] = _recommend(
                plan, store, runner, log, chosen, recommended, report["ranking"]
            )
            if report["recommended"].get("test", {}).get("error"):
                status = 1
    report["settings"] = _settings(plan, started)
    report["settings"]["cell_commits"] = sorted(
        {str(found.get("commit")) for found in store.outcomes()}
    )
    return report, status


def _per_seed(plan: Plan, candidate: Candidate, chosen, scores, runs) -> list[dict[str, Any]]:
    return [
        {
            "seed": seed,
            "valid": run.mean,
            "cell": plan.spec(candidate, chosen[candidate.name], seed).key,
            "best_epoch": (result.get("stopping") or {}).get("best_epoch"),
            "epochs_trained": (result.get("stopping") or {}).get("epochs_trained"),
        }
        for run, (seed, result) in zip(scores[candidate.name].runs, runs[candidate.name])
    ]


def _train_describer(plan: Plan) -> Callable[[Job, dict[str, Any]], str]:
    def describe(job: Job, outcome: dict[str, Any]) -> str:
        mean, _, _ = valid_scores(outcome, plan.metric)
        best = (outcome.get("stopping") or {}).get("best_epoch")
        return f"valid {plan.metric} {mean:.6f} (best epoch {best})"

    return describe


def _tune(plan: Plan, store: Store, runner, log: Log):
    """With ``--tune=K``: the first K configurations of each candidate at the first seed, each
    candidate keeping its best by validation. Returns the tuning records, the chosen configuration
    per candidate and the candidates whose tuning failed."""
    chosen = {c.name: plan.configs[c.name][0] for c in plan.candidates}
    if plan.tune == 0:
        return [], chosen, {}
    seed = plan.tune_seed
    jobs = [
        Job(
            f"{c.name} [{_describe(config)}] seed {seed}",
            plan.spec(c, config, seed),
            meta={"candidate": c.name, "config_index": index, "config": config},
        )
        for c in plan.candidates
        for index, config in enumerate(plan.configs[c.name])
    ]
    log(f"tuning: the first {plan.tune} configuration(s) of each candidate's grid at seed {seed}")
    outcomes = cells.run_jobs(jobs, store, runner, plan.jobs, log, _train_describer(plan))
    records, failed = [], {}
    best: dict[str, tuple[float, int]] = {}
    sign = 1.0 if plan.bigger else -1.0
    for job in jobs:
        name, outcome = job.meta["candidate"], outcomes[job.spec.key]
        record = {
            "candidate": name,
            "config_index": job.meta["config_index"],
            "config": job.meta["config"],
            "seed": seed,
            "cell": job.spec.key,
        }
        if "error" in outcome:
            failed[name] = f"tuning cell {job.spec.key} failed: {outcome['error']}"
            record["error"] = outcome["error"]
        else:
            mean, _, _ = valid_scores(outcome, plan.metric)
            record["valid"] = mean
            # ties keep the earlier configuration
            if name not in best or sign * mean > sign * best[name][0]:
                best[name] = (mean, job.meta["config_index"])
        records.append(record)
    for name, (_, index) in best.items():
        chosen[name] = plan.configs[name][index]
    for record in records:
        record["chosen"] = (
            record["candidate"] not in failed and record["config"] == chosen[record["candidate"]]
        )
    return records, chosen, failed


def _seed_runs(plan: Plan, store: Store, runner, log: Log, chosen, failed):
    """Every candidate's chosen configuration at every seed."""
    jobs = [
        Job(
            f"{c.name} [{_describe(chosen[c.name])}] seed {seed}",
            plan.spec(c, chosen[c.name], seed),
            meta={"candidate": c.name, "seed": seed},
        )
        for c in plan.candidates
        if c.name not in failed
        for seed in plan.seeds
    ]
    log(f"training: {len(plan.candidates) - len(failed)} candidate(s) x {len(plan.seeds)} seed(s)")
    outcomes = cells.run_jobs(jobs, store, runner, plan.jobs, log, _train_describer(plan))
    failed = dict(failed)
    runs: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for job in jobs:
        name, outcome = job.meta["candidate"], outcomes[job.spec.key]
        if "error" in outcome:
            failed.setdefault(
                name, f"cell {job.spec.key} (seed {job.meta['seed']}) failed: {outcome['error']}"
            )
            continue
        runs.setdefault(name, []).append((job.meta["seed"], outcome))
    return runs, failed


def _recommend(
    plan: Plan, store: Store, runner, log: Log, chosen, recommended: str, ranking
) -> dict[str, Any]:
    by_name = {c.name: c for c in plan.candidates}
    candidate = by_name[recommended]
    best = ranking[0]["candidate"]
    reason = (
        "the best on validation and the simplest within noise of it"
        if recommended == best
        else f"the simplest candidate whose difference to the best ({best}) on validation is "
        "within noise"
    )
    found = {
        "candidate": recommended,
        "scheme": candidate.scheme,
        "reason": reason,
        "settings": plan.settings(candidate, chosen[recommended]),
        "command": plan.command(candidate, chosen[recommended]),
    }
    found["test"] = _test_once(plan, store, runner, log, chosen, recommended)
    return found


def _test_once(
    plan: Plan, store: Store, runner, log: Log, chosen, recommended: str
) -> dict[str, Any]:
    """The clean test of each seed's best checkpoint, for the recommended candidate and Default."""
    by_name = {c.name: c for c in plan.candidates}
    names = [recommended] if recommended == REFERENCE else [recommended, REFERENCE]
    if plan.test == "all":
        names += [c.name for c in plan.candidates if c.name not in names and c.name in chosen]
    jobs = [
        Job(
            f"{name} seed {seed}",
            plan.spec(by_name[name], chosen[name], seed),
            "test",
            meta={"candidate": name, "seed": seed},
        )
        for name in names
        for seed in plan.seeds
    ]
    log(f"test set, read once: {' and '.join(names)}, {len(plan.seeds)} seed(s)")

    def describe(job: Job, outcome: dict[str, Any]) -> str:
        return f"test {plan.metric} {test_scores(outcome, plan.metric, plan.eval_protocol)[0]:.6f}"

    outcomes = cells.run_jobs(jobs, store, runner, plan.jobs, log, describe)
    errors = [
        f"{job.label}: {outcomes[job.spec.key]['error']}"
        for job in jobs
        if "error" in outcomes[job.spec.key]
    ]
    for job in jobs:
        trained = store.finished(Job("", job.spec))
        tested = outcomes[job.spec.key]
        if "error" not in tested and trained and tested.get("data") != trained.get("data"):
            errors.append(
                f"{job.label}: the test step rebuilt other data ({tested.get('data')}) than the "
                "cell "
                f"trained on ({trained.get('data')})"
            )
    if errors:
        return {"metric": plan.metric, "error": "; ".join(errors)}
    scores = {
        name: _seed_scores(
            [
                (
                    job.meta["seed"],
                    test_scores(outcomes[job.spec.key], plan.metric, plan.eval_protocol),
                )
                for job in jobs
                if job.meta["candidate"] == name
            ]
        )
        for name in names
    }

    def summary(name: str) -> dict[str, Any]:
        found = stats.mean_interval(scores[name], plan.seeds[0], f"test-{name}", plan.draws)
        return {
            "candidate": name,
            "mean": found["mean"],
            "ci": found["ci"],
            "ci_method": found["method"],
            "per_seed": [
                {
                    "seed": job.meta["seed"],
                    "test": outcomes[job.spec.key]["test"],
                    "cell": job.spec.key,
                }
                for job in jobs
                if job.meta["candidate"] == name
            ],
        }

    diff = stats.difference(
        scores[recommended], scores[REFERENCE], plan.seeds[0], "test-difference", plan.draws
    )
    found = {
        "metric": plan.metric,
        "protocol": plan.eval_protocol,
        "recommended": summary(recommended),
        "default": summary(REFERENCE),
        "difference": {
            "mean": diff["mean"],
            "ci": diff["ci"],
            "ci_method": diff["method"],
            "relative": diff["mean"] / scores[REFERENCE].mean if scores[REFERENCE].mean else None,
        },
    }
    if plan.test == "all":
        found["candidates"] = {name: summary(name) for name in names}
    return found


def _settings(plan: Plan, started: str) -> dict[str, Any]:
    from recbole_autodenoise.select.machine import host_info

    host = host_info()
    return {
        "args": {
            "model": plan.model,
            "dataset": plan.dataset,
            "data_path": plan.data_path,
            "config_files": list(plan.config_files),
            "overrides": plan.overrides,
            "seeds": plan.seeds,
            "tune": plan.tune,
            "tune_seed": plan.tune_seed,
            "test": plan.test,
            "jobs": plan.jobs,
            "clean_valid_guide_ratio": plan.ratio,
            "out": str(plan.out),
        },
        "argv": plan.argv,
        "command": shlex.join(["python", "-m", "recbole_autodenoise.select", *plan.argv]),
        "candidates": {
            c.name: {
                "scheme": c.scheme,
                "settings": c.settings,
                "simplicity": c.simplicity,
                "configurations": plan.configs[c.name],
                "description": c.description,
            }
            for c in plan.candidates
        },
        "metric": plan.metric,
        "eval_protocol": plan.eval_protocol,
        "bootstrap": {
            "draws": plan.draws,
            "seed": plan.seeds[0],
            "confidence": stats.CONFIDENCE,
            "levels": "seeds, then queries (users under user_first)",
        },
        "cells": str(plan.cells_dir),
        "commit": host.pop("git_commit"),
        "machine": host,
        "started_at": started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": plan.notes,
    }


# --- output ---------------------------------------------------------------------------------------
def _ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.6f}, {ci[1]:.6f}]"


def table(report: dict[str, Any]) -> str:
    """The ranking, the recommendation, its test reading and the command line to use."""
    args, metric = report["settings"]["args"], report["settings"]["metric"]
    lines = [
        f"{args['model']} on {args['dataset']}: validation {metric} on the select part "
        f"(clean_valid_guide_ratio {args['clean_valid_guide_ratio']}), "
        f"{len(args['seeds'])} seed(s), "
        f"95% intervals"
    ]
    header = (
        f"{'rank':>4}  {'candidate':<16}{'valid':>10}  {'95% CI':<22}  "
        f"{'difference to the best':<34}"
    )
    lines += [header, "-" * len(header)]
    for entry in report["ranking"]:
        diff = entry["difference_to_best"]
        versus = (
            "best"
            if entry["rank"] == 1
            else (
                f"{diff['mean']:+.6f} {_ci(diff['ci'])} "
                + ("within noise" if entry["within_noise"] else "worse")
            )
        )
        lines.append(
            f"{entry['rank']:>4}  {entry['candidate']:<16}{entry['valid_mean']:>10.6f}  "
            f"{_ci(entry['ci']):<22}  {versus}"
        )
    for name, error in report.get("failed", {}).items():
        lines.append(f"{'-':>4}  {name:<16}{'failed':>10}  {error.splitlines()[0]}")
    found = report.get("recommended")
    if not found:
        lines.append(
            "no recommendation: some candidates failed (see above); the test set was not read"
        )
        return "\n".join(lines)
    lines.append(f"recommended: {found['candidate']} ({found['reason']})")
    test = found["test"]
    if test.get("error"):
        lines.append(f"test set: not read to the end: {test['error']}")
    else:
        rec, ref, diff = test["recommended"], test["default"], test["difference"]
        lines.append(
            f"test {metric}, read once: {rec['candidate']} {rec['mean']:.6f} {_ci(rec['ci'])}"
            + (
                ""
                if rec["candidate"] == ref["candidate"]
                else f"; {ref['candidate']} {ref['mean']:.6f} {_ci(ref['ci'])}; "
                f"difference {diff['mean']:+.6f} {_ci(diff['ci'])}"
            )
        )
    lines.append("use it:")
    lines.append(f"  {found['command']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, runner: cells.Runner | None = None) -> int:
    from recbole_autodenoise.quick_start import write_json_atomic

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        selection = plan(argv)
    except SelectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        report, status = run_select(selection, runner)
    except (SelectError, cells.CellsInUse) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_json_atomic(selection.out, report)
    print(table(report))
    _stderr(f"report: {selection.out}; cells: {selection.cells_dir}")
    return status
