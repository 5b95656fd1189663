"""One run end to end: config, clean data, model, ``AutoDenoiseTrainer``, clean test, results file.

Mirrors ``recbole.quick_start.run_recbole`` (same seeding order, so the ``default`` scheme matches
stock RecBole) without importing ``recbole.quick_start`` and its Ray dependency.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from time import time
from typing import Any, Sequence

from recbole.utils import get_model, init_logger, init_seed

from recbole_autodenoise.checkpoints import check_checkpoint_dir
from recbole_autodenoise.config import make_config, plugin_keys
from recbole_autodenoise.data import create_dataset, data_preparation
from recbole_autodenoise.files import atomic_write
from recbole_autodenoise.trainer import AutoDenoiseTrainer, load_resumable, plain_config

TABLE_METRICS = ("precision", "recall", "f1", "ndcg")


def check_results_path(path: Any) -> Path | None:
    """Fail before training on a results_file that could not be written."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"config key 'results_file' = {path!r} is invalid: expected a file path")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"results_file {path} is a directory; expected a .json file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    with atomic_write(path) as handle:
        json.dump(payload, handle, indent=2, allow_nan=True)
        handle.write("\n")


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


def run(
    model: str,
    dataset: str,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
    saved: bool = True,
    resume: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` with the configured scheme; return (and write) the results.
    ``resume``: a checkpoint of an earlier run with the same model, data set and scheme
    (``<name>-latest.pth`` continues after its last finished epoch)."""
    started = time()
    config = make_config(model, dataset, config_files, config_dict)
    results_path = check_results_path(config["results_file"])
    check_checkpoint_dir(config)
    if resume is not None:  # fail before loading any data
        load_resumable(resume, config)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    init_logger(config)
    logger = logging.getLogger()
    logger.info(config)

    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    recommender = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(recommender)
    trainer = AutoDenoiseTrainer(config, recommender)
    if resume is not None:
        trainer.resume_checkpoint(resume)

    show_progress = bool(config["show_progress"])
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=show_progress)
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=show_progress)
    test = {key.lower(): float(value) for key, value in test_result.items()}

    train_seconds = [record["train_seconds"] for record in trainer.history]
    keys = plugin_keys()
    results = {
        "model": config["model"],
        "dataset": config["dataset"],
        "denoise_scheme": trainer.scheme_name,
        "seed": config["seed"],
        "eval_protocol": config["eval_protocol"],
        "device": str(config["device"]),
        "data": {
            "users": data.user_num, "items": data.item_num, "interactions": data.inter_num,
            "train": len(train_data._dataset), "valid": len(valid_data._dataset), "test": len(test_data._dataset),
        },
        "best_valid_score": float(best_valid_score),
        "best_valid_result": {k.lower(): float(v) for k, v in (best_valid_result or {}).items()},
        "test": test,
        "weight_study": trainer.weight_study(),
        "timing": {
            "epochs_trained": len(train_seconds),
            "mean_train_seconds_per_epoch": sum(train_seconds) / len(train_seconds) if train_seconds else None,
            "total_seconds": time() - started,
        },
        "epochs": trainer.history,
        # every plugin key as this run read it (defaults included): reports tell runs apart by these
        "plugin_config": {k: v for k, v in sorted(plain_config(config).items()) if k in keys},
        "checkpoint": trainer.saved_model_file if saved else None,
        "resumed_from": trainer.resumed_from,
    }
    print(results_table(test))
    if results_path is not None:
        write_json_atomic(results_path, results)
        print(f"results written to {results_path}")
    return results
