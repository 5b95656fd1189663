"""The value checks the options use (``options.Option.check``).

A leaf module: the components that declare options import it, never ``config``, which builds the
whole ``Config``.
"""

from __future__ import annotations

import math
from typing import Any


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
