"""Grid bookkeeping shared by ``table3`` and ``tune``: cells, stable keys, a crash-tolerant JSONL
store, the resumable grid loop and the default subprocess cell runner.

A cell is one training run. Its key names the data set, model, scheme and seed plus a hash of
everything else the user set (``--set`` overrides and the *contents* of config files), so a re-run
with the same settings finds its finished cells and a changed setting never reuses stale ones.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from recbole_autodenoise.arguments import read_text
from recbole_autodenoise.select.machine import cpu_model, git_commit, host_info  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMES = (
    "default",
    "heuristic",
    "adt_tl",
    "adt_rl",
    "autodenoise_h",
    "autodenoise_s",
)  # the paper's Table 3
EXTRA_SCHEMES = (
    "l2rw",
    "oracle",
    "dcf",
)  # beyond the paper (issues 5, 17, 13): runnable by name, not part of 'all'
BASELINES = (
    "heuristic",
    "adt_tl",
    "adt_rl",
    "dcf",
)  # DCF (issue 13): beyond the paper, a baseline for the learned denoisers
AUTODENOISE = ("autodenoise_h", "autodenoise_s")
DEFAULT_SEED = 2020  # RecBole's default seed; seeds are DEFAULT_SEED, DEFAULT_SEED + 1, ...
# Keys that never change what is computed: excluded from the hash so paths and verbosity do not
# split one experiment into several.
UNHASHED_KEYS = frozenset(
    {"data_path", "show_progress", "state", "checkpoint_dir", "results_file", "experimental"}
)  # the opt-in to recbole_autodenoise.experimental


@dataclass(frozen=True)
class Cell:
    """One run of the grid. ``config_files`` are absolute paths; ``overrides`` exclude the seed."""

    dataset: str
    model: str
    scheme: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    config_files: tuple[str, ...] = ()
    data_path: str | None = None

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def overrides_hash(self) -> str:
        return overrides_hash(self.overrides, self.config_files)

    @property
    def key(self) -> str:
        return f"{self.dataset}|{self.model}|{self.scheme}|{self.seed}|{self.overrides_hash}"

    def config_dict(self) -> dict[str, Any]:
        """What ``quick_start.run`` gets as ``config_dict``."""
        config = dict(self.overrides, denoise_scheme=self.scheme, seed=self.seed)
        if self.data_path is not None:
            config["data_path"] = self.data_path
        return config

    def settings(self) -> dict[str, Any]:
        """Everything the user set for this cell: config files in order, then overrides."""
        merged: dict[str, Any] = {}
        for file in self.config_files:
            merged.update(yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {})
        merged.update(self.config_dict())
        merged.pop("data_path", None)
        return merged

    def command(self) -> str:
        """The equivalent single-run CLI command (to reproduce or debug one cell by hand)."""
        parts = [
            "python",
            "run_recbole_denoise.py",
            f"--model={self.model}",
            f"--dataset={self.dataset}",
            f"--scheme={self.scheme}",
            f"--seed={self.seed}",
        ]
        if self.data_path is not None:
            parts.append(f"--data_path={self.data_path}")
        if self.config_files:
            parts.append(f"--config_files={' '.join(self.config_files)}")
        parts += [f"--{k}={_cli_value(v)}" for k, v in sorted(self.overrides.items())]
        return shlex.join(parts)


def _cli_value(value: Any) -> str:
    """A ``--key=value`` text that the CLI parses back to ``value``."""
    from recbole_autodenoise.config import parse_cli_value

    if isinstance(value, str):
        return value if parse_cli_value(value) == value else repr(value)
    return (
        repr(value)
        if isinstance(value, (int, float, list, tuple, dict)) and not isinstance(value, bool)
        else json.dumps(value)
    )


def overrides_hash(overrides: dict[str, Any], config_files: Sequence[str] = ()) -> str:
    """10 hex digits over the overrides (order-free) and config files' contents (not their
    paths)."""
    hashed = {k: v for k, v in overrides.items() if k not in UNHASHED_KEYS}
    files = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in config_files]
    blob = json.dumps({"overrides": hashed, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def expand_config_files(
    patterns: Sequence[str], model: str, scheme: str, dataset: str
) -> tuple[str, ...]:
    """Resolve ``{model}``/``{scheme}``/``{dataset}`` placeholders; a templated file that does not
    exist for this cell is skipped (e.g. no tuned yaml for it), a plain path must exist."""
    files = []
    for pattern in patterns:
        path = Path(pattern.format(model=model, scheme=scheme, dataset=dataset)).resolve()
        if path.is_file():
            read_text(path)  # a file that is not UTF-8 text stops the grid before any cell runs
            files.append(str(path))
        elif pattern == pattern.format(model="", scheme="", dataset=""):
            raise FileNotFoundError(f"config file not found: {pattern}")
    return tuple(files)


def make_cells(
    dataset: str,
    models: Sequence[str],
    schemes: Sequence[str],
    seeds: Sequence[int],
    overrides: dict[str, Any] | None = None,
    config_files: Sequence[str] = (),
    data_path: str | None = None,
) -> list[Cell]:
    """The grid in run order: model, then seed, then scheme (so every seed's schemes finish
    together and a partial grid already gives paired comparisons)."""
    overrides = dict(overrides or {})
    for key in ("seed", "denoise_scheme", "data_path"):
        if key in overrides:
            raise ValueError(f"'{key}' is set by the grid itself; do not pass it with --set")
    data_path = str(Path(data_path).resolve()) if data_path else None
    return [
        Cell(
            dataset,
            model,
            scheme,
            seed,
            overrides,
            expand_config_files(config_files, model, scheme, dataset),
            data_path,
        )
        for model, seed, scheme in itertools.product(models, seeds, schemes)
    ]


def check_settings(cells: Sequence[Cell]) -> None:
    """Every distinct configuration of ``cells`` built as its run builds it (``make_config``): a
    misspelt or refused ``--set`` key or config-file setting stops the grid before any cell runs,
    with a ValueError naming the model and scheme. Nothing is written; the warnings of keys a
    scheme ignores are left to the cells' logs."""
    from recbole_autodenoise import make_config

    seen = set()
    cuda_devices = os.environ.get("CUDA_VISIBLE_DEVICES")  # RecBole's Config sets it from gpu_id
    try:
        for cell in cells:
            if (cell.model, cell.scheme, cell.overrides_hash) in seen:
                continue
            seen.add((cell.model, cell.scheme, cell.overrides_hash))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    make_config(
                        cell.model,
                        cell.dataset,
                        list(cell.config_files) or None,
                        cell.config_dict(),
                    )
            except ValueError as error:
                raise ValueError(f"{cell.model} / {cell.scheme}: {error}") from None
    finally:
        if cuda_devices is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices


# --- JSONL store ----------------------------------------------------------------------------
def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All parseable rows; a line that is not valid JSON (a crash mid-write) is ignored. No file:
    no rows; a ValueError for a directory or a file that cannot be read or is not UTF-8 text."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in read_text(path).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "key" in row:
            rows.append(row)
    return rows


def latest_rows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row per cell key (a retried failed cell is superseded by its new result)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["key"]] = row
    return latest


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk, first ending a truncated last line if any."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write((json.dumps(row, allow_nan=True) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


# --- machine -------------------------------------------------------------------------------
# --- running -------------------------------------------------------------------------------
Runner = Callable[[Cell], dict[str, Any]]
"""A cell runner returns
``{"results": quick_start.run's dict, "peak_memory": {...}, "device": {...}}`` and raises on
failure."""


class CellFailed(RuntimeError):
    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = (
            resumable  # stopped from outside (a signal, the timeout): its state is worth keeping
        )


class SubprocessRunner:
    """Runs each cell as ``python -m benchmarks.cell`` in a fresh process and a scratch folder
    (RecBole writes ./log and ./saved), so peak memory is the cell's own; its output goes to
    ``log_dir/<cell>.log``.

    With ``resumable``, the scratch folder is ``log_dir/<cell>.work`` and outlives a cell stopped
    from outside (killed by a signal, or past ``timeout``): the next run of the cell continues from
    its ``saved/*-latest.pth`` (the trainer's state after its last finished epoch, from which a run
    ends exactly as an uninterrupted one), so a cell longer than a session is split across
    sessions where the folder survives between them. A cell that fails by itself (an exception,
    exit status > 0) starts afresh next time;
    one whose results were written after its parent died (an orphaned child) is taken as finished;
    one last run by another commit of the code starts afresh. A lock held by the child keeps two
    processes off one folder."""

    def __init__(
        self,
        log_dir: str | Path,
        timeout: float | None = None,
        python: str = sys.executable,
        root: Path = REPO_ROOT,
        cell: Sequence[str] = ("-m", "benchmarks.cell"),
        resumable: bool = False,
    ) -> None:
        # absolute: the child runs in its scratch folder, where a relative spec path is not found
        self.log_dir, self.timeout, self.python = Path(log_dir).resolve(), timeout, python
        self.root = Path(root)  # the checkout whose plugin (and benchmarks.cell) the cell imports
        self.cell = list(cell)  # how the child is started: a module or a script path
        self.resumable = resumable

    def __call__(self, cell: Cell) -> dict[str, Any]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{file_name(cell)}.log"
        if self.resumable:
            return self._resumable(cell, self.work_dir(cell), log_path)
        with tempfile.TemporaryDirectory(prefix="bench-cell-") as scratch:
            return self._run(cell, Path(scratch), log_path)

    def work_dir(self, cell: Cell) -> Path:
        """Where a resumable cell keeps its state between runs."""
        return self.log_dir / f"{file_name(cell)}.work"

    def saved_state(self, cell: Cell) -> Path | None:
        """The checkpoint a resumable cell's next run would continue from, if any."""
        return latest_checkpoint(self.work_dir(cell) / "saved") if self.resumable else None

    def _resumable(self, cell: Cell, work: Path, log_path: Path) -> dict[str, Any]:
        work.mkdir(exist_ok=True)
        with open(work / "lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CellFailed(
                    f"{work} is in use: the cell still runs in another process"
                ) from None
            self._start_afresh_unless_same_code(work)
            done = work / "out.json"  # there already: written by a child whose parent died
            if done.is_file():
                outcome = json.loads(done.read_text(encoding="utf-8"))
            else:
                outcome = self._continue(cell, work, log_path, lock)
            shutil.rmtree(work)
            return outcome

    def _continue(self, cell: Cell, work: Path, log_path: Path, lock) -> dict[str, Any]:
        """Run the cell from its saved state, if any; a failure of its own empties ``work``."""
        try:
            return self._run(
                cell, work, log_path, resume=latest_checkpoint(work / "saved"), lock=lock
            )
        except CellFailed as failure:
            if not failure.resumable:
                shutil.rmtree(work)
            raise

    def _start_afresh_unless_same_code(self, work: Path) -> None:
        """A folder last run by another commit (uncommitted edits aside: a study's rows make the
        tree dirty) is emptied, its lock kept."""
        stamp, commit = work / "code.txt", str(git_commit(self.root)).removesuffix("+dirty")
        if stamp.is_file() and stamp.read_text(encoding="utf-8") != commit:
            for entry in work.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name != "lock":
                    entry.unlink()
        stamp.write_text(commit, encoding="utf-8")

    def _run(
        self, cell: Cell, scratch: Path, log_path: Path, resume: Path | None = None, lock=None
    ) -> dict[str, Any]:
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(self.root), os.environ.get("PYTHONPATH")])
            ),
        )
        spec, out = scratch / "spec.json", scratch / "out.json"
        spec.write_text(
            json.dumps(
                {
                    "model": cell.model,
                    "dataset": cell.dataset,
                    "config_files": list(cell.config_files),
                    "config_dict": cell.config_dict(),
                    "resume": str(resume) if resume else None,
                }
            )
        )
        with open(log_path, "a" if resume else "w", encoding="utf-8") as log:
            if resume:
                log.write(f"\n===== resumed from {resume} =====\n")
                log.flush()
            try:
                proc = subprocess.run(
                    [self.python, *self.cell, str(spec), str(out)],
                    cwd=scratch,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=self.timeout,
                    pass_fds=(lock.fileno(),) if lock is not None else (),
                )
            except subprocess.TimeoutExpired:
                raise CellFailed(
                    f"timed out after {self.timeout} s; log: {log_path}", resumable=True
                ) from None
        if proc.returncode != 0 or not out.exists():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise CellFailed(
                f"exit status {proc.returncode}; log: {log_path}\n{tail}",
                resumable=proc.returncode < 0,
            )
        return json.loads(out.read_text(encoding="utf-8"))


def file_name(cell: Cell) -> str:
    """The cell's key as a file name: its log and its state folder are named after it."""
    return cell.key.replace("|", "_")


def latest_checkpoint(saved: Path) -> Path | None:
    """The newest ``*-latest.pth`` in ``saved`` (a cell's trainer writes one), or None."""
    found = (
        sorted(saved.glob("*-latest.pth"), key=lambda path: path.stat().st_mtime)
        if saved.is_dir()
        else []
    )
    return found[-1] if found else None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def run_grid(
    cells: Sequence[Cell],
    out: str | Path,
    runner: Runner,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run every cell without a finished row in ``out``, appending each result as it ends.

    A failed cell is recorded with its error and the grid goes on; the next run retries it.
    Returns counts: ran, ok, failed, skipped.
    """
    done = {k for k, row in latest_rows(read_rows(out)).items() if row.get("status") == "ok"}
    todo = [cell for cell in cells if cell.key not in done]
    counts = {"ran": 0, "ok": 0, "failed": 0, "skipped": len(cells) - len(todo)}
    log(f"{len(cells)} cells: {counts['skipped']} already finished in {out}, {len(todo)} to run")
    host = host_info()
    started = time.time()
    for index, cell in enumerate(todo, 1):
        cell_start = time.time()
        row: dict[str, Any] = {
            "key": cell.key,
            "dataset": cell.dataset,
            "model": cell.model,
            "scheme": cell.scheme,
            "seed": cell.seed,
            "overrides_hash": cell.overrides_hash,
            "overrides": cell.overrides,
            "settings": cell.settings(),
            "config_files": list(cell.config_files),
            "data_path": cell.data_path,
            "command": command,
            "cell_command": cell.command(),
            "host": host,
        }
        try:
            outcome = runner(cell)
            results = dict(outcome["results"])
            results.pop("checkpoint", None)  # lives in the cell's scratch folder, gone afterwards
            row.update(
                status="ok",
                results=results,
                peak_memory=outcome.get("peak_memory", {}),
                device=outcome.get("device", {}),
                error=None,
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - any failure is recorded and the grid goes on
            row.update(status="failed", error=f"{type(error).__name__}: {error}")
        wall = time.time() - cell_start
        row.update(
            wall_seconds=wall, finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds")
        )
        append_row(out, row)
        counts["ran"] += 1
        counts[row["status"]] += 1
        elapsed = time.time() - started
        left = len(todo) - index
        log(
            f"[{counts['skipped'] + index}/{len(cells)}] {cell.key} {row['status']} "
            f"in {wall:.1f} s; "
            f"{left} left, ETA {_duration(elapsed / index * left)}"
            + (f"\n    {row['error'].splitlines()[0]}" if row["status"] == "failed" else "")
        )
    log(
        f"done: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped (already finished)"
    )
    return counts
