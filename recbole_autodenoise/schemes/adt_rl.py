"""ADT-RL, reweighted loss (Wang et al.): weight = p^beta with p the model's probability of the
observed positive. For BPR and cross-entropy losses p = exp(-loss), so weight = exp(-beta * loss).
For binary cross-entropy on labelled rows (a pointwise model with sampled negatives) exp(-beta *
loss) is sigmoid(y)^beta on a positive and (1 - sigmoid(y))^beta on a negative: the authors'
R-CE weight, with their ``alpha`` as ``adt_beta``."""

from __future__ import annotations

import torch

from recbole_autodenoise import options
from recbole_autodenoise.checks import non_negative
from recbole_autodenoise.options import Option
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


@register_scheme("adt_rl")
class ReweightedLossScheme(WeightingScheme):
    OPTIONS = options.declare(
        Option(
            "adt_beta",
            "float",
            0.2,
            "ADT-RL: weight = p^beta = exp(-beta * loss)",
            non_negative,
            "a number >= 0",
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.beta = config["adt_beta"]

    def weights(self, batch: Batch) -> torch.Tensor:
        return torch.exp(-self.beta * batch.losses)

    def validation_weights(self, losses, labels) -> torch.Tensor:
        return torch.exp(-self.beta * losses)
