"""make_config, CLI value parsing, misspelt keys and strict reading of the plugin's keys."""

from __future__ import annotations

import sys

import pytest

import recbole_autodenoise
from recbole_autodenoise.checks import positive
from recbole_autodenoise.config import (
    check_key_spelling,
    make_config,
    parse_cli_value,
    plugin_defaults,
    plugin_keys,
)
from recbole_autodenoise.options import read_key

# --------------------------------------------------------------------------- parse_cli_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 0.001),
        ("[10, 20]", [10, 20]),
        ("true", True),
        ("True", True),
        ("false", False),
        ("SASRec", "SASRec"),
        ("None", None),
        ("null", None),
        ("~", None),
        ("3", 3),
        ("0.5", 0.5),
        ("{'RS': [4, 1, 1]}", {"RS": [4, 1, 1]}),
        ("NDCG@20", "NDCG@20"),
        ("interaction", "interaction"),
    ],
)
def test_parse_cli_value(text, expected):
    value = parse_cli_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_cli_value_keeps_text_that_yaml_would_empty():
    # yaml reads "#x" as nothing; the user meant the text.
    assert parse_cli_value("#x") == "#x"


# --------------------------------------------------------------------------- key spelling


def test_check_key_spelling_suggests_ours():
    with pytest.raises(ValueError) as info:
        check_key_spelling(["epochs", "denoise_shceme"], plugin_keys())
    message = str(info.value)
    assert "'denoise_shceme'" in message and "'denoise_scheme'" in message


def test_check_key_spelling_passes_ours_and_unrelated_keys():
    known = plugin_keys()
    assert {"denoise_scheme", "clean_rating_threshold", "eval_protocol", "results_file"} <= known
    assert "epochs" not in known and "learning_rate" not in known  # RecBole's own keys
    check_key_spelling(
        ["denoise_scheme", "epochs", "my_own_key", "embedding_size", "MAX_ITEM_LIST_LENGTH"], known
    )


def test_make_config_rejects_misspelt_key_before_loading_data(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data was touched")

    monkeypatch.setattr("recbole.data.dataset.dataset.Dataset.__init__", no_data)
    with pytest.raises(ValueError, match="did you mean 'denoise_scheme'"):
        make_config("BPR", "never-loaded", config_dict={"denoise_shceme": "x"})
    assert not (tmp_path / "log").exists()


def test_make_config_rejects_misspelt_key_in_a_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("clean_rating_treshold: 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match="clean_rating_threshold"):
        make_config("BPR", "ml-100k", config_files=[str(path)])


# ------------------------------------------------------------------------ config files and models


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: [1, 2\nlearning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        make_config("BPR", "ml-100k", config_files=[str(path)])
    assert str(path) in str(info.value) and "malformed" in str(info.value)


def test_yaml_that_is_not_a_mapping_names_the_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- epochs\n- 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="list.yaml"):
        make_config("BPR", "ml-100k", config_files=[str(path)])


def test_missing_config_file_names_it(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError) as info:
        make_config("BPR", "ml-100k", config_files=[str(path)])
    assert str(path) in str(info.value)


@pytest.mark.parametrize("model", ["NoSuchModel", "bpr"])
def test_unknown_model_names_it(model):
    # Whether or not lightgbm/xgboost (RecBole's exlib models) are installed, and for a wrong case.
    with pytest.raises(ValueError) as info:
        make_config(model, "ml-100k")
    assert f"'{model}'" in str(info.value) and "unknown model" in str(info.value)


def test_user_file_overrides_defaults_and_dict_overrides_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nclean_rating_threshold: 4\n", encoding="utf-8")
    config = make_config("BPR", "ml-100k", config_files=[path], config_dict={"epochs": 9})
    assert config["epochs"] == 9
    assert config["clean_rating_threshold"] == 4


# --------------------------------------------------------------------------- defaults and argv


def test_defaults_are_the_papers(tmp_path):
    config = make_config("BPR", "ml-100k")
    defaults = plugin_defaults()
    assert config["epochs"] == defaults["epochs"] == 300
    assert (
        config["user_inter_num_interval"] == "[10,inf)"
        and config["item_inter_num_interval"] == "[10,inf)"
    )
    assert (
        config["eval_args"]["split"] == {"RS": [4, 1, 1]} and config["eval_args"]["order"] == "TO"
    )
    assert (
        config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
        and config["eval_args"]["group_by"] == "user"
    )
    assert config["clean_rating_threshold"] == 3 and config["clean_rating_field"] == "rating"
    assert config["eval_protocol"] == "user_first"
    assert config["topk"] == [10, 20, 50]
    assert config["normalize_all"] is False  # RecBole's ml-100k yaml would normalise ratings
    assert config["train_neg_sample_args"]["sample_num"] == 1  # BPR.yaml


def test_model_yaml_is_loaded_for_sasrec():
    config = make_config("SASRec", "ml-100k")
    assert config["MAX_ITEM_LIST_LENGTH"] == 10
    assert config["loss_type"] == "CE"
    assert (
        config["train_neg_sample_args"]["distribution"] == "none"
    )  # CE: none, as RecBole spells it


def test_general_models_without_a_yaml_get_the_general_eval_batch():
    # RecBole's 4096 scores a batch is about one ML-100K user: validation slower than training
    assert make_config("NeuMF", "ml-100k")["eval_batch_size"] == 262144
    assert make_config("LightGCN", "ml-100k")["eval_batch_size"] == 262144
    assert make_config("BPR", "ml-100k")["eval_batch_size"] == 1048576  # its own yaml wins
    assert make_config("GRU4Rec", "ml-100k")["eval_batch_size"] == 1024  # sequential: its own yaml
    assert (
        make_config("NARM", "ml-100k")["eval_batch_size"] == 4096
    )  # sequential: RecBole's default
    assert (
        make_config("NeuMF", "ml-100k", config_dict={"eval_batch_size": 512})["eval_batch_size"]
        == 512
    )


def test_property_files_of_a_users_own_model_name_are_ours_only(main_only):
    files = recbole_autodenoise.property_files("MyOwnModel", "ml-100k")
    assert [f.rsplit("/", 2)[-1] for f in files] == ["overall.yaml", "ml-100k.yaml"]


def test_argv_does_not_leak(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=99", "--learning_rate=0.5"])
    config = make_config("BPR", "ml-100k")
    assert config["epochs"] == 300
    assert config["learning_rate"] == 0.001
    assert sys.argv == ["prog", "--epochs=99", "--learning_rate=0.5"]  # restored


def test_argv_restored_after_an_error(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=99"])
    with pytest.raises(ValueError):
        make_config("BPR", "ml-100k", config_dict={"denoise_shceme": 1})
    assert sys.argv == ["prog", "--epochs=99"]


def test_package_exports():
    assert recbole_autodenoise.make_config is make_config


# --------------------------------------------------------------------------- read_key


def test_read_key_returns_a_valid_value():
    config = make_config("BPR", "ml-100k")
    assert read_key(config, "adt_beta", positive, "a positive number") == 0.2


def test_read_key_missing_names_the_key():
    config = make_config("BPR", "ml-100k")
    with pytest.raises(ValueError) as info:
        read_key(config, "no_such_plugin_key", positive, "a positive number")
    message = str(info.value)
    assert (
        "'no_such_plugin_key'" in message
        and "missing" in message
        and "a positive number" in message
    )


def test_read_key_bad_value_names_key_value_and_allowed():
    config = make_config("BPR", "ml-100k")
    config["adt_beta"] = -0.5  # make_config itself refuses it (tests/test_options.py)
    with pytest.raises(ValueError) as info:
        read_key(config, "adt_beta", positive, "a positive number")
    message = str(info.value)
    assert "'adt_beta'" in message and "-0.5" in message and "a positive number" in message


def test_read_key_explicit_none_is_a_bad_value_not_a_missing_key():
    config = make_config("BPR", "ml-100k")
    config["adt_beta"] = None
    with pytest.raises(ValueError) as info:
        read_key(config, "adt_beta", positive, "a positive number")
    assert "None" in str(info.value) and "missing" not in str(info.value)


@pytest.mark.parametrize("model", ["MultiVAE", "ENMF", "SimpleX"])
def test_a_weighting_scheme_on_a_model_refused_per_sample_weighting_fails_before_data(model):
    make_config(model, "never-loaded", config_dict={"denoise_scheme": "default"})
    with pytest.raises(
        ValueError,
        match=f"config key 'denoise_scheme' = 'adt_rl' weights training samples, and model "
        f"{model} is not supported for per-sample weighting: .*allowed with it: 'default'",
    ):
        make_config(model, "never-loaded", config_dict={"denoise_scheme": "adt_rl"})


def test_a_registered_loss_adapter_lifts_the_refusal_of_its_base_class():
    """CDAEPointwise is a CDAE (refused: user-level batches) with its own adapter."""
    config = make_config("CDAEPointwise", "never-loaded", config_dict={"denoise_scheme": "adt_rl"})
    assert config["denoise_scheme"] == "adt_rl"


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"denoise_scheme": "autodenoise_s", "controller_credit": "explicit"},
            "'controller_credit' = 'explicit' draws clean guiding batches, which carry no masked",
        ),
        (
            {"denoise_scheme": "adt_rl", "denoise_diagnostics": True},
            "'denoise_diagnostics' = True draws clean guiding batches, which carry no masked",
        ),
    ],
)
def test_clean_guiding_batches_on_masked_sequences_fail_before_data(settings, message):
    base = {"clean_valid_guide_ratio": 0.5, "loss_type": "CE"}
    with pytest.raises(ValueError, match=message):
        make_config("BERT4Rec", "never-loaded", config_dict={**base, **settings})
    make_config("BERT4Rec", "never-loaded", config_dict={**base, "denoise_scheme": "adt_rl"})
    make_config("SASRec", "never-loaded", config_dict={**base, **settings})


def test_clean_guiding_batches_in_a_multi_process_run_fail_before_data():
    settings = {"denoise_scheme": "autodenoise_s", "clean_valid_guide_ratio": 0.5}
    with pytest.raises(
        ValueError,
        match="'controller_credit' = 'explicit' draws clean guiding batches, and those are "
        "single-process only",
    ):
        make_config(
            "BPR",
            "never-loaded",
            config_dict={**settings, "controller_credit": "explicit", "nproc": 2},
        )
    make_config("BPR", "never-loaded", config_dict={**settings, "nproc": 2})  # the epoch credit
