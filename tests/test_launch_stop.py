"""Stopping the multi-process launcher (``distributed.launch``) stops its ranks.

SIGTERM, SIGINT or SIGKILL to the launcher of a real two-rank run (``run_recbole_denoise.py
--nproc=2 --ddp_backend=gloo``) ends both ranks within seconds. Stand-in ranks that append to a file
every 0.1 s show the cases a real run rarely hits: a launcher started with SIGINT ignored (a
background job), killed outright, and ranks that ignore SIGTERM (killed after the grace period);
in each, the ranks' files stop growing once the launcher has ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from recbole_autodenoise import distributed
from tests.test_ddp import REPO, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's signals"),
]

WAIT_SECONDS = 10  # the ranks must be gone this long after the launcher was signalled

WORKER = """
import os
import signal
import time


def work(rank, folder, ignore_sigterm, queue):
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = os.path.join(folder, f"rank{rank}.txt")
    while True:
        with open(path, "a") as handle:
            handle.write(f"{time.time()}\\n")
        time.sleep(0.1)
"""

LAUNCHER = """
import sys

from recbole_autodenoise import distributed
from worker import work

if __name__ == "__main__":
    distributed.launch(work, 2, (sys.argv[1], sys.argv[2] == "1"))
"""


def environment(*paths: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")]),
    }


def ranks_of(
    process: subprocess.Popen, count: int, ready, timeout: float = 180
) -> list[psutil.Process]:
    """The ``count`` spawned ranks of ``process`` once ``ready()`` holds."""
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        ranks = [child for child in parent.children() if "spawn_main" in " ".join(child.cmdline())]
        if len(ranks) == count and ready():
            return ranks
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the ranks never started: {process.communicate()[1]}")


def gone(rank: psutil.Process) -> bool:
    """Ended: no such process, or a zombie nobody has reaped yet (it runs no code)."""
    try:
        return rank.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(ranks: list[psutil.Process], seconds: float = WAIT_SECONDS) -> list[int]:
    """The pids of the ranks still running after ``seconds`` (killed then: no test leaks them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(gone(rank) for rank in ranks):
        time.sleep(0.1)
    alive = [rank for rank in ranks if not gone(rank)]
    for rank in alive:
        rank.kill()
    return [rank.pid for rank in alive]


def _launcher_signals(sigint) -> None:
    """The launcher's SIGINT as the test asks; SIGHUP at its default whatever this process has
    (under ``nohup`` the test runner ignores SIGHUP, and its children would inherit that)."""
    signal.signal(signal.SIGINT, sigint)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start_stand_in(tmp_path: Path, ignore_sigterm: bool = False, ignore_sigint: bool = False):
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "launch.py").write_text(LAUNCHER)
    out = tmp_path / "out"
    out.mkdir()
    sigint = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
    command = [sys.executable, str(tmp_path / "launch.py"), str(out), str(int(ignore_sigterm))]
    process = subprocess.Popen(
        command,
        env=environment(tmp_path, REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: _launcher_signals(sigint),
    )
    ranks = ranks_of(process, 2, lambda: len(list(out.iterdir())) == 2)
    return process, ranks, out


def sizes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in folder.iterdir()}


@pytest.mark.parametrize(
    "sent", [signal.SIGTERM, signal.SIGKILL, signal.SIGHUP], ids=lambda s: s.name
)
def test_ranks_end_with_a_launcher_started_with_sigint_ignored(tmp_path, sent):
    # a background job (`cmd &` in a script) ignores SIGINT, and so do its ranks: torch's own
    # parent-death signal (SIGINT) would leave them running
    process, ranks, out = start_stand_in(tmp_path, ignore_sigint=True)
    os.kill(process.pid, sent)
    assert wait_gone(ranks) == []
    assert process.wait(timeout=WAIT_SECONDS) == -sent
    written = sizes(out)
    time.sleep(0.5)
    assert sizes(out) == written


def test_ranks_that_ignore_sigterm_are_killed_after_the_grace_period(tmp_path):
    process, ranks, out = start_stand_in(tmp_path, ignore_sigterm=True)
    signalled = time.monotonic()
    os.kill(process.pid, signal.SIGINT)
    assert wait_gone(ranks, distributed.STOP_GRACE_SECONDS + WAIT_SECONDS) == []
    # they got their grace period
    assert time.monotonic() - signalled >= distributed.STOP_GRACE_SECONDS - 0.5
    _, stderr = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == -signal.SIGINT and "KeyboardInterrupt" in stderr
    written = sizes(out)
    time.sleep(0.5)
    assert sizes(out) == written


@pytest.mark.parametrize(
    "sent", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name
)
def test_stopping_a_two_rank_run_stops_both_ranks_within_seconds(tmp_path, sent):
    command = [
        sys.executable,
        str(REPO / "run_recbole_denoise.py"),
        "--model=BPR",
        "--dataset=ml-100k",
        "--scheme=default",
        "--nproc=2",
        f"--port={free_port()}",
        "--ddp_backend=gloo",
        "--epochs=100",
        "--show_progress=False",
        "--state=WARNING",
        "--results_file=r.json",
    ]
    # SIGINT as in a terminal, even where these tests run as a background job (which ignores it)
    process = subprocess.Popen(
        command,
        env=environment(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # signalled once the ranks have begun the run (RecBole's log folder exists), training or loading
    ranks = ranks_of(process, 2, lambda: (tmp_path / "log").is_dir())
    time.sleep(2)
    os.kill(process.pid, sent)
    assert wait_gone(ranks) == []
    process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == -sent
    assert not (tmp_path / "r.json").exists()
