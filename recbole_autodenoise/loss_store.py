"""The loss-aware controller state (``controller_state: loss_features``) and its per-row store.

Each training interaction gets a stable row id, the column ``ROW_FIELD`` added to the training
dataset's ``inter_feat`` by the scheme's ``setup`` (``add_row_ids``; DCF's store uses the same
ids, and ``load_rows`` restores either store). RecBole's training loader
indexes ``inter_feat`` and its negative sampling repeats whole rows (one per negative), so the id
follows every copy of a row; sequential data sets are augmented before the split, so each
augmented (prefix, target) row gets its own id.

Memory: the store keeps two float32 values per training interaction (the loss EMA and the EMA of
its squared deviation), 8 bytes, plus the int64 row-id column, 8 bytes: 16 bytes per training
interaction; the user and item ranks add 4 bytes per user and per item.
"""

from __future__ import annotations

from typing import Any

import torch

ROW_FIELD = "denoise_row_id"
STATES = ("paper", "paper_product", "loss_features")
NUM_FEATURES = 7  # loss, user-standardised loss, EMA, EMA of squared deviation, user rank, item rank, epoch


def add_row_ids(train_dataset: Any) -> int:
    """Add ``ROW_FIELD`` = 0 .. N-1 to the training interactions; returns N."""
    inter_feat = train_dataset.inter_feat
    count = len(inter_feat)
    inter_feat.interaction[ROW_FIELD] = torch.arange(count, dtype=torch.long)
    return count


def load_rows(store: Any, state: dict[str, Any], names: tuple[str, ...], what: str) -> None:
    """Copy the saved per-row tensors ``names`` into ``store``'s (in place, on their device),
    refusing a state saved on another training set (another number of rows)."""
    for name in names:
        target, saved = getattr(store, name), state[name]
        if saved.shape != target.shape:
            raise ValueError(
                f"the saved {what}'s {name} has shape {tuple(saved.shape)}, this training set needs "
                f"{tuple(target.shape)}: resume on the same data and split"
            )
        target.copy_(saved.to(target.device))


def standardise_within_users(losses: torch.Tensor, user_ids: torch.Tensor) -> torch.Tensor:
    """(loss - mean) / std over the same user's samples in this batch (the batch, not the whole
    training set); population std; 0 where a user has one sample or all-equal losses."""
    _, groups = torch.unique(user_ids, return_inverse=True)
    size = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(size, dtype=losses.dtype, device=losses.device).index_add_(0, groups, torch.ones_like(losses))
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
        scaled = torch.arange(index.numel(), dtype=values.dtype, device=values.device) / (index.numel() - 1)
        ranks[index[order]] = scaled
    return ranks


def mean_by(ids: torch.Tensor, values: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-id mean of ``values`` and whether the id has any value."""
    count = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, ids, torch.ones_like(values))
    total = torch.zeros_like(count).index_add_(0, ids, values)
    present = count > 0
    return total / torch.where(present, count, torch.ones_like(count)), present


class LossStore:
    """Per-training-row EMA of the loss over epochs and of its squared deviation.

    A row's first loss sets its EMA (deviation 0); later ones update
    ``ema <- d * ema + (1 - d) * loss`` and ``dev <- d * dev + (1 - d) * (loss - ema_old)^2``,
    d = ``loss_ema_decay``. Copies of one row in a batch (one per negative) are averaged first.
    The user and item ranks are the users' and items' mean EMA over seen rows, ranked in [0, 1],
    recomputed when a batch of a new epoch arrives (0.5 before any row is seen).
    """

    def __init__(self, row_users: torch.Tensor, row_items: torch.Tensor, num_users: int, num_items: int,
                 decay: float) -> None:
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

    def features(self, rows: torch.Tensor, users: torch.Tensor, items: torch.Tensor, losses: torch.Tensor,
                 epoch: int, epoch_fraction: float) -> torch.Tensor:
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
            losses, standardise_within_users(losses, users),
            column(self.ema[cpu_rows]), column(self.deviation[cpu_rows]),
            column(self.user_rank[users.cpu().long()]), column(self.item_rank[items.cpu().long()]),
            torch.full_like(losses, float(epoch_fraction)),
        ]
        return torch.stack(columns, dim=1).detach()

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.clone(), "deviation": self.deviation.clone(), "user_rank": self.user_rank.clone(),
                "item_rank": self.item_rank.clone(), "rank_epoch": self.rank_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_rows(self, state, ("ema", "deviation", "user_rank", "item_rank"), "loss store")
        self.rank_epoch = int(state["rank_epoch"])
