"""AutoDenoise (paper Sec. 4, Algorithm 1): a controller samples each sample's weight; after each
validation it is updated by REINFORCE with the clean-validation metric as reward and a
moving-average baseline b (b = 0 at the start, as in Algorithm 1)."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from recbole.evaluator import register
from recbole.utils import EvaluatorType

from recbole_autodenoise.config import fraction, non_negative, positive, read_key
from recbole_autodenoise.controller import Policy, ReinforceAccumulator, controller_state
from recbole_autodenoise.schemes.base import Batch, WeightingScheme

logger = logging.getLogger(__name__)


def parse_reward_metric(value: Any, topk: list[int]) -> str:
    """'GAUC' -> 'gauc', 'NDCG@20' -> 'ndcg@20': a RecBole ranking metric, k among ``topk``."""
    ranking = sorted(name for name, kind in register.metric_types.items() if kind == EvaluatorType.RANKING)
    if not isinstance(value, str):
        raise ValueError(f"config key 'reward_metric' = {value!r} is invalid: expected one of {ranking}")
    name, _, k = value.lower().partition("@")
    if name not in ranking:
        raise ValueError(f"config key 'reward_metric' = {value!r} is not a ranking metric; expected one of {ranking}")
    needs_k = "rec.topk" in register.metric_information[name]
    if needs_k and (not k.isdigit() or int(k) not in topk):
        raise ValueError(f"config key 'reward_metric' = {value!r} needs '@K' with K in topk {topk}")
    if not needs_k and k:
        raise ValueError(f"config key 'reward_metric' = {value!r}: {name} takes no '@K'")
    return f"{name}@{int(k)}" if needs_k else name


class ControllerScheme(WeightingScheme):
    """Shared by the hard and soft controllers; subclasses only build their policy."""

    needs_representations = True
    learns_from_validation = True

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.hidden_size = read_key(
            config, "controller_hidden_size", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "a positive integer",
        )
        self.learning_rate = read_key(config, "controller_learning_rate", positive, "a number > 0")
        self.weight_decay = read_key(config, "controller_weight_decay", non_negative, "a number >= 0")
        self.baseline_decay = read_key(config, "baseline_decay", fraction, "a number in [0, 1)")
        self.reward_key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(config["seed"]))
        self.baseline = 0.0
        self.policy: Policy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.accumulator: ReinforceAccumulator | None = None
        self.input_size: int | None = None

    def build_policy(self, input_size: int) -> Policy:
        raise NotImplementedError

    def _build(self, input_size: int) -> None:
        # the policy's own initialisation draws from a generator seeded by the config's seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            self.policy = self.build_policy(input_size).to(self.device)
        self.input_size = input_size
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.accumulator = ReinforceAccumulator(self.policy)

    def weights(self, batch: Batch) -> torch.Tensor:
        state = controller_state(batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction)
        if self.policy is None:
            self._build(state.shape[1])
        action, weight = self.policy.sample(state, self.generator)
        self.accumulator.add(self.policy.log_prob(state, action))
        return weight

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        if self.accumulator is None or self.accumulator.count == 0:
            return {}
        reward = float(valid_result[self.reward_key])
        if not math.isfinite(reward):
            logger.warning(
                "epoch %d: reward %s = %r is not finite; controller update skipped (controller and baseline unchanged)",
                epoch, self.reward_key, reward,
            )
            self.accumulator.reset()
            return {"reward": reward, "skipped": 1.0}
        advantage = reward - self.baseline
        self.optimizer.zero_grad()
        for param, ascent in zip(self.accumulator.params, self.accumulator.policy_gradient(advantage)):
            param.grad = -ascent
        self.optimizer.step()
        self.accumulator.reset()
        used_baseline = self.baseline
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        return {"reward": reward, "baseline": used_baseline, "advantage": advantage}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"baseline": self.baseline, "generator": self.generator.get_state()}
        if self.policy is not None:
            state.update(
                input_size=self.input_size,
                policy=self.policy.state_dict(),
                optimizer=self.optimizer.state_dict(),
                accumulator=self.accumulator.state_dict(),
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = float(state["baseline"])
        self.generator.set_state(state["generator"].cpu())
        if "policy" in state:
            self._build(int(state["input_size"]))
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.accumulator.load_state_dict(state["accumulator"])
