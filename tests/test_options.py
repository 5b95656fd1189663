"""Options with one owner (``recbole_autodenoise.options``): every key declared once, next to its
component, read somewhere, checked by ``make_config`` before any data loads, and the property
files' plugin lines and the guide's key table written from the declarations."""

from __future__ import annotations

import ast
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from recbole.data.dataset import Dataset

import recbole_autodenoise.experimental  # noqa: F401  (its options are declared too)
from recbole_autodenoise import cli, option_files, options, quick_start
from recbole_autodenoise.config import (
    EXPERIMENTAL_FILE,
    OVERALL_FILE,
    make_config,
    plugin_defaults,
    recbole_keys,
)
from recbole_autodenoise.options import Option, Rule

LIBRARY = Path(options.__file__).resolve().parent
QUICK = 5.0


@pytest.fixture(autouse=True)
def no_data(monkeypatch):
    """Loading a data set fails the test: every refusal here comes before it."""

    def loaded(*args, **kwargs):
        pytest.fail("a data set was loaded")

    monkeypatch.setattr(Dataset, "__init__", loaded)
    monkeypatch.setattr(quick_start, "create_dataset", loaded)


def yaml_keys(path: Path) -> list[str]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


# --- declarations -------------------------------------------------------------------------------
def test_every_key_of_the_property_files_is_declared_exactly_once():
    rows = option_files.rows()
    counts = Counter(option.name for option, _, _ in rows)
    assert [name for name, count in counts.items() if count > 1] == []
    plugin = {o.name for o, _, experimental in rows if not o.recbole and not experimental}
    apart = {o.name for o, _, experimental in rows if experimental}
    overall = [key for key in yaml_keys(OVERALL_FILE) if key not in recbole_keys()]
    assert sorted(overall) == sorted(plugin)
    assert sorted(yaml_keys(EXPERIMENTAL_FILE)) == sorted(apart)


def test_the_property_files_hold_the_declared_defaults_exactly():
    defaults = plugin_defaults()
    for option, _, _ in option_files.rows():
        if not option.recbole:
            value = defaults[option.name]
            assert (value, type(value)) == (option.default, type(option.default)), option.name


def _reads(tree: ast.AST) -> tuple[list[str], dict[str, str]]:
    """The text constants of a module that are not an ``Option``'s name or a module constant's
    value, and the module constants bound to a text (``OPT_IN = "allow_rating_diagnostics"``)."""
    skip: set[int] = set()
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Option" and node.args:
            skip.add(id(node.args[0]))
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id.isupper():
                    names[target.id] = node.value.value
                    skip.add(id(node.value))
    texts = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]
    used = [
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and id(node) not in skip
    ]
    return texts + used, names


def test_every_declared_key_is_read_somewhere():
    """A key's name appears in the library besides its declaration: ``config[key]``,
    ``options.read(config, key)``, or a constant that holds it."""
    found: list[str] = []
    constants: dict[str, str] = {}
    for path in LIBRARY.rglob("*.py"):
        if path.name in ("options.py", "option_files.py"):
            continue
        texts, names = _reads(ast.parse(path.read_text(encoding="utf-8")))
        found += texts
        constants.update(names)
    read = {constants.get(text, text) for text in found}
    unread = [o.name for o, _, _ in option_files.rows() if not o.recbole and o.name not in read]
    assert unread == []


def test_a_second_declaration_of_a_key_is_refused():
    with pytest.raises(ValueError, match="config key 'adt_beta' is declared twice"):
        options.declare(Option("adt_beta", "float", 0.5, "another beta"))
    options.declare(options.declared("adt_beta"))  # the same declaration again: a re-import


# --- one option's checks, hand-built -----------------------------------------------------------
class Config(dict):
    """Just enough of RecBole's Config: ``config[key]`` and ``final_config_dict``."""

    @property
    def final_config_dict(self):
        return self

    def __missing__(self, key):
        return None


RATE = Option(
    "rate",
    "float",
    0.5,
    "a rate",
    lambda v: isinstance(v, float) and 0 <= v < 1,
    "a number in [0, 1)",
)
KIND = Option("kind", "str", "a", "a kind", choices=("a", "b"), renamed=(("old", "b", "the b"),))


@pytest.mark.parametrize(
    "option, value, message",
    [
        (RATE, "half", "config key 'rate' = 'half' is invalid: expected a number in [0, 1)"),
        (RATE, 1.0, "config key 'rate' = 1.0 is invalid: expected a number in [0, 1)"),
        (KIND, "c", "config key 'kind' = 'c' is invalid: expected one of ['a', 'b']"),
        (KIND, 3, "config key 'kind' = 3 is invalid: expected one of ['a', 'b']"),
        (KIND, "old", "config key 'kind' = 'old' was renamed 'b' (the b); set kind: b"),
    ],
)
def test_an_option_refuses_naming_key_value_and_allowed(option, value, message):
    with pytest.raises(ValueError) as error:
        option.read(Config({option.name: value}))
    assert str(error.value) == message
    assert option.read(Config({option.name: option.default})) == option.default


def test_a_missing_key_is_named():
    with pytest.raises(ValueError, match="config key 'rate' is missing \\(expected a number"):
        RATE.read(Config())


def test_rules_run_after_every_value():
    seen = []
    rule = Rule(("rate", "kind"), "b needs rate > 0", lambda config: seen.append(dict(config)))
    with pytest.raises(ValueError, match="'kind' = 'c'"):
        options.check(Config(rate=0.5, kind="c"), [RATE, KIND], [rule])
    assert seen == []
    options.check(Config(rate=0.5, kind="b"), [RATE, KIND], [rule])
    assert seen == [{"rate": 0.5, "kind": "b"}]


# --- make_config refuses before any data loads ------------------------------------------------
def refused(**config_dict) -> str:
    started = time.perf_counter()
    with pytest.raises(ValueError) as error:
        make_config("BPR", "ml-100k", config_dict=config_dict)
    assert time.perf_counter() - started < QUICK
    return str(error.value)


@pytest.mark.parametrize(
    "settings, message",
    [
        (  # a wrong type
            {"controller_hidden_size": "wide"},
            "config key 'controller_hidden_size' = 'wide' is invalid: expected a positive integer",
        ),
        (  # out of range, for a scheme the run does not use: every declared value is checked
            {"denoise_scheme": "default", "adt_max_drop_rate": 1.0},
            "config key 'adt_max_drop_rate' = 1.0 is invalid: expected a number in [0, 1)",
        ),
        (  # an unknown choice
            {"noise_kind": "gaussian"},
            "config key 'noise_kind' = 'gaussian' is invalid: expected one of ['random', "
            "'popular', 'foreign']",
        ),
        (  # a renamed value
            {"explicit_labels": "interaction"},
            "config key 'explicit_labels' = 'interaction' was renamed 'observed' (every rated "
            "row labelled 1: no rating is used); set explicit_labels: observed",
        ),
        (  # a rule of the data
            {"clean_valid_guide_order": "chronological"},
            "config key 'clean_valid_guide_order' = 'chronological' needs clean_valid_guide_ratio "
            "> 0 (a guide part to order or train on); got clean_valid_guide_ratio = 0: set it in "
            "(0, 1) or clean_valid_guide_order: random",
        ),
        (  # a rule of multi-process training
            {"nproc": 2, "world_size": 2, "offset": 1},
            "config keys 'offset' = 1 and 'nproc' = 2 ask for ranks up to 2, but 'world_size' = "
            "2: expected offset + nproc <= world_size",
        ),
        (  # a rule of the scheme the run uses
            {"denoise_scheme": "autodenoise_h", "controller_prior": "adt_rl"},
            "config key 'controller_prior' = 'adt_rl' is not supported by autodenoise_h (its "
            "weights 0, 1, 2, ... cannot start at 1 for every sample); allowed: 'none', or use "
            "autodenoise_s",
        ),
        (  # a rule of the credit the run uses
            {
                "denoise_scheme": "autodenoise_s",
                "controller_credit": "explicit",
                "explicit_labels": "observed",
            },
            "config key 'explicit_labels' = 'observed' labels every rated row 1, so the fit needs "
            "rows labelled 0: set explicit_negatives >= 1 (or explicit_canaries > 0)",
        ),
        (  # a key of another credit off its default
            {"denoise_scheme": "autodenoise_s", "explicit_negatives": 2},
            "config key 'explicit_negatives' = 2 applies to controller_credit 'explicit' only "
            "(this run uses 'epoch'); leave it at 0",
        ),
    ],
)
def test_make_config_refuses_before_any_data_loads(settings, message):
    assert refused(**settings) == message


def test_the_rules_of_an_unused_scheme_do_not_apply():
    config = make_config("BPR", "ml-100k", config_dict={"controller_prior": "adt_rl"})
    assert config["denoise_scheme"] == "default" and config["controller_prior"] == "adt_rl"


@pytest.mark.parametrize(
    "arg, message",
    [
        (
            "--denoise_scheme=bogus",
            "unknown denoise_scheme 'bogus'; available: adt_rl, adt_tl, autodenoise_h, "
            "autodenoise_s, dcf, default, heuristic, l2rw, oracle, udt",
        ),
        (
            "--controller_credit=bogus",
            "unknown controller_credit 'bogus'; available: epoch, explicit, meta, supervised, user",
        ),
        (
            "--eval_protocol=nope",
            "config key 'eval_protocol' = 'nope' is invalid: expected one of ['user_first', "
            "'interaction', 'user']",
        ),
    ],
)
def test_the_command_line_exits_2_before_any_data_loads(tmp_path, capsys, arg, message):
    started = time.perf_counter()
    code = cli.main(["--model=BPR", "--dataset=ml-1m", f"--data_path={tmp_path}", arg])
    err = capsys.readouterr().err
    assert time.perf_counter() - started < QUICK
    assert (code, err) == (2, f"error: {message}\n")
    assert not Path("log").exists()  # RecBole's log starts with the data; nothing was logged


# --- the files written from the declarations ------------------------------------------------------
def test_the_written_files_are_what_the_declarations_give():
    assert option_files.stale() == [], "run python -m recbole_autodenoise.option_files --write"


def test_a_hand_edit_of_a_written_line_is_found(tmp_path, monkeypatch):
    copy = tmp_path / "overall.yaml"
    text = OVERALL_FILE.read_text(encoding="utf-8")
    copy.write_text(text.replace("# (float) ADT-RL: weight", "# (float) ADT-RL: the weight"))
    monkeypatch.setattr(option_files, "OVERALL_FILE", copy)
    assert option_files.stale() == [copy]
    assert option_files.expected()[copy] == text


def test_a_declared_key_missing_from_its_file_is_added_at_its_end():
    option = Option("zz_new", "int", 3, "a new key", lambda v: isinstance(v, int), "an integer")
    text = options.rewrite_yaml("# head\nepochs: 300\n", [option])
    assert text == "# head\nepochs: 300\n" + options.render_yaml_line(option) + "\n"
    assert options.render_yaml_line(option).startswith("zz_new: 3" + " " * 27 + "# (int) a new")
