"""``controller_state: paper_product``: the paper's state with the elementwise product e_u * e_v
(whose sum is a dot-product model's score) beside e_u and e_v."""

from __future__ import annotations

import torch

from recbole_autodenoise.controller.state import StateFeatures, register_state
from recbole_autodenoise.schemes.base import Batch


def product_state(
    user_repr, item_repr, losses, epoch_fraction: float, true_positive=None
) -> torch.Tensor:
    """``[e_u, e_v, e_u * e_v, loss, epoch]`` per sample, plus the true-positive flag as a last
    column where given (``controller_oracle_state``)."""
    epoch = torch.full_like(losses, float(epoch_fraction))
    columns = [user_repr, item_repr, user_repr * item_repr, losses.unsqueeze(1), epoch.unsqueeze(1)]
    if true_positive is not None:
        columns.append(true_positive.to(losses.dtype).unsqueeze(1))
    return torch.cat(columns, dim=1).detach()


@register_state("paper_product")
class PaperProductState(StateFeatures):
    """``[e_u, e_v, e_u * e_v, loss, epoch]``."""

    def __call__(self, batch: Batch, true_positive: torch.Tensor | None = None) -> torch.Tensor:
        return product_state(
            batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction, true_positive
        )

    def of_rows(self, user_repr, item_repr, losses, epoch_fraction: float) -> torch.Tensor:
        return product_state(user_repr, item_repr, losses, epoch_fraction)
