"""The candidates ``select`` compares: named settings (a scheme plus its keys), each with a
simplicity rank and a tuning grid over its own keys.

A candidate's ``grid`` is a list of configurations tried in order by ``--tune=K`` (the first K):
the first is always ``{}`` (the settings as given: the user's config and the candidate's keys),
the others change only keys the candidate's scheme reads (for the ``default`` family, the learning
rate). A ``--candidates-file`` (YAML) adds candidates or overrides fields of built-in ones::

    slow_default:                 # a new candidate
      scheme: default
      settings: {learning_rate: 1.0e-4}
      simplicity: 0.5             # optional; new candidates rank after the built-in ones
      grid:                       # optional: a list of configurations, or key: [values] (product)
        learning_rate: [1.0e-4, 3.0e-4]
    adt_rl:                       # a built-in one: the fields given replace its own
      grid: [{adt_beta: 0.1}, {adt_beta: 0.3}]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

# keys select sets for every cell itself: a candidate or a --key=value override may not set them
RESERVED_KEYS = frozenset(
    {
        "seed",
        "denoise_scheme",
        "clean_valid_guide_ratio",
        "evaluate_test",
        "checkpoint_dir",
        "results_file",
        "data_path",
    }
)
FILE_FIELDS = ("scheme", "settings", "grid", "simplicity", "description")


@dataclass(frozen=True)
class Candidate:
    """One named setting: ``scheme`` (``denoise_scheme``) and its ``settings`` (other keys)."""

    name: str
    scheme: str
    settings: dict[str, Any] = field(default_factory=dict)
    grid: tuple[dict[str, Any], ...] = ({},)
    simplicity: float = math.inf  # lower is simpler
    description: str = ""


def _lr_grid(key: str, values: list[float]) -> tuple[dict[str, Any], ...]:
    return ({},) + tuple({key: value} for value in values)


_DEFAULT_GRID = _lr_grid("learning_rate", [5e-3, 5e-4, 1e-2, 1e-4])
_CONTROLLER_GRID = _lr_grid("controller_learning_rate", [1e-4, 1e-2, 3e-4, 3e-3])
_GUIDE_AS_TRAIN = {"clean_valid_guide_as_train": True}

BUILTIN: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate("default", "default", {}, _DEFAULT_GRID, 0, "RecBole's training, unweighted"),
        Candidate(
            "default_guide",
            "default",
            dict(_GUIDE_AS_TRAIN),
            _DEFAULT_GRID,
            1,
            "Default trained also on the guide part of validation (the equal-information baseline)",
        ),
        Candidate(
            "default_chrono",
            "default",
            {**_GUIDE_AS_TRAIN, "clean_valid_guide_order": "chronological"},
            _DEFAULT_GRID,
            1,
            "default_guide with the older half of validation as guide, the newer as select",
        ),
        Candidate(
            "adt_rl",
            "adt_rl",
            {},
            _lr_grid("adt_beta", [0.05, 0.5, 0.1, 1.0]),
            2,
            "ADT reweighted loss, weight exp(-beta * loss)",
        ),
        Candidate(
            "adt_tl",
            "adt_tl",
            {},
            (
                {},
                {"adt_max_drop_rate": 0.1},
                {"adt_num_gradual": 10000},
                {"adt_max_drop_rate": 0.05},
                {"adt_max_drop_rate": 0.1, "adt_num_gradual": 10000},
            ),
            3,
            "ADT truncated loss, the largest losses dropped on a schedule",
        ),
        Candidate(
            "dcf",
            "dcf",
            {},
            (
                {},
                {"dcf_co_lambda": 1e-3},
                {"dcf_co_lambda": 1e-5},
                {"dcf_relabel_ratio": 0.1},
                {"adt_max_drop_rate": 0.1},
            ),
            4,
            "DCF, dropping by a loss bound, relabelling some",
        ),
        Candidate(
            "autodenoise_s",
            "autodenoise_s",
            {},
            _CONTROLLER_GRID,
            5,
            "AutoDenoise-S as in the paper (REINFORCE on the validation reward)",
        ),
        Candidate(
            "explicit",
            "autodenoise_s",
            {
                "controller_credit": "explicit",
                "explicit_negatives": 1,
                "guide_batch_size": 512,
            },
            _CONTROLLER_GRID,
            6,
            "AutoDenoise-S's controller fitted to the guide part's ratings",
        ),
    )
}
# what select runs without --candidates (default_chrono by name only)
DEFAULT_CANDIDATES = (
    "default",
    "default_guide",
    "adt_rl",
    "adt_tl",
    "dcf",
    "autodenoise_s",
    "explicit",
)
REFERENCE = "default"  # always run: the test set is read for it and for the recommended candidate


def _check_settings(name: str, what: str, settings: Any) -> dict[str, Any]:
    if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
        raise ValueError(
            f"candidate {name!r}: {what} must be a mapping of key: value, got {settings!r}"
        )
    reserved = sorted(set(settings) & RESERVED_KEYS)
    if reserved:
        raise ValueError(
            f"candidate {name!r}: {what} sets {reserved}, which select sets for every cell "
            f"(reserved: {', '.join(sorted(RESERVED_KEYS))})"
        )
    return dict(settings)


def parse_grid(name: str, grid: Any) -> tuple[dict[str, Any], ...]:
    """A file's ``grid``: a list of configurations, or a mapping key -> list of values (their
    product, the first key varying slowest); ``{}`` (the settings as given) comes first."""
    if isinstance(grid, dict):
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"candidate {name!r}: grid key {key!r} needs a non-empty list of values, "
                    f"got {values!r}"
                )
        keys = list(grid)
        grid = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[key] for key in keys))]
    if not isinstance(grid, list):
        raise ValueError(
            f"candidate {name!r}: grid must be a list of configurations or a mapping "
            f"key: [values], got {grid!r}"
        )
    configs = [_check_settings(name, "grid entry", config) for config in grid]
    return tuple([{}] + [config for config in configs if config])


def load_candidates_file(
    path: str | Path, registry: dict[str, Candidate]
) -> tuple[dict[str, Candidate], list[str]]:
    """``registry`` with the file's candidates added or their fields replaced; also the names the
    file adds (new candidates), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"candidates file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"malformed yaml in candidates file {path}: {error}") from None
    if not isinstance(content, dict) or not content:
        raise ValueError(
            f"candidates file {path} must hold a mapping of candidate name -> fields "
            f"({', '.join(FILE_FIELDS)})"
        )
    merged, added = dict(registry), []
    for name, fields in content.items():
        if not isinstance(name, str) or not name or "," in name or name.strip() != name:
            raise ValueError(f"candidates file {path}: {name!r} is not a usable candidate name")
        if not isinstance(fields, dict):
            raise ValueError(
                f"candidates file {path}: candidate {name!r} must be a mapping of "
                f"{', '.join(FILE_FIELDS)}, got {fields!r}"
            )
        unknown = sorted(set(fields) - set(FILE_FIELDS))
        if unknown:
            raise ValueError(
                f"candidates file {path}: candidate {name!r} has unknown fields {unknown}; "
                f"allowed: {', '.join(FILE_FIELDS)}"
            )
        merged[name] = _candidate(name, fields, merged.get(name), path)
        if name not in registry:
            added.append(name)
    return merged, added


def _candidate(name: str, fields: dict[str, Any], base: Candidate | None, path: Path) -> Candidate:
    if base is None and "scheme" not in fields:
        raise ValueError(f"candidates file {path}: new candidate {name!r} needs a 'scheme'")
    changes: dict[str, Any] = {}
    if "scheme" in fields:
        if not isinstance(fields["scheme"], str):
            raise ValueError(
                f"candidates file {path}: candidate {name!r}: scheme must be a scheme name"
            )
        changes["scheme"] = fields["scheme"]
    if "settings" in fields:
        changes["settings"] = _check_settings(name, "settings", fields["settings"] or {})
    if "grid" in fields:
        changes["grid"] = parse_grid(name, fields["grid"] or [])
    if "simplicity" in fields:
        value = fields["simplicity"]
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"candidates file {path}: candidate {name!r}: simplicity must be a number "
                f"(lower is simpler; built-in: default 0 ... explicit 6), got {value!r}"
            )
        changes["simplicity"] = value
    if "description" in fields:
        changes["description"] = str(fields["description"])
    if base is None:
        return Candidate(
            name=name, simplicity=changes.pop("simplicity", max_builtin_simplicity() + 1), **changes
        )
    return replace(base, **changes)


def max_builtin_simplicity() -> float:
    return max(candidate.simplicity for candidate in BUILTIN.values())


def resolve(
    names: list[str] | None, registry: dict[str, Candidate], added: list[str]
) -> list[Candidate]:
    """The candidates to run, in the order given (default: ``DEFAULT_CANDIDATES`` and the file's
    new ones), with ``REFERENCE`` first if missing. Unknown names fail listing the known ones."""
    if names is None:
        names = [*DEFAULT_CANDIDATES, *added]
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ValueError(
            f"unknown candidate{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(registry)}"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"candidates named twice: {', '.join(duplicates)}")
    if REFERENCE not in names:
        names = [REFERENCE, *names]
    return [registry[name] for name in names]


def simplicity_order(
    candidates: list[Candidate], registry: dict[str, Candidate]
) -> dict[str, tuple[float, int]]:
    """Sort keys, simplest first: the simplicity rank, then the registry's order."""
    position = {name: index for index, name in enumerate(registry)}
    return {c.name: (c.simplicity, position[c.name]) for c in candidates}
