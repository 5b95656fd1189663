"""Reading one config key with a check, and the checks the plugin's keys use.

A leaf module: the components that read their own keys (schemes, the controller, the data hooks,
the trainer) import it, never ``config``, which builds the whole ``Config``.
"""

from __future__ import annotations

import math
from typing import Any, Callable


def is_number(value: Any) -> bool:
    """An int or a finite float (never a bool, NaN or an infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> bool:
    return is_number(value) and value > 0


def non_negative(value: Any) -> bool:
    return is_number(value) and value >= 0


def fraction(value: Any) -> bool:
    return is_number(value) and 0 <= value < 1


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> bool:
    return is_int(value) and value >= 1


def read_key(config, key: str, check: Callable[[Any], bool], allowed: str) -> Any:
    """Read one key, failing with the key, the value and what is allowed."""
    value = config[key]
    if value is None and key not in config.final_config_dict:
        raise ValueError(
            f"config key '{key}' is missing (expected {allowed}); "
            "is properties/overall.yaml loaded?"
        )
    if not check(value):
        raise ValueError(f"config key '{key}' = {value!r} is invalid: expected {allowed}")
    return value
