"""Weighting schemes, one file each, registered by name (``denoise_scheme``): the baselines here,
AutoDenoise's ``autodenoise_h`` and ``autodenoise_s`` in ``recbole_autodenoise.controller``.

Add your own with ``@register_scheme("name")`` on a :class:`WeightingScheme` subclass.
"""

from recbole_autodenoise.schemes import (  # noqa: F401  (registers the built-in schemes)
    adt_rl,
    adt_tl,
    dcf,
    default,
    heuristic,
    oracle,
    udt,
)
from recbole_autodenoise.schemes.base import (
    SCHEMES,
    Batch,
    WeightingScheme,
    ignored_keys,
    register_scheme,
)

__all__ = ["SCHEMES", "Batch", "WeightingScheme", "ignored_keys", "register_scheme"]
