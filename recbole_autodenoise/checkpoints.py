"""Checkpoint files: where they go, what they are called, and the checksum every one carries.

* ``check_checkpoint_dir``: the ``checkpoint_dir`` key is a folder that exists (or is created) and
  can be written, checked before training so a run is never lost to an unwritable location.
* ``unique_checkpoint_file``: RecBole names a checkpoint ``<model>-<local time>.pth``, which two
  runs started in the same second in one folder share; the process id and a random suffix (from
  ``uuid4``, which never touches the seeded random generators) keep every run's name its own.
  Beside the best model ``X.pth`` (RecBole's semantics), ``X-latest.pth`` holds the state after the
  last finished epoch, from which ``--resume`` continues.
* ``checksum``: sha256 over a canonical walk of a checkpoint's content (tensors by dtype, shape and
  bytes; plain values by type and exact value; dict keys in a fixed order), stored under
  ``CHECKSUM_KEY`` and verified on load (``load_checkpoint``): torch's zip reader checks no
  CRC, so bytes flipped inside tensor data would otherwise load without a word.
* ``check_structure``: a trainer checkpoint of this ``FORMAT_VERSION`` with every entry a resume or
  an evaluation reads, of the right type and range; a checksummed file that is not (written by
  another version, or by hand) is one ValueError saying what is wrong.
* ``check_same_settings``: a resume continues the run the checkpoint holds, so every setting must
  equal the checkpoint's except those in ``MAY_CHANGE_ON_RESUME`` (how long to train, where the
  outputs go, what is shown, which devices and processes).
* ``load_checkpoint`` / ``atomic_torch_save``: the one reader (``weights_only=True``, the checksum
  verified; torch's advice to load a refused file with ``weights_only=False`` never reaches a
  message) and the one writer (through ``files.atomic_write``: an interrupted save never leaves a
  truncated file where a good checkpoint was).
* The trainer's state (``training_state``, ``restore_training_state``, ``resume``): RecBole's
  checkpoint without the pickled ``Config`` (the settings as plain data, ``plain_config``), plus
  what an exact resume needs: every random generator, the scheme's state, the weight study and
  the history. Under DDP every rank's random and scheme state is kept (``denoise.ranks``,
  ``own_rank_state``) and ``shared_state_digest`` is what all ranks must hold identically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recbole.utils import set_color

from recbole_autodenoise import distributed, options
from recbole_autodenoise.files import atomic_write
from recbole_autodenoise.registry import (
    EXPERIMENTAL_OPT_IN,
    experimental_defaults,
    experimental_keys,
)

CHECKSUM_KEY = "checksum"
LATEST_SUFFIX = "-latest.pth"
# the layout of a trainer checkpoint (``training_state``); raised when it changes
FORMAT_VERSION = 1

# settings a resume may change, by group; every other setting must equal the checkpoint's
MAY_CHANGE_ON_RESUME: dict[str, tuple[str, ...]] = {
    "how long to train": ("epochs", "stopping_step", "stopping_min_epochs"),
    "where outputs go": ("checkpoint_dir", "results_file"),
    "what is shown": (
        "show_progress",
        "state",
        "verbose",
        "loss_decimal_place",
        "metric_decimal_place",
        "log_wandb",
        "wandb_project",
    ),
    # the number of processes must still match the checkpoint's (checked with the rank states)
    "devices and processes": (
        "gpu_id",
        "use_gpu",
        "device",
        "nproc",
        "world_size",
        "local_rank",
        "offset",
        "ip",
        "port",
        "ddp_backend",
        "ddp_timeout",
        "single_spec",
    ),
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
        raise TypeError(
            f"a checkpoint holds only tensors and plain values, not {type(value).__name__}"
        )


def digest(*states: Any) -> str:
    """sha256 of tensors (dtype, shape, bytes) and plain values: equal exactly when bitwise
    equal."""
    hasher = hashlib.sha256()
    for state in states:
        _feed(hasher, state)
    return hasher.hexdigest()


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load one of our checkpoints safely (plain tensors, numbers, strings, lists and dicts only,
    ``weights_only=True``) and verify its checksum; the checksum entry is not returned. A missing,
    empty, truncated, foreign or corrupt file is one ``ValueError`` naming it."""
    if not os.path.isfile(path):
        raise ValueError(f"{os.fspath(path)} is not a readable checkpoint: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    # EOFError, zip, unpickling and key errors alike: the file is not ours or cut short
    except Exception as error:
        reason = _load_failure(error)
        raise ValueError(f"{os.fspath(path)} is not a readable checkpoint {reason}") from None
    if not isinstance(state, dict) or CHECKSUM_KEY not in state:
        raise ValueError(
            f"{os.fspath(path)} is not a readable checkpoint: it carries no checksum "
            "(not written by recbole_autodenoise, or by a version before checksums)"
        )
    if state[CHECKSUM_KEY] != checksum(state):
        raise ValueError(f"{os.fspath(path)} failed its checksum: the file is corrupt")
    return {key: value for key, value in state.items() if key != CHECKSUM_KEY}


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in our words: torch's refusal of an object
    that is not plain data ends with advice to load with ``weights_only=False`` (which would run the
    file's code); only the object it names is kept."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    if "weights_only" not in text and "Weights only" not in text:
        return f"({type(error).__name__}: {text[:200]})"
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|\n|$)", text)
    what = f" ({found.group(1).strip()[:200]})" if found else ""
    return (
        f"(it holds objects other than tensors and plain values{what}): recbole_autodenoise "
        "checkpoints never do, and such a file is not unpickled"
    )


def atomic_torch_save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` of ``state`` plus its checksum through ``files.atomic_write``, so an
    interrupted save never leaves a truncated file where a good checkpoint was."""
    if not isinstance(state, dict) or CHECKSUM_KEY in state:
        raise TypeError(f"a checkpoint is a dict without a {CHECKSUM_KEY!r} key")
    with atomic_write(path, binary=True) as handle:
        torch.save({**state, CHECKSUM_KEY: checksum(state)}, handle)


def check_checkpoint_dir(config) -> Path:
    """The ``checkpoint_dir`` folder, created if missing; a ValueError if it cannot hold
    checkpoints."""
    path = options.read(config, "checkpoint_dir")
    return check_writable_folder(path, f"config key 'checkpoint_dir' = {str(path)!r}")


def check_writable_folder(path: str | os.PathLike, described: str) -> Path:
    """``path`` as a folder, created if missing, in which a file can be written (probed, then
    removed)."""
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
            f"{described} cannot hold checkpoints: {type(error).__name__}: "
            f"{error.strerror or error}"
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
        raise ValueError(
            f"{latest} is not named like a latest-state checkpoint (<name>{LATEST_SUFFIX})"
        )
    return latest[: -len(LATEST_SUFFIX)] + ".pth"


# --- what a resume may change ------------------------------------------------------------------
def check_same_settings(saved: dict[str, Any], current: dict[str, Any], path: str) -> None:
    """A ValueError naming every setting outside ``RESUMABLE_KEYS`` whose value in this run
    (``current``) differs from the checkpoint's (``saved``), with both values."""
    differences = [
        _difference(saved, current, key)
        for key in sorted(set(saved) | set(current), key=str)
        if key not in RESUMABLE_KEYS and not _same(saved, current, key)
    ]
    if differences:
        groups = "; ".join(
            f"{what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
            for what, keys in MAY_CHANGE_ON_RESUME.items()
        )
        unloaded = (set(saved) - set(current)) & experimental_keys()
        hint = (
            f" (the checkpoint's {', '.join(sorted(unloaded))}: {EXPERIMENTAL_OPT_IN})"
            if unloaded
            else ""
        )
        raise ValueError(
            f"{path} was trained with {'; '.join(differences)}{hint}: a resume continues the same "
            f'run, so only these may change: {groups} (docs/guide.md, "What may change on '
            'resume"); start a new run to change the others'
        )


def _difference(saved: dict[str, Any], current: dict[str, Any], key: str) -> str:
    was = f"{key}={saved[key]!r}" if key in saved else f"{key} unset"
    now = f"this run uses {current[key]!r}" if key in current else "this run leaves it unset"
    return f"{was}, {now}"


def _same(saved: dict[str, Any], current: dict[str, Any], key: str) -> bool:
    if (key in saved) != (key in current):
        # an experimental key at its default on one side only: the sides differ in whether the
        # experimental package was imported (it adds its keys with their defaults), not in a setting
        defaults = experimental_defaults()
        present = saved if key in saved else current
        return key in defaults and present[key] == defaults[key]
    a, b = saved.get(key), current.get(key)
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return both_nan or a == b


# --- the layout of a trainer checkpoint ------------------------------------------------------
def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor(
    dtype: torch.dtype | None = None, shape: tuple[int, ...] | None = None, floating: bool = False
):
    def check(value: Any) -> bool:
        return (
            isinstance(value, torch.Tensor)
            and (dtype is None or value.dtype == dtype)
            and (shape is None or tuple(value.shape) == shape)
            and (not floating or value.is_floating_point())
        )

    return check


def _is_dict(keys=lambda k: isinstance(k, str), values=lambda v: True):
    def check(value: Any) -> bool:
        return isinstance(value, dict) and all(keys(k) and values(v) for k, v in value.items())

    return check


def _is_sequence(items=lambda v: True, length: int | None = None):
    def check(value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and (length is None or len(value) == length)
            and all(items(v) for v in value)
        )

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
    (
        "best_valid_result",
        _optional(_is_dict(values=_is_number)),
        "None or a dict of metric: number",
    ),
    ("best_epoch", _optional(_is_int), "None or an integer >= 0"),
    ("best_valid_per_query", _optional(_is_dict()), "None or a dict (evaluation.per_query)"),
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
        raise ValueError(
            f"{path} has no format_version: it was written by an earlier "
            "recbole_autodenoise or not by the trainer; this version reads "
            f"format_version {FORMAT_VERSION}"
        )
    version = state["format_version"]
    if version != FORMAT_VERSION or not _is_int(version):
        raise ValueError(
            f"{path} has format_version {version!r}, this version reads "
            f"format_version {FORMAT_VERSION}: resume it with the "
            "recbole_autodenoise that wrote it"
        )
    _check_entries(state, _TOP, path, "")
    if state["best_epoch"] is not None and state["best_epoch"] > state["epoch"]:
        raise ValueError(
            f"{path} is malformed: best_epoch {state['best_epoch']} comes after its "
            f"epoch {state['epoch']}"
        )
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
            raise ValueError(
                f"{path} is malformed: {where}{name} is {_describe(value)}, expected {expected}"
            )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)} entries"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


# --- the run's settings as plain data ------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Config values as JSON-able plain data (enums, devices and classes become strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def plain_config(config) -> dict[str, Any]:
    return _plain(dict(config.final_config_dict))


# --- the trainer's state -------------------------------------------------------------------------
def rng_state(loader: torch.Generator | None = None) -> dict[str, Any]:
    """Every generator training draws from: torch's (and CUDA's where present), NumPy's, Python's
    and the training loader's ``loader`` (where given)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader is not None:
        state["loader"] = loader.get_state()
    return state


def restore_rng(state: dict[str, Any], loader: torch.Generator | None = None) -> None:
    """Every generator back to ``state`` (``rng_state``'s)."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].cpu().numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if "loader" in state and loader is not None:
        loader.set_state(state["loader"].cpu())


def own_rank_state(denoise: dict[str, Any], config, path: str) -> dict[str, Any]:
    """This rank's random state and scheme state from a checkpoint's ``denoise`` entry: a
    multi-process checkpoint holds every rank's (``ranks``), resumed on as many ranks."""
    ranks = denoise.get("ranks")  # present in multi-process checkpoints only
    saved = 1 if ranks is None else len(ranks)
    world = int(config["world_size"]) if distributed.is_distributed(config) else 1
    if saved != world:
        raise ValueError(
            f"{path} was written by a run of {saved} process(es), this run has "
            f"{world}: resume with as many (nproc / world_size = {saved})"
        )
    if ranks is None:
        return {"rng": denoise["rng"], "scheme_state": denoise["scheme_state"]}
    return ranks[distributed.global_rank(config)]


def shared_state_digest(model: torch.nn.Module, scheme) -> str:
    """sha256 of what every rank must hold identically: the model's parameters, the scheme's
    learned state (controller parameters, its optimiser, baseline b) without its generator,
    whose draws are each rank's own."""
    scheme_state = {k: v for k, v in scheme.state_dict().items() if k != "generator"}
    return digest(model.state_dict(), scheme_state)


def training_state(trainer, kind: str, epoch: int, best_valid_result) -> dict[str, Any]:
    """An ``AutoDenoiseTrainer``'s checkpoint after ``epoch``: RecBole's without the pickled
    ``Config`` (the run's settings as a plain dict instead), plus ``format_version`` and what an
    exact resume needs: the best result so far, the losses per epoch and ``denoise``. Under DDP
    every rank must call it (it gathers the ranks' states)."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": trainer.run_config,
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid_result": None
        if best_valid_result is None
        else {str(k): float(v) for k, v in best_valid_result.items()},
        "best_epoch": trainer.best_epoch,
        "best_valid_per_query": trainer.best_valid_per_query,
        "train_loss_dict": {int(k): float(v) for k, v in trainer.train_loss_dict.items()},
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
        "denoise": _denoise_state(trainer),
    }


def save(trainer, kind: str, epoch: int, best_valid_result, path: str, verbose: bool) -> None:
    """``training_state`` written to ``path`` by rank 0 (every rank builds it: it gathers)."""
    state = training_state(trainer, kind, epoch, best_valid_result)
    if not distributed.is_writer(trainer.config):
        return
    atomic_torch_save(state, path)
    if verbose:
        saving = "Saving current" if kind == "best" else "Saving latest"
        trainer.logger.info(set_color(saving, "blue") + f": {path}")


def _denoise_state(trainer) -> dict[str, Any]:
    loader = None if trainer.train_data is None else trainer.train_data.generator
    state = {
        "scheme": trainer.scheme_name,
        "scheme_state": trainer.scheme.state_dict(),
        "study_total": trainer.study.total.cpu(),
        "history": json.loads(json.dumps(trainer.history)),
        "rng": rng_state(loader),
    }
    if distributed.is_distributed(trainer.config):  # each rank's own draws, for a resume on as many
        state["ranks"] = distributed.gather_objects(
            {"rng": state["rng"], "scheme_state": state["scheme_state"]}
        )
    if trainer.clean_batches is not None:
        state["guide"] = trainer.clean_batches.state_dict()
    if trainer.diagnosis is not None:
        state["diagnosis"] = trainer.diagnosis.state_dict()
    return state


def restore_training_state(trainer, checkpoint: dict[str, Any], path: str) -> None:
    """Everything ``training_state`` saved (its layout checked by ``check_structure``) back into
    ``trainer``; the random state and the guide's wait for ``fit`` (``trainer.pending``). A part
    that does not fit this run's model, optimiser or scheme is one ValueError."""
    try:
        trainer.model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit this model: {error}") from None
    denoise = checkpoint["denoise"]
    needs = {"guide": trainer.scheme.needs_guidance, "diagnosis": trainer.diagnosis is not None}
    for key, needed in needs.items():
        if needed and key not in denoise:
            raise ValueError(
                f"{path} is malformed: it has no denoise.{key} entry, which this run needs"
            )
    own = own_rank_state(denoise, trainer.config, path)
    try:
        _restore_parts(trainer, checkpoint, denoise, own)
    except ValueError as error:  # the scheme's or the optimiser's own words
        raise ValueError(f"{path} does not fit this run: {error}") from None
    except (KeyError, TypeError, IndexError, RuntimeError) as error:
        raise ValueError(f"{path} does not fit this run: {type(error).__name__}: {error}") from None


def _restore_parts(
    trainer, checkpoint: dict[str, Any], denoise: dict[str, Any], own: dict[str, Any]
) -> None:
    trainer.model.load_other_parameter(checkpoint["other_parameter"])
    trainer.optimizer.load_state_dict(checkpoint["optimizer"])
    trainer.start_epoch = checkpoint["epoch"] + 1
    trainer.cur_step = checkpoint["cur_step"]
    trainer.best_valid_score = checkpoint["best_valid_score"]
    trainer.best_valid_result = checkpoint["best_valid_result"]
    trainer.best_epoch = checkpoint["best_epoch"]
    trainer.best_valid_per_query = checkpoint["best_valid_per_query"]
    trainer.train_loss_dict = dict(checkpoint["train_loss_dict"])
    trainer.scheme.load_state_dict(own["scheme_state"])
    trainer.study.load_total(denoise["study_total"])
    trainer.history = list(denoise["history"])
    trainer.pending = {"rng": own["rng"]}
    if trainer.scheme.needs_guidance:
        trainer.pending["guide"] = denoise["guide"]
    if trainer.diagnosis is not None:
        trainer.diagnosis.load_state_dict(denoise["diagnosis"])


def restore_pending(trainer) -> None:
    """At the start of ``fit``: the random state and the guide's state a resume read."""
    pending, trainer.pending = trainer.pending, {}
    if "guide" in pending and trainer.clean_batches is not None:
        try:
            trainer.clean_batches.load_state_dict(pending["guide"])
        except (KeyError, TypeError, RuntimeError) as error:
            raise ValueError(
                f"{trainer.resumed_from} does not fit this run: its guide state: "
                f"{type(error).__name__}: {error}"
            ) from None
    if "rng" in pending:
        restore_rng(pending["rng"], trainer.train_data.generator)


# --- resume and evaluation -----------------------------------------------------------------------
def load_trainer_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checksum-verified checkpoint with the trainer's layout (``check_structure``)."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    check_structure(checkpoint, os.fspath(path))
    return checkpoint


def load_resumable(path: str | os.PathLike, config, map_location: Any = "cpu") -> dict[str, Any]:
    """A verified checkpoint this run can continue, in a folder the run can write to. ``config``:
    the run's ``Config`` as ``make_config`` made it, or its settings as a plain dict."""
    path = os.fspath(path)
    checkpoint = load_trainer_checkpoint(path, map_location=map_location)
    check_resumable(checkpoint, path, config)
    check_writable_folder(os.path.dirname(os.path.abspath(path)), f"the folder of {path}")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: str, config) -> None:
    """A checkpoint (layout checked) this run can continue: same model, data set and scheme, every
    setting outside ``RESUMABLE_KEYS`` unchanged, and not finished."""
    settings = config if isinstance(config, dict) else plain_config(config)
    saved = {**checkpoint["config"], "denoise_scheme": checkpoint["denoise"]["scheme"]}
    for key in ("model", "dataset", "denoise_scheme"):
        if saved.get(key) != settings.get(key):
            raise ValueError(
                f"{path} was trained with {key}={saved.get(key)!r}, "
                f"this run uses {settings.get(key)!r}: resume with the same {key}"
            )
    check_same_settings(checkpoint["config"], settings, path)
    epoch, epochs = checkpoint["epoch"], settings["epochs"]
    if epoch + 1 >= epochs:
        raise ValueError(
            f"{path} holds epoch {epoch}, the last of epochs={epochs}: nothing left "
            "to train (raise epochs to train on)"
        )
    if checkpoint["cur_step"] > settings["stopping_step"]:
        raise ValueError(
            f"{path} holds epoch {epoch}, where early stopping ended the run "
            f"(stopping_step={settings['stopping_step']}): nothing left to train "
            "(raise stopping_step to train on)"
        )


def resume(trainer, resume_file: str | os.PathLike) -> None:
    """``trainer`` continues from a checkpoint: ``<name>-latest.pth`` (the last finished epoch; the
    best model stays in ``<name>.pth``) or a best-model file (its epoch, as RecBole does)."""
    resume_file = os.fspath(resume_file)
    checkpoint = load_resumable(resume_file, trainer.run_config, map_location=trainer.device)
    if checkpoint["kind"] == "latest":
        best, latest = best_file(resume_file), resume_file
        if checkpoint["best_epoch"] is not None and not os.path.isfile(best):
            raise ValueError(
                f"{resume_file} continues a run whose best-model file {best} is missing"
            )
    else:
        best, latest = resume_file, latest_file(resume_file)
        epoch = checkpoint["epoch"]
        if os.path.isfile(latest) and load_trainer_checkpoint(latest)["epoch"] > epoch:
            trainer.logger.warning(
                f"resuming from the best epoch {epoch}; the run's last finished "
                f"epoch is in {latest}: resume from that file to continue where it stopped"
            )
    restore_training_state(trainer, checkpoint, resume_file)
    trainer.saved_model_file, trainer.latest_model_file = best, latest
    trainer.resumed_from = resume_file


def load_best_model(trainer, path: str) -> None:
    """The model's weights from the best-model file ``path``. Under DDP rank 0 reads it and sends
    it to the other ranks (other machines need not see its files)."""
    if distributed.is_writer(trainer.config):
        checkpoint = load_trainer_checkpoint(path, map_location=trainer.device)
        trainer.model.load_state_dict(checkpoint["state_dict"])
        trainer.model.load_other_parameter(checkpoint["other_parameter"])
        trainer.logger.info(f"Loading model structure and parameters from {path}")
    if distributed.is_distributed(trainer.config):
        distributed.broadcast_module(trainer.model)
        other = distributed.broadcast_object(trainer.model.other_parameter())
        trainer.model.load_other_parameter(other)
