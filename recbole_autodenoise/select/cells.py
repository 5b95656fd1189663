"""Cells of ``select``: one training run (or one test evaluation of a finished run) per
subprocess, kept under ``<out>.cells/<key>/`` so that an interrupted selection resumes.

A cell's key is a hash of everything that decides what it computes: model, data set, the contents
of its config files, its settings (candidate, grid configuration, seed, common overrides) and the
data folder. A rerun with the same arguments finds its finished cells (``result.json``) and skips
them; any other setting gives another key, so stale cells are never reused. A cell that did not
finish is started afresh. Each cell runs in its own folder (RecBole writes ``./log`` and
``./saved`` there) with one thread (``OMP_NUM_THREADS=1``), keeps its best-model checkpoint for the
test step, and its output goes to ``train.log`` / ``test.log`` beside it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from recbole_autodenoise.files import atomic_write

KEY_VERSION = 1
# settings that never change what a cell computes: left out of its key
UNHASHED_KEYS = frozenset({"checkpoint_dir", "show_progress", "state"})
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding recbole_autodenoise


@dataclass(frozen=True)
class CellSpec:
    """What one cell trains: ``quick_start.run``'s arguments (``config_files`` absolute)."""

    model: str
    dataset: str
    config_dict: dict[str, Any]
    config_files: tuple[str, ...] = ()
    file_digests: tuple[str, ...] = ()  # sha256 of each config file's contents, read at planning

    @property
    def key(self) -> str:
        hashed = {k: v for k, v in self.config_dict.items() if k not in UNHASHED_KEYS}
        blob = json.dumps(
            {
                "version": KEY_VERSION,
                "model": self.model,
                "dataset": self.dataset,
                "files": list(self.file_digests),
                "settings": hashed,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "config_files": list(self.config_files),
            "config_dict": self.config_dict,
        }


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Job:
    """A cell to run: ``mode`` train (``result.json``) or test (``test.json``, from the train
    cell's best checkpoint)."""

    label: str
    spec: CellSpec
    mode: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)


class CellFailed(RuntimeError):
    pass


class CellsInUse(ValueError):
    pass


class Store:
    """The cells folder ``<out>.cells``: one folder per cell key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, spec: CellSpec) -> Path:
        return self.root / spec.key

    def output(self, job: Job) -> Path:
        return self.folder(job.spec) / ("result.json" if job.mode == "train" else "test.json")

    def finished(self, job: Job) -> dict[str, Any] | None:
        path = self.output(job)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def save(self, job: Job, outcome: dict[str, Any]) -> None:
        with atomic_write(self.output(job)) as handle:
            handle.write(json.dumps(outcome, allow_nan=True) + "\n")

    def outcomes(self) -> Iterator[dict[str, Any]]:
        """Every finished cell's outcome in the folder (train and test)."""
        for path in sorted(self.root.glob("*/*.json")):
            if path.name in ("result.json", "test.json"):
                try:
                    yield json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue

    def checkpoint(self, spec: CellSpec) -> Path | None:
        """The best-model checkpoint of a finished train cell."""
        result = self.finished(Job("", spec))
        name = (result or {}).get("checkpoint_name")
        return self.folder(spec) / "saved" / name if name else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder for one select process at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CellsInUse(
                    f"{self.root} is in use by another select run with the same --out"
                ) from None
            yield


Runner = Callable[[Job, Path, Path | None], dict[str, Any]]
"""``runner(job, folder, checkpoint)``: runs one cell in ``folder`` and returns its outcome (a train
cell: ``quick_start.run``'s results with ``checkpoint_name``; a test cell:
``quick_start.evaluate_checkpoint``'s), raising ``CellFailed`` on failure."""


def subprocess_runner(job: Job, folder: Path, checkpoint: Path | None) -> dict[str, Any]:
    """One cell as ``python -m recbole_autodenoise.select.child MODE SPEC OUT`` in ``folder``."""
    spec_path, out = folder / f"{job.mode}-spec.json", folder / f"{job.mode}-out.json"
    spec = job.spec.as_json()
    spec["config_dict"] = {**spec["config_dict"], "checkpoint_dir": str(folder / "saved")}
    if checkpoint is not None:
        spec["checkpoint"] = str(checkpoint)
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out.unlink(missing_ok=True)
    env = dict(os.environ, **{name: "1" for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])
    )
    log = folder / f"{job.mode}.log"
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "recbole_autodenoise.select.child",
                job.mode,
                str(spec_path),
                str(out),
            ],
            cwd=folder,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if proc.returncode != 0 or not out.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise CellFailed(
            f"exit status {proc.returncode}; log: {log}" + "".join(f"\n    {line}" for line in tail)
        )
    outcome = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    return outcome


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_jobs(
    jobs: Sequence[Job],
    store: Store,
    runner: Runner,
    parallel: int = 1,
    log: Callable[[str], None] = print,
    describe: Callable[[Job, dict[str, Any]], str] = lambda job, outcome: "",
) -> dict[str, dict[str, Any]]:
    """Run every job without a stored outcome, ``parallel`` at a time; one progress line per cell
    started and finished. Returns ``{spec key: outcome}`` for the finished ones and
    ``{spec key: {"error": ...}}`` for those that failed (rerun next time)."""
    outcomes: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        found = store.finished(job)
        if found is not None:
            outcomes[job.spec.key] = found
        elif job.spec.key not in {pending.spec.key for pending in todo}:
            todo.append(job)
    # two candidates with the same settings share a cell
    unique = len({job.spec.key for job in jobs})
    log(
        f"{unique} {jobs[0].mode if jobs else ''} cells: {unique - len(todo)} already finished, "
        f"{len(todo)} to run" + (f", {parallel} at a time" if parallel > 1 and todo else "")
    )
    if not todo:
        return outcomes
    lock, started, done = threading.Lock(), time.time(), [0]

    def one(index: int, job: Job) -> None:
        folder = store.folder(job.spec)
        if job.mode == "train" and folder.exists():  # an unfinished earlier try: start afresh
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = store.checkpoint(job.spec) if job.mode == "test" else None
        with lock:
            log(f"[{index}/{len(todo)}] start  {job.label}  ({job.mode} cell {job.spec.key})")
        begin = time.time()
        try:
            outcome = runner(job, folder, checkpoint)
            outcome["wall_seconds"] = time.time() - begin
            store.save(job, outcome)
            outcomes[job.spec.key] = outcome
            said = describe(job, outcome)
            status = f"done in {time.time() - begin:.1f} s" + (f": {said}" if said else "")
        except Exception as error:  # noqa: BLE001 - recorded; the other cells go on
            outcomes[job.spec.key] = {"error": f"{type(error).__name__}: {error}"}
            status = f"FAILED after {time.time() - begin:.1f} s: {type(error).__name__}: {error}"
        with lock:
            done[0] += 1
            elapsed = time.time() - started
            left = len(todo) - done[0]
            log(
                f"[{index}/{len(todo)}] {status}  {job.label}; {left} left, "
                f"elapsed {_clock(elapsed)}, ETA {_clock(elapsed / done[0] * left)}"
            )

    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        for future in [pool.submit(one, index, job) for index, job in enumerate(todo, 1)]:
            future.result()
    except BaseException:  # an interrupt: start no further cell (running ones get the signal too)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return outcomes
