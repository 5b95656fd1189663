"""Two options of ``controller_credit: explicit`` that did not help: ``explicit_canaries`` and
``explicit_weight_power``. Importing this module makes ``explicit`` select
:class:`ExplicitCreditExtras`, which behaves as the plain explicit credit at their neutral values
(0 and 1).

``explicit_canaries`` r > 0 plants stray clicks among the training rows (``canaries.py``) and
adds each batch's canaries (label 0) and their source rows (label 1) to the fit, in the training
rows' own state: both trained on, so "never trained on" no longer tells them apart; with
``explicit_labels: observed`` canaries give the fit its 0s as ``explicit_negatives`` do.
``explicit_weight_power`` γ applies the weights as P^γ (γ > 1 sharpens the contrast between
likely-clean and likely-stray rows, as ADT-RL's β does for the loss) before the mean-1 rescaling.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise.checks import fraction, positive
from recbole_autodenoise.controller.credit import CREDITS
from recbole_autodenoise.controller.credit.explicit import ExplicitCredit
from recbole_autodenoise.experimental.canaries import Canaries, canary_labels
from recbole_autodenoise.options import Option, declare


@CREDITS.extend("explicit")
class ExplicitCreditExtras(ExplicitCredit):
    OPTIONS = declare(
        Option(
            "explicit_canaries",
            "float",
            0.0,
            "controller_credit explicit: share in [0, 1) of training rows that get a planted "
            "stray click (same user and moment, a popularity-drawn item the user never had), "
            "trained on and fitted as 0 against its source row's 1",
            fraction,
            "a number in [0, 1)",
        ),
        Option(
            "explicit_weight_power",
            "float",
            1.0,
            "controller_credit explicit: training weights are the controller's P(rated >= "
            "threshold | state) to this power (> 1 sharpens), then mean 1 per batch",
            positive,
            "a number > 0",
        ),
    )
    exclusive = (*ExplicitCredit.exclusive, "explicit_canaries", "explicit_weight_power")
    zero_label_hint = "set explicit_negatives >= 1 (or explicit_canaries > 0)"

    @classmethod
    def has_zero_labels(cls, options: dict[str, Any]) -> bool:
        return super().has_zero_labels(options) or bool(options["explicit_canaries"])

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        self.canary_rate = options["explicit_canaries"]
        self.weight_power = options["explicit_weight_power"]
        self.canaries: Canaries | None = None
        self._pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # this batch's canary pairs
        # since the last evaluation: weight sums and counts of canaries and of their source rows
        self.canary_stats = torch.zeros(4, dtype=torch.float64)

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """With ``explicit_canaries``: plant the canaries, on items neither the training rows nor
        the validation rows (``held_out``) pair with their user."""
        if self.canary_rate:
            self.canaries = Canaries(
                train_dataset, self.canary_rate, self.controller.seed, held_out
            )

    def augment(self, interaction: Any) -> Any:
        return interaction if self.canaries is None else self.canaries.augment(interaction)

    def examples(self, state: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        explicit, labels = super().examples(state, batch)
        if batch.canary is None:
            return explicit, labels
        rows, canary = canary_labels(batch.canary, batch.row_ids)
        self._pairs = (rows, canary)
        return torch.cat([explicit, state[rows]]), torch.cat([labels, canary.to(labels.dtype)])

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        power = self.weight_power
        weights = super().real_weights(weights if power == 1 else weights.pow(power))
        if self._pairs is not None:
            rows, labels = self._pairs
            paired = weights[rows].double()
            labels = labels.double()
            self.canary_stats = self.canary_stats.to(weights.device) + torch.stack(
                [
                    (paired * (1 - labels)).sum(),
                    (1 - labels).sum(),
                    (paired * labels).sum(),
                    labels.sum(),
                ]
            )
            self._pairs = None
        return weights

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        logged = super().after_evaluation(valid_result, epoch)
        canary_w, canaries, source_w, sources = self.canary_stats.tolist()
        self.canary_stats = torch.zeros_like(self.canary_stats)
        if canaries:
            logged.update(
                canary_mean_weight=canary_w / canaries, canary_source_mean_weight=source_w / sources
            )
        return logged

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "canary_stats": self.canary_stats.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # older states have none
        self.canary_stats = state.get("canary_stats", torch.zeros(4)).cpu().double()
