"""Protocol rules on a run's scheme settings, from the config alone, before any data loads
(``config.check_options`` checks ``RULES`` after the scheme's own rules).

- Diagnostics that read the training rows' ratings (``denoise_scheme: oracle``,
  ``controller_credit: supervised``, ``controller_oracle_state: true``: each class's
  ``rating_readers``) run only with ``allow_rating_diagnostics: true``; their results say
  ``reads_training_ratings: true``.
- A scheme or credit that learns from the clean validation rows themselves (``l2rw``;
  ``controller_credit`` ``meta``, ``user``, ``explicit``: ``validation_learners``) needs a
  guide/select split (``clean_valid_guide_ratio`` > 0), so that the rows it learns from are not
  the rows that select the epoch.
- What draws clean guiding batches (``guidance_users``: ``l2rw``, ``controller_credit`` ``explicit``
  or ``meta``; ``denoise_diagnostics``) is refused with a model trained on masked sequences and in
  a multi-process run (``check_guidance_fits``).
"""

from __future__ import annotations

from typing import Any

from recbole_autodenoise import options
from recbole_autodenoise.checks import is_number
from recbole_autodenoise.options import Option, Rule
from recbole_autodenoise.schemes.base import SCHEMES, WeightingScheme

OPT_IN = "allow_rating_diagnostics"
OPTIONS = options.declare(
    Option(
        OPT_IN,
        "bool",
        False,
        "allow the diagnostics that read training ratings",
        lambda v: isinstance(v, bool),
        "true or false",
    ),
)
GUIDE_RATIO = "clean_valid_guide_ratio"
SUGGESTED_GUIDE_RATIO = 0.5


def _scheme_class(config: Any) -> type[WeightingScheme] | None:
    """``denoise_scheme``'s class; None for an unknown name (the trainer lists the known ones)."""
    name = config["denoise_scheme"]
    return SCHEMES.get(name) if isinstance(name, str) and name in SCHEMES else None


def _settings(found: list[tuple[str, Any]]) -> str:
    keys = "config key" if len(found) == 1 else "config keys"
    return keys + " " + " and ".join(f"'{key}' = {value!r}" for key, value in found)


def reads_training_ratings(config: Any) -> bool:
    """Does the configured scheme read the training rows' ratings?"""
    scheme = _scheme_class(config)
    return scheme is not None and bool(scheme.rating_readers(config))


def check_protocol(config: Any) -> None:
    """Refuse a rating-reading diagnostic without ``allow_rating_diagnostics: true``, and a
    scheme or credit that learns from the validation rows with ``clean_valid_guide_ratio`` 0."""
    check_rating_readers(config)
    check_validation_learners(config)


def check_rating_readers(config: Any) -> None:
    """Refuse a rating-reading diagnostic without ``allow_rating_diagnostics: true``."""
    allowed = options.read(config, OPT_IN)
    scheme = _scheme_class(config)
    readers = scheme.rating_readers(config) if scheme is not None else []
    if readers and not allowed:
        raise ValueError(
            f"{_settings(readers)} reads the training rows' ratings (a diagnostic, never a "
            f"denoising method): set {OPT_IN}: true to run it (its results then say "
            "reads_training_ratings: true)"
        )


def check_validation_learners(config: Any) -> None:
    """Refuse a scheme or credit that learns from the clean validation rows at
    ``clean_valid_guide_ratio`` 0 (those rows would also select the epoch)."""
    scheme = _scheme_class(config)
    learners = scheme.validation_learners(config) if scheme is not None else []
    ratio = config[GUIDE_RATIO]
    if learners and is_number(ratio) and ratio == 0:
        raise ValueError(
            f"{_settings(learners)} learns from the clean validation rows, and {GUIDE_RATIO} = "
            f"{ratio!r} makes them the rows that select the epoch: set {GUIDE_RATIO} to "
            f"{SUGGESTED_GUIDE_RATIO} (half of each user's clean validation rows teach, the other "
            "half select)"
        )


RULES = (
    Rule(
        (OPT_IN, "denoise_scheme"), "true to run a rating-reading diagnostic", check_rating_readers
    ),
    Rule(
        (GUIDE_RATIO, "denoise_scheme"),
        "> 0 where a scheme or credit learns from validation rows",
        check_validation_learners,
    ),
)


MASKED_SEQUENCES = "mask_itemseq"  # RecBole's batch transform of BERT4Rec-like models


def check_guidance_fits(config: Any) -> None:
    """From the config alone, before any data loads: the settings that draw clean guiding batches
    (the scheme's ``guidance_users``, ``denoise_diagnostics``) are refused with a model trained on
    masked sequences (``transform: mask_itemseq``: the batches carry no masked positions) and in a
    multi-process run (their virtual steps run outside DDP's gradient synchronisation)."""
    scheme = _scheme_class(config)
    users = scheme.guidance_users(config) if scheme is not None else []
    if config["denoise_diagnostics"] is True:
        users.append(("denoise_diagnostics", True))
    if not users:
        return
    key, value = users[0]
    setting = f"config key {key!r} = {value!r} draws clean guiding batches"
    if config["transform"] == MASKED_SEQUENCES:
        raise ValueError(
            f"{setting}, which carry no masked positions; model {config['model']} trains on "
            f"masked sequences (transform: {MASKED_SEQUENCES})"
        )
    # a rank of a multi-process run (``distributed.is_distributed``), or its launcher
    if config["single_spec"] is False or int(config["nproc"] or 1) > 1:
        raise ValueError(
            f"{setting}, and those are single-process only: their virtual steps run on each "
            "rank's model copy outside DDP's gradient synchronisation; run with nproc: 1"
        )
