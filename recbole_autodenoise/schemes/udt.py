"""UDT, the user-level and interaction-level reweighting of the EvalDenoisingRec audit's code
(repository ``bachml/EvalDenoisingRec``, ``code/main.py``, method ``UDT``).

During an epoch the scheme records each user's summed training loss (positives and sampled
negatives) and each training positive's latest loss. When the next epoch starts it ranks the
users by their summed loss over their number of training positives, lowest first, and gives the
user of rank r (of U users) a temperature and a factor linear in r, from the first to the second
value of ``udt_temperatures`` and ``udt_user_factors``. A training positive (u, i) then weighs
``U_factor(u) * n_u * softmax_i(-loss(u, i) / T(u))`` (the softmax over u's positives, times their
number: mean 1 over them before the factor); a sampled negative, or a positive whose softmax
underflows to 0, weighs ``U_factor(u)``. The weights apply from the third epoch (epoch 2); the
first two use weight 1, as the authors' code does. The recorded losses and the weights are dense
[users, items] float32 tensors on the scheme's device (4 bytes per (user, item) pair each). Where
every row is a positive (BPR, cross-entropy models) there are no negatives; the rest is the same.

One difference from the authors' code, on purpose: their per-user sum is an indexed ``+=`` that
keeps one of a user's losses per batch; here every row's loss is summed.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise import options
from recbole_autodenoise.checks import is_number
from recbole_autodenoise.options import Option
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme

WARMUP_EPOCHS = 2  # epochs 0 and 1 train unweighted (the authors' ``epoch <= 1``)


def _non_negative_pair(value: Any) -> bool:
    """A list of two numbers >= 0."""
    return (
        isinstance(value, list) and len(value) == 2 and all(is_number(v) and v >= 0 for v in value)
    )


def _positive_pair(value: Any) -> bool:
    """A list of two numbers > 0."""
    return _non_negative_pair(value) and all(v > 0 for v in value)


def rank_values(user_loss: torch.Tensor, has_rows: torch.Tensor, first: float, last: float):
    """Per user: ``first`` for the user with the lowest ``user_loss`` among those with
    ``has_rows``, ``last`` for the highest, linear in the rank between (a stable sort breaks
    ties by user id); users without rows get ``first`` (no row of theirs is ever weighted)."""
    values = torch.full_like(user_loss, float(first))
    users = has_rows.nonzero().squeeze(1)
    if len(users) == 0:
        return values
    order = torch.argsort(user_loss[users], stable=True)
    values[users[order]] = torch.linspace(
        float(first), float(last), len(users), dtype=user_loss.dtype
    )
    return values


def interaction_factors(
    latest: torch.Tensor, temperature: torch.Tensor, positives: torch.Tensor
) -> torch.Tensor:
    """``n_u * softmax_i(-latest[u, i] / T(u))`` per user row of ``latest`` ([users, items], inf
    where (u, i) has no recorded loss), with 0 replaced by 1 (the authors' rule for rows that are
    not positives, and for underflow)."""
    logits = -latest / temperature.unsqueeze(1)
    factors = torch.softmax(logits, dim=1) * positives.unsqueeze(1)
    factors = torch.nan_to_num(factors, nan=0.0)  # a user with no recorded loss: all -inf
    return torch.where(factors == 0, torch.ones_like(factors), factors)


@register_scheme("udt")
class UserDenoisingScheme(WeightingScheme):
    OPTIONS = options.declare(
        Option(
            "udt_temperatures",
            "list",
            [0.2, 0.5],
            "UDT: softmax temperature of the users with the lowest and the highest mean loss in "
            "the last epoch (linear in the rank between)",
            _positive_pair,
            "a list of two numbers > 0",
        ),
        Option(
            "udt_user_factors",
            "list",
            [0.5, 0.0],
            "UDT: weight factor of the users with the lowest and the highest mean loss in the "
            "last epoch (linear in the rank between)",
            _non_negative_pair,
            "a list of two numbers >= 0",
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.temperatures = [float(v) for v in config["udt_temperatures"]]
        self.user_factors = [float(v) for v in config["udt_user_factors"]]
        self.epoch: int | None = None
        self.positives: torch.Tensor | None = None  # [users] training positives per user
        self.user_loss: torch.Tensor | None = None  # [users] this epoch's summed loss
        self.latest: torch.Tensor | None = None  # [users, items] this epoch's positive losses
        self.factors: torch.Tensor | None = None  # [users, items] weights of this epoch
        self._pending: dict[str, Any] | None = None

    def setup(self, train_dataset, held_out=None) -> None:
        super().setup(train_dataset, held_out)
        users, items = int(train_dataset.user_num), int(train_dataset.item_num)
        feat = train_dataset.inter_feat
        self.positives = torch.bincount(
            feat[train_dataset.uid_field].long().to(self.device), minlength=users
        ).double()
        self.user_loss = torch.zeros(users, dtype=torch.float64, device=self.device)
        self.latest = torch.full((users, items), float("inf"), device=self.device)
        if self._pending is not None:
            self.load_state_dict(self._pending)
            self._pending = None

    def _finish_epoch(self) -> None:
        """The factors of the next epoch from the recorded losses; the records start afresh."""
        has_rows = self.positives > 0
        mean = torch.where(has_rows, self.user_loss / self.positives.clamp_min(1), 0.0)
        temperature = rank_values(mean, has_rows, *self.temperatures).float()
        user_factor = rank_values(mean, has_rows, *self.user_factors).float()
        factors = interaction_factors(self.latest, temperature, self.positives.float())
        self.factors = factors * user_factor.unsqueeze(1)
        self.user_loss.zero_()
        self.latest.fill_(float("inf"))

    def weights(self, batch: Batch) -> torch.Tensor:
        if self.latest is None or batch.user_ids is None:
            raise ValueError(
                "denoise_scheme 'udt' needs each row's user and the training set: train with "
                "AutoDenoiseTrainer (it calls the scheme's setup) on a model with a user field"
            )
        if self.epoch is not None and batch.epoch != self.epoch:
            self._finish_epoch()
        self.epoch = batch.epoch
        users = batch.user_ids.long().to(self.device)
        items = batch.item_ids.long().to(self.device)
        losses = batch.losses.detach().to(self.device)
        positive = (
            torch.ones_like(losses, dtype=torch.bool)
            if batch.labels is None
            else (batch.labels > 0).to(self.device)
        )
        self.user_loss.index_add_(0, users, losses.double())
        self.latest[users[positive], items[positive]] = losses[positive].float()
        if batch.epoch < WARMUP_EPOCHS or self.factors is None:
            return torch.ones_like(batch.losses)
        return self.factors[users, items].to(batch.losses.device, batch.losses.dtype)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.latest is not None:
            state["udt"] = {
                "epoch": self.epoch,
                "user_loss": self.user_loss.clone(),
                "latest": self.latest.clone(),
                "factors": None if self.factors is None else self.factors.clone(),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "udt" not in state:
            return
        if self.latest is None:  # a resumed run loads before the trainer's setup
            self._pending = state
            return
        saved = state["udt"]
        self.epoch = saved["epoch"]
        self.user_loss.copy_(saved["user_loss"])
        self.latest.copy_(saved["latest"])
        self.factors = None if saved["factors"] is None else saved["factors"].to(self.device)
