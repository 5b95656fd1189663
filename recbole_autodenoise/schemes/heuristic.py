"""Heuristic (paper Sec. 5.2.2): weight each sample by the inverse training frequency of its item,
``heuristic_alpha`` tempering it: w_i proportional to f_i^-alpha, mean 1 over the training samples
(alpha = 1 is the paper's literal definition, alpha = 0 is Default)."""

from __future__ import annotations

import torch

from recbole_autodenoise import options
from recbole_autodenoise.checks import non_negative
from recbole_autodenoise.options import Option
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


def inverse_frequency_weights(
    item_ids: torch.Tensor, num_items: int, alpha: float = 1.0
) -> torch.Tensor:
    """Per-item weight f_i^-alpha, scaled so the mean weight over the training samples is 1.

    The samples' weights sum to sum over distinct items of f_i^(1 - alpha), so
    w_i = N f_i^-alpha / sum_j f_j^(1 - alpha); with alpha = 1, w_i = N / (n_distinct * f_i).
    """
    counts = torch.bincount(item_ids, minlength=num_items).double()
    seen = counts > 0
    table = torch.zeros(num_items, dtype=torch.float64)
    table[seen] = len(item_ids) * counts[seen] ** -alpha / (counts[seen] ** (1 - alpha)).sum()
    return table.float()


@register_scheme("heuristic")
class HeuristicScheme(WeightingScheme):
    OPTIONS = options.declare(
        Option(
            "heuristic_alpha",
            "float",
            1.0,
            "Heuristic: weight proportional to 1 / f^alpha (item frequency f), mean 1; 1 is the "
            "paper's, 0 is Default",
            non_negative,
            "a number >= 0 (1: the paper's 1/f)",
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.alpha = float(config["heuristic_alpha"])

    def setup(self, train_dataset, held_out=None) -> None:
        items = train_dataset.inter_feat[train_dataset.iid_field]
        self.table = inverse_frequency_weights(items, train_dataset.item_num, self.alpha).to(
            self.device
        )

    def weights(self, batch: Batch) -> torch.Tensor:
        return self.table[batch.item_ids]
