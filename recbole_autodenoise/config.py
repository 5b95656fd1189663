"""Building a RecBole ``Config`` with the plugin's property files, and strict reading of our keys.

RecBole silently returns ``None`` for a key nobody set and never complains about a misspelt one;
here every plugin key has a default in ``properties/overall.yaml``, is read once and checked, and a
key that looks like a misspelling of ours is an error.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml
from recbole.config import Config

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


# RecBole's float resolver (1e-3 is a float, not YAML 1.1's string), on a *safe* loader.
_RECBOLE_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _SafeRecBoleLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no ``!!python/...`` tags) reading numbers as RecBole's loader does."""


_SafeRecBoleLoader.add_implicit_resolver("tag:yaml.org,2002:float", _RECBOLE_FLOAT, list("-+0123456789."))

# what RecBole's own conversion keeps from an evaluated string; anything else stays text
_LITERAL_TYPES = (str, int, float, list, tuple, dict, bool)


def parse_literal(text: str) -> Any:
    """A config string as RecBole's ``_convert_config_dict`` reads it, without ``eval``: a Python
    literal (1e-3, [10, 20], None), else true/false (any case), else the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {"true": True, "false": False}.get(text.lower(), text)
    return value if value is None or isinstance(value, _LITERAL_TYPES) else text


class SafeConfig(Config):
    """RecBole's ``Config`` with every route by which it runs code from input closed.

    RecBole ``eval()``s the string values of ``config_dict`` and of the command line, loads yaml
    with ``yaml.FullLoader`` (``!!python/name:...`` tags) and parses ``sys.argv`` itself. Here
    strings are read by :func:`parse_literal`, yaml by a safe loader, and the command line only by
    our ``cli`` (RecBole would otherwise read pytest's or a caller's argv).
    """

    def __init__(self, *args, user_keys: Iterable[str] = (), **kwargs) -> None:
        self._user_keys = frozenset(user_keys)  # keys the user set (files, overrides): never replaced
        super().__init__(*args, **kwargs)

    def _build_yaml_loader(self):
        return _SafeRecBoleLoader

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        negatives_follow_loss_type(final, self.model_class, self._user_keys)
        return final

    def _convert_config_dict(self, config_dict):
        return {key: parse_literal(value) if isinstance(value, str) else value for key, value in config_dict.items()}

    def _load_cmd_line(self):
        return {}


def negatives_follow_loss_type(final: dict[str, Any], model_class: type, user_keys: Iterable[str]) -> None:
    """Training negatives as the model's ``loss_type`` needs them, unless the user set
    ``train_neg_sample_args``: a sequential model whose input type comes from ``loss_type`` (RecBole's
    rule) gets none with ``CE`` (RecBole refuses negatives there) and RecBole's default (one uniform
    negative) otherwise. Models with a fixed ``input_type`` keep RecBole's default."""
    from recbole.utils import ModelType

    if "train_neg_sample_args" in user_keys or hasattr(model_class, "input_type"):
        return
    if getattr(model_class, "type", None) == ModelType.SEQUENTIAL and final.get("loss_type") == "CE":
        final["train_neg_sample_args"] = None


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
    from recbole.utils import get_model

    user_files = [str(f) for f in (config_files or [])]
    _check_yaml_files(user_files)
    try:
        get_model(model)
    except ValueError as error:
        raise ValueError(f"unknown model '{model}': {error}") from None
    except (ImportError, AttributeError) as error:
        # RecBole's search ends in exlib_recommender, whose import needs lightgbm and xgboost;
        # a wrongly cased name ("bpr") finds the module but not the class.
        raise ValueError(f"unknown model '{model}': not a RecBole model ({type(error).__name__}: {error})") from None
    overrides = dict(config_dict or {})
    user_keys = set(overrides)
    for file in user_files:
        with open(file, encoding="utf-8") as handle:
            user_keys |= set(yaml.safe_load(handle) or {})
    check_key_spelling(user_keys, plugin_keys())
    try:
        return SafeConfig(
            model=model,
            dataset=dataset,
            config_file_list=property_files(model, dataset) + user_files,
            config_dict=overrides,
            user_keys=user_keys,
        )
    except yaml.YAMLError as error:  # RecBole's own property files, read with our safe loader
        raise ValueError(f"config yaml for model '{model}', dataset '{dataset}' refused (plain YAML only): {error}") from None


def parse_cli_value(text: str) -> Any:
    """``--key=value`` values: Python literals (1e-3, [10, 20], None), then safe YAML (true), else
    text; never evaluated."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
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
