"""Building a RecBole ``Config`` with the plugin's property files, and strict reading of our keys.

RecBole silently returns ``None`` for a key nobody set and never complains about a misspelt one;
here every plugin key is declared once by the component that reads it (``options``), with its
default in ``properties/overall.yaml``; a key one typo from a RecBole, model, data set or plugin
key is an error, and so is a key no component defines unless a user config file declares it (a
key of the user's own model); every declared value is checked (the RecBole keys users set most
too), then the rules between keys of the components the run uses (``check_options``); a model
name that is not RecBole's gets the close ones; and keys the chosen scheme does not read are
reported once as a warning. Config input is bounded: files of at most ``MAX_CONFIG_BYTES``, UTF-8,
plain YAML without duplicate keys, nesting, value counts (aliases expanded) and integers within
limits. All before any data loads.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from recbole.config import Config

from recbole_autodenoise import compat, options
from recbole_autodenoise.checks import positive_int
from recbole_autodenoise.evaluation.metrics import register_metrics
from recbole_autodenoise.model import check_model
from recbole_autodenoise.options import Option, Rule
from recbole_autodenoise.registry import (
    EXPERIMENTAL_OPT_IN,
    EXPERIMENTAL_PROPERTY_FILE,
    EXTRA_PROPERTY_FILES,
    experimental_keys,
)

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
OVERALL_FILE = PROPERTIES_DIR / "overall.yaml"
# recbole_autodenoise.experimental's keys: known (and loaded) only once that package is imported
EXPERIMENTAL_FILE = EXPERIMENTAL_PROPERTY_FILE
EXPERIMENTAL_KEY = "experimental"

# the keys of the config itself: the opt-in to experiments and the results file
EXPERIMENTAL = Option(
    EXPERIMENTAL_KEY,
    "bool",
    False,
    "true: import recbole_autodenoise.experimental, what the research log reports as no gain "
    "(l2rw, controller_credit user / meta, controller_state paper_product / loss_features, "
    "controller_prior adt_tl, explicit_canaries, explicit_weight_power); its keys are in "
    "experimental.yaml",
    lambda v: isinstance(v, bool),
    "true or false",
)
OPTIONS = options.declare(
    EXPERIMENTAL,
    Option(
        "results_file",
        "str",
        None,
        "write the run's results as JSON here",
        lambda v: v is None or (isinstance(v, (str, os.PathLike)) and os.fspath(v) != ""),
        "a file path",
    ),
)


def plugin_files() -> list[Path]:
    """overall.yaml, then the property files of the packages imported on demand
    (``registry.add_property_file``: ``recbole_autodenoise.experimental``)."""
    return [OVERALL_FILE, *EXTRA_PROPERTY_FILES]


def plugin_defaults() -> dict[str, Any]:
    """The plugin's keys and their defaults (``plugin_files``)."""
    defaults: dict[str, Any] = {}
    for path in plugin_files():
        with open(path, encoding="utf-8") as handle:
            defaults.update(yaml.safe_load(handle) or {})
    return defaults


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
    for name in (
        "general_arguments",
        "training_arguments",
        "evaluation_arguments",
        "dataset_arguments",
    ):
        keys |= set(getattr(argument_list, name))
    return frozenset(keys)


# set by the multi-process launcher for each rank, never a default (RecBole reads its presence as
# "a rank")
LAUNCHER_KEYS = frozenset({"local_rank"})

# keys RecBole 1.2.1's models and data transforms read (``config[key]``, ``None`` when unset)
# without a default in any of its yaml files
RECBOLE_READ_KEYS = frozenset(
    {
        "CROP_ITEM_SEQ",
        "CROP_ITEM_SEQ_LEN",
        "INVERSE_ITEM_SEQ",
        "MASK_INDEX",
        "MASK_ITEM_SEQ",
        "NEG_ITEMS",
        "POS_ITEMS",
        "REORDER_ITEM_SEQ",
        "cin",
        "contrast",
        "encoding",
        "eta",
        "feature_num",
        "has_residual",
        "norm",
        "sim",
        "tail_ratio",
        "token_num_threshold",
        "use_filter",
        "xgb_early_stopping_rounds",
    }
)

# other libraries' names for a key, for the "did you mean" of an unknown one
KEY_ALIASES = {
    "lr": "learning_rate",
    "batch_size": "train_batch_size",
    "bs": "train_batch_size",
    "wd": "weight_decay",
    "l2": "weight_decay",
    "epoch": "epochs",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "patience": "stopping_step",
    "scheme": "denoise_scheme",
    "protocol": "eval_protocol",
    "emb_size": "embedding_size",
    "embed_dim": "embedding_size",
}

CUSTOM_KEY_HINT = (
    "a key of your own model is declared in a yaml file passed with --config_files "
    "(Python: config_files), see docs/guide.md"
)


def known_keys() -> frozenset[str]:
    """Every key someone defines: RecBole's, every RecBole and plugin model / data set yaml, ours
    (``experimental.yaml``'s once ``recbole_autodenoise.experimental`` is imported)."""
    return _known_keys(tuple(EXTRA_PROPERTY_FILES))


@lru_cache(maxsize=4)
def _known_keys(extra_files: tuple[Path, ...]) -> frozenset[str]:
    own = [path for path in PROPERTIES_DIR.glob("**/*.yaml") if path != EXPERIMENTAL_FILE]
    files = [*_recbole_properties().glob("**/*.yaml"), *own, *extra_files]
    from_files = (_yaml_keys(path) for path in files)
    return recbole_keys().union(LAUNCHER_KEYS, RECBOLE_READ_KEYS, *from_files)


def plugin_keys() -> set[str]:
    """Keys the plugin introduces: those in our property files that RecBole's own defaults lack."""
    return {key for key in plugin_defaults() if key not in recbole_keys()}


def property_files(model: str, dataset: str) -> list[str]:
    """overall.yaml (and experimental.yaml once that package is imported), then the model's yaml
    where we ship one (else its model type's), then the data set's."""
    model_file = PROPERTIES_DIR / "model" / f"{model}.yaml"
    if not model_file.exists():
        model_file = PROPERTIES_DIR / "model_type" / f"{_model_type(model) or 'none'}.yaml"
    files = [*plugin_files(), model_file, PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"]
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


_SafeRecBoleLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _RECBOLE_FLOAT, list("-+0123456789.")
)


# --- bounded input: what a config file, a --key=value or a config_dict value may hold -----------
MAX_CONFIG_BYTES = 1_000_000  # one config file, or one value's text
MAX_NESTING = 32  # lists / mappings inside one another
MAX_VALUES = 100_000  # values in one file or one value, aliases expanded
MAX_INT = 2**63  # |integer|
_INT_TEXT = 70  # characters of an integer's digits that can stay within MAX_INT (0b + 64 digits)
# C0 and C1 control characters and DEL: never in a model, data set or key name
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NAME_MAX = 255  # bytes of one file name (the log file's holds the model and data set names)
_MERGE = "tag:yaml.org,2002:merge"  # YAML's ``<<`` merge key
_NOT_DATA = "a config holds settings, not data"


class _BoundedLoader(_SafeRecBoleLoader):
    """The safe RecBole loader within the bounds above: nesting is counted while composing, the
    values of the whole document (aliases expanded) before constructing it; duplicate keys of a
    mapping, non-text top-level keys and integers past ``MAX_INT`` are refused. ``where`` names
    the input in every message."""

    def __init__(self, stream, where: str = "config yaml") -> None:
        super().__init__(stream)
        self.where = where
        self.aliases = False  # does the document use an alias (``*name``)?
        self._depth = 0

    def _refuse(self, node, reason: str) -> ValueError:
        line = f", line {node.start_mark.line + 1}" if node is not None and node.start_mark else ""
        return ValueError(f"{self.where}{line}: {reason}")

    def compose_node(self, parent, index):
        self.aliases = self.aliases or self.check_event(yaml.AliasEvent)
        self._depth += 1
        try:
            # a scalar inside MAX_NESTING collections is composed at depth MAX_NESTING + 1
            if self._depth > MAX_NESTING + 1:
                raise ValueError(f"{self.where}: nested deeper than {MAX_NESTING} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue
            key = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ValueError(
                    f"{self.where}: duplicate key {key_node.value!r} (lines {seen[key]} and "
                    f"{line}); each key may appear once in a mapping"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        digits = str(node.value).replace("_", "").lstrip("+-")
        if len(digits) > _INT_TEXT:
            raise self._refuse(
                node,
                f"integer {digits[:20]}... ({len(digits)} characters) is "
                "past the limit |x| <= 2**63",
            )
        return super().construct_yaml_int(node)

    def get_single_data(self) -> Any:
        """What ``yaml.load`` returns (RecBole's reading of its files), within the bounds."""
        return self.load_bounded()

    def load_bounded(self) -> Any:
        """The document, or ``None`` for an empty one."""
        node = self.get_single_node()
        if node is None:
            return None
        where = f"{self.where} (aliases expanded): " if self.aliases else f"{self.where}: "
        _count_nodes(node, 1, {}, where)
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.tag not in ("tag:yaml.org,2002:str", _MERGE):
                    raise self._refuse(
                        key_node,
                        f"key {key_node.value!r} is not a name: config "
                        "keys are text (quote it if you mean the text)",
                    )
        return self.construct_document(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _count_nodes(node, depth: int, done: dict[int, tuple[int, int]], where: str) -> tuple[int, int]:
    """(values, nesting) of ``node`` with aliases expanded, failing past ``MAX_VALUES`` or
    ``MAX_NESTING`` (a recursive alias fails on nesting). Each node is walked once (``done``).
    ``where`` starts each message."""
    if isinstance(node, yaml.ScalarNode):
        return 1, 0
    too_deep = f"{where}nested deeper than {MAX_NESTING} levels"
    if depth > MAX_NESTING:
        raise ValueError(too_deep)
    if id(node) in done:
        values, nesting = done[id(node)]
        if depth + nesting - 1 > MAX_NESTING:
            raise ValueError(too_deep)
        return values, nesting
    mapping = isinstance(node, yaml.MappingNode)
    children = [n for pair in node.value for n in pair] if mapping else node.value
    values, nesting = 1, 1
    for child in children:
        child_values, child_nesting = _count_nodes(child, depth + 1, done, where)
        values += child_values
        nesting = max(nesting, child_nesting + 1)
        if values > MAX_VALUES:
            raise ValueError(f"{where}more than {MAX_VALUES} values: {_NOT_DATA}")
    done[id(node)] = (values, nesting)
    return values, nesting


class MalformedYaml(ValueError):
    """Text that is not YAML at all (as opposed to YAML past the bounds)."""


def load_yaml_text(text: str, where: str) -> Any:
    """``text`` read as YAML within the bounds: ``ValueError`` naming ``where`` otherwise."""
    loader = _BoundedLoader(text, where)
    try:
        return loader.load_bounded()
    except yaml.YAMLError as error:
        raise MalformedYaml(f"malformed yaml in {where}: {error}") from None
    except RecursionError:
        raise ValueError(f"{where}: nested deeper than {MAX_NESTING} levels") from None
    finally:
        loader.dispose()


def read_config_file(file: str | os.PathLike) -> dict[str, Any]:
    """A user config file's mapping (``{}`` when empty), read within the bounds: a regular file of
    at most ``MAX_CONFIG_BYTES``, UTF-8, plain YAML whose keys are names."""
    where = f"config file {file}"
    if not os.path.exists(file):
        raise FileNotFoundError(f"config file not found: {file}")
    if not os.path.isfile(file):
        raise ValueError(f"{where} is not a regular file")
    with open(file, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"{where} is larger than {MAX_CONFIG_BYTES:,} bytes: {_NOT_DATA}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = f"byte 0x{data[error.start]:02x} at offset {error.start}"
        raise ValueError(f"{where} is not UTF-8 text ({byte})") from None
    content = load_yaml_text(text, where)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(f"{where} must hold a mapping of key: value, got {type(content).__name__}")
    for key, value in content.items():
        check_key_name(key, where)
        check_value_bounds(value, f"{where}: key {key!r}")
    return content


def check_key_name(key: Any, where: str | None = None) -> None:
    """A config key is non-empty text without control characters (``where``: the file it is in)."""
    what = f"{where}: config key {key!r}" if where else f"config key {key!r}"
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} is not a name: config keys are non-empty text")
    _check_text(key, what)
    if _CONTROL.search(key):
        raise ValueError(f"{what} holds a control character")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 text") from None


def check_name(kind: str, name: Any) -> None:
    """A model or data set name: non-empty text without control characters, short enough for the
    log file's name (``<model>-<data set>-<time>-<hash>.log``) and a folder's."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} name {name!r} is invalid: expected non-empty text")
    _check_text(name, f"{kind} name {name!r}")
    if _CONTROL.search(name):
        raise ValueError(f"{kind} name {name!r} holds a control character")
    longest = max(len(part.encode("utf-8")) for part in name.split("/"))
    if longest > NAME_MAX - 40:  # the log file's name adds the other name, a time and a hash
        raise ValueError(
            f"{kind} name {name[:40]!r}... is {longest} bytes long: a file name holds "
            f"at most {NAME_MAX} bytes, and the log file's holds the model, the data "
            "set, a time and a hash"
        )


def _too_long(where: str, length: int) -> str:
    return f"{where}: a text of {length:,} characters, past the limit of {MAX_CONFIG_BYTES:,}"


def _preview(value: Any) -> str:
    """A short repr: very long ints and texts are shortened (a huge int has no repr in Python)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def check_value_bounds(value: Any, where: str) -> None:
    """A config value within the bounds: nesting (the config's mapping counts as the first level,
    as in a file), count of values, |integers|, text size, UTF-8."""
    count = [0]

    def walk(item: Any, depth: int) -> None:
        count[0] += 1
        if count[0] > MAX_VALUES:
            raise ValueError(f"{where} holds more than {MAX_VALUES} values: {_NOT_DATA}")
        if isinstance(item, bool) or item is None or isinstance(item, float):
            return
        if isinstance(item, int):
            if abs(item) > MAX_INT:
                raise ValueError(
                    f"{where} = {_preview(item)} is past the integer limit |x| <= 2**63"
                )
            return
        if isinstance(item, str):
            if len(item) > MAX_CONFIG_BYTES:
                raise ValueError(_too_long(where, len(item)))
            _check_text(item, f"{where} = {_preview(item)}")
            return
        if isinstance(item, (dict, list, tuple)):
            if depth + 1 > MAX_NESTING:
                raise ValueError(f"{where}: nested deeper than {MAX_NESTING} levels")
            for child in item if not isinstance(item, dict) else [*item.keys(), *item.values()]:
                walk(child, depth + 1)

    walk(value, 1)  # the config's own mapping is the first level, as in a file


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
    strings are read by :func:`parse_literal`, yaml by a safe loader within the input bounds, and
    the command line only by our ``cli`` (RecBole would otherwise read pytest's or a caller's argv).
    """

    def __init__(self, *args, user_keys: Iterable[str] = (), **kwargs) -> None:
        self._user_keys = frozenset(
            user_keys
        )  # keys the user set (files, overrides): never replaced
        super().__init__(*args, **kwargs)

    def _build_yaml_loader(self):
        return _BoundedLoader

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
        return {
            key: parse_literal(value) if isinstance(value, str) else value
            for key, value in config_dict.items()
        }

    def _load_cmd_line(self):
        return {}

    def _init_device(self):
        """RecBole's, except for a rank of a multi-process run (``local_rank`` set by the launcher):
        ``distributed.join_process_group`` joins with ``ddp_backend`` (gloo on CPUs) instead of
        NCCL."""
        final = self.final_config_dict
        local_rank = final.pop("local_rank", None)
        super()._init_device()  # gpu_id, CUDA_VISIBLE_DEVICES, single-process device
        if local_rank is not None:
            from recbole_autodenoise import distributed

            final["local_rank"] = local_rank
            distributed.join_process_group(self)


def negatives_follow_loss_type(
    final: dict[str, Any], model_class: type, user_keys: Iterable[str]
) -> None:
    """Training negatives as the model's ``loss_type`` needs them, unless the user set
    ``train_neg_sample_args``: a sequential model whose input type comes from ``loss_type``
    (RecBole's rule) gets none with ``CE`` (RecBole refuses negatives there) and RecBole's default
    (one uniform negative) otherwise. Models with a fixed ``input_type`` keep RecBole's default."""
    from recbole.utils import ModelType

    if "train_neg_sample_args" in user_keys or hasattr(model_class, "input_type"):
        return
    if (
        getattr(model_class, "type", None) == ModelType.SEQUENTIAL
        and final.get("loss_type") == "CE"
    ):
        final["train_neg_sample_args"] = None


def check_key_spelling(keys: Iterable[str], known: Iterable[str]) -> None:
    """Fail on a key that nobody defines but is one typo away from a known one."""
    known = sorted(known)
    for key in keys:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
        if close:
            raise ValueError(f"unknown config key '{key}'; did you mean '{close[0]}'?")


def nearest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key ``key`` most likely means: another library's name for it, the same name in
    another case, else the closest spelling; ``None`` where nothing is close."""
    known = sorted(known)
    if KEY_ALIASES.get(key) in known:
        return KEY_ALIASES[key]
    by_case = [name for name in known if name.lower() == key.lower()]
    close = by_case or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return close[0] if close else None


def check_keys(
    file_values: Sequence[tuple[str, dict[str, Any]]], overrides: dict[str, Any]
) -> None:
    """Every key the user set belongs to a component. A key one typo from a known one is refused
    wherever it is set; a key of the user's own model is accepted where a user config file
    declares it (``--key=value`` and ``config_dict`` may then override it); any other key of the
    overrides is refused with the nearest known key. ``local_rank`` is the launcher's, never a
    file's. A key of ``experimental.yaml`` before that package is imported says how to import it."""
    known = known_keys()
    unloaded = experimental_keys() - known
    for where, values in [
        *((f"config file {file}: ", values) for file, values in file_values),
        ("", overrides),
    ]:
        for key in values:
            if key in unloaded:
                raise ValueError(
                    f"{where}config key {key!r} is experimental: {EXPERIMENTAL_OPT_IN}"
                )
    declared: set[str] = set()
    for file, values in file_values:
        check_key_spelling(values, known)
        if "local_rank" in values:
            raise ValueError(f"config file {file}: {launcher_key_message()}")
        declared |= set(values)
    check_key_spelling(overrides, known)
    for key in overrides:
        if key in known or key in declared:
            continue
        meant = nearest_key(key, known)
        if meant:
            raise ValueError(
                f"unknown config key '{key}'; did you mean '{meant}'? ({CUSTOM_KEY_HINT})"
            )
        raise ValueError(
            f"unknown config key '{key}': no RecBole, model, data set or plugin key "
            f"has this name; {CUSTOM_KEY_HINT}"
        )


def launcher_key_message() -> str:
    return (
        "config key 'local_rank' is set by the multi-process launcher for each of its ranks, "
        "not by a user; set nproc (and world_size, offset) to train with several processes"
    )


def read_overrides(config_dict: dict[str, Any] | None) -> dict[str, Any]:
    """``config_dict`` as ``SafeConfig`` reads it (strings by :func:`parse_literal`), within the
    bounds: keys are names, values within nesting, size and integer limits."""
    if config_dict is not None and not isinstance(config_dict, dict):
        raise ValueError(
            f"config_dict must be a mapping of key: value, got {type(config_dict).__name__}"
        )
    overrides = {}
    for key, value in (config_dict or {}).items():
        check_key_name(key)
        if isinstance(value, str):
            if len(value) > MAX_CONFIG_BYTES:
                raise ValueError(_too_long(f"config key {key!r}", len(value)))
            _check_text(value, f"config key {key!r} = {_preview(value)}")
            value = parse_literal(value)
        check_value_bounds(value, f"config key {key!r}")
        overrides[key] = value
    return overrides


def check_metric_keys(values: dict[str, Any]) -> None:
    """The user's ``metrics`` (RecBole's or the plugin's, all ranking or all value metrics) and
    ``valid_metric`` (text), before RecBole reads them."""
    from recbole.evaluator import register

    if "metrics" in values:
        metrics = values["metrics"]
        names = [metrics] if isinstance(metrics, str) else metrics
        known = sorted(register.metric_types)
        invalid = f"config key 'metrics' = {metrics!r} is invalid"
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{invalid}: expected a list of metric names from {known}")
        unknown = [name for name in names if name.lower() not in register.metric_types]
        if unknown:
            raise ValueError(
                f"{invalid}: unknown metric {unknown[0]!r}; expected names from {known} (any case)"
            )
        if len({register.metric_types[name.lower()] for name in names}) > 1:
            raise ValueError(
                f"{invalid}: ranking metrics and value metrics (RecBole's) cannot be "
                "evaluated together"
            )
    metric = values.get("valid_metric", "")
    if not isinstance(metric, str):
        raise ValueError(
            f"config key 'valid_metric' = {metric!r} is invalid: expected a metric "
            "name, e.g. NDCG@20"
        )


def make_config(
    model: str,
    dataset: str,
    config_files: Sequence[str] | None = None,
    config_dict: dict[str, Any] | None = None,
):
    """A RecBole ``Config`` with our defaults under the user's files and overrides. Everything the
    user gave is checked here, before any data loads: names, files and values within bounds,
    every key known (or declared by a user file), RecBole's common keys and every plugin value."""
    compat.apply()
    register_metrics()

    check_name("model", model)
    check_name("data set", dataset)
    user_files = [str(f) for f in (config_files or [])]
    file_values = [(file, read_config_file(file)) for file in user_files]
    model_class = check_model(model)
    # strings read as SafeConfig reads them, so the checks below see the values RecBole will
    overrides = read_overrides(config_dict)
    opt_in_experimental(file_values, overrides)
    check_keys(file_values, overrides)
    user_values: dict[str, Any] = {}
    for _, values in file_values:
        user_values.update(values)
    user_values.update(overrides)
    if "topk" in user_values:  # before RecBole compares its entries with 0
        check_topk(user_values["topk"])
    check_metric_keys(user_values)  # before RecBole looks each one up
    try:
        config = SafeConfig(
            model=model_class,  # RecBole's Config takes a class where the name is not RecBole's
            dataset=dataset,
            config_file_list=property_files(model, dataset) + user_files,
            config_dict=overrides,
            user_keys=set(user_values),
        )
    except yaml.YAMLError as error:  # RecBole's own property files, read with our safe loader
        raise ValueError(
            f"config yaml for model '{model}', dataset '{dataset}' refused (plain YAML only): "
            f"{error}"
        ) from None
    check_options(config)
    check_output_paths(config)
    warn_ignored_keys(config["denoise_scheme"], set(user_values))
    return config


def opt_in_experimental(
    file_values: Sequence[tuple[str, dict[str, Any]]], overrides: dict[str, Any]
) -> None:
    """``experimental: true`` (the last setting of the user's files and overrides) imports
    ``recbole_autodenoise.experimental`` before the keys are checked, so that its keys and names
    are known."""
    values: dict[str, Any] = {}
    for _, file_settings in file_values:
        values.update(file_settings)
    values.update(overrides)
    value = values.get(EXPERIMENTAL_KEY, False)
    problem = EXPERIMENTAL.problem(value)
    if problem is not None:
        raise ValueError(problem)
    if value:
        import recbole_autodenoise.experimental  # noqa: F401  (registers what it holds)


def check_topk(value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    if not values or not all(positive_int(k) for k in values):
        raise ValueError(
            f"config key 'topk' = {value!r} is invalid: expected an integer >= 1 or a list of them"
        )


def option_owners() -> list[tuple[Any, str]]:
    """Every component that declares options (``OPTIONS``) or rules (``RULES``), with the name the
    guide gives it: the config's own keys, the data, evaluation, the trainer, multi-process
    training, the protocol checks, then every registered scheme, credit, state and prior and
    their bases."""
    from recbole_autodenoise import distributed, trainer
    from recbole_autodenoise.controller import CREDITS, PRIORS, STATES
    from recbole_autodenoise.data import dataloader, dataset
    from recbole_autodenoise.evaluation import valid_loss
    from recbole_autodenoise.schemes import SCHEMES, base, protocol

    owners: list[tuple[Any, str]] = [
        (options, "RecBole (checked by options.py)"),
        (sys.modules[__name__], "config.py"),
        (base, "schemes/base.py"),
        (dataset.CleanFeedbackMixin, "data/dataset.py CleanFeedbackMixin"),
        (dataloader, "data/dataloader.py"),
        (valid_loss, "evaluation/valid_loss.py"),
        (trainer.AutoDenoiseTrainer, "trainer.py AutoDenoiseTrainer"),
        (distributed, "distributed.py"),
        (protocol, "schemes/protocol.py"),
    ]
    seen = {id(owner) for owner, _ in owners}
    for registry in (SCHEMES, CREDITS, STATES, PRIORS):
        for name in registry.names():
            for klass in reversed(registry.get(name).__mro__):
                if id(klass) in seen or not (options.own(klass) or options.own(klass, "RULES")):
                    continue
                seen.add(id(klass))
                path = klass.__module__.removeprefix("recbole_autodenoise.").replace(".", "/")
                owners.append((klass, f"{path}.py {klass.__name__}"))
    return owners


def declared_options() -> list[tuple[Option, str]]:
    """Every declared option in force (those of ``recbole_autodenoise.experimental`` once it is
    imported), with its owner's name."""
    return [(option, name) for owner, name in option_owners() for option in options.own(owner)]


def declared_rules() -> list[Rule]:
    """Every declared rule in force."""
    return [rule for owner, _ in option_owners() for rule in options.own(owner, "RULES")]


def check_options(config) -> None:
    """Every declared value and the rules of the components the run uses, before any data loads:
    RecBole's keys that are set and ``valid_metric`` (one of ``metrics``, its @K among ``topk``);
    the names of a registry first (an unknown scheme or credit lists the registered ones); every
    other option, whichever component reads it; then the rules of the data, multi-process
    training and the configured scheme (with its credit, state and prior), then the protocol's."""
    from recbole_autodenoise import adapters, distributed
    from recbole_autodenoise.data import dataloader
    from recbole_autodenoise.data.dataset import CleanFeedbackMixin
    from recbole_autodenoise.evaluation import valid_loss
    from recbole_autodenoise.schemes import SCHEMES, protocol

    declared = declared_options()
    for option, _ in declared:
        if option.recbole and option.name in config.final_config_dict:
            option.read(config)
    check_valid_metric(config)
    for option, _ in declared:
        unknown = option.unknown_name(config[option.name])
        if unknown is not None:
            raise ValueError(unknown)
    options.check(config, [option for option, _ in declared if not option.recbole])
    rules = [*CleanFeedbackMixin.RULES, *dataloader.RULES, *valid_loss.RULES, *distributed.RULES]
    options.check(config, (), rules)
    SCHEMES.get(config["denoise_scheme"]).check_config(config)
    options.check(config, (), protocol.RULES)  # after the scheme's own, more specific, rules
    adapters.check_weightable(config)
    protocol.check_guidance_fits(config)


def check_valid_metric(config) -> None:
    """``valid_metric``: one of ``metrics``, its @K among ``topk``."""
    metric = config["valid_metric"]
    if isinstance(metric, str) and "@" in metric:
        k = metric.split("@", 1)[1]
        if not k.isdigit() or int(k) not in config["topk"]:
            raise ValueError(
                f"config key 'valid_metric' = {metric!r} is invalid: its @K must be one of topk "
                f"{config['topk']}"
            )
    metrics = list(config["metrics"])
    if str(metric).split("@")[0].lower() not in [name.lower() for name in metrics]:
        raise ValueError(
            f"config key 'valid_metric' = {metric!r} is not among the evaluated metrics {metrics}"
        )


def check_output_paths(config) -> None:
    """``results_file`` names a file (not ending in '/'), and neither it nor ``checkpoint_dir``
    would create a folder only to leave it by '..'."""
    results = config["results_file"]
    if results is not None:
        if os.fspath(results).endswith(("/", os.sep)):
            raise ValueError(
                f"config key 'results_file' = {os.fspath(results)!r} is invalid: it "
                "ends in '/'; expected a file path, e.g. out/results.json"
            )
        _check_no_climb("results_file", os.fspath(results))
    folder = config["checkpoint_dir"]
    if isinstance(folder, (str, os.PathLike)):
        _check_no_climb("checkpoint_dir", os.fspath(folder))


def _check_no_climb(key: str, path: str) -> None:
    """Fail where a '..' of ``path`` follows a folder that does not exist (creating the folders
    would leave an empty one behind)."""
    current = Path()
    for part in Path(path).parts:
        if part == ".." and current != Path() and not current.is_dir():
            raise ValueError(
                f"config key {key!r} = {path!r} is invalid: its folder {str(current)!r} does not "
                "exist and would be created only to be left by '..'; write the path without '..'"
            )
        current = current / part


def warn_ignored_keys(scheme: Any, user_keys: set[str]) -> None:
    """One warning naming the plugin keys the user set that the chosen scheme does not read."""
    from recbole_autodenoise.schemes import SCHEMES, ignored_keys

    if not isinstance(scheme, str) or scheme not in SCHEMES:
        return  # check_options reports an unknown scheme, listing the available ones
    ignored = ignored_keys(scheme, user_keys)
    if ignored:
        warnings.warn(
            f"config keys {ignored} are ignored by denoise_scheme {scheme!r}",
            UserWarning,
            stacklevel=3,
        )


def parse_cli_value(text: str, key: str = "value") -> Any:
    """``--key=value`` values: Python literals (1e-3, [10, 20], None), then safe YAML (true), else
    text; never evaluated. Within the bounds of config input (a ValueError naming ``key``)."""
    where = f"--{key}"
    if len(text) > MAX_CONFIG_BYTES:
        raise ValueError(_too_long(where, len(text)))
    _check_text(text, f"{where} value")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    else:
        check_value_bounds(value, where)
        return value
    try:
        value = load_yaml_text(text, where)
    except MalformedYaml:
        return text
    value = text if value is None and text.strip() not in ("", "~", "null") else value
    check_value_bounds(value, where)
    return value
