"""ADT-TL, truncated loss (Wang et al., "Denoising Implicit Feedback for Recommendation").

As in the ADT authors' code: in each batch the ``drop_rate`` fraction of samples with the largest
loss is dropped, ``drop_rate`` growing linearly (``np.linspace(0, max, num_gradual)``) and then
staying at ``adt_max_drop_rate``; the loss is the mean over the kept samples, so kept samples get
weight B / kept.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise.config import fraction, read_key
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


def drop_rate_at(iteration: int, max_drop_rate: float, num_gradual: int) -> float:
    if iteration >= num_gradual:
        return max_drop_rate
    return max_drop_rate * iteration / max(num_gradual - 1, 1)


def truncation_weights(losses: torch.Tensor, drop_rate: float) -> torch.Tensor:
    size = losses.numel()
    keep = max(int((1 - drop_rate) * size), 1)
    weights = torch.zeros_like(losses)
    weights[torch.argsort(losses)[:keep]] = size / keep
    return weights


@register_scheme("adt_tl")
class TruncatedLossScheme(WeightingScheme):
    config_keys = ("adt_max_drop_rate", "adt_num_gradual")

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.max_drop_rate = read_key(config, "adt_max_drop_rate", fraction, "a number in [0, 1)")
        self.num_gradual = read_key(
            config, "adt_num_gradual", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
            "a positive integer",
        )
        self.iteration = 0

    def weights(self, batch: Batch) -> torch.Tensor:
        rate = drop_rate_at(self.iteration, self.max_drop_rate, self.num_gradual)
        self.iteration += 1
        return truncation_weights(batch.losses, rate)

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])

