"""Building a RecBole ``Config`` with the plugin's property files, and strict reading of our keys.

RecBole silently returns ``None`` for a key nobody set and never complains about a misspelt one;
here every plugin key has a default in ``properties/overall.yaml``, is read once and checked; a key
one typo from a RecBole, model, data set or plugin key is an error; the RecBole keys users set most
are type- and range-checked; a model name that is not RecBole's gets the close ones; and keys the
chosen scheme does not read are reported once as a warning. All before any data loads.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import os
import re
import warnings
from functools import lru_cache
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


# RecBole's model packages, without exlib_recommender (its import needs lightgbm and xgboost)
MODEL_PACKAGES = ("general_recommender", "sequential_recommender", "context_aware_recommender",
                  "knowledge_aware_recommender")


def _recbole_properties() -> Path:
    import recbole

    return Path(recbole.__file__).resolve().parent / "properties"


def _yaml_keys(path: Path) -> set[str]:
    with open(path, encoding="utf-8") as handle:
        return set(yaml.safe_load(handle) or {})


@lru_cache(maxsize=1)
def recbole_keys() -> frozenset[str]:
    """RecBole's general keys: its overall.yaml and ``recbole.utils.argument_list``."""
    from recbole.utils import argument_list

    keys = _yaml_keys(_recbole_properties() / "overall.yaml")
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys |= set(getattr(argument_list, name))
    return frozenset(keys)


# set by the multi-process launcher for each rank, never a default (RecBole reads its presence as "a rank")
LAUNCHER_KEYS = frozenset({"local_rank"})


@lru_cache(maxsize=1)
def known_keys() -> frozenset[str]:
    """Every key someone defines: RecBole's, every RecBole and plugin model / data set yaml, ours."""
    files = [*_recbole_properties().glob("**/*.yaml"), *PROPERTIES_DIR.glob("**/*.yaml")]
    return recbole_keys().union(LAUNCHER_KEYS, *(_yaml_keys(path) for path in files))


def plugin_keys() -> set[str]:
    """Keys the plugin introduces: those in our overall.yaml that RecBole's own defaults lack."""
    return {key for key in plugin_defaults() if key not in recbole_keys()}


@lru_cache(maxsize=1)
def recbole_model_names() -> tuple[str, ...]:
    """The model classes of RecBole's model packages (``get_model`` finds each by its name)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    names = set()
    for package in MODEL_PACKAGES:
        module = importlib.import_module(f"recbole.model.{package}")
        names |= {
            name for name, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, AbstractRecommender)
            and obj.__module__.startswith(f"recbole.model.{package}.")
        }
    return tuple(sorted(names))


def check_model(model: Any) -> type:
    """The model class called ``model``: the plugin's own first, then RecBole's; an unknown name
    fails naming the close ones (never RecBole's import errors of its optional models)."""
    from recbole_autodenoise.model import PLUGIN_MODELS

    if isinstance(model, str) and model in PLUGIN_MODELS:
        return PLUGIN_MODELS[model]
    names = recbole_model_names()
    if isinstance(model, str) and model in names:
        from recbole.utils import get_model

        return get_model(model)
    known = sorted(names + tuple(PLUGIN_MODELS))
    by_case = [name for name in known if name.lower() == str(model).lower()]
    close = by_case or difflib.get_close_matches(str(model), known, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(name) for name in close)}?" if close
            else f"RecBole's models include {', '.join(names[:12])}, ... (recbole.model); "
                 f"the plugin's: {', '.join(sorted(PLUGIN_MODELS))}")
    raise ValueError(f"unknown model {model!r}: not a RecBole or plugin model; {hint}")


def property_files(model: str, dataset: str) -> list[str]:
    """overall.yaml, then the model's yaml where we ship one (else its model type's), then the data
    set's."""
    model_file = PROPERTIES_DIR / "model" / f"{model}.yaml"
    if not model_file.exists():
        model_file = PROPERTIES_DIR / "model_type" / f"{_model_type(model) or 'none'}.yaml"
    files = [OVERALL_FILE, model_file, PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"]
    return [str(path) for path in files if path.exists()]


def _model_type(model: str) -> str:
    """'general', 'sequential', ... (RecBole's ModelType, lower case); '' for a name that is not a
    RecBole or plugin model (a user's own class: it brings its own yaml)."""
    try:
        model_type = getattr(check_model(model), "type", None)
    except ValueError:
        return ""
    return model_type.name.lower() if model_type is not None else ""


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


# the data set RecBole embeds and always reads from its own copy, whatever data_path says
EMBEDDED_DATASET = "ml-100k"


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

    def _set_default_parameters(self):
        """RecBole's, except that ml-100k is read from ``<data_path>/ml-100k`` when the user set
        ``data_path`` (RecBole always points ml-100k at its embedded copy); without a user
        ``data_path`` the embedded copy stays the default. A user folder that does not exist is
        refused here, before any data loads, instead of a download or the embedded copy."""
        super()._set_default_parameters()
        if self.dataset != EMBEDDED_DATASET or "data_path" not in self._user_keys:
            return
        given = self.external_config_dict["data_path"]
        folder = os.path.join(str(given), self.dataset)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"config key 'data_path' = {given!r}: data set [{self.dataset}] is not at "
                f"{os.path.join(folder, self.dataset + '.inter')} (no folder {folder}); leave "
                f"data_path unset to use RecBole's embedded ML-100K, or place your "
                f"{self.dataset}.inter there"
            )
        self.final_config_dict["data_path"] = folder

    def _convert_config_dict(self, config_dict):
        return {key: parse_literal(value) if isinstance(value, str) else value for key, value in config_dict.items()}

    def _load_cmd_line(self):
        return {}

    def _init_device(self):
        """RecBole's, except for a rank of a multi-process run (``local_rank`` set by the launcher):
        ``distributed.join_process_group`` joins with ``ddp_backend`` (gloo on CPUs) instead of NCCL."""
        final = self.final_config_dict
        local_rank = final.pop("local_rank", None)
        super()._init_device()  # gpu_id, CUDA_VISIBLE_DEVICES, single-process device
        if local_rank is not None:
            from recbole_autodenoise import distributed

            final["local_rank"] = local_rank
            distributed.join_process_group(self)


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


def check_key_spelling(keys: Iterable[str], known: Iterable[str]) -> None:
    """Fail on a key that nobody defines but is one typo away from a known one."""
    known = sorted(known)
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
        if close:
            raise ValueError(f"unknown config key '{key}'; did you mean '{close[0]}'?")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(value: Any) -> bool:
    return is_number(value) and value > 0


def non_negative(value: Any) -> bool:
    return is_number(value) and value >= 0


def fraction(value: Any) -> bool:
    return is_number(value) and 0 <= value < 1


def make_config(
    model: str,
    dataset: str,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
):
    """A RecBole ``Config`` with our defaults under the user's files and overrides."""
    compat.apply()
    register_metrics()

    user_files = [str(f) for f in (config_files or [])]
    _check_yaml_files(user_files)
    model_class = check_model(model)
    # strings read as SafeConfig reads them, so the checks below see the values RecBole will
    overrides = {k: parse_literal(v) if isinstance(v, str) else v for k, v in (config_dict or {}).items()}
    user_values: dict[str, Any] = {}
    for file in user_files:
        with open(file, encoding="utf-8") as handle:
            user_values.update(yaml.safe_load(handle) or {})
    user_values.update(overrides)
    check_key_spelling(user_values, known_keys())
    if "topk" in user_values:  # before RecBole compares its entries with 0
        check_topk(user_values["topk"])
    try:
        config = SafeConfig(
            model=model_class,  # RecBole's Config takes a class where the name is not RecBole's
            dataset=dataset,
            config_file_list=property_files(model, dataset) + user_files,
            config_dict=overrides,
            user_keys=set(user_values),
        )
    except yaml.YAMLError as error:  # RecBole's own property files, read with our safe loader
        raise ValueError(f"config yaml for model '{model}', dataset '{dataset}' refused (plain YAML only): {error}") from None
    check_values(config)
    warn_ignored_keys(config["denoise_scheme"], set(user_values))
    return config


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> bool:
    return is_int(value) and value >= 1


# RecBole's keys users set most, checked here because RecBole checks none of them
VALUE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (positive_int, "an integer >= 1"),
    "learning_rate": (positive, "a number > 0"),
    "train_batch_size": (positive_int, "an integer >= 1"),
    "eval_batch_size": (positive_int, "an integer >= 1"),
    # 0: stop at the first validation without gain (RecBole's early_stopping stops when steps > it)
    "stopping_step": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "embedding_size": (positive_int, "an integer >= 1"),
    "seed": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
}


def check_topk(value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if not values or not all(positive_int(k) for k in values):
        raise ValueError(f"config key 'topk' = {value!r} is invalid: expected an integer >= 1 or a list of them")


def check_values(config) -> None:
    """Types and ranges of ``VALUE_CHECKS``, and ``valid_metric``'s @K among ``topk``."""
    for key, (check, allowed) in VALUE_CHECKS.items():
        if key in config.final_config_dict:
            read_key(config, key, check, allowed)
    metric = config["valid_metric"]
    if isinstance(metric, str) and "@" in metric:
        k = metric.split("@", 1)[1]
        if not k.isdigit() or int(k) not in config["topk"]:
            raise ValueError(
                f"config key 'valid_metric' = {metric!r} is invalid: its @K must be one of topk {config['topk']}"
            )


def warn_ignored_keys(scheme: Any, user_keys: set[str]) -> None:
    """One warning naming the plugin keys the user set that the chosen scheme does not read."""
    from recbole_autodenoise.schemes import SCHEMES, ignored_keys

    if not isinstance(scheme, str) or scheme not in SCHEMES:
        return  # the trainer reports an unknown scheme, listing the available ones
    ignored = ignored_keys(scheme, user_keys)
    if ignored:
        warnings.warn(f"config keys {ignored} are ignored by denoise_scheme {scheme!r}", UserWarning, stacklevel=3)


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
