"""Shared fixtures: every test runs in its own temporary folder (RecBole writes ./log, ./saved
and ./log_tensorboard relative to the working directory) and never sees pytest's argv.

The fast tier (``-m "not slow"``) stays fast by rule: a test not marked ``slow`` that trains a model
(RecBole's ``Trainer.fit``), starts a process or loads a data set file of more than
``FAST_TIER_MAX_INTER_BYTES`` fails, naming what it did.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"

# Small and fast, for end-to-end runs on ML-100K.
FAST = {
    "epochs": 2,
    "show_progress": False,
    "state": "WARNING",
    "train_batch_size": 4096,
    "eval_batch_size": 262144,
}


FAST_TIER_MAX_INTER_BYTES = 200_000

# What a scheme or credit that learns from the clean validation rows needs on tiny data: a
# guide/select split, and a third of each user's rows in validation so that users have two or more
# clean validation rows to split.
GUIDED_TINY = {
    "clean_valid_guide_ratio": 0.5,
    "eval_args": {"split": {"RS": [1, 1, 1]}, "order": "TO", "group_by": "user", "mode": "full"},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pytest"])
    yield


def _slow_only(what: str):
    def refuse(*args, **kwargs):
        pytest.fail(f"this test {what}: mark it @pytest.mark.slow", pytrace=False)

    return refuse


@pytest.fixture(autouse=True)
def _fast_tier(request, monkeypatch):
    """Outside ``slow`` tests: no training, no child process, no large data set file."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    import multiprocessing.process
    import subprocess

    from recbole.data.dataset import Dataset
    from recbole.trainer import Trainer

    monkeypatch.setattr(Trainer, "fit", _slow_only("trains a model (Trainer.fit)"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _slow_only("starts a process"))
    monkeypatch.setattr(
        multiprocessing.process.BaseProcess, "start", _slow_only("starts a process")
    )
    load_feat = Dataset._load_feat

    def small_files_only(self, filepath, source):
        if os.path.isfile(filepath) and os.path.getsize(filepath) > FAST_TIER_MAX_INTER_BYTES:
            pytest.fail(
                f"this test loads {filepath} ({os.path.getsize(filepath)} bytes): mark it "
                "@pytest.mark.slow",
                pytrace=False,
            )
        return load_feat(self, filepath, source)

    monkeypatch.setattr(Dataset, "_load_feat", small_files_only)
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


def assert_float_close(
    actual: torch.Tensor, expected, steps: int = 16, magnitude: float | None = None
) -> None:
    """``actual == expected`` up to ``float_tolerance`` at the expected values' magnitude."""
    expected = torch.as_tensor(expected, dtype=actual.dtype).detach()
    scale = float(expected.abs().max()) if magnitude is None else magnitude
    torch.testing.assert_close(
        actual, expected, rtol=0, atol=float_tolerance(actual.dtype, scale, steps)
    )


@pytest.fixture
def main_only():
    """The registries and property files as they are without ``recbole_autodenoise.experimental``,
    whether or not a test module imported it (test modules share one process)."""
    from recbole_autodenoise import registry
    from recbole_autodenoise.controller import CREDITS, PRIORS, STATES
    from recbole_autodenoise.controller.credit.explicit import ExplicitCredit
    from recbole_autodenoise.schemes import SCHEMES

    saved = {id(reg): dict(reg._entries) for reg in (SCHEMES, CREDITS, STATES, PRIORS)}
    files = list(registry.EXTRA_PROPERTY_FILES)
    for reg in (SCHEMES, CREDITS, STATES, PRIORS):
        reg._entries = {
            name: cls for name, cls in reg._entries.items() if name not in reg.experimental
        }
    CREDITS._entries["explicit"] = ExplicitCredit
    registry.EXTRA_PROPERTY_FILES.clear()
    try:
        yield
    finally:
        for reg in (SCHEMES, CREDITS, STATES, PRIORS):
            reg._entries = saved[id(reg)]
        registry.EXTRA_PROPERTY_FILES[:] = files
