"""RecBole's multi-process (DDP) mode for ``AutoDenoiseTrainer``, on GPUs (NCCL) and CPUs (gloo).

Settings and launch are RecBole's: ``nproc`` processes per machine, ``world_size`` in all (-1:
``nproc``), ``ip``/``port`` of rank 0, ``offset`` (this machine's first global rank), processes
started with ``torch.multiprocessing.spawn`` as ``recbole.quick_start.run`` starts them (that module
is not imported: it imports Ray). What RecBole 1.2.1 lacks, added here:

* ``ddp_backend``: RecBole's ``Config`` joins the process group with NCCL only and puts every rank
  on ``cuda:local_rank``; ``gloo`` runs the ranks on CPUs (device ``cpu``), ``nccl`` is RecBole's,
  ``auto`` is ``nccl`` where the run uses CUDA (``use_gpu`` and a visible GPU), else ``gloo``.
  ``ddp_timeout`` bounds every collective: a rank whose peer died stops with an error, not a hang.
* Exact evaluation: only the training loader is sharded (RecBole's ``DistributedSampler``; the
  global batch stays ``train_batch_size``); every rank evaluates the whole validation and test
  sets, so metrics and rewards equal a single-process evaluation on every rank (RecBole's
  ``_map_reduce`` averages per-rank metrics weighted by batch counts: approximate).
* The controller: built from the same seed on every rank and broadcast from rank 0; each rank
  draws its shard's weights from its own generator (seed + global rank); its REINFORCE sums and
  sample counts are all-reduced before the update (``controller_credit: epoch``) or its gradient
  (``user``), so the update, and the baseline b, are identical on every rank. After every
  validation the ranks compare a digest of what must agree (model, controller, b): a mismatch
  stops the run. The weight study and the logged training loss are summed over ranks.
* ADT-TL's drop-rate schedule counts global iterations as it stands: a global step is one step
  of every rank on its shard (``train_batch_size / world_size`` rows), so each rank's count is
  the global one. Only rank 0 writes checkpoints, ``results_file`` and the table; for the test
  rank 0 reads its best model and broadcasts it (no shared folder needed across machines).
* Refused under DDP, with the reason: schemes that need per-batch guidance (``l2rw``,
  ``controller_credit: meta``, ``denoise_diagnostics``: virtual steps on each rank's model copy
  outside DDP's gradient hooks), ``controller_state: loss_features`` (its per-row loss history
  would be split across ranks as the shards change every epoch).
* Resume: a multi-process checkpoint holds every rank's random state and scheme state (its
  controller's generator) under ``denoise.ranks``; it resumes on the same number of ranks.

``DistributedSampler`` pads the shards to equal length (at most ``world_size - 1`` repeated
training samples an epoch), as in RecBole: those samples are trained and counted twice.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from typing import Any, Callable

import torch
import torch.distributed as dist

BACKENDS = ("auto", "gloo", "nccl")


def is_distributed(config) -> bool:
    """Whether this process is one rank of a multi-process run (RecBole's ``single_spec`` false;
    a config without the key, as RecBole's ``Config`` always sets it, is a single process)."""
    return config["single_spec"] is False


def global_rank(config) -> int:
    """This process's rank among all (0 in a single-process run)."""
    return 0 if not is_distributed(config) else int(config["local_rank"]) + int(config["offset"])


def is_writer(config) -> bool:
    """Only rank 0 writes checkpoints, the results file and the table."""
    return global_rank(config) == 0


def rank_seed(config) -> int:
    """The seed of this rank's own random draws: ``seed`` + global rank."""
    return int(config["seed"]) + global_rank(config)


# --- settings ---------------------------------------------------------------------------------
def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def process_counts(config) -> tuple[int, int]:
    """(nproc, world_size) as RecBole's ``run`` reads them: ``world_size: -1`` means ``nproc``."""
    from recbole_autodenoise.config import read_key

    nproc = read_key(config, "nproc", lambda v: _int(v) and v >= 1, "an integer >= 1 (processes on this machine)")
    world_size = read_key(config, "world_size", lambda v: _int(v) and (v == -1 or v >= 1),
                          "-1 (= nproc) or an integer >= 1 (processes on all machines)")
    offset = read_key(config, "offset", lambda v: _int(v) and v >= 0, "an integer >= 0 (this machine's first rank)")
    world_size = nproc if world_size == -1 else world_size
    if offset + nproc > world_size:
        raise ValueError(
            f"config keys 'offset' = {offset} and 'nproc' = {nproc} ask for ranks up to {offset + nproc - 1}, "
            f"but 'world_size' = {world_size}: expected offset + nproc <= world_size"
        )
    read_key(config, "ip", lambda v: isinstance(v, str) and v != "", "the address of the rank-0 machine")
    read_key(config, "port", lambda v: (_int(v) and 0 < v < 65536) or (isinstance(v, str) and v.isdigit()),
             "a TCP port number")
    return nproc, world_size


def wants_processes(config) -> bool:
    """RecBole's rule: several processes, or a world bigger than this one process."""
    nproc, world_size = process_counts(config)
    return nproc > 1 or world_size > 1


def backend(config) -> str:
    """``ddp_backend`` resolved: ``auto`` is ``nccl`` where the run uses CUDA, else ``gloo``."""
    from recbole_autodenoise.config import read_key

    name = read_key(config, "ddp_backend", lambda v: v in BACKENDS, f"one of {list(BACKENDS)}")
    cuda = bool(config["use_gpu"]) and torch.cuda.is_available()
    if name == "auto":
        return "nccl" if cuda else "gloo"
    if name == "nccl" and not cuda:
        raise ValueError(
            "config key 'ddp_backend' = 'nccl' needs CUDA GPUs (use_gpu true and a visible GPU); "
            "on CPUs use 'gloo' (or 'auto')"
        )
    return name


def timeout(config) -> datetime.timedelta:
    from recbole_autodenoise.config import read_key

    seconds = read_key(config, "ddp_timeout", lambda v: _int(v) and v >= 1,
                       "an integer >= 1 (seconds a rank waits for the others)")
    return datetime.timedelta(seconds=seconds)


def join_process_group(config) -> None:
    """What RecBole's ``Config._init_device`` does for a rank, with ``ddp_backend`` and
    ``ddp_timeout``: join the group, choose the device, quiet the ranks other than 0."""
    final = config.final_config_dict
    _, world_size = process_counts(config)
    name, wait = backend(config), timeout(config)
    local_rank = int(final["local_rank"])
    final["world_size"] = world_size
    if name == "nccl" and len(str(final["gpu_id"]).split(",")) < int(final["nproc"]):
        raise ValueError(f"config key 'gpu_id' = {final['gpu_id']!r} lists fewer GPUs than nproc = {final['nproc']}")
    dist.init_process_group(backend=name, rank=local_rank + int(final["offset"]), world_size=world_size,
                            init_method=f"tcp://{final['ip']}:{final['port']}", timeout=wait)
    if name == "nccl":
        final["device"] = torch.device("cuda", local_rank)
        torch.cuda.set_device(local_rank)
    else:
        final["device"] = torch.device("cpu")
    final["single_spec"] = False
    if local_rank + int(final["offset"]) != 0:
        final["state"] = "error"
        final["show_progress"] = False
        final["verbose"] = False


# --- launch -----------------------------------------------------------------------------------
class RankFailed(RuntimeError):
    """A rank of a multi-process run died or raised: the others were stopped."""


def launch(fn: Callable, nproc: int, args: tuple) -> Any:
    """``torch.multiprocessing.spawn(fn, args + (queue,), nproc)`` as RecBole's ``run`` does; returns
    what a rank put on ``queue`` (rank 0's results; ``None`` if none did). The queue is read while
    the ranks run: a message bigger than the pipe's buffer would otherwise block its writer for
    ever. When a rank dies or raises, spawn stops the others and this raises one ``RankFailed``."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    result = None
    try:
        context = mp.spawn(fn, args=(*args, queue), nprocs=nproc, join=False)
        while not context.join(timeout=0.5):
            if result is None and not queue.empty():
                result = queue.get()
    except mp.ProcessExitedException as error:
        how = f"signal {error.signal_name}" if error.signal_name else f"exit code {error.exit_code}"
        raise RankFailed(f"rank {error.error_index} of {nproc} died ({how}); the other ranks were stopped") from None
    except mp.ProcessRaisedException as error:
        last = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise RankFailed(f"a rank failed ({last}); the other ranks were stopped\n{error}") from None
    if result is None and not queue.empty():
        result = queue.get()
    return result


# --- data -------------------------------------------------------------------------------------
@contextlib.contextmanager
def whole_sets(config):
    """Loaders built inside see RecBole's single-process setting: no ``DistributedSampler``,
    every rank iterates the whole set (evaluation loaders)."""
    if not is_distributed(config):
        yield
        return
    config.final_config_dict["single_spec"] = True
    try:
        yield
    finally:
        config.final_config_dict["single_spec"] = False


def shard_training(config, train_data):
    """The training loader again, sharded by RecBole's ``DistributedSampler`` (its batches are
    ``train_batch_size / world_size``), keeping what ``data_preparation`` attached."""
    if not is_distributed(config):
        return train_data
    from recbole.data.dataloader import TrainDataLoader

    if not isinstance(train_data, TrainDataLoader):
        raise ValueError(f"multi-process training supports RecBole's TrainDataLoader, not {type(train_data).__name__}")
    sharded = type(train_data)(config, train_data._dataset, train_data._sampler, shuffle=train_data.shuffle)
    sharded.clean_guide_data = getattr(train_data, "clean_guide_data", None)
    return sharded


# --- collectives ------------------------------------------------------------------------------
def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks (float64 on the tensor's device, through the group's device)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_module(module: torch.nn.Module) -> None:
    """Every parameter and buffer of ``module`` set to rank 0's."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def digest(*states: Any) -> str:
    """sha256 of tensors (dtype, shape, bytes) and plain values: equal exactly when bitwise equal."""
    from recbole_autodenoise.checkpoints import _feed

    hasher = hashlib.sha256()
    for state in states:
        _feed(hasher, state)
    return hasher.hexdigest()


def check_agreement(what: str, value: str) -> list[str]:
    """Every rank's ``value``; a ValueError where the ranks disagree (they diverged: a bug)."""
    values = gather_objects(value)
    if len(set(values)) > 1:
        raise ValueError(f"ranks diverged: {what} differs between ranks ({values})")
    return values


def own_rank_state(denoise: dict[str, Any], config, path: str) -> dict[str, Any]:
    """This rank's random state and scheme state from a checkpoint's ``denoise`` entry: a
    multi-process checkpoint holds every rank's (``ranks``), resumed on as many ranks."""
    ranks = denoise.get("ranks")
    saved = 1 if ranks is None else len(ranks)
    world = int(config["world_size"]) if is_distributed(config) else 1
    if saved != world:
        raise ValueError(f"{path} was written by a run of {saved} process(es), this run has {world}: "
                         f"resume with as many (nproc / world_size = {saved})")
    return {"rng": denoise["rng"], "scheme_state": denoise["scheme_state"]} if ranks is None else ranks[global_rank(config)]


def check_supported(config, scheme, diagnostics: bool) -> None:
    """What cannot run under DDP, refused before training with the reason."""
    if not is_distributed(config):
        return
    if scheme.needs_guidance or diagnostics:
        raise ValueError(
            f"denoise_scheme {config['denoise_scheme']!r} with per-batch guidance (l2rw, controller_credit 'meta' or 'explicit', "
            "denoise_diagnostics) is single-process only: its virtual steps run on each rank's model copy "
            "outside DDP's gradient synchronisation; run with nproc: 1"
        )
    reason = getattr(getattr(scheme, "credit", None), "single_process_reason", None)
    if reason:
        raise ValueError(f"config key 'controller_credit' = {scheme.credit_mode!r} is single-process only ({reason}); "
                         "run with nproc: 1")
    if getattr(scheme, "state_kind", None) == "loss_features":
        raise ValueError(
            "config key 'controller_state' = 'loss_features' is single-process only: its per-row loss history "
            "would be split across ranks (each epoch gives every rank other rows); use 'paper' or nproc: 1"
        )

