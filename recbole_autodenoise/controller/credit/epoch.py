"""``controller_credit: epoch``, the paper's Eq. 10: one scalar reward per validation.

Sum of grad log pi(w|s) over every sample since the last validation, scaled by (R - b) / |D|
with R the clean-validation ``reward_metric`` and b its moving average (0 at the start, as in
Algorithm 1, or the first reward with ``baseline_init: first_reward``, making the first advantage
0).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from recbole_autodenoise.controller.credit.base import Credit, register_credit
from recbole_autodenoise.controller.policy import ReinforceAccumulator
from recbole_autodenoise.options import Option, declare

# the controller's logger since before credit modes existed: filters set on it keep working
logger = logging.getLogger("recbole_autodenoise.schemes.autodenoise")
BASELINE_INITS = ("zero", "first_reward")


@register_credit("epoch")
class EpochCredit(Credit):
    needs_reward = True
    # learns from the validation result as the paper's Algorithm 1 does, on one validation set
    # under the paper's protocol, so ``learns_from_validation_rows`` stays False: not refused there
    OPTIONS = declare(
        Option(
            "baseline_init",
            "str",
            "zero",
            "controller_credit epoch: b before the first reward: zero (paper's Algorithm 1) | "
            "first_reward (first advantage 0)",
            choices=BASELINE_INITS,
        ),
    )
    exclusive = ("baseline_init",)

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        self.baseline = 0.0
        self.rewarded = False  # has a finite reward been seen (``baseline_init: first_reward``)?
        self.accumulator: ReinforceAccumulator | None = None

    def on_build(self) -> None:
        self.accumulator = ReinforceAccumulator(self.controller.policy)

    records_score = True

    def record_score(self, grads: list[torch.Tensor], rows: int) -> None:
        self.accumulator.add_grads(grads, rows)

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        if self.accumulator is not None:
            self.accumulator.sum_over_ranks()  # under DDP: Eq. 10 over every rank's samples
        if self.accumulator is None or self.accumulator.count == 0:
            return {}
        reward_key = self.controller.reward_key
        reward = float(valid_result[reward_key])
        if not math.isfinite(reward):
            logger.warning(
                "epoch %d: reward %s = %r is not finite; controller update skipped (controller "
                "and baseline unchanged)",
                epoch,
                reward_key,
                reward,
            )
            self.accumulator.reset()
            return {"reward": reward, "skipped": 1.0}
        if not self.rewarded and self.options["baseline_init"] == "first_reward":
            self.baseline = reward
        self.rewarded = True
        advantage = reward - self.baseline
        optimizer = self.controller.optimizer
        optimizer.zero_grad()
        for param, ascent in zip(
            self.accumulator.params, self.accumulator.policy_gradient(advantage)
        ):
            param.grad = -ascent
        optimizer.step()
        self.accumulator.reset()
        used_baseline = self.baseline
        decay = self.controller.baseline_decay
        self.baseline = decay * self.baseline + (1 - decay) * reward
        return {"reward": reward, "baseline": used_baseline, "advantage": advantage}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"baseline": self.baseline, "rewarded": self.rewarded}
        if self.accumulator is not None:
            state["accumulator"] = self.accumulator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = float(state["baseline"])
        self.rewarded = bool(
            state.get("rewarded", True)
        )  # older states: a saved baseline had its rewards
        if "accumulator" in state and self.accumulator is not None:
            self.accumulator.load_state_dict(state["accumulator"])
