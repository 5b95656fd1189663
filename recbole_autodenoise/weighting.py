"""One training batch's loss under a weighting scheme: ``mean(w * loss)``.

``BatchWeighting.loss`` is the ``loss_func`` the trainer hands RecBole's ``_train_epoch``: one
loss per sample from the model's own loss module (``losses.PerSampleLoss``), packed with what the
scheme reads into a ``schemes.base.Batch``, one weight per sample from ``scheme.weights``, and
the weights counted by the weight study (``evaluation.weights.WeightStudy``). The default scheme
trains on the model's own loss unchanged. Schemes with ``needs_guidance`` also get a ``Guidance``
per batch (clean batches, per-sample alignment, virtual meta steps), drawn from the clean rows
``setup`` picks.
"""

from __future__ import annotations

from typing import Any

import torch

from recbole_autodenoise import distributed, options
from recbole_autodenoise.adapters import USER_LEVEL_MODELS
from recbole_autodenoise.diagnostics import Diagnosis
from recbole_autodenoise.evaluation.weights import WeightStudy
from recbole_autodenoise.guidance import (
    CleanBatches,
    Guidance,
    double_backward_safe,
    guide_dataset,
    negatives_per_row,
)
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.rows import CANARY_FIELD, ROW_FIELD
from recbole_autodenoise.schemes import Batch, WeightingScheme
from recbole_autodenoise.schemes.default import DefaultScheme


class BatchWeighting:
    """The weighted training loss of ``model`` under ``scheme``. ``sample_loss``: the per-sample
    loss (``None`` for the default scheme, which keeps the model's own loss); ``study``: the weight
    study; ``clean_batches``: the guiding batches of schemes with ``needs_guidance`` (``setup``);
    ``diagnosis``: the training-batch observer of ``denoise_diagnostics`` (or ``None``)."""

    def __init__(
        self,
        config: Any,
        model: torch.nn.Module,
        scheme: WeightingScheme,
        optimizer: torch.optim.Optimizer,
        diagnosis: Diagnosis | None = None,
    ) -> None:
        self.config, self.model, self.scheme = config, model, scheme
        self.optimizer, self.diagnosis = optimizer, diagnosis
        self.epochs, self.device = config["epochs"], config["device"]
        self.learning_rate = float(options.read(config, "learning_rate"))
        self.sample_loss = None if type(scheme) is DefaultScheme else PerSampleLoss(model)
        if scheme.needs_representations:
            self.sample_loss.check_representations()
        self.study = WeightStudy(
            config["clean_rating_field"],
            float(config["clean_rating_threshold"]),
            config["LABEL_FIELD"],
        )
        # user-level training batches (MultiVAE, ENMF, ...; only the default scheme) hold no
        # ratings to study
        self.rows_are_interactions = config["model"] not in USER_LEVEL_MODELS
        self.clean_batches: CleanBatches | None = None
        self._is_set_up = False

    def setup(self, data: Any, train_data: Any, valid_data: Any, batch_size: int) -> None:
        """Before training on ``train_data``: the scheme's set-up (once), the guiding batches of a
        scheme with ``needs_guidance`` and the diagnosis' clean batch, from ``data`` (the training
        side of the data bundle, or ``None``: ``valid_data``'s rows guide)."""
        if not self._is_set_up:
            self.scheme.batches_per_epoch = len(train_data)
            self.scheme.setup(train_data._dataset, None if data is None else data.valid_rows)
            self._is_set_up = True
        if self.scheme.needs_guidance and self.clean_batches is None:
            self.clean_batches = CleanBatches(
                guide_dataset(data, valid_data, self.scheme.guide_rows),
                self.model,
                batch_size,
                int(self.config["seed"]),
                self.device,
                exclude=train_data._dataset,
                negatives=negatives_per_row(self.config),
            )
        if self.diagnosis is not None:
            self.diagnosis.setup(guide_dataset(data, valid_data), batch_size, train_data._dataset)

    def loss(self, interaction, epoch: int) -> torch.Tensor:
        """The training loss of one batch of ``epoch``."""
        if self.diagnosis is not None:
            self.diagnosis.observe_training_batch(interaction)
        interaction = self.scheme.augment(interaction)
        if self.sample_loss is None:
            if self.rows_are_interactions:
                self.study.add(None, interaction)
            return self.model.calculate_loss(interaction)
        representations = self.scheme.needs_representations
        if self.clean_batches is None:
            sample = self.sample_loss(interaction, with_representations=representations)
            weights = self.scheme.weights(self.batch(interaction, sample, epoch))
        else:
            # the forward whose graph guidance differentiates twice must avoid cuDNN RNN kernels
            with double_backward_safe(self.model):
                sample = self.sample_loss(interaction, with_representations=representations)
                guidance = Guidance(
                    self.model,
                    self.sample_loss,
                    self.clean_batches,
                    self.learning_rate,
                    interaction,
                    sample.losses,
                    self.optimizer,
                )
                weights = self.scheme.weights(self.batch(interaction, sample, epoch, guidance))
        self.study.add(weights, interaction)
        if weights is None:
            return sample.weighted(torch.ones_like(sample.losses))
        return sample.weighted(weights)

    def batch(self, interaction, sample, epoch: int, guidance: Guidance | None = None) -> Batch:
        """What the scheme sees of one batch of ``epoch`` whose per-sample loss is ``sample``."""
        fields = interaction.interaction
        label_field = self.config["LABEL_FIELD"]
        return Batch(
            losses=sample.losses.detach(),
            item_ids=interaction[self.model.ITEM_ID],
            epoch=epoch,
            epoch_fraction=epoch / max(self.epochs, 1),
            user_repr=sample.user_repr,
            item_repr=sample.item_repr,
            guidance=guidance,
            user_ids=interaction[self.model.USER_ID] if self.model.USER_ID in fields else None,
            true_positive=(
                self.study.true_positive(interaction) if self.scheme.reads_ratings else None
            ),
            row_ids=interaction[ROW_FIELD] if ROW_FIELD in fields else None,
            canary=interaction[CANARY_FIELD] if CANARY_FIELD in fields else None,
            labels=interaction[label_field].float() if label_field in fields else None,
        )

    def end_epoch(self, loss: Any) -> dict[str, Any]:
        """The finished epoch's ``train_loss`` (RecBole's ``_train_epoch`` result ``loss``; under
        DDP the mean over ranks) and its weight study summary (every rank's samples)."""
        train_loss = float(sum(loss) if isinstance(loss, tuple) else loss)
        if distributed.is_distributed(self.config):
            self.study.sum_over_ranks()
            summed = distributed.all_reduce_sum(
                torch.tensor(train_loss, dtype=torch.float64, device=self.device)
            )
            train_loss = float(summed) / self.config["world_size"]
        return {"train_loss": train_loss, **WeightStudy.summary(self.study.epoch)}
