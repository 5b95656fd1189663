"""Bounded config input and every value checked before work starts: config files and
``--key=value`` values past their limits, malformed names and keys, the plugin's choices and
output paths, each refused by ``make_config`` (exit 2 and ``error:`` from the command line) before
any data set is built."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recbole_autodenoise import cli, quick_start
from recbole_autodenoise.config import (
    MAX_CONFIG_BYTES,
    MAX_INT,
    MAX_NESTING,
    MAX_VALUES,
    make_config,
    parse_cli_value,
    read_config_file,
)

# seconds a refusal may take: make_config imports nothing heavy after the first call, and an
# unbounded input (the aliases below expand to 10**9 values) would take minutes or all memory
QUICK = 10.0


@pytest.fixture(autouse=True)
def no_data(monkeypatch):
    """Building a data set fails the test: every refusal here comes before it."""

    def built(config):
        raise AssertionError("a data set was built")

    monkeypatch.setattr(quick_start, "create_dataset", built)


def write(tmp_path: Path, text: str | bytes, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def config_error(config_dict=None, config_files=None, model="BPR", dataset="ml-100k") -> str:
    started = time.perf_counter()
    with pytest.raises(ValueError) as info:
        make_config(model, dataset, config_files=config_files, config_dict=config_dict)
    assert time.perf_counter() - started < QUICK
    return str(info.value)


def cli_error(capsys, *args: str) -> str:
    """What ``cli.main`` prints for ``args``, which must be refused: exit 2, one ``error:`` line,
    nothing written."""
    code = cli.main(["--model=BPR", "--dataset=ml-100k", "--epochs=1", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not Path("log").exists() and not Path("saved").exists()
    return err[len("error: ") :].strip()


def nested(levels: int) -> str:
    """A flow sequence ``levels`` deep."""
    return "[" * levels + "]" * levels


def nested_list(levels: int) -> list:
    """A list ``levels`` deep."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


# --------------------------------------------------------------------------------------------
# config files


def test_a_config_file_past_the_size_limit_names_the_file_and_the_limit(tmp_path):
    path = write(tmp_path, "epochs: 3\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10))
    assert config_error(config_files=[str(path)]) == (
        f"config file {path} is larger than {MAX_CONFIG_BYTES:,} bytes: "
        "a config holds settings, not data"
    )


def test_a_config_file_at_the_size_limit_is_read(tmp_path):
    head = "my_own_option: 3\n"
    path = write(tmp_path, head + "#" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert read_config_file(path) == {"my_own_option": 3}


def test_aliases_that_expand_past_the_limit_are_refused_without_expanding(tmp_path):
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")  # 10**9 values at i
    path = write(tmp_path, "\n".join(lines) + "\n")
    message = config_error(config_files=[str(path)])
    assert message == (
        f"config file {path} (aliases expanded): more than {MAX_VALUES} values: "
        "a config holds settings, not data"
    )


def test_a_few_aliases_are_plain_yaml(tmp_path):
    path = write(tmp_path, "base: &base [1, 2]\nmy_copy: *base\nmy_map: {<<: {x: 1}, y: 2}\n")
    assert read_config_file(path) == {"base": [1, 2], "my_copy": [1, 2], "my_map": {"x": 1, "y": 2}}


def test_a_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path, "my_list: &a [*a]\n")
    assert config_error(config_files=[str(path)]) == (
        f"config file {path} (aliases expanded): nested deeper than {MAX_NESTING} levels"
    )


def test_nesting_past_the_limit_is_refused_and_the_limit_itself_is_read(tmp_path):
    # the file's mapping is the first level: a value of MAX_NESTING - 1 lists reaches the limit
    ok = write(tmp_path, f"my_list: {nested(MAX_NESTING - 1)}\n", "ok.yaml")
    assert "my_list" in read_config_file(ok)
    deep = write(tmp_path, f"my_list: {nested(MAX_NESTING)}\n", "deep.yaml")
    assert (
        config_error(config_files=[str(deep)])
        == f"config file {deep}: nested deeper than {MAX_NESTING} levels"
    )


def test_very_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    path = write(tmp_path, f"my_list: {nested(100_000)}\n")
    assert (
        config_error(config_files=[str(path)])
        == f"config file {path}: nested deeper than {MAX_NESTING} levels"
    )


@pytest.mark.parametrize("value", [MAX_INT + 1, -MAX_INT - 1, 10**30])
def test_integers_past_the_limit_name_the_file_and_key(tmp_path, value):
    path = write(tmp_path, f"seed: {value}\n")
    assert config_error(config_files=[str(path)]) == (
        f"config file {path}: key 'seed' = {value} is past the integer limit |x| <= 2**63"
    )


def test_integers_at_the_limit_are_read(tmp_path):
    path = write(tmp_path, f"my_big: {MAX_INT}\nmy_small: {-MAX_INT}\n")
    assert read_config_file(path) == {"my_big": MAX_INT, "my_small": -MAX_INT}


def test_an_integer_of_thousands_of_digits_is_refused_before_python_converts_it(tmp_path):
    path = write(tmp_path, "seed: " + "9" * 6000 + "\n")
    message = config_error(config_files=[str(path)])
    assert message.startswith(
        f"config file {path}, line 1: integer 99999999999999999999... (6000 characters)"
    )
    assert "2**63" in message


@pytest.mark.parametrize(
    "text, key", [("1: 2\n", "1"), ("epochs: 3\n3.5: x\n", "3.5"), ("null: 1\n", "null")]
)
def test_a_key_that_is_not_text_is_refused_with_file_and_line(tmp_path, text, key):
    path = write(tmp_path, text)
    line = text.count("\n")
    assert config_error(config_files=[str(path)]) == (
        f"config file {path}, line {line}: key {key!r} is not a name: config keys are text "
        "(quote it if you mean the text)"
    )


def test_a_quoted_number_key_is_text_and_then_an_unknown_key(tmp_path):
    path = write(tmp_path, "'1': 2\n")
    assert read_config_file(path) == {"1": 2}


def test_a_non_utf8_config_file_is_named(tmp_path):
    path = write(tmp_path, b"my_note: caf\xe9\n")
    assert (
        config_error(config_files=[str(path)])
        == f"config file {path} is not UTF-8 text (byte 0xe9 at offset 12)"
    )


def test_duplicate_keys_are_refused_naming_key_file_and_lines(tmp_path):
    path = write(tmp_path, "epochs: 3\nlearning_rate: 0.1\nepochs: 4\n")
    assert config_error(config_files=[str(path)]) == (
        f"config file {path}: duplicate key 'epochs' (lines 1 and 3); "
        "each key may appear once in a mapping"
    )
    inner = write(tmp_path, "eval_args:\n  order: TO\n  order: RO\n", "inner.yaml")
    assert "duplicate key 'order' (lines 2 and 3)" in config_error(config_files=[str(inner)])


def test_a_folder_given_as_a_config_file_is_refused(tmp_path):
    assert (
        config_error(config_files=[str(tmp_path)])
        == f"config file {tmp_path} is not a regular file"
    )


def test_a_control_character_in_a_file_key_is_refused(tmp_path):
    path = write(tmp_path, '"ep\\x07ochs": 1\n')
    assert (
        config_error(config_files=[str(path)])
        == f"config file {path}: config key 'ep\\x07ochs' holds a control character"
    )


def test_the_cli_refuses_a_bad_config_file_with_exit_2(tmp_path, capsys):
    path = write(tmp_path, "epochs: 3\nepochs: 4\n")
    assert cli_error(capsys, f"--config_files={path}") == (
        f"config file {path}: duplicate key 'epochs' (lines 1 and 2); "
        "each key may appear once in a mapping"
    )
    path = write(tmp_path, b"\xff\xfe", "binary.yaml")
    assert (
        cli_error(capsys, f"--config_files={path}")
        == f"config file {path} is not UTF-8 text (byte 0xff at offset 0)"
    )


# --------------------------------------------------------------------------------------------
# --key=value and config_dict values


def test_cli_integers_past_the_limit(capsys):
    assert (
        cli_error(capsys, f"--seed={MAX_INT + 1}")
        == f"--seed = {MAX_INT + 1} is past the integer limit |x| <= 2**63"
    )
    message = cli_error(capsys, "--seed=" + "9" * 6000)
    assert message.startswith("--seed, line 1: integer 99999999999999999999... (6000 characters)")


def test_cli_nesting_past_the_limit(capsys):
    assert (
        cli_error(capsys, f"--topk={nested(MAX_NESTING)}")
        == f"--topk: nested deeper than {MAX_NESTING} levels"
    )
    assert (
        cli_error(capsys, f"--topk={nested(5000)}")
        == f"--topk: nested deeper than {MAX_NESTING} levels"
    )


def test_cli_value_past_the_size_limit(capsys):
    message = cli_error(capsys, "--data_path=" + "x" * (MAX_CONFIG_BYTES + 1))
    assert (
        message == f"--data_path: a text of {MAX_CONFIG_BYTES + 1:,} characters, "
        f"past the limit of {MAX_CONFIG_BYTES:,}"
    )


def test_cli_value_that_is_not_utf8(capsys):
    # a byte that is not UTF-8 reaches Python's argv as a lone surrogate
    assert cli_error(capsys, "--data_path=caf\udce9") == "--data_path value is not valid UTF-8 text"


def test_parse_cli_value_keeps_text_and_bounds_yaml():
    assert parse_cli_value("[1, 2") == "[1, 2"  # not YAML: the text itself
    assert parse_cli_value("{a: 1}") == {"a": 1}
    with pytest.raises(ValueError, match=r"--x: duplicate key 'a'"):
        parse_cli_value("{a: 1, a: 2}", "x")


@pytest.mark.parametrize(
    "config_dict, message",
    [
        (
            {"seed": MAX_INT + 1},
            f"config key 'seed' = {MAX_INT + 1} is past the integer limit |x| <= 2**63",
        ),
        (
            {"seed": str(MAX_INT + 1)},
            f"config key 'seed' = {MAX_INT + 1} is past the integer limit |x| <= 2**63",
        ),
        (
            {"topk": nested_list(MAX_NESTING)},
            f"config key 'topk': nested deeper than {MAX_NESTING} levels",
        ),
        ({1: 2}, "config key 1 is not a name: config keys are non-empty text"),
        ({"": 2}, "config key '' is not a name: config keys are non-empty text"),
        ({"ep\nochs": 2}, "config key 'ep\\nochs' holds a control character"),
        (
            {"data_path": "x" * (MAX_CONFIG_BYTES + 1)},
            f"config key 'data_path': a text of {MAX_CONFIG_BYTES + 1:,} characters, "
            f"past the limit of {MAX_CONFIG_BYTES:,}",
        ),
    ],
)
def test_config_dict_values_within_the_bounds(config_dict, message):
    assert config_error(config_dict) == message


def test_a_huge_integer_is_shown_by_its_size():
    message = config_error({"seed": 10**5000})
    assert (
        message == "config key 'seed' = an integer of about 5000 digits is past the integer limit "
        "|x| <= 2**63"
    )


# --------------------------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    "model, dataset, message",
    [
        ("BPR\n", "ml-100k", "model name 'BPR\\n' holds a control character"),
        ("BPR", "ml\x1b[31m-100k", "data set name 'ml\\x1b[31m-100k' holds a control character"),
        ("BPR", "ml\x00", "data set name 'ml\\x00' holds a control character"),
        ("BPR", "", "data set name '' is invalid: expected non-empty text"),
    ],
)
def test_control_characters_in_names_are_refused_before_the_log_starts(model, dataset, message):
    assert config_error(model=model, dataset=dataset) == message
    assert not Path("log").exists()


def test_a_data_set_name_longer_than_a_file_name_is_refused(capsys):
    message = cli_error(capsys, "--dataset=" + "d" * 300)
    assert message.startswith(
        "data set name 'dddddddddddddddddddddddddddddddddddddddd'... is 300 bytes long: "
    )
    assert "255 bytes" in message


def test_a_control_character_in_a_cli_key(capsys):
    assert (
        cli_error(capsys, "--ep\x07ochs=1") == "config key 'ep\\x07ochs' holds a control character"
    )


# --------------------------------------------------------------------------------------------
# unknown keys and the launcher's key


@pytest.mark.parametrize(
    "arg, key, meant",
    [("--lr=100", "lr", "learning_rate"), ("--batch_size=7", "batch_size", "train_batch_size")],
)
def test_keys_of_no_component_are_refused_with_the_nearest_known_key(capsys, arg, key, meant):
    message = cli_error(capsys, arg)
    assert message.startswith(f"unknown config key '{key}'; did you mean '{meant}'? ")
    assert "--config_files" in message


def test_a_key_far_from_every_known_key_says_how_to_declare_it(capsys):
    message = cli_error(capsys, "--zqxv_width=3")
    assert message == (
        "unknown config key 'zqxv_width': no RecBole, model, data set or plugin key has this name; "
        "a key of your own model is declared in a yaml file passed with --config_files "
        "(Python: config_files), see docs/guide.md"
    )


def test_local_rank_is_the_launchers(tmp_path, capsys):
    message = cli_error(capsys, "--local_rank=0")
    assert message.startswith(
        "--local_rank: config key 'local_rank' is set by the multi-process launcher"
    )
    assert "nproc" in message
    path = write(tmp_path, "local_rank: 1\n")
    assert config_error(config_files=[str(path)]).startswith(
        f"config file {path}: config key 'local_rank' is set by the multi-process launcher"
    )


# --------------------------------------------------------------------------------------------
# plugin values, before the data set loads


def test_an_unknown_scheme_lists_the_registered_ones_before_any_data(capsys, main_only):
    started = time.perf_counter()
    message = cli_error(capsys, "--denoise_scheme=bogus")
    assert time.perf_counter() - started < QUICK
    assert message == (
        "unknown denoise_scheme 'bogus'; available: adt_rl, adt_tl, autodenoise_h, autodenoise_s, "
        "dcf, default, heuristic, oracle, udt"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--controller_credit=bogus"],
            "unknown controller_credit 'bogus'; available: epoch, explicit, supervised",
        ),
        (
            ["--scheme=default", "--controller_credit=bogus"],  # checked whichever scheme runs
            "unknown controller_credit 'bogus'; available: epoch, explicit, supervised",
        ),
        (
            ["--eval_protocol=bogus"],
            "config key 'eval_protocol' = 'bogus' is invalid: expected one of "
            "['user_first', 'interaction', 'user']",
        ),
        (
            ["--learning_rate=1e999"],
            "config key 'learning_rate' = inf is invalid: expected a finite number > 0",
        ),
        (
            ["--learning_rate=nan"],
            "config key 'learning_rate' = 'nan' is invalid: expected a finite number > 0",
        ),
        (
            ["--weight_decay=-1e999"],
            "config key 'weight_decay' = -inf is invalid: expected a finite number >= 0",
        ),
        (
            ["--scheme=autodenoise_s", "--controller_learning_rate=1e999"],
            "config key 'controller_learning_rate' = inf is invalid: expected a number > 0",
        ),
        (
            ["--scheme=autodenoise_s", "--controller_hidden_size=0"],  # the scheme checks it
            "config key 'controller_hidden_size' = 0 is invalid: expected a positive integer",
        ),
        (
            ["--scheme=heuristic", "--heuristic_alpha=-1"],
            "config key 'heuristic_alpha' = -1 is invalid: expected a number >= 0 "
            "(1: the paper's 1/f)",
        ),
        (
            ["--metrics=['Precision', 'Foo']"],
            "config key 'metrics' = ['Precision', 'Foo'] is invalid: unknown metric 'Foo'; "
            "expected names from ",
        ),
        (
            ["--metrics=['NDCG', 'RMSE']"],
            "config key 'metrics' = ['NDCG', 'RMSE'] is invalid: ranking metrics and value "
            "metrics (RecBole's) cannot be evaluated together",
        ),
        (
            ["--metrics=7"],
            "config key 'metrics' = 7 is invalid: expected a list of metric names from ",
        ),
        (
            ["--valid_metric=GAUC"],
            "config key 'valid_metric' = 'GAUC' is not among the evaluated metrics "
            "['Precision', 'Recall', 'F1', 'NDCG']",
        ),
        (
            ["--valid_metric=3"],
            "config key 'valid_metric' = 3 is invalid: expected a metric name, e.g. NDCG@20",
        ),
        (
            ["--results_file=out/"],
            "config key 'results_file' = 'out/' is invalid: it ends in '/'; expected a file "
            "path, e.g. out/results.json",
        ),
        (
            ["--results_file=new/../r.json"],
            "config key 'results_file' = 'new/../r.json' is invalid: its folder 'new' does not "
            "exist and would be created only to be left by '..'; write the path without '..'",
        ),
        (
            ["--checkpoint_dir=new/sub/../../ck"],
            "config key 'checkpoint_dir' = 'new/sub/../../ck' is invalid: its folder 'new/sub' "
            "does not exist and would be created only to be left by '..'; write the path "
            "without '..'",
        ),
    ],
)
def test_plugin_values_are_refused_before_the_data_set_loads(capsys, main_only, args, message):
    got = cli_error(capsys, *args)
    assert got.startswith(message), got
    assert not Path("new").exists() and not Path("out").exists()


def test_paths_through_existing_folders_and_dot_dot_are_accepted(tmp_path):
    (tmp_path / "here").mkdir()
    config = make_config(
        "BPR", "ml-100k", config_dict={"results_file": "here/../r.json", "checkpoint_dir": "../ck"}
    )
    assert config["results_file"] == "here/../r.json"
