"""The loss-aware controller state (``controller_state: loss_features``) and its per-row store.

Seven loss-derived features per training row replace the paper's state (embeddings, loss, epoch);
they live in a ``LossStore`` indexed by the stable row id (``rows.ROW_FIELD``) that the state's
``setup`` adds to the training interactions.

Memory: the store keeps two float32 values per training interaction (the loss EMA and the EMA of
its squared deviation), 8 bytes, plus the int64 row-id column, 8 bytes: 16 bytes per training
interaction; the user and item ranks add 4 bytes per user and per item.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise.checks import fraction
from recbole_autodenoise.controller.state import StateFeatures, register_state
from recbole_autodenoise.options import Option, declare
from recbole_autodenoise.rows import add_row_ids, load_rows, mean_by
from recbole_autodenoise.schemes.base import Batch

# loss, user-standardised loss, EMA, EMA of squared deviation, user rank, item rank, epoch
NUM_FEATURES = 7


def standardise_within_users(losses: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
    """(loss - mean) / std over the same user's samples in this batch (the batch, not the whole
    training set); population std; 0 where a user has one sample or all-equal losses."""
    _, groups = torch.unique(user_ids, return_inverse=True)
    size = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(size, dtype=losses.dtype, device=losses.device).index_add_(
        0, groups, torch.ones_like(losses)
    )
    total = torch.zeros_like(count).index_add_(0, groups, losses)
    mean = (total / count)[groups]
    deviation = losses - mean
    variance = torch.zeros_like(count).index_add_(0, groups, deviation * deviation) / count
    std = variance.sqrt()[groups]
    safe = torch.where(std > 0, std, torch.ones_like(std))
    return torch.where(std > 0, deviation / safe, torch.zeros_like(deviation))


def ranks_in_unit(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Rank of each present value among the present ones, scaled to [0, 1] (ties by index);
    0.5 for absent entries and where fewer than two are present."""
    ranks = torch.full_like(values, 0.5)
    index = present.nonzero().squeeze(1)
    if index.numel() >= 2:
        order = torch.argsort(values[index], stable=True)
        scaled = torch.arange(index.numel(), dtype=values.dtype, device=values.device) / (
            index.numel() - 1
        )
        ranks[index[order]] = scaled
    return ranks


class LossStore:
    """Per-training-row EMA of the loss over epochs and of its squared deviation.

    A row's first loss sets its EMA (deviation 0); later ones update
    ``ema <- d * ema + (1 - d) * loss`` and ``dev <- d * dev + (1 - d) * (loss - ema_old)^2``,
    d = ``loss_ema_decay``. Copies of one row in a batch (one per negative) are averaged first.
    The user and item ranks are the users' and items' mean EMA over seen rows, ranked in [0, 1],
    recomputed when a batch of a new epoch arrives (0.5 before any row is seen).
    """

    def __init__(
        self,
        row_users: torch.Tensor,
        row_items: torch.Tensor,
        num_users: int,
        num_items: int,
        decay: float,
    ) -> None:
        self.row_users = row_users.long()
        self.row_items = row_items.long()
        self.decay = float(decay)
        rows = self.row_users.numel()
        self.ema = torch.full((rows,), float("nan"), dtype=torch.float32)  # NaN: not seen yet
        self.deviation = torch.zeros(rows, dtype=torch.float32)
        self.user_rank = torch.full((num_users,), 0.5, dtype=torch.float32)
        self.item_rank = torch.full((num_items,), 0.5, dtype=torch.float32)
        self.rank_epoch = -1

    def update(self, rows: torch.Tensor, losses: torch.Tensor) -> None:
        rows = rows.cpu().long()
        unique, groups = torch.unique(rows, return_inverse=True)
        mean, _ = mean_by(groups, losses.detach().float().cpu(), unique.numel())
        old = self.ema[unique]
        first = torch.isnan(old)
        base = torch.where(first, mean, old)
        decay = self.decay
        # a first sight has base = loss: EMA = loss, deviation stays 0
        self.ema[unique] = decay * base + (1 - decay) * mean
        self.deviation[unique] = decay * self.deviation[unique] + (1 - decay) * (mean - base) ** 2

    def refresh_ranks(self, epoch: int) -> None:
        """Rank users and items by their mean EMA, once per epoch."""
        if epoch == self.rank_epoch:
            return
        seen = ~torch.isnan(self.ema)
        values = torch.where(seen, self.ema, torch.zeros_like(self.ema))[seen]
        for ids, target in ((self.row_users, self.user_rank), (self.row_items, self.item_rank)):
            mean, present = mean_by(ids[seen], values, target.numel())
            target.copy_(ranks_in_unit(mean, present))
        self.rank_epoch = epoch

    def features(
        self,
        rows: torch.Tensor,
        users: torch.Tensor,
        items: torch.Tensor,
        losses: torch.Tensor,
        epoch: int,
        epoch_fraction: float,
    ) -> torch.Tensor:
        """Update the store with this batch, then the [B, 7] state (``NUM_FEATURES``), in order:
        loss, loss standardised within the user's samples of the batch, loss EMA (this batch
        included), EMA of squared deviation, user rank, item rank, epoch fraction."""
        self.refresh_ranks(epoch)
        self.update(rows, losses)
        device, dtype = losses.device, losses.dtype
        cpu_rows = rows.cpu().long()

        def column(values: torch.Tensor) -> torch.Tensor:
            return values.to(device=device, dtype=dtype)

        columns = [
            losses,
            standardise_within_users(losses, users),
            column(self.ema[cpu_rows]),
            column(self.deviation[cpu_rows]),
            column(self.user_rank[users.cpu().long()]),
            column(self.item_rank[items.cpu().long()]),
            torch.full_like(losses, float(epoch_fraction)),
        ]
        return torch.stack(columns, dim=1).detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "ema": self.ema.clone(),
            "deviation": self.deviation.clone(),
            "user_rank": self.user_rank.clone(),
            "item_rank": self.item_rank.clone(),
            "rank_epoch": self.rank_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_rows(self, state, ("ema", "deviation", "user_rank", "item_rank"), "loss store")
        self.rank_epoch = int(state["rank_epoch"])


@register_state("loss_features")
class LossFeatures(StateFeatures):
    """loss, loss standardised within the user's batch samples, per-row loss EMA and EMA of squared
    deviation, user and item mean-loss ranks, epoch (``LossStore.features``)."""

    OPTIONS = declare(
        Option(
            "loss_ema_decay",
            "float",
            0.9,
            "controller_state loss_features: decay d of the per-row loss EMA, ema <- d*ema + "
            "(1-d)*loss, in [0, 1)",
            fraction,
            "a number in [0, 1)",
        ),
    )
    needs_representations = False  # the loss features replace e_u and e_v
    held_out_rows = False  # its loss history exists for training rows only
    single_process_reason = (
        "its per-row loss history would be split across ranks (each epoch "
        "gives every rank other rows)"
    )

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.store: LossStore | None = None
        self._pending: dict[str, Any] | None = None

    def setup(self, train_dataset: Any, held_out: Any = None) -> None:
        """Give every training row an id and build its loss store (restoring a state loaded
        before)."""
        add_row_ids(train_dataset)
        inter_feat = train_dataset.inter_feat
        self.store = LossStore(
            inter_feat[train_dataset.uid_field],
            inter_feat[train_dataset.iid_field],
            train_dataset.user_num,
            train_dataset.item_num,
            self.options["loss_ema_decay"],
        )
        if self._pending is not None:
            self.store.load_state_dict(self._pending)
            self._pending = None

    def __call__(self, batch: Batch, true_positive: torch.Tensor | None = None) -> torch.Tensor:
        if self.store is None or batch.row_ids is None or batch.user_ids is None:
            raise ValueError(
                "controller_state 'loss_features' needs the training rows' ids and users: train "
                "with AutoDenoiseTrainer (the scheme's setup adds the row ids) on a model whose "
                "batches hold the user id"
            )
        state = self.store.features(
            batch.row_ids,
            batch.user_ids,
            batch.item_ids,
            batch.losses,
            batch.epoch,
            batch.epoch_fraction,
        )
        if true_positive is not None:
            state = torch.cat([state, true_positive.to(state.dtype).unsqueeze(1)], dim=1)
        return state

    def state_dict(self) -> dict[str, Any]:
        return {} if self.store is None else {"loss_store": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "loss_store" not in state:
            return
        if self.store is None:  # a resumed run loads before the trainer's setup
            self._pending = state["loss_store"]
        else:
            self.store.load_state_dict(state["loss_store"])
