"""SoftmaxMF: the paper's MF (Sec. 5.2.1, "we turn the rating prediction task into ranking
prediction and use Softmax loss").

Matrix factorisation scored as BPR scores (user embedding · item embedding), trained with
cross-entropy of each interaction's item over all items, without negative sampling. The loss is
an ``nn.CrossEntropyLoss`` attribute, so ``losses.PerSampleLoss`` gives per-sample losses for every
denoising scheme; ``user_embedding`` / ``item_embedding`` are named as in RecBole's BPR, so the
AutoDenoise controller reads its state (e_u, e_v) from them. As RecBole's sequential models with
``loss_type: CE``, the logits span every item id, the padding id 0 included.
"""

from __future__ import annotations

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.utils import InputType
from torch import nn


class SoftmaxMF(GeneralRecommender):
    """MF with a softmax (full cross-entropy) loss over all items."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.loss_fct = nn.CrossEntropyLoss()
        self.apply(xavier_normal_initialization)

    def forward(self, user: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user: [batch, n_items]."""
        return self.user_embedding(user) @ self.item_embedding.weight.T

    def calculate_loss(self, interaction) -> torch.Tensor:
        return self.loss_fct(self.forward(interaction[self.USER_ID]), interaction[self.ITEM_ID])

    def predict(self, interaction) -> torch.Tensor:
        user = self.user_embedding(interaction[self.USER_ID])
        item = self.item_embedding(interaction[self.ITEM_ID])
        return (user * item).sum(dim=-1)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self.forward(interaction[self.USER_ID]).view(-1)
