"""``controller_credit: explicit``: the controller learns from a small slice of explicit feedback.

The paper's premise is a platform with much implicit feedback and a little explicit feedback
(ratings). Here the explicit slice is the validation period's rated interactions, high *and* low
(the clean validation set keeps only those rated >= ``clean_rating_threshold``; the data pipeline
keeps the low-rated ones apart for this credit, ``TrainingData.explicit_rows``; with
``clean_valid_guide_ratio`` > 0 only the guide part's clean rows join them, so validation selects on
rows no learner saw). Before each training batch the controller takes one Adam step of
``supervised`` credit's regression on a batch of ``guide_batch_size`` explicit rows: its
differentiable weight against 1 (rated >= the threshold) or 0 (rated below), the rows' state
(``controller_state: paper``: e_u, e_v and loss under the current recommender, the epoch) read as
for training rows. Its weights tend to P(rated >= threshold | state), applied to the implicit
training rows and rescaled to mean 1 per batch. Never reads a training row's rating: a method,
not a diagnostic. ``controller_prior: adt_rl`` multiplies ADT-RL's exp(-adt_beta * loss) in.
``explicit_negatives`` k > 0 adds, per explicit row, k rows of the same user and moment with an
item the user never trained on (drawn as the item of a random training row: in proportion to its
popularity), labelled 0: the stray clicks a rating slice cannot show, so the controller also
learns to down-weight implicit rows that look like them (``CleanBatches.unobserved``).
Models trained pointwise on labelled rows (NeuMF, LightGCNPointwise, ...): the rated rows are fitted
as positives (label 1, their loss that of a positive), the controller weights the training
positives (rescaled to mean 1 among them) and every sampled negative keeps weight 1: the fit sees
interactions only, so its weight says nothing of a sampled item.
``explicit_labels: observed`` labels every rated row 1, low-rated ones too, so only the stray
clicks are 0s and no rating is used: the controller learns "a held-out interaction rather than a
sampled item", not "liked", for models that learn from the low-rated interactions too (the
sequential ones, where dropping them hurts); it needs ``explicit_negatives`` >= 1. (The value was
called ``interaction``, which is refused now.) Single-process only (it draws clean batches)."""

from __future__ import annotations

from typing import Any

import torch
from recbole.data.interaction import cat_interactions

from recbole_autodenoise.checks import is_int
from recbole_autodenoise.controller.credit.base import CREDITS, register_credit
from recbole_autodenoise.controller.credit.supervised import SupervisedCredit
from recbole_autodenoise.controller.state import STATES
from recbole_autodenoise.diagnostics import sample_groups
from recbole_autodenoise.options import Option, Rule, declare
from recbole_autodenoise.schemes.base import mean_one

EXPLICIT_LABELS = ("rating", "observed")


def check_zero_labels(config) -> None:
    """``explicit_labels: observed`` needs rows labelled 0 besides the rated rows."""
    credit = CREDITS.get("explicit")  # the registered class (a package may extend it)
    if config["explicit_labels"] == "observed" and not credit.has_zero_labels(
        credit.read_options(config)
    ):
        raise ValueError(
            "config key 'explicit_labels' = 'observed' labels every rated row 1, so the fit "
            f"needs rows labelled 0: {credit.zero_label_hint}"
        )


def check_state_has_held_out_rows(config) -> None:
    """The state must give a state to rows never trained on (the rated rows)."""
    name = config["controller_state"]
    if not STATES.get(name).held_out_rows:
        allowed = ", ".join(repr(n) for n in STATES.names() if STATES.get(n).held_out_rows)
        raise ValueError(
            f"config key 'controller_state' = {name!r} is not supported with "
            "controller_credit 'explicit' (its loss history exists for training rows only); "
            f"allowed there: {allowed}"
        )


@register_credit("explicit")
class ExplicitCredit(SupervisedCredit):
    reads_ratings = False  # the validation period's ratings, never a training row's
    needs_guidance = True
    learns_from_validation_rows = True
    guide_rows = "explicit"
    prior_refusal = None
    OPTIONS = declare(
        Option(
            "explicit_negatives",
            "int",
            0,
            "controller_credit explicit: per rated row, this many rows of the same user with an "
            "item never trained on (popularity-drawn), labelled 0",
            lambda v: is_int(v) and v >= 0,
            "an integer >= 0",
        ),
        Option(
            "explicit_labels",
            "str",
            "rating",
            "explicit credit: rating (>= threshold: 1) | observed (1)",
            choices=EXPLICIT_LABELS,
            renamed=(("interaction", "observed", "every rated row labelled 1: no rating is used"),),
        ),
    )
    RULES = (
        Rule(
            ("explicit_labels", "explicit_negatives"),
            "observed needs explicit_negatives >= 1 (with controller_credit explicit)",
            check_zero_labels,
        ),
        Rule(
            ("controller_state",),
            "with controller_credit explicit: a state of rows never trained on",
            check_state_has_held_out_rows,
        ),
    )
    exclusive = ("explicit_negatives", "explicit_labels")
    # what gives the fit rows labelled 0 besides the rated ones (``explicit_labels: observed``)
    zero_label_hint = "set explicit_negatives >= 1"

    @classmethod
    def read_options(cls, config) -> dict[str, Any]:
        """The declared keys (``explicit_labels``' old value ``interaction`` is refused naming its
        new one), and the ratings' field and threshold (the data's keys)."""
        return {
            **super().read_options(config),
            "rating_field": config["clean_rating_field"],
            "threshold": config["clean_rating_threshold"],
        }

    @classmethod
    def has_zero_labels(cls, options: dict[str, Any]) -> bool:
        """Does the fit get rows labelled 0 besides the rated rows?"""
        return bool(options["explicit_negatives"])

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        self.rating_field = options["rating_field"]
        self.threshold = float(options["threshold"])
        # the current batch's sampled negatives (labelled batches), from ``examples``
        self._sampled: torch.Tensor | None = None

    def examples(self, state: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        guidance = batch.guidance
        if guidance is None:
            raise ValueError(
                "controller_credit 'explicit' needs the explicit rows' batches: "
                "train with AutoDenoiseTrainer (it provides Batch.guidance)"
            )
        # sampled negatives of labelled (pointwise) batches: weight 1 in ``real_weights``
        self._sampled = None if batch.labels is None else batch.labels <= 0
        rows = guidance.clean_positives()
        labels = self._labels(rows)
        copies = self.options["explicit_negatives"]
        # stray clicks: the same users and moments with items they never trained on, label 0
        if copies:
            rows = cat_interactions([rows, guidance.clean_batches.unobserved(rows, copies)])
            labels = torch.cat([labels, labels.new_zeros(len(labels) * copies)])
        with torch.no_grad():
            sample = guidance.sample_loss(rows, with_representations=True)
        explicit = self.controller.features.of_rows(
            sample.user_repr, sample.item_repr, sample.losses.detach(), batch.epoch_fraction
        )
        return explicit, labels.to(explicit.dtype)

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """The drawn weights, with each sampled negative of a labelled batch at 1 and the positives
        rescaled to mean 1 among them."""
        sampled, self._sampled = self._sampled, None
        if sampled is None:
            return super().real_weights(weights)
        positive = ~sampled
        return self.counted(
            torch.ones_like(weights).masked_scatter(positive, mean_one(weights[positive]))
        )

    def _labels(self, rows) -> torch.Tensor:
        """1 for a rated row rated >= the threshold, else 0; with ``explicit_labels: observed``
        1 for every rated row (the stray-click rows are the 0s)."""
        liked = sample_groups(rows, self.rating_field, self.threshold)["tp"]
        return torch.ones_like(liked) if self.options["explicit_labels"] == "observed" else liked
