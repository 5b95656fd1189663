"""``controller_credit: supervised``: a diagnostic that reads the ratings, never a method.

The controller is fitted to the oracle's answer, batch by batch: its differentiable weight
(``Policy.meta_weights``: the reparameterised soft draw, or the hard controller's expected action)
is regressed onto each sample's true-positive flag (1 where rated >= ``clean_rating_threshold``
and not injected, else 0) by mean squared error, one Adam step of the controller per batch before
that batch's weights are drawn. The real step uses the drawn weights rescaled to mean 1, as the
``oracle`` does. The weights tend to P(true positive | state): how well a controller that sees
this ``controller_state`` could tell true from false positives *if its credit were perfect*.

Run beside ``default``, ``oracle`` and AutoDenoise with the same state: if it does not beat
Default, the state (not the credit) is what stops a learned denoiser; if it does, a better credit
could get there. Single-process only (each rank would fit its own shard)."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from recbole_autodenoise.controller.credit.base import Credit, register_credit
from recbole_autodenoise.schemes.base import effective_fraction, mean_one


@register_credit("supervised")
class SupervisedCredit(Credit):
    reads_ratings = True
    single_process_reason = "each rank would fit the controller to its own shard's ratings"
    prior_refusal = "it fits the ratings alone"

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        # since the last evaluation: batches fitted, sum of their squared errors before the step,
        # sum of the real weights' effective fractions (on the device: no sync per batch)
        self.stats = torch.zeros(3, dtype=torch.float64)

    def before_weights(self, state: torch.Tensor, batch) -> None:
        self.fit(*self.examples(state, batch))

    def examples(self, state: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(states, 0/1 labels) the controller is fitted to before this batch's weights are
        drawn."""
        if batch.true_positive is None:
            raise ValueError(
                "controller_credit 'supervised' needs batch.true_positive: train with "
                "AutoDenoiseTrainer, which fills it from clean_rating_field for schemes that "
                "read ratings"
            )
        return state, batch.true_positive

    def fit(self, state: torch.Tensor, labels: torch.Tensor) -> None:
        """One Adam step of the controller on mean((w(state) - label)^2), w differentiable."""
        policy, optimizer = self.controller.policy, self.controller.optimizer
        weights = policy.meta_weights(state, self.controller.generator)
        error = F.mse_loss(weights, labels.to(weights.dtype))
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
        self.stats = self.stats.to(error.device)
        self.stats[:2] += torch.stack(
            [torch.ones((), dtype=torch.float64, device=error.device), error.detach().double()]
        )

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        return self.counted(mean_one(weights))

    def counted(self, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` (the real step's), their effective fraction added to the statistics."""
        self.stats = self.stats.to(weights.device)
        self.stats[2] += effective_fraction(weights)
        return weights

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        batches, error, effective = self.stats.tolist()
        self.stats = torch.zeros_like(self.stats)
        if not batches:
            return {}
        return {"fit_mse": error / batches, "effective_fraction": effective / batches}

    def state_dict(self) -> dict[str, Any]:
        return {"supervised_stats": self.stats.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats = state["supervised_stats"].cpu().double()
