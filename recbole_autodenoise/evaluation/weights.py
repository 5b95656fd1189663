"""The weight study: the mean weight a scheme gives true-positive (rating >= threshold),
false-positive (rating below it) and, where noise was injected (``noise_rate``), injected training
samples (paper Sec. 5.4.1, Fig. 2), per epoch and over the whole run."""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise import distributed
from recbole_autodenoise.diagnostics import sample_groups


class WeightStudy:
    """Weight sums and sample counts of the three groups; injected samples are counted apart,
    never as false positives."""

    # tp weight sum, tp count, fp weight sum, fp count, injected weight sum, injected count
    SIZE = 6

    def __init__(self, rating_field: str, threshold: float, label_field: str | None = None) -> None:
        self.rating_field = rating_field
        self.threshold = threshold
        # pointwise models: sampled negatives (label 0) are not studied
        self.label_field = label_field
        self.total = torch.zeros(self.SIZE, dtype=torch.float64)
        self.epoch = torch.zeros(self.SIZE, dtype=torch.float64)

    def begin_epoch(self) -> None:
        self.epoch = torch.zeros(self.SIZE, dtype=torch.float64)

    def add(self, weights: torch.Tensor | None, interaction) -> None:
        groups = sample_groups(interaction, self.rating_field, self.threshold, self.label_field)
        true_positive, false_positive, injected = groups["tp"], groups["fp"], groups["injected"]
        weights = torch.ones_like(true_positive) if weights is None else weights.detach().double()
        # sums stay on the batch's device: no host sync per batch, one per epoch in ``summary``
        batch = torch.stack(
            [
                (weights * true_positive).sum(),
                true_positive.sum(),
                (weights * false_positive).sum(),
                false_positive.sum(),
                (weights * injected).sum(),
                injected.sum(),
            ]
        )
        self.epoch = self.epoch.to(batch.device) + batch
        self.total = self.total.to(batch.device) + batch

    def true_positive(self, interaction) -> torch.Tensor:
        """The batch's true-positive mask (1.0 / 0.0), as the study counts it."""
        return sample_groups(interaction, self.rating_field, self.threshold)["tp"]

    def sum_over_ranks(self) -> None:
        """Under DDP, after an epoch: this epoch's sums become every rank's (the total follows)."""
        summed = distributed.all_reduce_sum(self.epoch)
        self.total = self.total + (summed - self.epoch).to(self.total.device)
        self.epoch = summed

    def load_total(self, total: torch.Tensor) -> None:
        """A saved total (``SIZE`` sums)."""
        if tuple(total.shape) != (self.SIZE,):
            raise ValueError(
                f"the weight study's total has shape {tuple(total.shape)}, expected ({self.SIZE},)"
            )
        self.total = total.detach().cpu().double()

    @staticmethod
    def summary(sums: torch.Tensor) -> dict[str, float]:
        tp_w, tp_n, fp_w, fp_n, inj_w, inj_n = sums.tolist()
        out: dict[str, float] = {
            "tp_mean_weight": tp_w / tp_n if tp_n else float("nan"),
            "fp_mean_weight": fp_w / fp_n if fp_n else float("nan"),
            "tp_samples": int(tp_n),
            "fp_samples": int(fp_n),
        }
        if inj_n:
            out.update(injected_mean_weight=inj_w / inj_n, injected_samples=int(inj_n))
        return out

    def report(self, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The whole run's summary plus ``per_epoch``: each epoch's mean weights from ``history``
        (the trainer's records, which hold each epoch's ``summary``)."""
        overall = self.summary(self.total)
        keys = ("epoch", "tp_mean_weight", "fp_mean_weight", "injected_mean_weight")
        overall["per_epoch"] = [{k: record[k] for k in keys if k in record} for record in history]
        return overall
