"""RecBole's multi-process (DDP) mode on 2 CPU processes with gloo (``distributed.py``).

End-to-end runs spawn two ranks on ML-100K (BPR, 2 epochs, FAST settings; AutoDenoise-S with epoch
credit, AutoDenoise-H with user credit, ADT-RL): after every epoch the
ranks' digests of model, controller and baseline b agree, the 2-process run's test and validation
metrics equal a 1-process evaluation of its saved model, one results file and one checkpoint pair
are written, and the weight study counts every rank's samples; a run stopped and resumed on two
ranks ends where the uninterrupted run does. A killed rank, a failing rank and a rank whose peer
never comes stop the run with an error instead of a hang.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from recbole.utils import init_seed

import recbole_autodenoise as rad
from recbole_autodenoise import checkpoints, distributed
from recbole_autodenoise.distributed import RankFailed
from recbole_autodenoise.model import get_model
from recbole_autodenoise.quick_start import run
from tests.conftest import FAST

REPO = Path(__file__).resolve().parents[1]
BASE = {**FAST, "ddp_backend": "gloo", "stopping_min_epochs": 0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ddp_overrides(scheme: str, **extra) -> dict:
    return {
        **BASE,
        "denoise_scheme": scheme,
        "nproc": 2,
        "port": free_port(),
        "results_file": "r.json",
        **extra,
    }


# --- settings, no processes ------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"ddp_backend": "mpi"},
            r"'ddp_backend' = 'mpi' is invalid: expected one of \['auto', 'gloo', 'nccl'\]",
        ),
        ({"ddp_timeout": 0}, "'ddp_timeout' = 0 is invalid"),
        ({"nproc": 0}, "'nproc' = 0 is invalid"),
        ({"world_size": 0}, "'world_size' = 0 is invalid"),
        ({"nproc": 2, "world_size": 3, "offset": 2}, r"ranks up to 3, but 'world_size' = 3"),
        ({"port": "http"}, "'port' = 'http' is invalid"),
    ],
)
def test_bad_multi_process_settings_fail_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):  # make_config refuses them
        config = rad.make_config("BPR", "ml-100k", None, {**FAST, **overrides})
        distributed.process_counts(config)
        distributed.backend(config)
        distributed.timeout(config)


def test_backend_auto_is_gloo_without_cuda_and_nccl_needs_a_gpu():
    config = rad.make_config("BPR", "ml-100k", None, {**FAST, "use_gpu": False})
    assert distributed.backend(config) == "gloo"
    config["ddp_backend"] = "nccl"
    with pytest.raises(ValueError, match="'ddp_backend' = 'nccl' needs CUDA GPUs"):
        distributed.backend(config)


def test_single_process_defaults_launch_nothing():
    config = rad.make_config("BPR", "ml-100k", None, FAST)
    assert (distributed.process_counts(config), distributed.wants_processes(config)) == (
        (1, 1),
        False,
    )
    assert (distributed.global_rank(config), distributed.rank_seed(config)) == (0, config["seed"])
    config["world_size"] = 2  # one process of a two-machine run (RecBole's rule)
    assert distributed.wants_processes(config)


def test_a_multi_process_checkpoint_resumes_on_as_many_ranks_only(tmp_path):
    config = rad.make_config("BPR", "ml-100k", None, FAST)
    one_rank = {"rng": "r", "scheme_state": "s"}
    assert checkpoints.own_rank_state(one_rank, config, "x.pth") == one_rank
    with pytest.raises(
        ValueError, match=r"x.pth was written by a run of 2 process\(es\), this run has 1"
    ):
        checkpoints.own_rank_state({**one_rank, "ranks": [one_rank, one_rank]}, config, "x.pth")


# --- two ranks, end to end -------------------------------------------------------------------
def one_process_evaluation(overrides: dict, checkpoint: str) -> tuple[dict, dict]:
    """The saved model evaluated by a single process on the same data: (valid, test)."""
    single = {k: v for k, v in overrides.items() if k not in ("nproc", "port", "results_file")}
    config = rad.make_config("BPR", "ml-100k", None, single)
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = rad.data_preparation(config, rad.create_dataset(config))
    model = get_model("BPR")(config, train._dataset).to(config["device"])
    trainer = rad.AutoDenoiseTrainer(config, model)
    lowered = [
        {k.lower(): float(v) for k, v in trainer.evaluate(data, model_file=checkpoint).items()}
        for data in (valid, test)
    ]
    return lowered[0], lowered[1]


@pytest.fixture(scope="module")
def soft_run(tmp_path_factory):
    """AutoDenoise-S (epoch credit) on two ranks, 2 epochs, run once for this module: (folder,
    overrides, results). The resume test compares against it."""
    folder = tmp_path_factory.mktemp("ddp-soft")
    here = os.getcwd()
    os.chdir(folder)
    try:
        overrides = ddp_overrides("autodenoise_s", controller_credit="epoch")
        return folder, overrides, run("BPR", "ml-100k", config_dict=overrides)
    finally:
        os.chdir(here)


# AutoDenoise-S with the paper's epoch credit, AutoDenoise-H with user credit (each credit's
# all-reduce once, each controller head once) and a baseline without a controller
@pytest.mark.slow
@pytest.mark.parametrize(
    "scheme, credit", [("autodenoise_s", "epoch"), ("autodenoise_h", "user"), ("adt_rl", None)]
)
def test_two_ranks_agree_every_epoch_and_metrics_equal_one_process(
    tmp_path, scheme, credit, request
):
    if scheme == "autodenoise_s":
        tmp_path, overrides, results = request.getfixturevalue("soft_run")
    else:
        # user credit (experimental) learns from the guide part of a guide/select split (refused
        # without one); each rank imports the experimental package from the key
        split = {"clean_valid_guide_ratio": 0.5, "experimental": True} if credit == "user" else {}
        overrides = ddp_overrides(
            scheme, **({"controller_credit": credit} if credit else {}), **split
        )
        results = run("BPR", "ml-100k", config_dict=overrides)

    # one results file (rank 0's), one best model and its latest state
    assert sorted(p.name for p in tmp_path.rglob("*.json")) == ["r.json"]
    assert json.loads((tmp_path / "r.json").read_text())["test"] == results["test"]
    checkpoint = results["checkpoint"]
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == sorted(
        [Path(checkpoint).name, Path(checkpoint).name[:-4] + "-latest.pth"]
    )
    assert results["plugin_config"]["world_size"] == 2 and results["device"] == "cpu"

    # after every epoch both ranks hold the same model, controller and baseline, bit for bit
    epochs = results["epochs"]
    assert [record["epoch"] for record in epochs] == [0, 1]
    for record in epochs:
        first, second = record["rank_digests"]
        assert len(first) == 64 and first == second
    assert epochs[0]["rank_digests"][0] != epochs[1]["rank_digests"][0]
    if credit == "user":  # every rank rewards the users of the whole guide part
        rewarded = [record["controller_users_rewarded"] for record in epochs]
        assert rewarded[0] == rewarded[1] and 0 < rewarded[0] <= results["data"]["users"]
    if (
        credit == "epoch"
    ):  # the controller learned from a finite reward, with the same b on both ranks
        assert [math.isfinite(record["controller_reward"]) for record in epochs] == [True, True]
        assert epochs[0]["controller_baseline"] == 0.0
        assert epochs[1]["controller_baseline"] == pytest.approx(
            0.1 * epochs[0]["controller_reward"], rel=1e-12
        )

    # the weight study counts both ranks' samples: every training row once, plus the sampler's
    # padding
    train_rows = results["data"]["train"]
    for record in epochs:
        assert record["tp_samples"] + record["fp_samples"] == 2 * math.ceil(train_rows / 2)

    # exact evaluation: equal to a single process evaluating the saved best model
    valid, test = one_process_evaluation(overrides, str(tmp_path / checkpoint))
    assert results["test"] == test
    assert results["best_valid_result"] == valid


@pytest.mark.slow
def test_a_rank_failing_on_bad_input_stops_the_run_with_its_error(tmp_path):
    overrides = ddp_overrides(
        "autodenoise_s", controller_state="loss_features", epochs=1, experimental=True
    )  # loss_features: experimental
    with pytest.raises(
        RankFailed, match="controller_state' = 'loss_features' is single-process only"
    ):
        run("BPR", "ml-100k", config_dict=overrides)
    assert not (tmp_path / "r.json").exists()


def _rank_processes(parent: int) -> list[int]:
    """The spawned ranks under ``parent`` (multiprocessing's ``spawn_main`` children), oldest
    first."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return sorted(found)


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="finds the ranks through Linux's /proc"
)
def test_a_killed_rank_stops_the_run_with_a_clear_error(tmp_path):
    command = [
        sys.executable,
        str(REPO / "run_recbole_denoise.py"),
        "--model=BPR",
        "--dataset=ml-100k",
        "--scheme=adt_rl",
        "--nproc=2",
        f"--port={free_port()}",
        "--ddp_backend=gloo",
        "--epochs=100",
        "--show_progress=False",
        "--state=WARNING",
        "--results_file=r.json",
    ]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        ranks: list[int] = []
        deadline = time.monotonic() + 120
        while len(ranks) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            ranks = _rank_processes(process.pid)
        assert len(ranks) == 2, (
            process.stderr.read() if process.poll() is not None else "ranks never started"
        )
        time.sleep(
            3
        )  # the ranks are importing, loading or training: wherever they are, the run must stop
        os.kill(ranks[1], signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)  # a hang fails here
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2
    assert "error: rank 1 of 2 died (signal SIGKILL); the other ranks were stopped" in stderr
    assert not (tmp_path / "r.json").exists()
    assert all(
        not Path(f"/proc/{pid}").exists()
        or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split()[2]
        for pid in ranks
    )


@pytest.mark.slow
def test_a_rank_whose_peer_never_comes_stops_after_ddp_timeout(tmp_path):
    # one process of a two-machine run, the other machine never starts: rank 0 waits ddp_timeout
    overrides = {**BASE, "world_size": 2, "port": free_port(), "ddp_timeout": 3}
    with pytest.raises(RankFailed, match="a rank failed"):
        run("BPR", "ml-100k", config_dict=overrides)


def test_ranks_that_disagree_stop_the_run(monkeypatch):
    monkeypatch.setattr(distributed, "gather_objects", lambda value: [value, "0" * 64])
    with pytest.raises(
        ValueError,
        match=r"ranks diverged: the controller differs between ranks \(\['ab', '0{64}'\]\)",
    ):
        distributed.check_agreement("the controller", "ab")
    assert distributed.check_agreement("the controller", "0" * 64) == ["0" * 64, "0" * 64]


def test_digest_is_bitwise():
    import torch

    one = torch.tensor([1.0, 2.0])
    assert checkpoints.digest({"w": one}, 0.5) == checkpoints.digest({"w": one.clone()}, 0.5)
    nudged = torch.nextafter(one, one + 1)
    assert checkpoints.digest({"w": one}, 0.5) != checkpoints.digest({"w": nudged}, 0.5)
    assert checkpoints.digest({"w": one}, 0.5) != checkpoints.digest({"w": one}, 0.5000000000000001)


def test_a_sharded_evaluation_loader_is_refused_under_ddp():
    from torch.utils.data.distributed import DistributedSampler

    class Loader:
        sampler = DistributedSampler(list(range(10)), num_replicas=2, rank=0)

    # a single process may evaluate any loader
    distributed.check_whole_set(Loader(), {"single_spec": True})
    with pytest.raises(ValueError, match="every rank evaluates the whole set"):
        distributed.check_whole_set(Loader(), {"single_spec": False})


@pytest.mark.slow
def test_a_two_rank_run_resumes_exactly_on_two_ranks(tmp_path, soft_run):
    """Stopped after epoch 0 and resumed, a run reaches the state (digest) and test metrics of the
    same run trained without a break: every rank's random state and controller generator come
    back."""
    _, soft, straight = soft_run
    first = run(
        "BPR",
        "ml-100k",
        config_dict={**soft, "port": free_port(), "epochs": 1, "results_file": "b.json"},
    )
    latest = first["checkpoint"][:-4] + "-latest.pth"
    resumed = run(
        "BPR",
        "ml-100k",
        config_dict={**soft, "port": free_port(), "results_file": "c.json"},
        resume=latest,
    )
    assert resumed["resumed_from"] == latest
    assert [r["epoch"] for r in resumed["epochs"]] == [0, 1]
    assert resumed["epochs"][1]["rank_digests"] == straight["epochs"][1]["rank_digests"]
    assert resumed["test"] == straight["test"]


def _put_large_result(rank: int, size: int, queue) -> None:
    if rank == 0:
        queue.put({"history": "x" * size})


@pytest.mark.slow
def test_the_launcher_returns_a_result_far_bigger_than_a_pipe_buffer():
    # rank 0's results grow with the epochs; a pipe holds 64 KiB: read while the ranks run, or hang
    assert distributed.launch(_put_large_result, 2, (4 * 1024 * 1024,)) == {
        "history": "x" * 4 * 1024 * 1024
    }


def test_recbole_creates_its_folders_without_a_race(tmp_path, monkeypatch):
    # two ranks: the first's exists-check says "missing", then the other creates the folder
    import recbole.utils.logger as logger_module

    real_exists = os.path.exists
    monkeypatch.setattr(
        os.path, "exists", lambda path: False if str(path).endswith("racy") else real_exists(path)
    )
    (tmp_path / "racy").mkdir()
    logger_module.ensure_dir(str(tmp_path / "racy"))  # RecBole's own raised FileExistsError here
    assert (tmp_path / "racy").is_dir()
