"""Config validation of RecBole's keys as well as ours, in ``make_config`` before any data loads
(issue 11): misspelt keys, types and ranges of the keys users set most, ``topk`` vs
``valid_metric``, model names, and keys the chosen scheme ignores."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from recbole_autodenoise import cli
from recbole_autodenoise.config import check_key_spelling, known_keys, make_config, plugin_defaults
from recbole_autodenoise.schemes import SCHEMES, ignored_keys


def config_error(config_dict=None, config_files=None, model="BPR") -> str:
    with pytest.raises(ValueError) as info:
        make_config(model, "ml-100k", config_files=config_files, config_dict=config_dict)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# misspelt keys


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("learning_rat", "learning_rate"),  # RecBole overall.yaml
        ("embeding_size", "embedding_size"),  # a RecBole model yaml
        ("USER_ID_FEILD", "USER_ID_FIELD"),  # RecBole data set keys
        ("controler_num_actions", "controller_num_actions"),  # ours
        ("train_batch_sise", "train_batch_size"),
    ],
)
def test_a_key_one_typo_from_a_known_key_names_the_likely_one(typo, meant):
    assert config_error({typo: 1}) == f"unknown config key '{typo}'; did you mean '{meant}'?"


def test_a_misspelt_key_in_a_yaml_file_is_caught_too(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rat: 0.1\n", encoding="utf-8")
    assert "did you mean 'learning_rate'" in config_error(config_files=[str(path)])


def test_a_key_no_component_defines_is_refused_with_the_custom_key_route():
    check_key_spelling(["my_own_model_option"], known_keys())  # not a typo of a known key
    message = config_error({"my_own_model_option": 3})
    assert message.startswith(
        "unknown config key 'my_own_model_option': no RecBole, model, data set or plugin key"
    )
    assert "--config_files" in message and "docs/guide.md" in message


@pytest.mark.parametrize(
    "key, meant",
    [
        ("lr", "learning_rate"),
        ("batch_size", "train_batch_size"),
        ("Learning_Rate", "learning_rate"),
        ("num_epochs", "epochs"),
    ],
)
def test_other_libraries_names_get_the_nearest_known_key(key, meant):
    message = config_error({key: 7})
    assert message.startswith(f"unknown config key '{key}'; did you mean '{meant}'? ")
    assert "--config_files" in message


def test_a_key_declared_in_a_user_file_is_accepted_and_may_be_overridden(tmp_path):
    path = tmp_path / "my_model.yaml"
    path.write_text("my_own_model_option: 3\n", encoding="utf-8")
    assert make_config("BPR", "ml-100k", config_files=[str(path)])["my_own_model_option"] == 3
    config = make_config(
        "BPR", "ml-100k", config_files=[str(path)], config_dict={"my_own_model_option": 5}
    )
    assert config["my_own_model_option"] == 5


def test_the_known_keys_hold_recbole_model_data_set_and_plugin_keys():
    keys = known_keys()
    assert {
        "learning_rate",
        "epochs",
        "n_layers",
        "embedding_size",
        "USER_ID_FIELD",
        "load_col",
    } <= keys
    assert set(plugin_defaults()) <= keys


# --------------------------------------------------------------------------------------------
# types and ranges


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("epochs", 0, "an integer >= 1"),
        ("epochs", -3, "an integer >= 1"),
        ("epochs", 2.0, "an integer >= 1"),
        ("epochs", True, "an integer >= 1"),
        ("learning_rate", 0, "a finite number > 0"),
        ("learning_rate", -0.01, "a finite number > 0"),
        ("learning_rate", float("inf"), "a finite number > 0"),
        ("learning_rate", float("nan"), "a finite number > 0"),
        ("weight_decay", -1e-4, "a finite number >= 0"),
        ("weight_decay", float("inf"), "a finite number >= 0"),
        (
            "state",
            "loud",
            "a log level, one of ['debug', 'info', 'warning', 'error', 'critical'] (any case)",
        ),
        ("train_batch_size", 0, "an integer >= 1"),
        ("eval_batch_size", 1.5, "an integer >= 1"),
        ("stopping_step", -1, "an integer >= 0"),
        ("stopping_step", 1.0, "an integer >= 0"),
        ("embedding_size", -64, "an integer >= 1"),
        ("seed", 1.5, "an integer >= 0"),
        ("seed", -1, "an integer >= 0"),
    ],
)
def test_bad_values_of_the_keys_users_set_most(key, value, allowed):
    assert (
        config_error({key: value})
        == f"config key '{key}' = {value!r} is invalid: expected {allowed}"
    )


def test_a_quoted_number_in_yaml_is_not_an_integer(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text('epochs: "2"\n', encoding="utf-8")
    assert (
        config_error(config_files=[str(path)])
        == "config key 'epochs' = '2' is invalid: expected an integer >= 1"
    )


@pytest.mark.parametrize("topk", [[0], [10, -1], "ten", [], [2.5]])
def test_topk_must_be_positive_integers(topk):
    message = config_error({"topk": topk})
    assert (
        message
        == f"config key 'topk' = {topk!r} is invalid: expected an integer >= 1 or a list of them"
    )


def test_valid_metric_k_must_be_among_topk():
    message = config_error({"topk": [10]})  # valid_metric NDCG@20 by default
    assert (
        message
        == "config key 'valid_metric' = 'NDCG@20' is invalid: its @K must be one of topk [10]"
    )


def test_good_values_pass_through():
    config = make_config(
        "BPR",
        "ml-100k",
        config_dict={
            "epochs": 3,
            "learning_rate": 0.01,
            "topk": [10],
            "valid_metric": "NDCG@10",
            "seed": 0,
            "train_batch_size": 1,
            "embedding_size": 8,
            "stopping_step": 1,
        },
    )
    assert (config["epochs"], config["learning_rate"], config["topk"], config["seed"]) == (
        3,
        0.01,
        [10],
        0,
    )
    assert make_config("BPR", "ml-100k", config_dict={"topk": 5, "valid_metric": "NDCG@5"})[
        "topk"
    ] == [5]
    config = make_config(
        "BPR", "ml-100k", config_dict={"topk": [10], "valid_metric": "GAUC", "metrics": ["GAUC"]}
    )
    assert config["topk"] == [10]


# --------------------------------------------------------------------------------------------
# model names


def test_a_wrongly_cased_model_names_the_right_one():
    assert (
        config_error(model="bpr")
        == "unknown model 'bpr': not a RecBole or plugin model; did you mean 'BPR'?"
    )


def test_an_unknown_model_lists_models_without_an_import_error():
    message = config_error(model="Foo")
    assert message.startswith(
        "unknown model 'Foo': not a RecBole or plugin model; RecBole's models include "
    )
    assert "BPR" in message and "lightgbm" not in message and "Error" not in message


# --------------------------------------------------------------------------------------------
# keys the chosen scheme ignores


def make_config_warnings(config_dict) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_config("BPR", "ml-100k", config_dict=config_dict)
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and "ignored" in str(w.message)
    ]


@pytest.mark.parametrize(
    "config_dict, message",
    [
        (
            {"denoise_scheme": "autodenoise_s", "controller_num_actions": 4},
            "config keys ['controller_num_actions'] are ignored by denoise_scheme 'autodenoise_s'",
        ),
        (
            {"denoise_scheme": "default", "adt_beta": 0.3, "controller_init_std": 0.2},
            "config keys ['adt_beta', 'controller_init_std'] "
            "are ignored by denoise_scheme 'default'",
        ),
    ],
)
def test_keys_of_another_scheme_warn_once(config_dict, message):
    assert make_config_warnings(config_dict) == [message]


def test_keys_the_scheme_or_its_base_reads_do_not_warn():
    assert (
        make_config_warnings(
            {
                "denoise_scheme": "autodenoise_h",
                "controller_num_actions": 4,
                "controller_hidden_size": 8,
                "epochs": 2,
            }
        )
        == []
    )


def test_every_declared_scheme_key_is_a_plugin_key_with_a_default():
    defaults = set(plugin_defaults())
    for name in SCHEMES.names():
        assert SCHEMES.get(name).read_keys() <= defaults, name
    assert SCHEMES.get("autodenoise_s").read_keys() >= {
        "controller_init_std",
        "controller_hidden_size",
    }
    assert ignored_keys("adt_tl", {"adt_num_gradual", "adt_beta", "epochs"}) == ["adt_beta"]


# --------------------------------------------------------------------------------------------
# through the command line: exit 2 before anything is written


def test_cli_misspelt_key_fails_before_training(tmp_path, capsys):
    results = tmp_path / "out.json"
    code = cli.main(
        ["--model=BPR", "--learning_rat=0.1", "--epochs=1", f"--results_file={results}"]
    )
    assert code == 2
    assert (
        capsys.readouterr().err
        == "error: unknown config key 'learning_rat'; did you mean 'learning_rate'?\n"
    )
    assert not results.exists() and not Path("log").exists() and not Path("saved").exists()
