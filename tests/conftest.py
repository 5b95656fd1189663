"""Shared fixtures: every test runs in its own temporary folder (RecBole writes ./log, ./saved
and ./log_tensorboard relative to the working directory) and never sees pytest's argv."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"

# Small and fast, for end-to-end runs on ML-100K.
FAST = {"epochs": 2, "show_progress": False, "state": "WARNING", "train_batch_size": 4096, "eval_batch_size": 262144}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pytest"])
    yield


def write_inter(directory: Path, name: str, rows: list[tuple]) -> Path:
    """Write ``<directory>/<name>/<name>.inter`` from (user, item, rating, timestamp) rows."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(INTER_HEADER)
        for user, item, rating, timestamp in rows:
            handle.write(f"{user}\t{item}\t{rating}\t{timestamp}\n")
    return path
