"""AutoDenoise (paper Sec. 4, Algorithm 1): a controller samples each sample's weight and learns
from the clean validation set. How it gets credit is ``controller_credit`` (``recbole_autodenoise.credit``):
``epoch``, the paper's REINFORCE after each validation with a moving-average baseline b (b = 0 at
the start, as in Algorithm 1), ``user``, REINFORCE with each user's own clean reward and baseline,
or ``meta``, per-batch meta-gradients through a virtual step.

Two diagnostics for the paper's Fig. 2 question (can Algorithm 1 separate true from false
positives?): ``controller_oracle_state: true`` appends each sample's true-positive flag (rating >=
``clean_rating_threshold``, not injected) to the controller's state, so the answer is in its
input; ``baseline_init: first_reward`` starts the epoch credit's baseline b at the first reward
instead of the paper's 0 (with b = 0 every early advantage R - b is positive)."""

from __future__ import annotations

from typing import Any

import torch
from recbole.evaluator import register
from recbole.utils import EvaluatorType

from recbole_autodenoise.config import fraction, non_negative, positive, positive_int, read_key
from recbole_autodenoise.controller import Policy, ReinforceAccumulator, controller_state
from recbole_autodenoise.credit import CREDITS, Credit
from recbole_autodenoise.schemes.base import Batch, WeightingScheme

BASELINE_INITS = ("zero", "first_reward")


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
    """Shared by the hard and soft controllers; subclasses only build their policy. Credit
    assignment is delegated to a ``Credit`` object chosen by ``controller_credit``."""

    config_keys = (
        "controller_hidden_size", "controller_learning_rate", "controller_weight_decay", "baseline_decay",
        "reward_metric", "controller_credit", "meta_interval", "meta_normalize_weights",
    )
    needs_representations = True
    learns_from_validation = True

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.hidden_size = read_key(config, "controller_hidden_size", positive_int, "a positive integer")
        self.learning_rate = read_key(config, "controller_learning_rate", positive, "a number > 0")
        self.weight_decay = read_key(config, "controller_weight_decay", non_negative, "a number >= 0")
        self.baseline_decay = read_key(config, "baseline_decay", fraction, "a number in [0, 1)")
        self.reward_key = parse_reward_metric(config["reward_metric"], list(config["topk"] or []))
        self.credit_mode = read_key(
            config, "controller_credit", lambda v: isinstance(v, str) and v in CREDITS, f"one of {CREDITS.names()}"
        )
        self.meta_interval = read_key(config, "meta_interval", positive_int, "a positive integer")
        self.meta_normalize_weights = read_key(
            config, "meta_normalize_weights", lambda v: isinstance(v, bool), "true or false"
        )
        self.oracle_state = read_key(config, "controller_oracle_state", lambda v: isinstance(v, bool), "true or false")
        self.reads_ratings = self.oracle_state
        self.baseline_init = read_key(
            config, "baseline_init", lambda v: isinstance(v, str) and v in BASELINE_INITS, f"one of {list(BASELINE_INITS)}"
        )
        if self.baseline_init != "zero" and self.credit_mode != "epoch":
            raise ValueError(
                f"config key 'baseline_init' = {self.baseline_init!r} applies to controller_credit 'epoch' only "
                f"(this run uses {self.credit_mode!r}); leave it at 'zero'"
            )
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(config["seed"]))
        self.policy: Policy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.input_size: int | None = None
        self.credit: Credit = CREDITS.get(self.credit_mode)(self)
        self.needs_guidance = self.credit.needs_guidance
        self.needs_user_rewards = self.credit.needs_user_rewards
        self.needs_reward = self.credit.needs_reward

    # the epoch credit's REINFORCE state, where the tests and older callers look for it
    @property
    def baseline(self) -> float | None:
        return getattr(self.credit, "baseline", None)

    @property
    def accumulator(self) -> ReinforceAccumulator | None:
        return getattr(self.credit, "accumulator", None)

    def build_policy(self, input_size: int) -> Policy:
        raise NotImplementedError

    def _build(self, input_size: int) -> None:
        # the policy's own initialisation draws from a generator seeded by the config's seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            self.policy = self.build_policy(input_size).to(self.device)
        self.input_size = input_size
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.credit.on_build()

    def weights(self, batch: Batch) -> torch.Tensor:
        state = controller_state(batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction,
                                 batch.true_positive if self.oracle_state else None)
        if self.policy is None:
            self._build(state.shape[1])
        self.credit.before_weights(state, batch)
        action, weight = self.policy.sample(state, self.generator)
        self.credit.record(state, action, batch)
        return self.credit.real_weights(weight)

    def observe_user_rewards(self, rewards: torch.Tensor) -> None:
        self.credit.observe_user_rewards(rewards)

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        return self.credit.after_evaluation(valid_result, epoch)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state(), "credit": self.credit_mode}
        state.update(self.credit.state_dict())
        if self.policy is not None:
            state.update(
                input_size=self.input_size, policy=self.policy.state_dict(), optimizer=self.optimizer.state_dict()
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_mode = state.get("credit", "epoch")  # states from before credit modes are epoch's
        if saved_mode != self.credit_mode:
            raise ValueError(
                f"the saved controller was trained with controller_credit={saved_mode!r}, "
                f"this run uses {self.credit_mode!r}"
            )
        self.generator.set_state(state["generator"].cpu())
        if "policy" in state:
            self._build(int(state["input_size"]))
            self.policy.load_state_dict(state["policy"])
            self.optimizer.load_state_dict(state["optimizer"])
        self.credit.load_state_dict(state)
