"""One run end to end: config, clean data, model, ``AutoDenoiseTrainer``, clean test, results file.

Mirrors ``recbole.quick_start.run_recbole`` (same seeding order, so the ``default`` scheme matches
stock RecBole) without importing ``recbole.quick_start`` and its Ray dependency.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from time import time
from typing import Any, Sequence

from recbole.utils import init_logger, init_seed

from recbole_autodenoise import distributed, options
from recbole_autodenoise.checkpoints import check_checkpoint_dir, load_resumable, plain_config
from recbole_autodenoise.config import make_config, plugin_keys
from recbole_autodenoise.data import DataBundle, create_dataset, prepare_data
from recbole_autodenoise.data.dataloader import check_no_caches
from recbole_autodenoise.files import atomic_write
from recbole_autodenoise.model import get_model
from recbole_autodenoise.trainer import AutoDenoiseTrainer

TABLE_METRICS = ("precision", "recall", "f1", "ndcg")


def check_results_path(path: Any) -> Path | None:
    """Fail before loading data or training on a results_file that could not be written: one
    ValueError naming the path and the reason. Creates missing parent folders."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"config key 'results_file' = {path!r} is invalid: expected a file path")
    path = Path(path)
    if path.is_dir():
        raise _unwritable(path, "it is a directory; expected a .json file path")
    if path.exists() and not path.is_file():
        raise _unwritable(path, "it exists and is not a regular file")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise _unwritable(path, f"its parent {parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=path.parent)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise _unwritable(
            path, f"its folder {path.parent} is not writable ({error.strerror or error})"
        ) from None
    return path


def _unwritable(path: Path, reason: str) -> ValueError:
    return ValueError(f"results_file {path} cannot be written: {reason}")


def strict_json_payload(payload: Any, where: str = "", non_finite: list[str] | None = None) -> Any:
    """``payload`` with every non-finite float (NaN, +-inf) replaced by ``None``; the dotted path of
    each (list items by index: ``epochs.0.loss``) is appended to ``non_finite``."""
    if isinstance(payload, dict):
        return {
            k: strict_json_payload(v, f"{where}.{k}" if where else str(k), non_finite)
            for k, v in payload.items()
        }
    if isinstance(payload, (list, tuple)):
        return [
            strict_json_payload(v, f"{where}.{i}" if where else str(i), non_finite)
            for i, v in enumerate(payload)
        ]
    if isinstance(payload, float) and not math.isfinite(payload):
        if non_finite is not None:
            non_finite.append(where)
        return None
    return payload


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Strict JSON: non-finite floats are written as null and listed under ``"non_finite"``;
    written through ``files.atomic_write`` (the replaced file's permissions kept, a full disk one
    ValueError, the previous file untouched)."""
    non_finite: list[str] = []
    clean = strict_json_payload(payload, non_finite=non_finite)
    if non_finite:
        clean["non_finite"] = non_finite
    text = json.dumps(clean, indent=2, allow_nan=False)
    with atomic_write(path) as handle:
        handle.write(text + "\n")


def results_table(test_result: dict[str, float]) -> str:
    """P/R/F1/NDCG rows by @K columns, as fractions."""
    ks = sorted({int(key.split("@")[1]) for key in test_result if "@" in key})
    header = "metric    " + "".join(f"{'@' + str(k):>12}" for k in ks)
    lines = [header, "-" * len(header)]
    for metric in TABLE_METRICS:
        if any(f"{metric}@{k}" in test_result for k in ks):
            cells = "".join(f"{test_result.get(f'{metric}@{k}', float('nan')):>12.6f}" for k in ks)
            lines.append(f"{metric:<10}{cells}")
    return "\n".join(lines)


def table_heading(results: dict[str, Any]) -> str:
    """What the table is: the clean test set of which run, and its units."""
    return (
        f"clean test set: model {results['model']}, data set {results['dataset']}, "
        f"scheme {results['denoise_scheme']}, eval protocol {results['eval_protocol']}; "
        "values are fractions (x100 for %)"
    )


def start_logging(config) -> str | None:
    """RecBole's ``init_logger``; returns the file it logs to, ``None`` where the root logger was
    configured before (``logging.basicConfig`` then adds nothing, as under pytest)."""
    before = list(logging.getLogger().handlers)
    init_logger(config)
    added = [
        h
        for h in logging.getLogger().handlers
        if h not in before and isinstance(h, logging.FileHandler)
    ]
    return added[-1].baseFilename if added else None


def output_locations(
    results_path: Path | None, checkpoint: str | None, log: str | None, tensorboard: str | None
) -> str:
    """Where the run's files went, one per line."""
    rows = [
        (
            "results file",
            str(results_path) if results_path else "not written (set results_file to keep one)",
        ),
        ("checkpoint", checkpoint or "not saved (saved=False)"),
        ("log", log or "none"),
        ("tensorboard", tensorboard or "none"),
    ]
    return "\n".join(f"{name + ':':<14}{where}" for name, where in rows)


def _lowered(result: dict[str, Any]) -> dict[str, float]:
    return {key.lower(): float(value) for key, value in result.items()}


def run(
    model: str,
    dataset: str,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    resume: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` with the configured scheme; return (and write) the results.
    ``resume``: a checkpoint of an earlier run with the same settings, except those in
    ``checkpoints.MAY_CHANGE_ON_RESUME`` (``<name>-latest.pth`` continues after its last finished
    epoch). With ``nproc`` > 1 or
    ``world_size`` > 1, RecBole's multi-process mode (``distributed.py``): rank 0's results are
    returned (``None`` on a machine without rank 0)."""
    started = time()
    config = make_config(model, dataset, config_files, config_dict)
    check_evaluate_test(config)
    check_no_caches(config)
    if resume is not None:  # the checkpoint's settings against these, before any data or output
        load_resumable(resume, config)
    results_path = check_results_path(config["results_file"])
    check_checkpoint_dir(config)
    if distributed.wants_processes(config):
        return _launch(config, model, dataset, config_files, config_dict, saved, resume)
    return _train_and_test(config, saved, resume, started, results_path)


def _launch(
    config, model, dataset, config_files, config_dict, saved, resume
) -> dict[str, Any] | None:
    """RecBole's ``run`` for several processes: ``nproc`` ranks spawned here, rank 0's results
    back."""
    nproc, world_size = distributed.process_counts(config)
    overrides = {**(config_dict or {}), "world_size": world_size}
    return distributed.launch(
        _run_rank, nproc, (model, dataset, config_files, overrides, saved, resume)
    )


def _run_rank(
    local_rank: int, model, dataset, config_files, config_dict, saved, resume, queue
) -> None:
    """One rank: its config joins the process group (``SafeConfig._init_device``); rank 0 writes."""
    import torch.distributed as dist

    started = time()
    config = make_config(model, dataset, config_files, {**config_dict, "local_rank": local_rank})
    try:
        writer = distributed.is_writer(config)
        results_path = check_results_path(config["results_file"]) if writer else None
        results = _train_and_test(config, saved, resume, started, results_path)
    finally:
        dist.destroy_process_group()
    if writer:
        queue.put(results)


def check_evaluate_test(config) -> bool:
    """The ``evaluate_test`` key: true or false."""
    return options.read(config, "evaluate_test")


def _test(trainer, bundle: DataBundle, config, saved: bool, show_progress: bool) -> dict[str, Any]:
    """The clean test of the trained (best, where saved) model under every protocol: ``test``,
    ``test_by_protocol`` and ``per_query`` (the protocols whose queries hold one positive each:
    ranks to pair methods query by query)."""
    test_data = bundle.test
    test = _lowered(trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress))
    per_query = {config["eval_protocol"]: trainer.last_per_query}
    test_by_protocol = {}
    for name, loader in bundle.test_by_protocol.items():  # the same model under every protocol
        if loader is test_data:
            test_by_protocol[name] = test
            continue
        result = trainer.evaluate(loader, load_best_model=False, show_progress=show_progress)
        test_by_protocol[name] = _lowered(result)
        per_query[name] = trainer.last_per_query
    return {
        "test": test,
        "test_by_protocol": test_by_protocol,
        "per_query": {name: found for name, found in per_query.items() if found is not None},
    }


def _train_and_test(
    config, saved: bool, resume, started: float, results_path: Path | None
) -> dict[str, Any]:
    """Data, model, training and the clean test of a run whose config is made; only the writer
    (rank 0, or the single process) prints the table and writes ``results_path``."""
    init_seed(distributed.rank_seed(config), config["reproducibility"])
    log = start_logging(config)
    logger = logging.getLogger()
    logger.info(config)

    data = create_dataset(config)
    logger.info(data)
    bundle = prepare_data(config, data)
    train_data, valid_data, test_data = bundle.train, bundle.select, bundle.test
    init_seed(distributed.rank_seed(config), config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(recommender)
    trainer = AutoDenoiseTrainer(config, recommender)
    trainer.set_data(bundle)
    if resume is not None:
        trainer.resume_checkpoint(resume)

    show_progress = bool(config["show_progress"])
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=show_progress
    )
    tested = None
    if config["evaluate_test"]:
        tested = _test(trainer, bundle, config, saved, show_progress)

    train_seconds = [record["train_seconds"] for record in trainer.history]
    keys = plugin_keys()
    results = {
        "model": config["model"],
        "dataset": config["dataset"],
        "denoise_scheme": trainer.scheme_name,
        # a diagnostic read the training rows' ratings (allow_rating_diagnostics): not a method
        "reads_training_ratings": bool(trainer.scheme.reads_ratings),
        "seed": config["seed"],
        "eval_protocol": config["eval_protocol"],
        "device": str(config["device"]),
        "data": {
            "users": data.user_num,
            "items": data.item_num,
            "interactions": data.inter_num,
            "train": len(train_data._dataset),
            "valid": len(valid_data._dataset),
            "test": len(test_data._dataset),
            # every file the data set was read from: absolute path, sha256 of its bytes, rows read
            "files": list(data.data_files),
        },
        "best_valid_score": float(best_valid_score),
        "best_valid_result": {k.lower(): float(v) for k, v in (best_valid_result or {}).items()},
        # the best epoch's validation ranks by query (None unless each query holds one positive)
        "valid_per_query": trainer.best_valid_per_query,
        **(tested or {}),
        "weight_study": trainer.weight_study(),
        "stopping": trainer.stopping_summary(),
        "timing": {
            "epochs_trained": len(train_seconds),
            "mean_train_seconds_per_epoch": sum(train_seconds) / len(train_seconds)
            if train_seconds
            else None,
            "total_seconds": time() - started,
        },
        "epochs": trainer.history,
        # every plugin key as this run read it (defaults included): reports tell runs apart by these
        "plugin_config": {k: v for k, v in sorted(plain_config(config).items()) if k in keys},
        "checkpoint": trainer.saved_model_file if saved else None,
        "resumed_from": trainer.resumed_from,
    }
    if not distributed.is_writer(config):
        return results
    if tested is None:
        print(
            f"clean test set not evaluated (evaluate_test: false); best validation "
            f"{config['valid_metric']}: {float(best_valid_score):.6f}"
        )
    else:
        print(table_heading(results))
        print(results_table(results["test"]))
    if results_path is not None:
        write_json_atomic(results_path, results)
    tensorboard = getattr(getattr(trainer, "tensorboard", None), "log_dir", None)
    print(output_locations(results_path, results["checkpoint"], log, tensorboard))
    return results


def evaluate_checkpoint(
    model: str,
    dataset: str,
    checkpoint: str | os.PathLike,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The clean test of a finished run's best model: the config, data and model rebuilt as ``run``
    built them (same settings, same seeding order), the weights read from ``checkpoint`` (a
    best-model file of a run with this model, data set, scheme and seed). Returns ``test``,
    ``test_by_protocol``, ``per_query`` (as ``run``'s results), ``data`` (the sizes, to check that
    the rebuilt split is the run's) and the checkpoint's ``best_epoch``."""
    from recbole_autodenoise import checkpoints

    config = make_config(model, dataset, config_files, config_dict)
    check_no_caches(config)
    check_checkpoint_dir(config)
    checkpoint = os.fspath(checkpoint)
    saved = checkpoints.load_checkpoint(checkpoint)
    if saved.get("kind") != "best" or "denoise" not in saved:
        raise ValueError(f"{checkpoint} is not a best-model checkpoint of an AutoDenoiseTrainer")
    trained = {**saved["config"], "denoise_scheme": saved["denoise"]["scheme"]}
    for key in ("model", "dataset", "denoise_scheme", "seed"):
        if trained.get(key) != config[key]:
            raise ValueError(
                f"{checkpoint} was trained with {key}={trained.get(key)!r}, "
                f"this evaluation uses {config[key]!r}"
            )
    init_seed(distributed.rank_seed(config), config["reproducibility"])
    start_logging(config)
    data = create_dataset(config)
    bundle = prepare_data(config, data)
    init_seed(distributed.rank_seed(config), config["reproducibility"])
    recommender = get_model(config["model"])(config, bundle.train._dataset).to(config["device"])
    trainer = AutoDenoiseTrainer(config, recommender)
    trainer.saved_model_file = checkpoint
    tested = _test(trainer, bundle, config, True, False)
    sizes = {
        "users": data.user_num,
        "items": data.item_num,
        "interactions": data.inter_num,
        "train": len(bundle.train._dataset),
        "valid": len(bundle.select._dataset),
        "test": len(bundle.test._dataset),
        "files": list(data.data_files),
    }
    return {**tested, "data": sizes, "best_epoch": saved.get("epoch"), "checkpoint": checkpoint}
