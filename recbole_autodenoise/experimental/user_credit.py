"""``controller_credit: user``: per-user REINFORCE rewards from the clean set.

One scalar reward per epoch is shared by every action of the epoch, so each action's credit is
drowned by everybody else's. Here each user's own clean-validation AUC R_u (what GAUC averages,
``evaluation.per_user``) against the user's own moving-average baseline b_u credits only the actions
taken on that user's training samples (sequential models: the user of each training row):

.. math::
    \\nabla_\\Phi J = \\frac{1}{|D|} \\sum_{j \\in D} (R_{u_j} - b_{u_j})
        \\nabla_\\Phi \\log \\pi_\\Phi(w_j \\mid s_j)

R_u is only known at the next validation, so the state, action and user of every sample since
the last validation are kept, on the training device, and the gradient is taken in one pass then:
4 * (state size) + 4 (soft) or 8 (hard action) + 8 (user id) bytes per training sample; with
64-dimensional embeddings (state size 130) 532 bytes soft / 536 hard, about 29 MB per epoch of
ml-latest-small's 54k training rows. b_u starts at a user's first reward (that first validation
updates nothing for the user): with b = 0, as in Algorithm 1, every advantage of the first epochs
is positive and merely reinforces whatever was sampled. Users without a clean query contribute
nothing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from recbole_autodenoise import distributed
from recbole_autodenoise.controller.credit import Credit, register_credit

logger = logging.getLogger(__name__)


@register_credit("user")
class UserCredit(Credit):
    needs_user_rewards = True
    learns_from_validation_rows = True

    def __init__(self, controller, options) -> None:
        super().__init__(controller, options)
        self.states: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []
        self.users: list[torch.Tensor] = []
        self.baseline: torch.Tensor | None = None  # [num_users], NaN until a user's first reward
        self.rewards: torch.Tensor | None = None

    def record(self, state: torch.Tensor, action: torch.Tensor, batch) -> None:
        if batch.user_ids is None:
            raise ValueError(
                "controller_credit: user needs the user id of every training sample "
                "(Batch.user_ids)"
            )
        self.states.append(state.detach())
        self.actions.append(action.detach())
        self.users.append(batch.user_ids.detach().to(state.device))

    def observe_user_rewards(self, rewards: torch.Tensor) -> None:
        self.rewards = rewards

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        if not self.states:
            return {}
        rewards, self.rewards = self.rewards, None
        if rewards is None:
            raise ValueError(
                "controller_credit: user got no per-user rewards; train with AutoDenoiseTrainer"
            )
        device = self.states[0].device
        rewards = rewards.to(device=device, dtype=torch.float64)
        if self.baseline is None or len(self.baseline) != len(rewards):
            self.baseline = torch.full_like(rewards, float("nan"))
        self.baseline = self.baseline.to(device)
        seen = torch.isfinite(rewards)
        fresh = seen & torch.isnan(self.baseline)
        advantage = torch.where(seen & ~fresh, rewards - self.baseline, torch.zeros_like(rewards))
        local_samples = sum(len(u) for u in self.users)
        # under DDP: |D| and the gradient over every rank's samples (rewards are the whole clean
        # set's)
        samples = int(
            distributed.all_reduce_sum(
                torch.tensor(local_samples, dtype=torch.int64, device=device)
            )
        )
        credited = 0
        if bool((advantage != 0).any()):
            policy, optimizer = self.controller.policy, self.controller.optimizer
            optimizer.zero_grad()
            for state, action, users in zip(self.states, self.actions, self.users):
                adv = advantage[users].to(state.dtype)
                credited += int((adv != 0).sum())
                # gradient ascent on sum_j adv_j log pi(a_j | s_j) / |D|, accumulated chunk by chunk
                (-(adv * policy.log_prob(state, action)).sum() / samples).backward()
            for param in policy.parameters():
                if (
                    param.grad is not None
                ):  # every head takes part in log_prob: the same on every rank
                    param.grad = distributed.all_reduce_sum(param.grad)
            optimizer.step()
        decay = self.controller.baseline_decay
        updated = torch.where(fresh, rewards, decay * self.baseline + (1 - decay) * rewards)
        self.baseline = torch.where(seen, updated, self.baseline)
        self.states, self.actions, self.users = [], [], []
        if not bool(seen.any()):
            logger.warning(
                "epoch %d: no user has a clean-validation reward; controller unchanged", epoch
            )
            return {"users_rewarded": 0.0}
        used = advantage[seen & ~fresh]
        return {
            "reward": float(rewards[seen].mean()),
            "users_rewarded": float(seen.sum()),
            "mean_abs_advantage": float(used.abs().mean()) if len(used) else 0.0,
            "positive_advantage_fraction": float((used > 0).double().mean())
            if len(used)
            else math.nan,
            "credited_fraction": credited / local_samples,
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "user_baseline": None if self.baseline is None else self.baseline.cpu()
        }
        if self.states:
            state["user_buffer"] = {
                "states": torch.cat(self.states).cpu(),
                "actions": torch.cat(self.actions).cpu(),
                "users": torch.cat(self.users).cpu(),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        baseline = state.get("user_baseline")
        self.baseline = None if baseline is None else baseline.double()
        buffer = state.get("user_buffer")
        device = self.controller.device
        if buffer is None:
            self.states, self.actions, self.users = [], [], []
        else:
            self.states = [buffer["states"].to(device)]
            self.actions = [buffer["actions"].to(device)]
            self.users = [buffer["users"].to(device)]
