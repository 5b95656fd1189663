"""RecBole's LightGCN and CDAE trained pointwise: binary cross-entropy on labelled (user, item)
rows, one sampled negative per positive (RecBole's ``train_neg_sample_args``), as NeuMF trains.

``LightGCNPointwise`` is RecBole's LightGCN (same propagation, embeddings and regulariser) whose
loss is ``nn.BCEWithLogitsLoss`` on the score of each labelled row instead of BPR on (positive,
negative) pairs; the loss module replaces ``mf_loss``, so ``losses.PerSampleLoss`` reads one loss
per row.

``CDAEPointwise`` is RecBole's CDAE (same encoder, corruption, user node and regularisers) whose
loss is binary cross-entropy on the batch's labelled rows: each distinct user of the batch is
encoded once from its (corrupted) training vector, and each row's logit is read from its user's
output. RecBole trains CDAE on whole item vectors in user batches (its user-level loader, chosen by
the model's name); this class trains on the rows of RecBole's ordinary training loader, so a
training batch that holds every row is one step over every user, with one sampled negative per
positive. Its per-row losses come from a registered loss adapter (``adapters``).
"""

from __future__ import annotations

import torch
from recbole.model.general_recommender import CDAE, LightGCN
from recbole.utils import InputType
from torch import nn
from torch.nn import functional as F

from recbole_autodenoise import adapters


class LightGCNPointwise(LightGCN):
    """LightGCN trained with binary cross-entropy on labelled rows."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        self.mf_loss = nn.BCEWithLogitsLoss()

    def calculate_loss(self, interaction) -> torch.Tensor:
        # the cached full-sort embeddings are stale once the weights change
        self.restore_user_e, self.restore_item_e = None, None
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        user_all, item_all = self.forward()
        scores = torch.mul(user_all[user], item_all[item]).sum(dim=1)
        loss = self.mf_loss(scores, interaction[self.LABEL].float())
        reg = self.reg_loss(
            self.user_embedding(user), self.item_embedding(item), require_pow=self.require_pow
        )
        return loss + self.reg_weight * reg


class CDAEPointwise(CDAE):
    """CDAE trained with binary cross-entropy on labelled rows (one forward per distinct user)."""

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        if self.loss_type != "BCE":
            raise ValueError(
                f"config key 'loss_type' = {self.loss_type!r} is invalid for CDAEPointwise: "
                "expected 'BCE' (it trains on labelled rows)"
            )

    def row_logits(self, interaction) -> torch.Tensor:
        """The logit of each row's item in its user's output, one forward per distinct user."""
        users, rows = torch.unique(interaction[self.USER_ID], return_inverse=True)
        scores = self.forward(self.get_rating_matrix(users), users)
        return scores[rows, interaction[self.ITEM_ID]]

    def regularisation(self) -> torch.Tensor:
        """RecBole CDAE's L1 and L2 terms."""
        l1 = self.h_user.weight.norm(p=1) + self.h_item.weight.norm(p=1)
        l2 = self.h_user.weight.norm() + self.h_item.weight.norm()
        return self.reg_weight_1 * l1 + self.reg_weight_2 * l2

    def calculate_loss(self, interaction) -> torch.Tensor:
        losses, extra = cdae_pointwise_losses(self, interaction)
        return losses.mean() + extra


def cdae_pointwise_losses(model: CDAEPointwise, interaction) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row binary cross-entropy and the regularisers (``adapters.register_loss_adapter``)."""
    logits = model.row_logits(interaction)
    labels = interaction[model.LABEL].to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return losses, model.regularisation()


adapters.register_loss_adapter(CDAEPointwise, cdae_pointwise_losses)
