"""``denoise_diagnostics``: can this clean set guide denoising at all?

At every validation, on a fixed subsample of training rows (the run's first training batch, kept
for the whole run and in checkpoints) and a fixed batch of clean validation interactions, it
measures per group of samples (true positives, false positives and, where noise was injected,
injected ones) the mean alignment a_i = <grad l_i, grad L_clean> between a sample's loss gradient
and the clean gradient (``guidance.per_sample_alignment``), the fraction of samples that help
(a_i > 0: a step on the sample lowers the clean loss, to first order) and the mean loss. If true
positives do not align better than false positives, no clean-set-driven denoiser can separate them.
The model is put in eval mode for the measurement (no dropout), so it is deterministic.
"""

from __future__ import annotations

from typing import Any

import torch
from recbole.data.interaction import Interaction

from recbole_autodenoise.rows import CANARY_FIELD
from recbole_autodenoise.data import INJECTED_FIELD
from recbole_autodenoise.guidance import CleanBatches, negatives_per_row, per_sample_alignment
from recbole_autodenoise.losses import PerSampleLoss

GROUPS = ("tp", "fp", "injected")


def sample_groups(
    interaction: Interaction, rating_field: str, threshold: float, label_field: str | None = None
) -> dict[str, torch.Tensor]:
    """Float 0/1 masks of true positives (rating >= threshold), false positives (below it) and
    injected samples (``noise_injected``; never counted as true or false positives). Where the
    batch has ``label_field`` (pointwise models: NeuMF, DMF), rows labelled 0 are sampled
    negatives, which carry their positive's rating: they belong to no group, nor do the rows a
    scheme added to the batch itself (``rows.CANARY_FIELD``)."""
    if rating_field not in interaction.interaction:
        raise ValueError(f"training batches carry no '{rating_field}' field (clean_rating_field)")
    rating = interaction[rating_field]
    if INJECTED_FIELD in interaction.interaction:
        injected = (interaction[INJECTED_FIELD] > 0.5).double()
    else:
        injected = torch.zeros_like(rating, dtype=torch.float64)
    if label_field is not None and label_field in interaction.interaction:
        observed = (interaction[label_field] > 0.5).double()
    else:
        observed = torch.ones_like(rating, dtype=torch.float64)
    if CANARY_FIELD in interaction.interaction:
        observed = observed * (interaction[CANARY_FIELD] < 0.5).double()
    true_positive = (rating >= threshold).double() * (1 - injected) * observed
    injected = injected * observed
    return {"tp": true_positive, "fp": observed - true_positive - injected, "injected": injected}


def _plain_interaction(interaction: Interaction) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in interaction.interaction.items()}


class Diagnosis:
    """Alignment of each group of training samples with the clean gradient, per validation."""

    def __init__(self, model: torch.nn.Module, config: Any, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.rating_field = config["clean_rating_field"]
        self.threshold = float(config["clean_rating_threshold"])
        self.seed = int(config["seed"])
        self.negatives = negatives_per_row(config)
        self.sample_loss = PerSampleLoss(model)
        self.rows: Interaction | None = None
        self.clean: Interaction | None = None

    def setup(self, clean_dataset: Any, batch_size: int, train_dataset: Any | None = None) -> None:
        if self.clean is None:
            self.clean = next(
                CleanBatches(
                    clean_dataset,
                    self.model,
                    batch_size,
                    self.seed,
                    self.device,
                    exclude=train_dataset,
                    negatives=self.negatives,
                )
            )

    def observe_training_batch(self, interaction: Interaction) -> None:
        if self.rows is None:
            self.rows = Interaction(_plain_interaction(interaction)).to(self.device)

    def run(self) -> dict[str, float]:
        if self.rows is None or self.clean is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                alignment = per_sample_alignment(
                    self.model, self.sample_loss, self.rows, self.clean
                )
            with torch.no_grad():
                losses = self.sample_loss(self.rows).losses
        finally:
            self.model.train(was_training)
        out: dict[str, float] = {}
        for name, mask in sample_groups(self.rows, self.rating_field, self.threshold).items():
            chosen = mask.to(alignment.device) > 0
            count = int(chosen.sum())
            if count:
                out[f"diag_{name}_alignment"] = float(alignment[chosen].double().mean())
                out[f"diag_{name}_helpful_fraction"] = float(
                    (alignment[chosen] > 0).double().mean()
                )
                out[f"diag_{name}_loss"] = float(losses[chosen].double().mean())
                out[f"diag_{name}_samples"] = count
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": None if self.rows is None else _plain_interaction(self.rows),
            "clean": None if self.clean is None else _plain_interaction(self.clean),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("rows") is not None:
            self.rows = Interaction(dict(state["rows"])).to(self.device)
        if state.get("clean") is not None:
            self.clean = Interaction(dict(state["clean"])).to(self.device)
