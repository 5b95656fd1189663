"""Oracle: a diagnostic that reads the ratings, never a denoising method.

Weight 0 for every training sample that is not a true positive (rating below
``clean_rating_threshold``, or injected by ``noise_rate``), 1 otherwise, rescaled to mean 1 per
batch: exactly "drop every false positive", the headroom a perfect denoiser could reach. A batch
without a single true positive gets all weights 0 and contributes nothing to the step (its loss is
0).
"""

from __future__ import annotations

import torch

from recbole_autodenoise.schemes.base import Batch, WeightingScheme, register_scheme


def oracle_weights(true_positive: torch.Tensor) -> torch.Tensor:
    """``true_positive * B / sum(true_positive)``; all zeros where the batch has no true
    positive."""
    total = true_positive.sum()
    scale = true_positive.numel() / torch.where(total > 0, total, torch.ones_like(total))
    return true_positive * scale


@register_scheme("oracle")
class OracleScheme(WeightingScheme):
    reads_ratings = True

    def weights(self, batch: Batch) -> torch.Tensor:
        if batch.true_positive is None:
            raise ValueError(
                "denoise_scheme 'oracle' needs batch.true_positive (the trainer fills it from "
                "clean_rating_field for schemes with reads_ratings)"
            )
        return oracle_weights(batch.true_positive.to(batch.losses.dtype))
