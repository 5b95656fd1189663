"""Resumable grid cells (``SubprocessRunner(resumable=True)``, used by ``table3`` and ``tune``): a
cell stopped from outside continues from its last finished epoch on the next run and ends exactly
as an uninterrupted one; one that fails by itself, or ran another commit's code, starts afresh."""

from __future__ import annotations

import fcntl
import json
import random
from pathlib import Path

import pytest
from tests.conftest import write_inter

from benchmarks import grid
from benchmarks.grid import SubprocessRunner, make_cells, read_rows, run_grid

# stands in for benchmarks.cell: a first run writes a checkpoint and dies as MODE says; a resumed
# run writes results naming the checkpoint it was given
FAKE_CELL = """
import json, os, signal, sys, time
from pathlib import Path
spec, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
mode = os.environ["FAKE_CELL_MODE"]
Path(os.environ["FAKE_CELL_CALLS"]).open("a").write(json.dumps(spec["resume"]) + "\\n")
if spec["resume"] is None:
    Path("saved").mkdir(exist_ok=True)
    Path("saved/BPR-x-latest.pth").write_text("epoch 1")
    if mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "fails":
        raise SystemExit("boom")
    if mode == "sleeps":
        time.sleep(30)
out.write_text(json.dumps({"results": {"resumed_from": spec["resume"], "test": {"ndcg@20": 0.1}}}))
"""


def quiet(message: str) -> None:
    pass


class FakeCell:
    """One grid cell run by FAKE_CELL through a resumable runner; ``run(mode)`` returns its newest
    row."""

    def __init__(
        self,
        tmp_path: Path,
        monkeypatch,
        timeout: float | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        script = tmp_path / "fake_cell.py"
        script.write_text(FAKE_CELL)
        self.calls = tmp_path / "calls.txt"
        monkeypatch.setenv("FAKE_CELL_CALLS", str(self.calls))
        self.monkeypatch, self.out = monkeypatch, tmp_path / "r.jsonl"
        self.cell = make_cells("tiny", ["BPR"], ["autodenoise_s"], [2020], {"epochs": 3})[0]
        self.runner = SubprocessRunner(
            log_dir or tmp_path / "logs", timeout=timeout, cell=[str(script)], resumable=True
        )
        self.work = tmp_path / "logs" / (self.cell.key.replace("|", "_") + ".work")
        self.checkpoint = self.work / "saved" / "BPR-x-latest.pth"

    def run(self, mode: str) -> dict:
        self.monkeypatch.setenv("FAKE_CELL_MODE", mode)
        run_grid([self.cell], self.out, self.runner, log=quiet)
        return read_rows(self.out)[-1]

    def resumes(self) -> list:
        """The ``resume`` each child was given, in order."""
        return (
            [json.loads(line) for line in self.calls.read_text().splitlines()]
            if self.calls.exists()
            else []
        )


@pytest.mark.slow
def test_a_killed_cell_keeps_its_state_and_its_next_run_continues_from_it(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch)
    first = fake.run("killed")
    assert first["status"] == "failed" and "exit status -9" in first["error"]
    assert fake.checkpoint.read_text() == "epoch 1"  # kept for the next run
    second = fake.run("killed")
    assert second["status"] == "ok" and second["results"]["resumed_from"] == str(fake.checkpoint)
    assert fake.resumes() == [None, str(fake.checkpoint)]
    assert not fake.work.exists()  # a finished cell leaves nothing behind


@pytest.mark.slow
def test_a_relative_log_folder_works_from_the_cells_scratch_folder(tmp_path, monkeypatch):
    # benchmarks.tune's results (benchmarks/results/tune/...) and table3's default --out are
    # relative paths; the child runs inside its .work folder (2026-12-02: every tune cell failed,
    # spec.json not found)
    monkeypatch.chdir(tmp_path)
    fake = FakeCell(tmp_path, monkeypatch, log_dir="logs")
    assert fake.run("killed")["status"] == "failed" and fake.checkpoint.read_text() == "epoch 1"
    assert fake.run("finishes")["status"] == "ok" and fake.resumes() == [None, str(fake.checkpoint)]


@pytest.mark.slow
def test_a_cell_that_fails_by_itself_starts_afresh(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch)
    assert fake.run("fails")["status"] == "failed" and not fake.work.exists()
    assert fake.run("finishes")["status"] == "ok"
    assert fake.resumes() == [None, None]


@pytest.mark.slow
def test_a_cell_past_its_timeout_continues_on_its_next_run(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch, timeout=3)
    row = fake.run("sleeps")
    assert row["status"] == "failed" and row["error"].startswith("CellFailed: timed out after 3 s")
    assert fake.checkpoint.is_file()
    assert fake.run("sleeps")["results"]["resumed_from"] == str(fake.checkpoint)


@pytest.mark.slow
def test_results_written_after_the_parent_died_are_taken(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch)
    fake.run("killed")
    (fake.work / "out.json").write_text(
        json.dumps({"results": {"resumed_from": "orphan", "test": {}}})
    )
    assert fake.run("fails")["results"]["resumed_from"] == "orphan"
    assert fake.resumes() == [None] and not fake.work.exists()  # no child started


@pytest.mark.slow
def test_state_left_by_another_commit_of_the_code_is_not_reused(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch)
    fake.run("killed")  # leaves a checkpoint stamped with this commit
    monkeypatch.setattr(grid, "git_commit", lambda root=None: "another-commit")
    assert fake.run("finishes")["results"]["resumed_from"] is None
    assert fake.resumes() == [None, None]


@pytest.mark.slow
def test_a_cell_still_running_elsewhere_is_left_alone(tmp_path, monkeypatch):
    fake = FakeCell(tmp_path, monkeypatch)
    fake.work.mkdir(parents=True)
    with open(fake.work / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        row = fake.run("finishes")
    assert (
        row["status"] == "failed"
        and "is in use: the cell still runs in another process" in row["error"]
    )
    assert fake.resumes() == []  # no child started
    assert fake.run("finishes")["status"] == "ok"


# the real cell, killed by SIGKILL right after epoch 1's state is saved (first run only)
KILLED_AFTER_EPOCH_1 = """
import json, os, signal, sys
from pathlib import Path
if json.loads(Path(sys.argv[1]).read_text())["resume"] is None:
    from recbole_autodenoise.trainer import AutoDenoiseTrainer
    save = AutoDenoiseTrainer._save_latest
    def save_then_die(self, epoch, verbose):
        save(self, epoch, verbose)
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    AutoDenoiseTrainer._save_latest = save_then_die
from benchmarks.cell import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_real_cell_killed_mid_run_ends_exactly_like_an_uninterrupted_one(tmp_path):
    """BPR + AutoDenoise-S (controller, REINFORCE state, RNG) on a tiny data set, 4 epochs."""
    rng = random.Random(0)
    rows = [
        (u, i, rng.randint(1, 5), 1000 * u + t)
        for u in range(1, 61)
        for t, i in enumerate(rng.sample(range(1, 61), 30))
    ]
    write_inter(tmp_path, "tiny", rows)
    cell = make_cells(
        "tiny",
        ["BPR"],
        ["autodenoise_s"],
        [2020],
        {
            "epochs": 4,
            "stopping_step": 10,
            "show_progress": False,
            "state": "WARNING",
            "gpu_id": "",
        },
        data_path=str(tmp_path),
    )[0]
    script = tmp_path / "killed_cell.py"
    script.write_text(KILLED_AFTER_EPOCH_1)
    resumed = SubprocessRunner(tmp_path / "logs", timeout=300, cell=[str(script)], resumable=True)
    assert run_grid([cell], tmp_path / "resumed.jsonl", resumed, log=quiet)["failed"] == 1
    assert run_grid([cell], tmp_path / "resumed.jsonl", resumed, log=quiet)["ok"] == 1
    straight = SubprocessRunner(tmp_path / "logs-straight", timeout=300)
    assert run_grid([cell], tmp_path / "straight.jsonl", straight, log=quiet)["ok"] == 1
    a, b = (
        read_rows(tmp_path / "resumed.jsonl")[-1]["results"],
        read_rows(tmp_path / "straight.jsonl")[0]["results"],
    )
    assert a["resumed_from"].endswith("-latest.pth") and b["resumed_from"] is None
    assert a["timing"]["epochs_trained"] == b["timing"]["epochs_trained"] == 4
    assert a["test"] == b["test"] and a["best_valid_score"] == b["best_valid_score"]
    assert a["weight_study"] == b["weight_study"]
    assert [e["controller_reward"] for e in a["epochs"]] == [
        e["controller_reward"] for e in b["epochs"]
    ]
