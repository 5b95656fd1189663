"""ADT-TL, truncated loss (Wang et al., "Denoising Implicit Feedback for Recommendation").

As in the ADT authors' code: in each batch the ``drop_rate`` fraction of samples with the largest
loss is dropped, ``drop_rate`` growing linearly (``np.linspace(0, max, num_gradual)``) and then
staying at ``adt_max_drop_rate``; the loss is the mean over the kept samples, so kept samples get
weight B / kept. With pairwise or cross-entropy losses every sample is a positive (its negatives
inside its loss), so the rate is a fraction of positives. Where the batch holds labelled rows
(``Batch.labels``: a pointwise model trained on one sampled negative per positive, as the
authors' binary cross-entropy), samples are ranked by ``loss * label`` as in their code: a
negative never drops, and the rate r is a fraction of the whole batch (about 2r of its
positives with one negative each).

``adt_gradual_unit`` says what ``adt_num_gradual`` counts: ``iteration`` (the ADT authors' unit,
30,000 by default, chosen for million-interaction sets) or ``epoch`` (the scheme converts epochs
to iterations with the number of training batches per epoch, known at ``setup``), so the schedule
can fit a small data set: ``adt_num_gradual: 5`` with ``epoch`` reaches the maximum after 5 epochs.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise import options
from recbole_autodenoise.checks import fraction, positive_int
from recbole_autodenoise.options import Option
from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme

GRADUAL_UNITS = ("iteration", "epoch")


def drop_rate_at(iteration: int, max_drop_rate: float, num_gradual: int) -> float:
    if iteration >= num_gradual:
        return max_drop_rate
    return max_drop_rate * iteration / max(num_gradual - 1, 1)


def truncation_weights(
    losses: torch.Tensor, drop_rate: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """B / kept on the int((1 - drop_rate) B) samples of lowest rank, 0 on the rest; the rank is
    the loss, or ``loss * label`` where ``labels`` are given (negatives rank lowest, never drop)."""
    size = losses.numel()
    keep = max(int((1 - drop_rate) * size), 1)
    ranked = losses if labels is None else losses * labels
    weights = torch.zeros_like(losses)
    weights[torch.argsort(ranked)[:keep]] = size / keep
    return weights


@register_scheme("adt_tl")
class TruncatedLossScheme(WeightingScheme):
    OPTIONS = options.declare(
        Option(
            "adt_max_drop_rate",
            "float",
            0.2,
            "ADT-TL and DCF: final fraction of large-loss samples dropped per batch",
            fraction,
            "a number in [0, 1)",
        ),
        Option(
            "adt_num_gradual",
            "int",
            30000,
            "ADT-TL and DCF: iterations (or epochs, see adt_gradual_unit) over which the drop rate "
            "grows from 0",
            positive_int,
            "a positive integer",
        ),
        Option(
            "adt_gradual_unit",
            "str",
            "iteration",
            "ADT-TL and DCF: what adt_num_gradual counts: iteration (the ADT authors') | epoch "
            "(training batches per epoch times it)",
            choices=GRADUAL_UNITS,
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.max_drop_rate = config["adt_max_drop_rate"]
        self.num_gradual = config["adt_num_gradual"]
        self.gradual_unit = config["adt_gradual_unit"]
        self.gradual_iterations = self.num_gradual if self.gradual_unit == "iteration" else None
        self.iteration = 0

    def setup(self, train_dataset, held_out=None) -> None:
        if self.gradual_unit == "epoch":
            if self.batches_per_epoch is None:
                raise ValueError(
                    "adt_gradual_unit 'epoch' needs the number of training batches per epoch; "
                    "set the scheme's batches_per_epoch before setup (AutoDenoiseTrainer does)"
                )
            self.gradual_iterations = self.num_gradual * self.batches_per_epoch

    def next_drop_rate(self) -> float:
        """This batch's drop rate on the schedule; counts the batch."""
        rate = drop_rate_at(self.iteration, self.max_drop_rate, self.gradual_iterations)
        self.iteration += 1
        return rate

    def weights(self, batch: Batch) -> torch.Tensor:
        return truncation_weights(batch.losses, self.next_drop_rate(), batch.labels)

    def validation_weights(self, losses, labels) -> torch.Tensor:
        """Truncation at the drop rate the next training batch gets (the schedule not advanced)."""
        rate = drop_rate_at(self.iteration, self.max_drop_rate, self.gradual_iterations)
        return truncation_weights(losses, rate, labels)

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
