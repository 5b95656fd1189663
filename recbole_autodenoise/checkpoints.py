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
* ``check_structure``: a trainer checkpoint of this ``FORMAT_VERSION`` with every entry a resume or
  an evaluation reads, of the right type and range; a checksummed file that is not (written by
  another version, or by hand) is one ValueError saying what is wrong.
* ``check_same_settings``: a resume continues the run the checkpoint holds, so every setting must
  equal the checkpoint's except those in ``MAY_CHANGE_ON_RESUME`` (how long to train, where the
  outputs go, what is shown, which devices and processes).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch

from recbole_autodenoise.registry import EXPERIMENTAL_OPT_IN, experimental_keys

CHECKSUM_KEY = "checksum"
LATEST_SUFFIX = "-latest.pth"
# the layout of a trainer checkpoint (``AutoDenoiseTrainer._state``); raised when it changes
FORMAT_VERSION = 1

# settings a resume may change, by group; every other setting must equal the checkpoint's
MAY_CHANGE_ON_RESUME: dict[str, tuple[str, ...]] = {
    "how long to train": ("epochs", "stopping_step", "stopping_min_epochs"),
    "where outputs go": ("checkpoint_dir", "results_file"),
    "what is shown": ("show_progress", "state", "verbose", "loss_decimal_place",
                      "metric_decimal_place", "log_wandb", "wandb_project"),
    # the number of processes must still match the checkpoint's (checked with the rank states)
    "devices and processes": ("gpu_id", "use_gpu", "device", "nproc", "world_size", "local_rank",
                              "offset", "ip", "port", "ddp_backend", "ddp_timeout", "single_spec"),
    # the opt-in that imports recbole_autodenoise.experimental: it changes nothing computed
    "which packages are imported": ("experimental",),
}
RESUMABLE_KEYS = frozenset(key for keys in MAY_CHANGE_ON_RESUME.values() for key in keys)


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
    from recbole_autodenoise.checks import read_key

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


# --- what a resume may change ------------------------------------------------------------------
def check_same_settings(saved: dict[str, Any], current: dict[str, Any], path: str) -> None:
    """A ValueError naming every setting outside ``RESUMABLE_KEYS`` whose value in this run
    (``current``) differs from the checkpoint's (``saved``), with both values."""
    differences = [
        _difference(saved, current, key) for key in sorted(set(saved) | set(current), key=str)
        if key not in RESUMABLE_KEYS and not _same(saved, current, key)
    ]
    if differences:
        groups = "; ".join(f"{what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                           for what, keys in MAY_CHANGE_ON_RESUME.items())
        unloaded = (set(saved) - set(current)) & experimental_keys()
        hint = (f" (the checkpoint's {', '.join(sorted(unloaded))}: "
                f"{EXPERIMENTAL_OPT_IN})" if unloaded else "")
        raise ValueError(
            f"{path} was trained with {'; '.join(differences)}{hint}: a resume continues the same "
            f"run, so only these may change: {groups} (docs/guide.md, \"What may change on "
            "resume\"); start a new run to change the others"
        )


def _difference(saved: dict[str, Any], current: dict[str, Any], key: str) -> str:
    was = f"{key}={saved[key]!r}" if key in saved else f"{key} unset"
    now = f"this run uses {current[key]!r}" if key in current else "this run leaves it unset"
    return f"{was}, {now}"


def _same(saved: dict[str, Any], current: dict[str, Any], key: str) -> bool:
    if (key in saved) != (key in current):
        return False
    a, b = saved.get(key), current.get(key)
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


# --- the layout of a trainer checkpoint ------------------------------------------------------
def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor(dtype: torch.dtype | None = None, shape: tuple[int, ...] | None = None,
               floating: bool = False):
    def check(value: Any) -> bool:
        return (isinstance(value, torch.Tensor) and (dtype is None or value.dtype == dtype)
                and (shape is None or tuple(value.shape) == shape)
                and (not floating or value.is_floating_point()))

    return check


def _is_dict(keys=lambda k: isinstance(k, str), values=lambda v: True):
    def check(value: Any) -> bool:
        return isinstance(value, dict) and all(keys(k) and values(v) for k, v in value.items())

    return check


def _is_sequence(items=lambda v: True, length: int | None = None):
    def check(value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and (length is None or len(value) == length)
                and all(items(v) for v in value))

    return check


def _optional(check):
    return lambda value: value is None or check(value)


_BYTES = _is_tensor(torch.uint8)


_GENERATOR_STATE = "a generator state (a uint8 tensor as torch.get_rng_state() gives)"


def _generator_state(value: Any) -> bool:
    """A CPU generator's state: as many bytes as ``torch.get_rng_state()`` holds."""
    return _is_tensor(torch.uint8, tuple(torch.get_rng_state().shape))(value)


# (entry, check, what is expected), checked in this order; entries under a dict are dotted
_TOP = (
    ("kind", lambda v: v in ("best", "latest"), "'best' or 'latest'"),
    ("config", _is_dict(), "a dict of settings"),
    ("config.model", lambda v: isinstance(v, str), "a model name"),
    ("config.dataset", lambda v: isinstance(v, str), "a data set name"),
    ("epoch", _is_int, "an integer >= 0"),
    ("cur_step", _is_int, "an integer >= 0"),
    ("best_valid_score", _is_number, "a number"),
    ("best_valid_result", _optional(_is_dict(values=_is_number)),
     "None or a dict of metric: number"),
    ("best_epoch", _optional(_is_int), "None or an integer >= 0"),
    ("train_loss_dict", _is_dict(keys=_is_int, values=_is_number), "a dict of epoch: loss"),
    ("state_dict", _is_dict(values=_is_tensor()), "a dict of parameter name: tensor"),
    ("other_parameter", _is_dict(), "a dict"),
    ("optimizer", _is_dict(), "an optimizer state dict"),
    ("optimizer.state", _is_dict(keys=lambda k: True), "a dict"),
    ("optimizer.param_groups", _is_sequence(_is_dict()), "a list of dicts"),
    ("denoise", _is_dict(), "a dict"),
    ("denoise.scheme", lambda v: isinstance(v, str), "a scheme name"),
    ("denoise.scheme_state", _is_dict(), "a dict"),
    ("denoise.study_total", _is_tensor(shape=None, floating=True), "a float tensor"),
    ("denoise.history", _is_sequence(_is_dict()), "a list of dicts (one per epoch)"),
)
_RNG = (
    ("torch", _generator_state, _GENERATOR_STATE),
    ("numpy", _is_dict(), "a dict"),
    ("numpy.keys", _is_tensor(torch.int64, (624,)), "an int64 tensor of 624 values"),
    ("numpy.pos", lambda v: _is_int(v) and v <= 624, "an integer in [0, 624]"),
    ("numpy.has_gauss", _is_int, "an integer >= 0"),
    ("numpy.cached", _is_number, "a number"),
    ("python", _is_sequence(length=3), "Python's random state (version, internal state, gauss)"),
    ("python.0", _is_int, "an integer"),
    ("python.1", _is_sequence(_is_int, length=625), "a list of 625 integers"),
    ("python.2", _optional(_is_number), "None or a number"),
)
_OPTIONAL_RNG = (
    ("cuda", _is_sequence(_BYTES), "a list of uint8 tensors"),
    ("loader", _generator_state, _GENERATOR_STATE),
)


def check_structure(state: dict[str, Any], path: str) -> None:
    """A ValueError saying what is wrong unless ``state`` (a checksum-verified checkpoint) is a
    trainer checkpoint of ``FORMAT_VERSION`` with every entry of the right type and range."""
    if "format_version" not in state:
        raise ValueError(f"{path} has no format_version: it was written by an earlier "
                         "recbole_autodenoise or not by the trainer; this version reads "
                         f"format_version {FORMAT_VERSION}")
    version = state["format_version"]
    if version != FORMAT_VERSION or not _is_int(version):
        raise ValueError(f"{path} has format_version {version!r}, this version reads "
                         f"format_version {FORMAT_VERSION}: resume it with the "
                         "recbole_autodenoise that wrote it")
    _check_entries(state, _TOP, path, "")
    if state["best_epoch"] is not None and state["best_epoch"] > state["epoch"]:
        raise ValueError(f"{path} is malformed: best_epoch {state['best_epoch']} comes after its "
                         f"epoch {state['epoch']}")
    denoise = state["denoise"]
    rank_states = [("denoise.", denoise)]
    if "ranks" in denoise:
        ranks = (("ranks", _is_sequence(_is_dict()), "a list of dicts"),)
        _check_entries(denoise, ranks, path, "denoise.")
        rank_states += [(f"denoise.ranks.{i}.", rank) for i, rank in enumerate(denoise["ranks"])]
        for where, rank in rank_states[1:]:
            _check_entries(rank, (("scheme_state", _is_dict(), "a dict"),), path, where)
    for where, holder in rank_states:
        _check_entries(holder, (("rng", _is_dict(), "a dict"),), path, where)
        rng = holder["rng"]
        _check_entries(rng, _RNG, path, f"{where}rng.")
        present = tuple(entry for entry in _OPTIONAL_RNG if entry[0] in rng)
        _check_entries(rng, present, path, f"{where}rng.")
    for key in ("guide", "diagnosis"):
        if key in denoise:
            _check_entries(denoise, ((key, _is_dict(), "a dict"),), path, "denoise.")


def _check_entries(state: dict[str, Any], entries, path: str, where: str) -> None:
    """Each ``(dotted name, check, expected)`` entry of ``state`` present and passing its check
    (a dotted name's parents come earlier in ``entries``; a number indexes a list)."""
    for name, check, expected in entries:
        value = state
        for part in name.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise ValueError(f"{path} is malformed: it has no {where}{name} entry")
        if not check(value):
            raise ValueError(f"{path} is malformed: {where}{name} is {_describe(value)}, "
                             f"expected {expected}")


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)} entries"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
