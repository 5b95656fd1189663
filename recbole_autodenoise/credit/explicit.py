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
``explicit_canaries`` r > 0 plants stray clicks among the training rows (``canaries.py``) and
adds each batch's canaries (label 0) and their source rows (label 1) to the fit, in the training
rows' own state: both trained on, so "never trained on" no longer tells them apart.
``explicit_weight_power`` γ applies the weights as P^γ (γ > 1 sharpens the contrast between
likely-clean and likely-stray rows, as ADT-RL's β does for the loss) before the mean-1 rescaling.
``explicit_labels: observed`` labels every rated row 1, low-rated ones too, so only the stray
clicks (and canaries) are 0s and no rating is used: the controller learns "a held-out interaction
rather than a sampled item", not "liked", for models that learn from the low-rated interactions
too (the sequential ones, where dropping them hurts); it needs ``explicit_negatives`` >= 1 or
``explicit_canaries`` > 0. (The value was called ``interaction``, which is refused now.)
Single-process only (it draws clean batches, as ``l2rw`` and ``meta`` do)."""

from __future__ import annotations

from typing import Any

import torch
from recbole.data.interaction import cat_interactions

from recbole_autodenoise.canaries import canary_labels
from recbole_autodenoise.controller import controller_state
from recbole_autodenoise.credit.base import register_credit
from recbole_autodenoise.credit.supervised import SupervisedCredit
from recbole_autodenoise.diagnostics import sample_groups


@register_credit("explicit")
class ExplicitCredit(SupervisedCredit):
    reads_ratings = False  # the validation period's ratings, never a training row's
    needs_guidance = True
    learns_from_validation_rows = True
    guide_rows = "explicit"

    def __init__(self, scheme) -> None:
        super().__init__(scheme)
        if scheme.state_kind == "loss_features":
            raise ValueError(
                f"config key 'controller_state' = {scheme.state_kind!r} is not supported with controller_credit "
                "'explicit' (its loss history exists for training rows only); allowed there: 'paper', 'paper_product'"
            )
        self.rating_field = scheme.config["clean_rating_field"]
        self.threshold = float(scheme.config["clean_rating_threshold"])
        self._pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # this batch's canary pairs
        # since the last evaluation: weight sums and counts of canaries and of their source rows
        self.canary_stats = torch.zeros(4, dtype=torch.float64)

    def examples(self, state: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        guidance = batch.guidance
        if guidance is None:
            raise ValueError("controller_credit 'explicit' needs the explicit rows' batches: train with "
                             "AutoDenoiseTrainer (it provides Batch.guidance)")
        rows = guidance.clean_batch()
        labels = self._labels(rows)
        copies = self.scheme.explicit_negatives
        if copies:  # stray clicks: the same users and moments with items they never trained on, label 0
            rows = cat_interactions([rows, guidance.clean_batches.unobserved(rows, copies)])
            labels = torch.cat([labels, labels.new_zeros(len(labels) * copies)])
        with torch.no_grad():
            sample = guidance.sample_loss(rows, with_representations=True)
        explicit = controller_state(sample.user_repr, sample.item_repr, sample.losses.detach(), batch.epoch_fraction,
                                    product=self.scheme.state_kind == "paper_product")
        labels = labels.to(explicit.dtype)
        if batch.canary is None:
            return explicit, labels
        rows, canary = canary_labels(batch.canary, batch.row_ids)
        self._pairs = (rows, canary)
        return torch.cat([explicit, state[rows]]), torch.cat([labels, canary.to(labels.dtype)])

    def _labels(self, rows) -> torch.Tensor:
        """1 for a rated row rated >= the threshold, else 0; with ``explicit_labels: observed``
        1 for every rated row (the stray-click rows and canaries are the 0s)."""
        liked = sample_groups(rows, self.rating_field, self.threshold)["tp"]
        return torch.ones_like(liked) if self.scheme.explicit_labels == "observed" else liked

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        power = self.scheme.weight_power
        weights = super().real_weights(weights if power == 1 else weights.pow(power))
        if self._pairs is not None:
            rows, labels = self._pairs
            paired = weights[rows].double()
            labels = labels.double()
            self.canary_stats = self.canary_stats.to(weights.device) + torch.stack(
                [(paired * (1 - labels)).sum(), (1 - labels).sum(), (paired * labels).sum(), labels.sum()])
            self._pairs = None
        return weights

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        logged = super().after_evaluation(valid_result, epoch)
        canary_w, canaries, source_w, sources = self.canary_stats.tolist()
        self.canary_stats = torch.zeros_like(self.canary_stats)
        if canaries:
            logged.update(canary_mean_weight=canary_w / canaries, canary_source_mean_weight=source_w / sources)
        return logged

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "canary_stats": self.canary_stats.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.canary_stats = state.get("canary_stats", torch.zeros(4)).cpu().double()  # older states: none
