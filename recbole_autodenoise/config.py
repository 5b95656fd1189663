"""Building a RecBole ``Config`` with the plugin's property files, and strict reading of our keys.

RecBole silently returns ``None`` for a key nobody set and never complains about a misspelt one;
here every plugin key has a default in ``properties/overall.yaml``, is read once and checked, and a
key that looks like a misspelling of ours is an error.
"""

from __future__ import annotations

import ast
import difflib
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import yaml

from recbole_autodenoise import compat
from recbole_autodenoise.evaluation.metrics import register_metrics

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
OVERALL_FILE = PROPERTIES_DIR / "overall.yaml"


def plugin_defaults() -> dict[str, Any]:
    with open(OVERALL_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def plugin_keys() -> set[str]:
    """Keys the plugin introduces: those in our overall.yaml that RecBole's own defaults lack."""
    import recbole

    recbole_overall = Path(recbole.__file__).resolve().parent / "properties" / "overall.yaml"
    with open(recbole_overall, encoding="utf-8") as handle:
        recbole_keys = set(yaml.safe_load(handle))
    from recbole.utils import argument_list

    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        recbole_keys |= set(getattr(argument_list, name))
    return {key for key in plugin_defaults() if key not in recbole_keys}


def property_files(model: str, dataset: str) -> list[str]:
    """overall.yaml, then the model's and the data set's yaml where we ship one."""
    files = [OVERALL_FILE, PROPERTIES_DIR / "model" / f"{model}.yaml", PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"]
    return [str(path) for path in files if path.exists()]


@contextmanager
def _argv_hidden() -> Iterator[None]:
    """RecBole's Config parses ``sys.argv``; hide it (pytest's or the caller's) while it does."""
    saved = sys.argv
    sys.argv = saved[:1] if saved else ["recbole_autodenoise"]
    try:
        yield
    finally:
        sys.argv = saved


def _check_yaml_files(files: Iterable[str]) -> None:
    for file in files:
        if not os.path.isfile(file):
            raise FileNotFoundError(f"config file not found: {file}")
        try:
            with open(file, encoding="utf-8") as handle:
                content = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"malformed yaml in config file {file}: {error}") from error
        if content is not None and not isinstance(content, dict):
            raise ValueError(f"config file {file} must hold a mapping of key: value, got {type(content).__name__}")


def check_key_spelling(keys: Iterable[str], known: set[str]) -> None:
    """Fail on a key that is not ours but is one typo away from one of ours."""
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.85)
        if close:
            raise ValueError(f"unknown config key '{key}'; did you mean '{close[0]}'?")


def make_config(
    model: str,
    dataset: str,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
):
    """A RecBole ``Config`` with our defaults under the user's files and overrides."""
    compat.apply()
    register_metrics()
    from recbole.config import Config

    from recbole_autodenoise.model import get_model

    user_files = [str(f) for f in (config_files or [])]
    _check_yaml_files(user_files)
    model_class = get_model(model)  # the plugin's models first, then RecBole's; unknown: ValueError
    overrides = dict(config_dict or {})
    user_keys = set(overrides)
    for file in user_files:
        with open(file, encoding="utf-8") as handle:
            user_keys |= set(yaml.safe_load(handle) or {})
    check_key_spelling(user_keys, plugin_keys())
    with _argv_hidden():
        config = Config(
            model=model_class,  # RecBole's Config takes a class where the name is not RecBole's
            dataset=dataset,
            config_file_list=property_files(model, dataset) + user_files,
            config_dict=overrides,
        )
    return config


def parse_cli_value(text: str) -> Any:
    """``--key=value`` values: Python literals (1e-3, [10, 20], None), then YAML (true), else text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip() not in ("", "~", "null") else value


def read_key(config, key: str, check: Callable[[Any], bool], allowed: str) -> Any:
    """Read one key, failing with the key, the value and what is allowed."""
    value = config[key]
    if value is None and key not in config.final_config_dict:
        raise ValueError(f"config key '{key}' is missing (expected {allowed}); is properties/overall.yaml loaded?")
    if not check(value):
        raise ValueError(f"config key '{key}' = {value!r} is invalid: expected {allowed}")
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(value: Any) -> bool:
    return is_number(value) and value > 0


def non_negative(value: Any) -> bool:
    return is_number(value) and value >= 0


def fraction(value: Any) -> bool:
    return is_number(value) and 0 <= value < 1
