"""Learning to Reweight (Ren et al. 2018) without a controller: each sample's weight is its
alignment with the clean gradient, a_i = <grad l_i, grad L_clean> on a fresh clean batch, clipped
at 0 and normalised to mean 1 over the batch (all ones when no sample is aligned).

``effective_fraction`` in the log (Kish's effective sample size / B, averaged over the batches since
the last validation) shows how unevenly the weights fall: 0.22-0.30 on SASRec / ml-latest-small,
single batches down to 0.03. There L2RW stops learning at the loss of a popularity-only predictor
(docs/results.md): the clean gradient of other users' sequences only guides the global direction."""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise.schemes.base import (
    Batch,
    WeightingScheme,
    effective_fraction,
    mean_one,
    register_scheme,
)


def l2rw_weights(alignment: torch.Tensor) -> torch.Tensor:
    """relu(a) / mean(relu(a)); uniform where every a_i <= 0 (no host sync)."""
    return mean_one(torch.relu(alignment))


@register_scheme("l2rw")
class LearningToReweight(WeightingScheme):
    learns_from_validation = True  # uses the clean set (batch by batch, not the validation result)
    needs_guidance = True

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        # since the last evaluation: sum of alignments, kept (a_i > 0) samples, samples, batches,
        # sum of the batches' effective fractions
        self.stats = torch.zeros(5, dtype=torch.float64)

    def weights(self, batch: Batch) -> torch.Tensor:
        if batch.guidance is None:
            raise ValueError(
                "denoise_scheme l2rw needs the clean set's guidance; train with AutoDenoiseTrainer"
            )
        alignment = batch.guidance.alignment()
        weights = l2rw_weights(alignment)
        one = torch.ones((), dtype=torch.float64, device=alignment.device)
        update = torch.stack(
            [
                alignment.double().sum(),
                (alignment > 0).double().sum(),
                one * alignment.numel(),
                one,
                effective_fraction(weights),
            ]
        )
        self.stats = self.stats.to(update.device) + update
        return weights

    def after_evaluation(self, valid_result: dict[str, float], epoch: int) -> dict[str, float]:
        alignment_sum, kept, samples, batches, effective = self.stats.tolist()
        self.stats = torch.zeros_like(self.stats)
        if not samples:
            return {}
        return {
            "mean_alignment": alignment_sum / samples,
            "kept_fraction": kept / samples,
            "effective_fraction": effective / batches,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (
            state["stats"].cpu().double()
        )  # states from before the effective fraction hold 3 sums
        self.stats = torch.cat(
            [saved, torch.zeros(len(self.stats) - len(saved), dtype=torch.float64)]
        )
