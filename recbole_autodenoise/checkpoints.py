"""Checkpoint files: where they go, what they are called, and the checksum every one carries.

* ``check_checkpoint_dir``: the ``checkpoint_dir`` key is a folder that exists (or is created) and
  can be written, checked before training so a run is never lost to an unwritable location.
* ``unique_checkpoint_file``: RecBole names a checkpoint ``<model>-<local time>.pth``, which two runs
  started in the same second in one folder share; the process id and a random suffix (from
  ``uuid4``, which never touches the seeded random generators) keep every run's name its own.
  Beside the best model ``X.pth`` (RecBole's semantics), ``X-latest.pth`` holds the state after the
  last finished epoch, from which ``--resume`` continues.
* ``checksum``: sha256 over a canonical walk of a checkpoint's content (tensors by dtype, shape and
  bytes; plain values by type and exact value; dict keys in a fixed order), stored under
  ``CHECKSUM_KEY`` and verified on load (``compat.load_checkpoint``): torch's zip reader checks no
  CRC, so bytes flipped inside tensor data would otherwise load without a word.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch

CHECKSUM_KEY = "checksum"
LATEST_SUFFIX = "-latest.pth"


def checksum(state: dict[str, Any]) -> str:
    """``sha256:<hex>`` of ``state`` without its ``CHECKSUM_KEY`` entry."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return "sha256:" + digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}|".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        encoded = value.encode("utf-8", "surrogatepass")
        digest.update(f"S{len(encoded)}|".encode() + encoded)
    elif value is None or isinstance(value, (bool, int)):
        digest.update(f"{type(value).__name__}:{value!r}|".encode())
    elif isinstance(value, float):
        digest.update(f"F{value.hex()}|".encode())
    else:
        raise TypeError(f"a checkpoint holds only tensors and plain values, not {type(value).__name__}")


def check_checkpoint_dir(config) -> Path:
    """The ``checkpoint_dir`` folder, created if missing; a ValueError if it cannot hold checkpoints."""
    from recbole_autodenoise.config import read_key

    path = read_key(config, "checkpoint_dir", lambda v: isinstance(v, (str, os.PathLike)) and str(v) != "",
                    "a folder path")
    return check_writable_folder(path, f"config key 'checkpoint_dir' = {str(path)!r}")


def check_writable_folder(path: str | os.PathLike, described: str) -> Path:
    """``path`` as a folder, created if missing, in which a file can be written (probed, then removed)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{described} is a file: expected a folder (created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ValueError(
            f"{described} cannot hold checkpoints: {type(error).__name__}: {error.strerror or error}"
        ) from None
    return folder


def unique_checkpoint_file(folder: str | os.PathLike, model: str) -> str:
    """``<folder>/<model>-<local time>-<pid>-<random>.pth``: never shared by two runs."""
    from recbole.utils import get_local_time

    name = f"{model}-{get_local_time()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.pth"
    return os.path.join(os.fspath(folder), name)


def latest_file(best_file: str | os.PathLike) -> str:
    """``X-latest.pth`` beside the best-model file ``X.pth``."""
    best_file = os.fspath(best_file)
    return (best_file[:-4] if best_file.endswith(".pth") else best_file) + LATEST_SUFFIX


def best_file(latest: str | os.PathLike) -> str:
    """``X.pth`` beside ``X-latest.pth``."""
    latest = os.fspath(latest)
    if not latest.endswith(LATEST_SUFFIX):
        raise ValueError(f"{latest} is not named like a latest-state checkpoint (<name>{LATEST_SUFFIX})")
    return latest[: -len(LATEST_SUFFIX)] + ".pth"
