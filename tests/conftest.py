"""Shared fixtures: every test runs in its own temporary folder (RecBole writes ./log, ./saved
and ./log_tensorboard relative to the working directory) and never sees pytest's argv."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


def float_tolerance(dtype: torch.dtype, magnitude: float = 1.0, steps: int = 16) -> float:
    """``steps`` units of ``dtype``'s resolution at ``magnitude`` (at least 1: inputs of order one):
    room for what another CPU's float kernels (SIMD width, summation order) may change, never a
    fixed 1e-7 that is below one float32 step near 2."""
    return steps * torch.finfo(dtype).eps * max(abs(float(magnitude)), 1.0)


def assert_float_close(actual: torch.Tensor, expected, steps: int = 16, magnitude: float | None = None) -> None:
    """``actual == expected`` up to ``float_tolerance`` at the expected values' magnitude."""
    expected = torch.as_tensor(expected, dtype=actual.dtype).detach()
    scale = float(expected.abs().max()) if magnitude is None else magnitude
    torch.testing.assert_close(actual, expected, rtol=0, atol=float_tolerance(actual.dtype, scale, steps))
