"""Columns the plugin adds to RecBole's training interactions, and per-row helpers.

``ROW_FIELD`` is a stable id per training row, added to the training dataset's ``inter_feat`` by a
scheme's ``setup`` (``add_row_ids``; DCF's per-row store and the experimental loss features use
it, and ``load_rows`` restores such a store). RecBole's training loader indexes ``inter_feat`` and
its negative sampling repeats whole rows (one per negative), so the id follows every copy of a row;
sequential data sets are augmented before the split, so each augmented (prefix, target) row gets
its own id. ``CANARY_FIELD`` flags rows a scheme adds to a batch itself
(``WeightingScheme.augment``): 1 on them, 0 on the loader's rows; no group of the weight study
counts a flagged row.
"""

from __future__ import annotations

from typing import Any

import torch

ROW_FIELD = "denoise_row_id"
CANARY_FIELD = "denoise_canary"


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
                f"the saved {what}'s {name} has shape {tuple(saved.shape)}, this training set "
                f"needs {tuple(target.shape)}: resume on the same data and split"
            )
        target.copy_(saved.to(target.device))


def mean_by(
    ids: torch.Tensor, values: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-id mean of ``values`` and whether the id has any value."""
    count = torch.zeros(size, dtype=values.dtype, device=values.device)
    count = count.index_add_(0, ids, torch.ones_like(values))
    total = torch.zeros_like(count).index_add_(0, ids, values)
    present = count > 0
    return total / torch.where(present, count, torch.ones_like(count)), present
