"""Options: each config key declared once, next to the component that reads it.

An :class:`Option` holds a key's name, type, default, the values it takes (a check and the words
a message names them by, fixed names, or the names of a registry) and a one-line doc. A
:class:`Rule` ties keys together (``clean_valid_guide_order: chronological`` needs
``clean_valid_guide_ratio > 0``). A component lists its own options in ``OPTIONS`` and its rules
in ``RULES`` (class attributes, or module constants for a module that is the component);
``declare`` registers each option by name, once.

``config.make_config`` checks every declared value, then the rules of the components the run
uses, before any data loads. A component checks its options again when it is built (``check``:
configs are also built by hand) and then reads ``config[key]``; :func:`read` checks and reads one
key. ``render_yaml_line`` and ``render_table`` write the property files' plugin lines and the
guide's key table from the declarations (``python -m recbole_autodenoise.option_files``).

A leaf module: every component imports it, it imports no component.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from recbole_autodenoise.checks import is_int, non_negative, positive, positive_int
from recbole_autodenoise.registry import Registry


@dataclass(frozen=True)
class Option:
    """One config key: what it is, which values it takes, its default and what it does.

    The values: ``check`` (a predicate) with ``allowed`` (the words a message names them by), or
    ``choices`` (fixed names), or ``registry`` (its registered names, after ``choices``).
    ``renamed`` holds ``(old value, new value, what the new one means)``: an old value is refused
    naming the new one. ``recbole``: RecBole's key, with RecBole's default; the plugin only checks
    it, where it is set."""

    name: str
    type: str  # what the docs call the value: bool, int, float, str, list, path
    default: Any
    doc: str
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    choices: tuple[str, ...] = ()
    registry: Registry | None = None
    # an unknown name is refused with the registry's list ("unknown K 'x'; available: ...")
    lists_unknown: bool = False
    renamed: tuple[tuple[str, str, str], ...] = ()  # (old value, new value, what the new means)
    recbole: bool = False

    def names(self) -> list[str]:
        """The names a choice takes: ``choices``, then the registry's."""
        return [*self.choices, *(self.registry.names() if self.registry is not None else ())]

    def expected(self) -> str:
        """What a message says the key takes."""
        if self.allowed:
            return self.allowed
        if self.choices or self.registry is not None:
            return f"one of {self.names()}"
        return "any value"

    def documented(self) -> str:
        """What the docs say the key takes: a registry's experimental names apart."""
        registry = self.registry
        if registry is None or self.allowed:
            return self.expected()
        names = [name for name in self.names() if name not in registry.experimental]
        extra = [name for name in self.names() if name in registry.experimental]
        found = f"one of {names}"
        return found + (f"; with experimental: true also {extra}" if extra else "")

    def is_valid(self, value: Any) -> bool:
        if self.check is not None:
            return self.check(value)
        if self.choices or self.registry is not None:
            return isinstance(value, str) and value in self.names()
        return True

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (naming the key, the value and what is allowed), or None."""
        key = self.name
        for old, new, meaning in self.renamed:
            if value == old:
                return (
                    f"config key {key!r} = {old!r} was renamed {new!r} ({meaning}); "
                    f"set {key}: {new}"
                )
        registry = self.registry
        if (
            registry is not None
            and isinstance(value, str)
            and value not in self.names()
            and value in registry.experimental
        ):
            return f"config key {key!r} = {value!r}: {registry.unknown(value)}"
        if not self.is_valid(value):
            return f"config key {key!r} = {value!r} is invalid: expected {self.expected()}"
        return None

    def unknown_name(self, value: Any) -> str | None:
        """For a choice among a registry's names: the registry's own message for a name it does not
        hold (experimental and not imported; or, with ``lists_unknown``, any), else None."""
        registry = self.registry
        if registry is None or not isinstance(value, str) or value in self.names():
            return None
        if value in registry.experimental or self.lists_unknown:
            return registry.unknown(value)
        return None

    def read(self, config: Any) -> Any:
        """The key's value in ``config``, checked."""
        value = config[self.name]
        if value is None and self.name not in config.final_config_dict:
            raise ValueError(
                f"config key '{self.name}' is missing (expected {self.expected()}); "
                "is properties/overall.yaml loaded?"
            )
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


@dataclass(frozen=True)
class Rule:
    """A rule between keys: ``check(config)`` raises a ValueError naming the keys, their values
    and what is allowed. ``keys[0]`` is the key whose value the rule restricts; ``doc`` says the
    rule in a few words (the guide's table shows it beside that key)."""

    keys: tuple[str, ...]
    doc: str
    check: Callable[[Any], None]


_DECLARED: dict[str, Option] = {}


def declare(*options: Option) -> tuple[Option, ...]:
    """Register ``options`` by name (each name once) and return them, for a component's
    ``OPTIONS``. A second declaration of a name is refused unless it declares the same thing (a
    module imported again)."""
    for option in options:
        known = _DECLARED.get(option.name)
        if known is not None and _signature(known) != _signature(option):
            raise ValueError(f"config key {option.name!r} is declared twice")
        _DECLARED[option.name] = option
    return options


def _signature(option: Option) -> tuple:
    return (option.type, repr(option.default), option.doc, option.expected())


def declared(name: str) -> Option:
    """The declaration of ``name`` (its owner's module must have been imported)."""
    if name not in _DECLARED:
        raise ValueError(f"config key {name!r} is not declared by any imported component")
    return _DECLARED[name]


def read(config: Any, name: str) -> Any:
    """``name``'s value in ``config``, checked against its declaration."""
    return declared(name).read(config)


def read_key(config: Any, key: str, check: Callable[[Any], bool], allowed: str) -> Any:
    """One key read with a check that is not a declaration's (the messages are an option's)."""
    return Option(key, "", None, "", check=check, allowed=allowed).read(config)


def own(owner: Any, attribute: str = "OPTIONS") -> tuple:
    """``owner``'s own ``OPTIONS`` (or ``RULES``), not those it inherits."""
    return tuple(vars(owner).get(attribute, ()))


def along_mro(cls: type, attribute: str = "OPTIONS") -> list:
    """The ``OPTIONS`` (or ``RULES``) of ``cls`` and its bases, bases first, each once."""
    found: list = []
    for klass in reversed(cls.__mro__):
        found += [item for item in own(klass, attribute) if item not in found]
    return found


class Owner:
    """A component class that declares options (``OPTIONS``): its own and its bases', read and
    checked by name."""

    @classmethod
    def declared_options(cls) -> list[Option]:
        """The options of this class and its bases."""
        return along_mro(cls)

    @classmethod
    def read_options(cls, config: Any) -> dict[str, Any]:
        """This class's keys, read and checked."""
        return {option.name: option.read(config) for option in cls.declared_options()}


def check(config: Any, options: Iterable[Option], rules: Iterable[Rule] = ()) -> None:
    """Every value of ``options``, then every rule of ``rules``."""
    for option in options:
        option.read(config)
    for rule in rules:
        rule.check(config)


# --- RecBole's keys that users set most, checked here because RecBole checks none of them -------
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _log_level(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.lower() in LOG_LEVELS)


def _folder(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != ""


RECBOLE = "RecBole's"
RECBOLE_OPTIONS = declare(
    Option(
        "epochs",
        "int",
        RECBOLE,
        "most epochs to train",
        positive_int,
        "an integer >= 1",
        recbole=True,
    ),
    Option(
        "learning_rate",
        "float",
        RECBOLE,
        "the recommender's learning rate",
        positive,
        "a finite number > 0",
        recbole=True,
    ),
    Option(
        "weight_decay",
        "float",
        RECBOLE,
        "the recommender's L2 penalty",
        non_negative,
        "a finite number >= 0",
        recbole=True,
    ),
    Option(
        "train_batch_size",
        "int",
        RECBOLE,
        "training rows per batch",
        positive_int,
        "an integer >= 1",
        recbole=True,
    ),
    Option(
        "eval_batch_size",
        "int",
        RECBOLE,
        "evaluation rows per batch",
        positive_int,
        "an integer >= 1",
        recbole=True,
    ),
    Option(
        "stopping_step",
        "int",
        RECBOLE,
        "validations without gain before early stopping ends a run (0: the first one)",
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
        recbole=True,
    ),
    Option(
        "embedding_size",
        "int",
        RECBOLE,
        "width of the model's embeddings",
        positive_int,
        "an integer >= 1",
        recbole=True,
    ),
    Option(
        "seed",
        "int",
        RECBOLE,
        "the run's seed: every random draw of the run follows from it",
        lambda v: is_int(v) and v >= 0,
        "an integer >= 0",
        recbole=True,
    ),
    Option(
        "state",
        "str",
        RECBOLE,
        "log level",
        _log_level,
        f"a log level, one of {list(LOG_LEVELS)} (any case)",
        recbole=True,
    ),
    Option(
        "checkpoint_dir",
        "path",
        RECBOLE,
        "folder of the checkpoints",
        _folder,
        "a folder path",
        recbole=True,
    ),
)


OPTIONS = RECBOLE_OPTIONS  # this module's: RecBole's keys that the plugin checks


# --- the files written from the declarations ---------------------------------------------------
COMMENT_COLUMN = 36  # where a plugin line's "# (type) doc" starts in the property files


def yaml_value(value: Any) -> str:
    """``value`` as it stands in a property file (read back by RecBole as the same value)."""
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    raise TypeError(f"no property-file form for the default {value!r}")


def render_yaml_line(option: Option) -> str:
    """``key: default  # (type) doc``, the comment at ``COMMENT_COLUMN``."""
    text = f"{option.name}: {yaml_value(option.default)}"
    return f"{text.ljust(COMMENT_COLUMN - 1)} # ({option.type}) {option.doc}"


def rewrite_yaml(text: str, options: Sequence[Option]) -> str:
    """``text`` (a property file) with each declared key's line written from its declaration;
    declared keys the file lacks are added at its end. Other lines stay as they are."""
    by_name = {option.name: option for option in options}
    seen: set[str] = set()
    lines = []
    for line in text.splitlines():
        key = line.split(":", 1)[0] if ":" in line and line[:1].isalpha() else ""
        if key in by_name:
            seen.add(key)
            line = render_yaml_line(by_name[key])
        lines.append(line)
    lines += [render_yaml_line(option) for option in options if option.name not in seen]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(rows: Sequence[tuple[Option, str]], rules: Sequence[Rule] = ()) -> str:
    """The guide's key table: one row per ``(option, owner)``: key, type, default, allowed
    (with the rules that restrict it), doc, owner."""
    restricts: dict[str, list[str]] = {}
    for rule in rules:
        restricts.setdefault(rule.keys[0], []).append(rule.doc)
    lines = [
        "| key | type | default | allowed | doc | owner |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for option, owner in sorted(rows, key=lambda row: row[0].name):
        default = option.default if option.recbole else f"`{yaml_value(option.default)}`"
        allowed = "; ".join([option.documented(), *restricts.get(option.name, [])])
        cells = [f"`{option.name}`", option.type, str(default), allowed, option.doc, owner]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "RECBOLE_OPTIONS",
    "Option",
    "Rule",
    "along_mro",
    "check",
    "declare",
    "declared",
    "read",
    "read_key",
    "render_table",
    "rewrite_yaml",
]
