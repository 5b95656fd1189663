"""``controller_credit: meta``: per-batch meta-gradient from the clean set (Learning to Reweight).

Every ``meta_interval`` batches (the first one included) the controller proposes weights for the
batch, the recommender takes a virtual step on the weighted loss (``meta_virtual_step``), and the
controller is updated by Adam on the gradient of the clean loss after that step, taken through
the weights (``experimental.meta_step``). The real step then uses weights drawn from the *updated*
controller. Between those batches the controller is used as is. Validation teaches it
nothing here; ``after_evaluation`` reports what the meta steps saw since the last validation.

With ``meta_normalize_weights`` (the default) the weights of both steps are rescaled to mean 1 over
the batch, as Learning to Reweight does. Without it the controller learns a step size rather than
a mix: as long as the batch's gradient points the clean loss downhill, scaling *every* weight up
lowers the clean loss after the virtual step, so the meta-gradient mostly raises all weights
together, true positives', false positives' and injected samples' alike. Normalising removes that
one direction; the meta-gradient is taken through the rescaling, so only the relative weights
are learned. With the hard controller the real step's weights become k / mean(k), no longer whole
drops and duplicates.

The virtual step (``meta_virtual_step``): ``sgd`` (default), theta - alpha * g with alpha =
``learning_rate``, Learning to Reweight's model of one step whatever the real optimiser is; or
``optimizer``, the step the recommender's real optimiser would take next on g from its current
state (``meta_step.virtual_parameters``): for Adam / AdamW lr * m_hat / (sqrt(v_hat) + eps) with m
and v updated by g and bias correction at step + 1 (the first step when Adam has no state yet),
for SGD exactly the SGD step (weight decay included). Other learners are refused at construction.
Adam's first step is close to lr * sign(g), which rescaling g does not change, so its meta-gradient
is near 0 until the moments carry history. The logged alignment is -B / alpha * d L_clean / d w_i
(for SGD exactly a_i; for Adam the same sign convention: positive where up-weighting helps).

Estimators (see ``Policy.meta_weights``):

- soft: pathwise, w = softplus(mu + sigma * eps) with eps drawn from the scheme's generator, so
  mu and sigma both get d L_clean / d w. Unbiased for the expected clean loss after the step.
- hard: a categorical action has no pathwise gradient. The virtual step uses the expected weight
  E_pi[k | s], and the gradient is -(alpha / B) sum_i a_i grad_phi E_pi[k_i | s_i] with
  a_i = <grad l_i(theta), grad L_clean(theta')>: exactly the expectation over actions of
  per-sample REINFORCE with first-order credit r_i = alpha * a_i * (k_i - E[k_i]) / B (because
  sum_k (k - E[k]) grad pi_k = grad E[k]); no sampling noise at all.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise.checks import positive_int
from recbole_autodenoise.controller.credit import Credit, register_credit
from recbole_autodenoise.experimental.meta_step import (
    VIRTUAL_STEPS,
    check_followed_learner,
    guided_meta_step,
)
from recbole_autodenoise.options import Option, Rule, declare
from recbole_autodenoise.schemes.base import effective_fraction, mean_one


@register_credit("meta")
class MetaCredit(Credit):
    needs_guidance = True
    learns_from_validation_rows = True
    prior_refusal = "its virtual step would ignore the prior"
    OPTIONS = declare(
        Option(
            "meta_interval",
            "int",
            1,
            "controller_credit meta: update the controller every this many batches",
            positive_int,
            "a positive integer",
        ),
        Option(
            "meta_normalize_weights",
            "bool",
            True,
            "controller_credit meta: rescale each batch's weights to mean 1 (false: raw "
            "controller weights)",
            lambda v: isinstance(v, bool),
            "true or false",
        ),
        Option(
            "meta_virtual_step",
            "str",
            "sgd",
            "controller_credit meta: the virtual step: sgd (learning_rate * g, Learning to "
            "Reweight's) | optimizer (the real optimiser's next step from its state; learner "
            "adam, adamw or sgd)",
            choices=VIRTUAL_STEPS,
        ),
    )
    RULES = (
        Rule(
            ("meta_virtual_step", "learner"),
            "optimizer needs learner adam, adamw or sgd (with controller_credit meta)",
            check_followed_learner,
        ),
    )

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        self.interval: int = options["meta_interval"]
        self.normalize: bool = options["meta_normalize_weights"]
        self.follow_optimizer: bool = options["meta_virtual_step"] == "optimizer"
        self.batches = 0
        # since the last evaluation (kept on the device: no sync per batch): updates, sum of clean
        # loss after the virtual step, sum of alignments, count of positive alignments, samples;
        # and batches weighted, sum of the real weights' effective fractions
        self.stats = torch.zeros(5, dtype=torch.float64)
        self.spread = torch.zeros(2, dtype=torch.float64)

    def before_weights(self, state: torch.Tensor, batch) -> None:
        guidance = batch.guidance
        if guidance is None:
            raise ValueError(
                "controller_credit: meta needs the clean set's guidance for each batch; "
                "train with AutoDenoiseTrainer (it provides Batch.guidance)"
            )
        due = self.batches % self.interval == 0
        self.batches += 1
        if not due:
            return
        policy, optimizer = self.controller.policy, self.controller.optimizer
        params = list(policy.parameters())
        weights = policy.meta_weights(state, self.controller.generator)
        if self.normalize:
            weights = mean_one(weights)
        step = guided_meta_step(guidance, weights, params, follow_optimizer=self.follow_optimizer)
        optimizer.zero_grad()
        for param, grad in zip(params, step.controller_grads):
            param.grad = grad
        optimizer.step()
        # d L / d w_i = -(alpha / B) a_i, with the clean gradient taken at theta' (after an
        # optimizer step: -B / alpha * d L / d w_i, the same sign convention, positive where
        # up-weighting helps)
        alignment = step.weight_grads * (-len(weights) / guidance.learning_rate)
        update = torch.stack(
            [
                torch.ones((), dtype=torch.float64, device=alignment.device),
                step.clean_loss.double(),
                alignment.double().sum(),
                (alignment > 0).double().sum(),
                torch.tensor(float(len(alignment)), dtype=torch.float64, device=alignment.device),
            ]
        )
        self.stats = self.stats.to(update.device) + update

    def real_weights(self, weights: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            weights = mean_one(weights)
        effective = effective_fraction(weights)
        self.spread = self.spread.to(effective.device) + torch.stack(
            [torch.ones_like(effective), effective]
        )
        return weights

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        updates, loss_sum, alignment_sum, positive, samples = self.stats.tolist()
        batches, effective = self.spread.tolist()
        self.stats, self.spread = torch.zeros_like(self.stats), torch.zeros_like(self.spread)
        if not updates:
            return {}
        return {
            "meta_updates": updates,
            "clean_loss_after_step": loss_sum / updates,
            "mean_alignment": alignment_sum / samples,
            "aligned_fraction": positive / samples,
            "effective_fraction": effective / batches,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "meta_batches": self.batches,
            "meta_stats": self.stats.cpu(),
            "meta_spread": self.spread.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["meta_batches"])
        self.stats = state["meta_stats"].cpu().double()
        # states from before the effective fraction have no spread
        self.spread = state.get("meta_spread", torch.zeros(2, dtype=torch.float64)).cpu().double()
