"""Issue 10: no code runs from input (config values, yaml, pickled caches), no stale split, an
unwritable results_file refused before any work, results files in strict JSON."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import pytest
import recbole

from recbole_autodenoise import cli, quick_start
from recbole_autodenoise.config import make_config
from recbole_autodenoise.data import create_dataset, data_preparation
from tests.conftest import FAST


class _Stop(Exception):
    """Raised in place of loading data: everything the test checks happens before it."""


def _payload(marker: Path) -> str:
    """Python source that would create ``marker`` if anything evaluated it."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


@pytest.fixture
def stop_before_data(monkeypatch):
    """Record the config ``run`` built, then stop before any data is loaded."""
    seen = {}

    def _create_dataset(config):
        seen["config"] = config
        raise _Stop

    monkeypatch.setattr(quick_start, "create_dataset", _create_dataset)
    return seen


class _PicklePayload:
    """Unpickling this creates the folder ``marker`` (what a planted cache could do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_PicklePayload(marker)))


# --- 1. no code runs from config values ---------------------------------------------------------


def _declaring_my_note(tmp_path: Path) -> Path:
    """A user config file that declares the custom key ``my_note`` (keys no component defines are
    refused unless a user file declares them)."""
    path = tmp_path / "my_model.yaml"
    path.write_text('my_note: ""\n', encoding="utf-8")
    return path


def test_command_line_payload_runs_nothing_and_stays_text(tmp_path, stop_before_data):
    marker = tmp_path / "pwned"
    with pytest.raises(_Stop):
        cli.main(
            [
                "--model=BPR",
                "--dataset=ml-100k",
                "--scheme=default",
                f"--my_note={_payload(marker)}",
                f"--config_files={_declaring_my_note(tmp_path)}",
            ]
        )
    assert not marker.exists()
    assert stop_before_data["config"]["my_note"] == _payload(marker)


def test_payload_in_a_checked_key_is_refused_as_text_before_any_work(tmp_path, capsys):
    marker = tmp_path / "pwned"
    assert (
        cli.main(
            ["--model=BPR", "--dataset=ml-100k", "--scheme=default", f"--epochs={_payload(marker)}"]
        )
        == 2
    )
    assert not marker.exists()
    assert f"config key 'epochs' = {_payload(marker)!r} is invalid" in capsys.readouterr().err


def test_config_dict_payload_runs_nothing_and_literals_still_parse(tmp_path, stop_before_data):
    marker = tmp_path / "pwned"
    overrides = {
        "my_note": _payload(marker),
        "learning_rate": "5e-4",
        "topk": "[10, 20]",
        "show_progress": "FALSE",
        "denoise_scheme": "default",
    }
    with pytest.raises(_Stop):
        quick_start.run(
            "BPR", "ml-100k", config_files=[_declaring_my_note(tmp_path)], config_dict=overrides
        )
    config = stop_before_data["config"]
    assert not marker.exists()
    assert config["my_note"] == _payload(marker)
    assert (config["learning_rate"], config["topk"], config["show_progress"]) == (
        5e-4,
        [10, 20],
        False,
    )


def test_yaml_file_payload_runs_nothing(tmp_path, stop_before_data):
    marker = tmp_path / "pwned"
    mine = tmp_path / "mine.yaml"
    mine.write_text(f'my_note: "{_payload(marker)}"\nlearning_rate: 5e-4\n', encoding="utf-8")
    with pytest.raises(_Stop):
        cli.main(["--model=BPR", "--dataset=ml-100k", f"--config_files={mine}"])
    assert not marker.exists()
    assert (stop_before_data["config"]["my_note"], stop_before_data["config"]["learning_rate"]) == (
        _payload(marker),
        5e-4,
    )


def test_python_yaml_tags_are_refused_in_recbole_property_files(tmp_path):
    """RecBole reads ``properties/dataset/<dataset>.yaml`` (a dataset name may climb out of the
    package) with ``yaml.FullLoader``, which builds live Python objects from ``!!python`` tags."""
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/name:os.system\n", encoding="utf-8")
    recbole_dataset_dir = Path(recbole.__file__).resolve().parent / "properties" / "dataset"
    dataset = os.path.relpath(tmp_path / "evil", recbole_dataset_dir)
    with pytest.raises(ValueError, match="python/name:os.system"):
        make_config("BPR", dataset)


# --- 2. no pickled cache is ever read; caches refused -------------------------------------------


def _numbers(results: dict) -> tuple:
    return results["data"], results["test"], results["best_valid_score"]


@pytest.mark.slow
def test_planted_cache_pickles_are_never_loaded(tmp_path, monkeypatch):
    one_epoch = dict(FAST, epochs=1, denoise_scheme="default")
    (tmp_path / "clean").mkdir()
    monkeypatch.chdir(tmp_path / "clean")
    expected = _numbers(quick_start.run("BPR", "ml-100k", config_dict=one_epoch, saved=False))

    (tmp_path / "planted").mkdir()
    monkeypatch.chdir(tmp_path / "planted")
    marker = tmp_path / "pwned"
    for name in (
        "ml-100k-for-BPR-dataloader.pth",
        "ml-100k-Dataset.pth",
        "ml-100k-CleanDataset.pth",
    ):
        _plant(Path("saved") / name, marker)
    got = _numbers(quick_start.run("BPR", "ml-100k", config_dict=one_epoch, saved=False))
    assert not marker.exists()
    assert got == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("save_dataset", True),
        ("save_dataloaders", True),
        ("dataset_save_path", "cache.pth"),
        ("dataloaders_save_path", "cache.pth"),
    ],
)
def test_cache_settings_are_refused_before_any_work(tmp_path, stop_before_data, key, value):
    marker = tmp_path / "pwned"
    _plant(tmp_path / "cache.pth", marker)
    with pytest.raises(
        ValueError,
        match=f"caches are off: they are pickles and ignore the plugin's keys; got {{'{key}'",
    ):
        quick_start.run("BPR", "ml-100k", config_dict={key: value, "denoise_scheme": "default"})
    assert "config" not in stop_before_data
    assert not marker.exists()


def test_cache_settings_are_refused_by_the_data_api_too():
    config = make_config(
        "BPR", "ml-100k", config_dict={"save_dataloaders": True, "denoise_scheme": "default"}
    )
    with pytest.raises(ValueError, match="caches are off"):
        create_dataset(config)
    with pytest.raises(ValueError, match="caches are off"):
        data_preparation(config, None)


# --- 3. a changed key never reuses a stale split ------------------------------------------------


@pytest.mark.slow
def test_a_saved_split_of_another_threshold_is_never_reused():
    from recbole.data.utils import save_split_dataloaders

    keys = {"denoise_scheme": "default", "state": "WARNING", "eval_protocol": "interaction"}
    config3 = make_config("BPR", "ml-100k", config_dict=keys)
    loaders3 = data_preparation(config3, create_dataset(config3))
    sizes3 = [len(loader._dataset) for loader in loaders3[1:]]
    assert sizes3 == [12809, 12138]  # the guide's table (exact chronology, hashed same-second ties)
    save_split_dataloaders(config3, loaders3)  # what RecBole's save_dataloaders left in saved/
    assert Path("saved/ml-100k-for-BPR-dataloader.pth").is_file()

    config5 = make_config("BPR", "ml-100k", config_dict=dict(keys, clean_rating_threshold=5))
    loaders5 = data_preparation(config5, create_dataset(config5))
    for loader, size3 in zip(loaders5[1:], sizes3):
        ratings = loader._dataset.inter_feat["rating"]
        assert 0 < len(ratings) < size3
        assert bool((ratings >= 5).all())


# --- 4. results_file checked before any work ----------------------------------------------------


def _bad_results_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    return {
        "directory": (tmp_path / "folder.json", "it is a directory"),
        "parent is a file": (
            tmp_path / "afile" / "r.json",
            f"its parent {tmp_path / 'afile'} is a file",
        ),
        "ancestor is a file": (
            tmp_path / "afile" / "sub" / "r.json",
            f"its parent {tmp_path / 'afile'} is a file",
        ),
        "/proc": (Path("/proc/self/r.json"), "its folder /proc/self is not writable"),
        "/proc, new folder": (
            Path("/proc/autodenoise/r.json"),
            "its folder /proc/autodenoise is not writable",
        ),
    }


@pytest.mark.parametrize(
    "case", ["directory", "parent is a file", "ancestor is a file", "/proc", "/proc, new folder"]
)
def test_unwritable_results_file_is_refused_before_loading_data(tmp_path, stop_before_data, case):
    path, reason = _bad_results_paths(tmp_path)[case]
    with pytest.raises(ValueError) as error:
        quick_start.run(
            "BPR", "ml-100k", config_dict={"results_file": str(path), "denoise_scheme": "default"}
        )
    assert str(error.value).startswith(f"results_file {path} cannot be written: {reason}")
    assert "config" not in stop_before_data


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(
            ValueError, match=f"results_file {folder / 'r.json'} cannot be written: its folder"
        ):
            quick_start.check_results_path(str(folder / "r.json"))
    finally:
        folder.chmod(0o700)


# --- 5. strict JSON -----------------------------------------------------------------------------


def _strict_loads(text: str):
    def _refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=_refuse)


def test_non_finite_values_become_null_and_are_listed(tmp_path):
    path = tmp_path / "r.json"
    quick_start.write_json_atomic(
        path, {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": {"e": 0.5, "f": None}}
    )
    assert _strict_loads(path.read_text(encoding="utf-8")) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": {"e": 0.5, "f": None},
        "non_finite": ["a", "b.1", "b.2.c"],
    }
    quick_start.write_json_atomic(path, {"a": 1.0, "b": [2, "x"]})  # all finite: no flag
    assert _strict_loads(path.read_text(encoding="utf-8")) == {"a": 1.0, "b": [2, "x"]}


@pytest.mark.slow
def test_a_run_with_no_noisy_rows_writes_strict_json(tmp_path):
    """clean_rating_threshold=0: no false positives, so their mean weight is NaN."""
    path = tmp_path / "new" / "r.json"
    results = quick_start.run(
        "BPR",
        "ml-100k",
        saved=False,
        config_dict=dict(
            FAST,
            epochs=1,
            denoise_scheme="default",
            clean_rating_threshold=0,
            results_file=str(path),
        ),
    )
    assert math.isnan(results["weight_study"]["fp_mean_weight"])
    written = _strict_loads(path.read_text(encoding="utf-8"))
    assert written["weight_study"]["fp_mean_weight"] is None
    assert "weight_study.fp_mean_weight" in written["non_finite"]
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no probe or temp file left
