"""Heuristic (paper Sec. 5.2.2): weight each sample by the inverse training frequency of its item."""

from __future__ import annotations

import torch

from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


def inverse_frequency_weights(item_ids: torch.Tensor, num_items: int) -> torch.Tensor:
    """Per-item weight 1/f_i, scaled so the mean weight over the training samples is 1.

    Since sum over samples of 1/f_i is the number of distinct items, w_i = N / (n_distinct * f_i).
    """
    counts = torch.bincount(item_ids, minlength=num_items).double()
    seen = counts > 0
    table = torch.zeros(num_items, dtype=torch.float64)
    table[seen] = len(item_ids) / (int(seen.sum()) * counts[seen])
    return table.float()


@register_scheme("heuristic")
class HeuristicScheme(WeightingScheme):
    def setup(self, train_dataset) -> None:
        items = train_dataset.inter_feat[train_dataset.iid_field]
        self.table = inverse_frequency_weights(items, train_dataset.item_num).to(self.device)

    def weights(self, batch: Batch) -> torch.Tensor:
        return self.table[batch.item_ids]
