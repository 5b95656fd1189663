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
* Stopping: SIGINT, SIGTERM or SIGHUP to the launcher stops every rank (SIGTERM, then SIGKILL
  after a grace period); ranks of a launcher killed outright notice and stop (``launch``).
* Resume: a multi-process checkpoint holds every rank's random state and scheme state (its
  controller's generator) under ``denoise.ranks``; it resumes on the same number of ranks.

``DistributedSampler`` pads the shards to equal length (at most ``world_size - 1`` repeated
training samples an epoch), as in RecBole: those samples are trained and counted twice.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler

from recbole_autodenoise import options
from recbole_autodenoise.options import Option, Rule

BACKENDS = ("auto", "gloo", "nccl")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_ranks(config) -> None:
    """This machine's ranks, ``offset`` to ``offset + nproc - 1``, lie within ``world_size``."""
    nproc, offset = config["nproc"], config["offset"]
    world_size = nproc if config["world_size"] == -1 else config["world_size"]
    if offset + nproc > world_size:
        raise ValueError(
            f"config keys 'offset' = {offset} and 'nproc' = {nproc} ask for ranks up to "
            f"{offset + nproc - 1}, but 'world_size' = {world_size}: expected offset + nproc <= "
            "world_size"
        )


OPTIONS = options.declare(
    Option(
        "nproc",
        "int",
        1,
        "processes on this machine (RecBole's); > 1 trains data-parallel",
        lambda v: _int(v) and v >= 1,
        "an integer >= 1 (processes on this machine)",
    ),
    Option(
        "world_size",
        "int",
        -1,
        "processes on all machines; -1: nproc (RecBole's)",
        lambda v: _int(v) and (v == -1 or v >= 1),
        "-1 (= nproc) or an integer >= 1 (processes on all machines)",
    ),
    Option(
        "ip",
        "str",
        "localhost",
        "address of the machine running rank 0 (RecBole's)",
        lambda v: isinstance(v, str) and v != "",
        "the address of the rank-0 machine",
    ),
    Option(
        "port",
        "int",
        5678,
        "free TCP port on that machine for the process group (RecBole's)",
        lambda v: (_int(v) and 0 < v < 65536) or (isinstance(v, str) and v.isdigit()),
        "a TCP port number",
    ),
    Option(
        "offset",
        "int",
        0,
        "global rank of this machine's first process (RecBole's group_offset)",
        lambda v: _int(v) and v >= 0,
        "an integer >= 0 (this machine's first rank)",
    ),
    Option(
        "ddp_backend",
        "str",
        "auto",
        "auto (nccl where the run uses CUDA, else gloo) | gloo (CPU processes) | nccl (one GPU "
        "per process)",
        choices=BACKENDS,
    ),
    Option(
        "ddp_timeout",
        "int",
        600,
        "seconds a rank waits for the others in a collective before the run stops with an error",
        lambda v: _int(v) and v >= 1,
        "an integer >= 1 (seconds a rank waits for the others)",
    ),
)
RULES = (Rule(("offset", "nproc", "world_size"), "offset + nproc <= world_size", check_ranks),)


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
def process_counts(config) -> tuple[int, int]:
    """(nproc, world_size) as RecBole's ``run`` reads them: ``world_size: -1`` means ``nproc``."""
    for key in ("nproc", "world_size", "offset"):
        options.read(config, key)
    check_ranks(config)
    options.read(config, "ip")
    options.read(config, "port")
    nproc, world_size = config["nproc"], config["world_size"]
    return nproc, nproc if world_size == -1 else world_size


def wants_processes(config) -> bool:
    """RecBole's rule: several processes, or a world bigger than this one process."""
    nproc, world_size = process_counts(config)
    return nproc > 1 or world_size > 1


def backend(config) -> str:
    """``ddp_backend`` resolved: ``auto`` is ``nccl`` where the run uses CUDA, else ``gloo``."""
    name = options.read(config, "ddp_backend")
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
    seconds = options.read(config, "ddp_timeout")
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
        raise ValueError(
            f"config key 'gpu_id' = {final['gpu_id']!r} lists fewer GPUs than nproc = "
            f"{final['nproc']}"
        )
    dist.init_process_group(
        backend=name,
        rank=local_rank + int(final["offset"]),
        world_size=world_size,
        init_method=f"tcp://{final['ip']}:{final['port']}",
        timeout=wait,
    )
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


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # the launcher's signals that stop every rank
STOP_GRACE_SECONDS = 5.0  # how long a stopped rank may take to exit before it is killed
PARENT_POLL_SECONDS = 0.5  # how often a rank checks that its launcher is alive


def launch(fn: Callable, nproc: int, args: tuple) -> Any:
    """``torch.multiprocessing.spawn(fn, args + (queue,), nproc)`` as RecBole's ``run`` does;
    returns what a rank put on ``queue`` (rank 0's results; ``None`` if none did). The queue is
    read while the ranks run: a message bigger than the pipe's buffer would otherwise block its
    writer for ever. When a rank dies or raises, spawn stops the others and this raises one
    ``RankFailed``.

    The ranks end with the launcher. SIGINT, SIGTERM or SIGHUP to the launcher (where not ignored)
    sends SIGTERM to every rank, waits ``STOP_GRACE_SECONDS`` and kills those left; the signal then
    takes its usual course (SIGINT: ``KeyboardInterrupt``; SIGTERM, SIGHUP: the process ends by it).
    Any other way out of this function stops the ranks the same way. A launcher killed outright
    (SIGKILL) is noticed by its ranks (``_rank_main``), which stop themselves."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    result = None
    received: list[int] = []
    with _stop_signals_recorded(received):
        context = mp.spawn(
            _rank_main, args=(fn, os.getpid(), *args, queue), nprocs=nproc, join=False
        )
        try:
            while not received and not context.join(timeout=0.5):
                if result is None and not queue.empty():
                    result = queue.get()
        except mp.ProcessExitedException as error:
            if not received:
                how = (
                    f"signal {error.signal_name}"
                    if error.signal_name
                    else f"exit code {error.exit_code}"
                )
                raise RankFailed(
                    f"rank {error.error_index} of {nproc} died ({how}); "
                    "the other ranks were stopped"
                ) from None
        except mp.ProcessRaisedException as error:
            if not received:
                text = str(error).strip()
                last = text.splitlines()[-1] if text else type(error).__name__
                message = f"a rank failed ({last}); the other ranks were stopped\n{error}"
                raise RankFailed(message) from None
        finally:
            stop_processes(context.processes)
    if received:
        signal.raise_signal(received[0])  # the handlers are the caller's again
        raise RankFailed(f"stopped by {signal.Signals(received[0]).name}; the ranks were stopped")
    if result is None and not queue.empty():
        result = queue.get()
    return result


@contextlib.contextmanager
def _stop_signals_recorded(received: list[int]):
    """Inside: each of ``STOP_SIGNALS`` that is not ignored is appended to ``received`` instead of
    acting (the launcher's loop sees it within half a second). Outside the main thread, where
    Python cannot set handlers, and for a handler set outside Python, the signals keep theirs."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in STOP_SIGNALS:
            number = getattr(signal, name, None)
            if number is not None and signal.getsignal(number) not in (signal.SIG_IGN, None):
                previous[number] = signal.signal(number, lambda signum, _: received.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_processes(processes: list, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to every live process of ``processes``, up to ``grace`` seconds for them to exit,
    then SIGKILL to those left; returns once every one has ended (and is reaped)."""
    alive = [process for process in processes if process.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in alive:
        if process.is_alive():
            process.kill()
        process.join()


def _rank_main(local_rank: int, fn: Callable, launcher: int, *args: Any) -> None:
    """One rank: ``fn(local_rank, *args)``, ended with its launcher (process id ``launcher``).

    SIGTERM raises ``SystemExit`` (143) here, so ``finally`` blocks run (a half-written file is
    removed); a rank still alive ``STOP_GRACE_SECONDS`` later ends at once. On Linux the kernel
    sends SIGTERM when the launcher dies (``PR_SET_PDEATHSIG``; torch's own choice, SIGINT, is
    lost where SIGINT is ignored, as in background jobs); elsewhere, and as a fallback, a thread
    checks every ``PARENT_POLL_SECONDS`` that the launcher is still this process's parent. An
    interrupt (SIGINT) ends the rank with status 130, which the launcher reports."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != launcher:  # the launcher ended before the death signal was set
        raise SystemExit(128 + signal.SIGTERM)
    threading.Thread(
        target=_watch_launcher, args=(launcher,), name="launcher-watch", daemon=True
    ).start()
    try:
        fn(local_rank, *args)
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None


_stopping_since: list[float] = []  # when this rank was told to stop (SIGTERM)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    if not _stopping_since:
        _stopping_since.append(time.monotonic())
        raise SystemExit(128 + signum)


def _watch_launcher(launcher: int) -> None:
    """Wait until the launcher is gone or a stop began; then SIGTERM (where the launcher is gone)
    and, ``STOP_GRACE_SECONDS`` later, end the process at once."""
    while os.getppid() == launcher and not _stopping_since:
        time.sleep(PARENT_POLL_SECONDS)
    if os.getppid() != launcher:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE_SECONDS)
    os._exit(128 + signal.SIGTERM)


def _set_parent_death_signal(signum: int) -> None:
    """Linux's ``prctl(PR_SET_PDEATHSIG, signum)``: the kernel sends ``signum`` to this process
    when its parent ends. Elsewhere (or where libc cannot be loaded) nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signum), 0, 0, 0)
    except (OSError, AttributeError):
        return


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
    ``train_batch_size / world_size``)."""
    if not is_distributed(config):
        return train_data
    from recbole.data.dataloader import TrainDataLoader

    if not isinstance(train_data, TrainDataLoader):
        raise ValueError(
            "multi-process training supports RecBole's TrainDataLoader, not "
            f"{type(train_data).__name__}"
        )
    return type(train_data)(
        config, train_data._dataset, train_data._sampler, shuffle=train_data.shuffle
    )


def check_whole_set(eval_data, config) -> None:
    """Under DDP evaluation must see the whole set on every rank (the trainer's ``_map_reduce``
    takes one rank's result as the whole one)."""
    sharded = isinstance(getattr(eval_data, "sampler", None), DistributedSampler)
    if is_distributed(config) and sharded:
        raise ValueError(
            "under multi-process training every rank evaluates the whole set: build "
            "the loaders with recbole_autodenoise.prepare_data or data_preparation "
            "(their evaluation loaders are not sharded)"
        )


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


def check_agreement(what: str, value: str) -> list[str]:
    """Every rank's ``value``; a ValueError where the ranks disagree (they diverged: a bug)."""
    values = gather_objects(value)
    if len(set(values)) > 1:
        raise ValueError(f"ranks diverged: {what} differs between ranks ({values})")
    return values


def check_supported(config, scheme, diagnostics: bool) -> None:
    """What cannot run under DDP, refused before training with the reason."""
    if not is_distributed(config):
        return
    if scheme.needs_guidance or diagnostics:
        raise ValueError(
            f"denoise_scheme {config['denoise_scheme']!r} with per-batch guidance (l2rw, "
            "controller_credit 'meta' or 'explicit', denoise_diagnostics) is single-process only: "
            "its virtual steps run on each rank's model copy outside DDP's gradient "
            "synchronisation; run with nproc: 1"
        )
    reason = getattr(getattr(scheme, "credit", None), "single_process_reason", None)
    if reason:
        raise ValueError(
            f"config key 'controller_credit' = {scheme.credit_mode!r} is single-process only "
            f"({reason}); run with nproc: 1"
        )
    reason = getattr(getattr(scheme, "features", None), "single_process_reason", None)
    if reason:
        raise ValueError(
            f"config key 'controller_state' = {scheme.state_kind!r} is single-process "
            f"only: {reason}; use 'paper' or nproc: 1"
        )
