"""What a resume, a checkpoint and an output file refuse or keep: a changed setting outside the
allow-list refused before any data loads (naming the key and both values), a checksummed but
malformed checkpoint refused with what is wrong, torch's ``weights_only=False`` advice never
passed on, a full disk reported with the last good file kept, and a replaced file's permissions
kept (new files 0644 under the usual umask)."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import pytest
import torch

import recbole_autodenoise.experimental  # noqa: F401  (l2rw below: experimental)
import recbole_autodenoise as rad
from recbole_autodenoise import checkpoints, cli, files, quick_start
from recbole_autodenoise.checkpoints import check_resumable, load_trainer_checkpoint, plain_config
from tests.conftest import GUIDED_TINY
from tests.test_checkpoints import TINY, fake_checkpoint, tiny_trainer

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
NO_DATA = "no-such-data"  # a data set that does not exist: a refusal proves no data was loaded


def settings(tmp_path: Path, **overrides) -> dict:
    """The plain settings ``make_config`` gives BPR + AutoDenoise-S on a data set that does not
    exist."""
    config = rad.make_config(
        "BPR",
        NO_DATA,
        config_dict={"data_path": str(tmp_path), "denoise_scheme": "autodenoise_s", **overrides},
    )
    return plain_config(config)


def saved_checkpoint(tmp_path: Path, checkpoint: dict) -> Path:
    path = tmp_path / "saved" / "BPR-run-latest.pth"
    path.parent.mkdir(exist_ok=True)
    checkpoints.atomic_torch_save(checkpoint, path)
    return path


def resume(tmp_path: Path, path: Path, **overrides):
    return quick_start.run(
        "BPR",
        NO_DATA,
        config_dict={"data_path": str(tmp_path), "denoise_scheme": "autodenoise_s", **overrides},
        resume=path,
    )


# --- a changed setting ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, saved, new",
    [
        ("clean_rating_threshold", 3, 4),
        ("eval_protocol", "user_first", "interaction"),
        ("clean_valid_guide_ratio", 0.0, 0.5),
        ("noise_rate", 0.0, 0.1),
        ("noise_kind", "random", "popular"),
        ("seed", 2020, 7),
        ("learning_rate", 1e-3, 1e-2),
        ("train_batch_size", 2048, 512),
        ("embedding_size", 64, 32),  # a model key
        ("controller_learning_rate", 1e-3, 1e-2),  # a scheme key
        ("reward_metric", "GAUC", "NDCG@10"),
        ("user_inter_num_interval", "[10,inf)", "[5,inf)"),  # the data's filter
    ],
)
def test_a_changed_setting_is_refused_before_any_data_loads(tmp_path, key, saved, new):
    path = saved_checkpoint(tmp_path, fake_checkpoint(settings(tmp_path, **{key: saved})))
    message = (
        f"{path} was trained with {key}={saved!r}, this run uses {new!r}: "
        "a resume continues the same run"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        resume(tmp_path, path, **{key: new})
    assert not (tmp_path / "log").exists()  # refused before logging started


def test_a_changed_split_is_refused_naming_both_values(tmp_path):
    path = saved_checkpoint(tmp_path, fake_checkpoint(settings(tmp_path)))
    split = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"}
    with pytest.raises(
        ValueError,
        match=r"was trained with eval_args=\{'split': \{'RS': \[4, 1, 1\]\}.*"
        r"this run uses \{'split': \{'RS': \[0\.8, 0\.1, 0\.1\]\}",
    ):
        resume(tmp_path, path, eval_args=split)


def test_every_changed_setting_is_named_at_once(tmp_path):
    path = saved_checkpoint(tmp_path, fake_checkpoint(settings(tmp_path)))
    with pytest.raises(
        ValueError,
        match=re.escape("clean_rating_threshold=3, this run uses 4; seed=2020, this run uses 1:"),
    ):
        resume(tmp_path, path, clean_rating_threshold=4, seed=1)


def test_a_setting_only_one_side_has_is_a_change():
    saved = {"model": "BPR", "my_key": 1}
    with pytest.raises(
        ValueError,
        match=re.escape(
            "x.pth was trained with my_key=1, this run leaves it unset; "
            "your_key unset, this run uses 2:"
        ),
    ):
        checkpoints.check_same_settings(saved, {"model": "BPR", "your_key": 2}, "x.pth")


def test_the_cli_refuses_another_threshold_with_exit_2_and_both_values(tmp_path, capsys):
    path = saved_checkpoint(tmp_path, fake_checkpoint(settings(tmp_path, clean_rating_threshold=3)))
    code = cli.main(
        [
            "--model=BPR",
            f"--dataset={NO_DATA}",
            f"--data_path={tmp_path}",
            "--scheme=autodenoise_s",
            "--clean_rating_threshold=4",
            f"--resume={path}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"error: {path} was trained with clean_rating_threshold=3, this run uses 4: "
    )
    assert "Traceback" not in err


def test_settings_on_the_allow_list_may_change(tmp_path):
    saved = settings(tmp_path, epochs=4)
    changed = {
        "epochs": 9,
        "stopping_step": 3,
        "stopping_min_epochs": 1,
        "checkpoint_dir": str(tmp_path / "elsewhere"),
        "results_file": str(tmp_path / "r.json"),
        "show_progress": False,
        "state": "WARNING",
        "metric_decimal_place": 3,
        "gpu_id": "1",
        "port": 29123,
    }
    current = settings(tmp_path, **changed)
    assert {key for key in current if current[key] != saved[key]} == set(changed)
    check_resumable(fake_checkpoint(saved), "x.pth", current)
    assert set(changed) <= checkpoints.RESUMABLE_KEYS


def test_every_key_that_may_change_is_listed_in_the_guide():
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("#### What may change on resume", 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert checkpoints.RESUMABLE_KEYS <= listed, sorted(checkpoints.RESUMABLE_KEYS - listed)


# --- a real checkpoint on tiny data ---------------------------------------------------------
@pytest.mark.slow
def test_a_trained_checkpoint_resumes_with_more_epochs_and_refuses_another_threshold(tmp_path):
    """The trainer adds the reward's metric (MRR) to ``metrics``; the checkpoint records the
    settings as the run chose them, so the same command resumes."""
    run_settings = {
        "denoise_scheme": "autodenoise_s",
        "reward_metric": "MRR@5",
        "clean_rating_threshold": 3,
    }
    first, train, valid = tiny_trainer(tmp_path, epochs=1, **run_settings)
    assert "mrr" in first.config["metrics"]
    first.fit(train, valid)
    latest = first.latest_model_file
    checkpoint = load_trainer_checkpoint(latest)
    assert checkpoint["format_version"] == checkpoints.FORMAT_VERSION
    assert (
        checkpoint["config"]["clean_rating_threshold"] == 3
        and "mrr" not in checkpoint["config"]["metrics"]
    )

    base = {"data_path": str(tmp_path), **TINY, **run_settings}
    with pytest.raises(
        ValueError,
        match=re.escape(f"{latest} was trained with clean_rating_threshold=3, this run uses 4"),
    ):
        quick_start.run(
            "BPR",
            "tiny",
            config_dict={**base, "epochs": 2, "clean_rating_threshold": 4},
            resume=latest,
        )
    results = quick_start.run(
        "BPR", "tiny", config_dict={**base, "epochs": 2, "results_file": "r.json"}, resume=latest
    )
    assert results["resumed_from"] == latest
    assert [r["epoch"] for r in results["epochs"]] == [0, 1]


@pytest.mark.slow
def test_a_scheme_state_that_does_not_fit_is_one_error(tmp_path):
    first, train, valid = tiny_trainer(tmp_path, epochs=1, denoise_scheme="autodenoise_s")
    first.fit(train, valid)
    checkpoint = checkpoints.load_checkpoint(first.latest_model_file)
    checkpoint["denoise"]["scheme_state"] = {}
    checkpoints.atomic_torch_save(checkpoint, first.latest_model_file)
    again, _, _ = tiny_trainer(tmp_path, epochs=2, denoise_scheme="autodenoise_s")
    with pytest.raises(
        ValueError,
        match=re.escape(f"{first.latest_model_file} does not fit this run: KeyError: 'generator'"),
    ):
        again.resume_checkpoint(first.latest_model_file)


@pytest.mark.slow
def test_a_guided_run_needs_its_guide_state(tmp_path):
    first, train, valid = tiny_trainer(tmp_path, epochs=1, denoise_scheme="l2rw", **GUIDED_TINY)
    first.fit(train, valid)
    checkpoint = checkpoints.load_checkpoint(first.latest_model_file)
    del checkpoint["denoise"]["guide"]
    checkpoints.atomic_torch_save(checkpoint, first.latest_model_file)
    again, _, _ = tiny_trainer(tmp_path, epochs=2, denoise_scheme="l2rw", **GUIDED_TINY)
    with pytest.raises(
        ValueError, match="is malformed: it has no denoise.guide entry, which this run needs"
    ):
        again.resume_checkpoint(first.latest_model_file)


# --- malformed checkpoints ----------------------------------------------------------------------
def without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


def changed_denoise(**changes) -> dict:
    return {**fake_checkpoint()["denoise"], **changes}


def changed_rng(**changes) -> dict:
    denoise = fake_checkpoint()["denoise"]
    return {**denoise, "rng": {**denoise["rng"], **changes}}


@pytest.mark.parametrize(
    "checkpoint, message",
    [
        (
            without(fake_checkpoint(), "format_version"),
            "has no format_version: it was written by an earlier",
        ),
        (
            fake_checkpoint(format_version=2),
            "has format_version 2, this version reads format_version 1",
        ),
        (without(fake_checkpoint(), "epoch"), "is malformed: it has no epoch entry"),
        ({**fake_checkpoint(), "epoch": -1}, "is malformed: epoch is -1, expected an integer >= 0"),
        (
            {**fake_checkpoint(), "epoch": "1"},
            "is malformed: epoch is '1', expected an integer >= 0",
        ),
        (
            {**fake_checkpoint(), "epoch": True},
            "is malformed: epoch is True, expected an integer >= 0",
        ),
        (
            {**fake_checkpoint(), "kind": "other"},
            "is malformed: kind is 'other', expected 'best' or 'latest'",
        ),
        (
            {**fake_checkpoint(), "config": {"dataset": "tiny"}},
            "is malformed: it has no config.model entry",
        ),
        (
            {**fake_checkpoint(), "state_dict": [torch.ones(1)]},
            "is malformed: state_dict is a list of 1 entries, "
            "expected a dict of parameter name: tensor",
        ),
        (
            {**fake_checkpoint(), "best_epoch": 5},
            "is malformed: best_epoch 5 comes after its epoch 1",
        ),
        (
            {**fake_checkpoint(), "train_loss_dict": {"0": 0.7}},
            "is malformed: train_loss_dict is a dict of 1 entries",
        ),
        (
            {**fake_checkpoint(), "denoise": without(fake_checkpoint()["denoise"], "rng")},
            "is malformed: it has no denoise.rng entry",
        ),
        (
            {**fake_checkpoint(), "denoise": changed_denoise(history="epochs")},
            "is malformed: denoise.history is 'epochs', expected a list of dicts",
        ),
        (
            {**fake_checkpoint(), "denoise": changed_rng(torch=torch.zeros(3, dtype=torch.uint8))},
            "is malformed: denoise.rng.torch is a torch.uint8 tensor of shape (3,), "
            "expected a generator state",
        ),
        (
            {
                **fake_checkpoint(),
                "denoise": changed_rng(
                    numpy={
                        "keys": torch.zeros(5, dtype=torch.int64),
                        "pos": 0,
                        "has_gauss": 0,
                        "cached": 0.0,
                    }
                ),
            },
            "is malformed: denoise.rng.numpy.keys is a torch.int64 tensor of shape (5,), "
            "expected an int64 tensor of 624",
        ),
        (
            {**fake_checkpoint(), "denoise": changed_denoise(ranks=[{"scheme_state": {}}])},
            "is malformed: it has no denoise.ranks.0.rng entry",
        ),
    ],
    ids=lambda value: "" if isinstance(value, dict) else value.split(":")[0][:40],
)
def test_a_malformed_checkpoint_is_refused_saying_what_is_wrong(tmp_path, checkpoint, message):
    path = saved_checkpoint(tmp_path, checkpoint)
    with pytest.raises(ValueError, match=re.escape(f"{path} {message}")):
        resume(tmp_path, path)


def test_the_cli_refuses_a_negative_epoch_without_a_traceback(tmp_path, capsys):
    path = saved_checkpoint(tmp_path, {**fake_checkpoint(settings(tmp_path)), "epoch": -1})
    code = cli.main(
        ["--model=BPR", f"--dataset={NO_DATA}", f"--data_path={tmp_path}", f"--resume={path}"]
    )
    err = capsys.readouterr().err
    assert (
        code == 2 and err == f"error: {path} is malformed: epoch is -1, expected an integer >= 0\n"
    )


@pytest.mark.slow
def test_evaluate_refuses_a_best_model_of_another_format(tmp_path):
    trainer, train, valid = tiny_trainer(tmp_path, epochs=1)
    trainer.fit(train, valid)
    checkpoint = checkpoints.load_checkpoint(trainer.saved_model_file)
    checkpoints.atomic_torch_save({**checkpoint, "format_version": 0}, trainer.saved_model_file)
    with pytest.raises(
        ValueError, match="has format_version 0, this version reads format_version 1"
    ):
        trainer.evaluate(valid)


@pytest.mark.parametrize(
    "content", [Path("x"), __import__("numpy").zeros(2)], ids=["path", "numpy"]
)
def test_a_refused_object_never_ends_with_torchs_weights_only_advice(tmp_path, capsys, content):
    path = tmp_path / "evil.pth"
    torch.save({"p": content, "checksum": "sha256:0"}, path)
    code = cli.main(
        ["--model=BPR", f"--dataset={NO_DATA}", f"--data_path={tmp_path}", f"--resume={path}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"error: {path} is not a readable checkpoint (it holds objects other than tensors "
        "and plain values (Unsupported global: GLOBAL "
    )
    assert "weights_only" not in err and "\x1b" not in err and "Traceback" not in err
    assert err.rstrip().endswith(
        "recbole_autodenoise checkpoints never do, and such a file is not unpickled"
    )


# --- a full disk --------------------------------------------------------------------------------
def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """A file handle whose writes fail as on a full disk."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data):
        no_space()

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


def fill_the_disk(monkeypatch, where: str) -> None:
    if where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(
            os, "fdopen", lambda fd, *args, **kwargs: FullDisk(real_fdopen(fd, *args, **kwargs))
        )
    else:  # delayed allocation: the blocks are claimed when the data is flushed to disk
        monkeypatch.setattr(os, "fsync", no_space)


WRITERS = {
    "results": (
        lambda path, value: quick_start.write_json_atomic(path, {"value": value}),
        lambda path: json.loads(path.read_text())["value"],
    ),
    "checkpoint": (
        lambda path, value: checkpoints.atomic_torch_save({"value": value}, path),
        lambda path: checkpoints.load_checkpoint(path)["value"],
    ),
}


@pytest.mark.parametrize("where", ["write", "fsync"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_full_disk_says_so_and_keeps_the_last_good_file(tmp_path, monkeypatch, kind, where):
    write, read = WRITERS[kind]
    path = tmp_path / "out.file"
    write(path, 1)
    fill_the_disk(monkeypatch, where)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"no space left on {path} (No space left on device): the previous file is kept"
        ),
    ):
        write(path, 2)
    monkeypatch.undo()
    assert read(path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.file"]  # the temporary file removed


def test_a_full_disk_on_a_new_file_writes_nothing(tmp_path, monkeypatch):
    fill_the_disk(monkeypatch, "write")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"no space left on {tmp_path / 'new.json'} (No space left on "
            "device): nothing was written"
        ),
    ):
        quick_start.write_json_atomic(tmp_path / "new.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_pass_unchanged(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(os, "fsync", denied)
    with pytest.raises(PermissionError):
        quick_start.write_json_atomic(tmp_path / "new.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_run_whose_checkpoint_meets_a_full_disk_exits_2(tmp_path, monkeypatch, capsys):
    from tests.conftest import write_inter
    from tests.test_checkpoints import tiny_rows

    write_inter(tmp_path, "tiny", tiny_rows())
    monkeypatch.setattr(os, "fsync", no_space)
    code = cli.main(
        [
            "--model=BPR",
            "--dataset=tiny",
            f"--data_path={tmp_path}",
            "--scheme=default",
            "--epochs=1",
            *(f"--{key}={value}" for key, value in TINY.items()),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert re.fullmatch(
        r"error: no space left on saved/BPR-\S+\.pth \(No space left on device\): nothing was "
        r"written\n",
        err,
    ), err
    assert not list((tmp_path / "saved").glob(".tmp-*"))


# --- permissions ------------------------------------------------------------------------------
@pytest.fixture
def umask():
    """Set the process's umask for a test, restoring it afterwards."""
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_usual_permissions(tmp_path, umask, kind, mask, expected):
    umask(mask)
    WRITERS[kind][0](tmp_path / "new.file", 1)
    assert mode(tmp_path / "new.file") == expected


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("before", [0o600, 0o664, 0o640])
def test_a_replaced_file_keeps_its_permissions(tmp_path, umask, kind, before):
    path = tmp_path / "out.file"
    WRITERS[kind][0](path, 1)
    os.chmod(path, before)
    WRITERS[kind][0](path, 2)
    assert mode(path) == before and WRITERS[kind][1](path) == 2


def test_atomic_write_keeps_the_mode_for_text_files_too(tmp_path, umask):
    path = tmp_path / "table.md"
    path.write_text("old\n")
    os.chmod(path, 0o604)
    with files.atomic_write(path) as handle:
        handle.write("new\n")
    assert mode(path) == 0o604 and path.read_text() == "new\n"
