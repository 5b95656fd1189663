"""``weighting.BatchWeighting``: one training batch's loss ``mean(w * loss)``, what the scheme
sees of the batch, the weight study's counts and the epoch's summary. Hand-built batches on the
BPR stand-in of ``tests/test_losses.py``; no training."""

from __future__ import annotations

import torch
from recbole.data.interaction import Interaction

from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.schemes.base import WeightingScheme
from recbole_autodenoise.schemes.default import DefaultScheme
from recbole_autodenoise.weighting import BatchWeighting
from tests.controller.test_controller import FakeConfig
from tests.test_losses import NEG, POS, USER, FakeBPR

WEIGHTS = torch.tensor([2.0, 0.0, 1.0, 1.0])


class Given(WeightingScheme):
    """Gives every batch ``WEIGHTS`` and keeps the batches it saw."""

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.seen = []

    def weights(self, batch):
        self.seen.append(batch)
        return WEIGHTS


def config() -> FakeConfig:
    return FakeConfig(
        learning_rate=0.01,
        epochs=4,
        device=torch.device("cpu"),
        clean_rating_field="rating",
        clean_rating_threshold=4.0,
        LABEL_FIELD="label",
        model="BPR",
    )


def batch() -> Interaction:
    """Ratings 5, 2, 4, 1: rows 0 and 2 are true positives at threshold 4."""
    rating = torch.tensor([5.0, 2.0, 4.0, 1.0])
    return Interaction({"user_id": USER, "item_id": POS, "neg_item_id": NEG, "rating": rating})


def weighting(scheme_class) -> BatchWeighting:
    model, settings = FakeBPR(), config()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return BatchWeighting(settings, model, scheme_class(settings, "cpu"), optimizer)


def test_the_loss_is_the_mean_of_the_schemes_weights_times_each_samples_loss():
    weighted = weighting(Given)
    expected = (WEIGHTS * PerSampleLoss(weighted.model)(batch()).losses).mean()
    assert torch.equal(weighted.loss(batch(), epoch=2), expected)


def test_the_scheme_sees_the_batchs_losses_items_users_and_epoch():
    weighted = weighting(Given)
    weighted.loss(batch(), epoch=2)
    (seen,) = weighted.scheme.seen
    losses = PerSampleLoss(weighted.model)(batch()).losses.detach()
    assert torch.equal(seen.losses, losses) and not seen.losses.requires_grad
    assert torch.equal(seen.item_ids, POS) and torch.equal(seen.user_ids, USER)
    assert (seen.epoch, seen.epoch_fraction) == (2, 0.5)  # epoch / epochs
    # nothing the batch lacks or the scheme does not read
    assert seen.labels is seen.true_positive is seen.row_ids is seen.canary is seen.guidance is None


def test_the_weight_study_counts_the_schemes_weights_and_the_epoch_summary_has_the_loss():
    weighted = weighting(Given)
    weighted.loss(batch(), epoch=0)
    summary = weighted.end_epoch((torch.tensor(0.25), torch.tensor(0.5)))
    assert summary == {
        "train_loss": 0.75,  # a tuple of losses is summed
        "tp_mean_weight": 1.5,  # (2 + 1) / 2
        "fp_mean_weight": 0.5,  # (0 + 1) / 2
        "tp_samples": 2,
        "fp_samples": 2,
    }


def test_the_default_scheme_keeps_the_models_own_loss_and_weight_one():
    weighted = weighting(DefaultScheme)
    assert weighted.sample_loss is None
    loss = weighted.loss(batch(), epoch=0)
    assert torch.equal(loss, weighted.model.calculate_loss(batch()))
    summary = weighted.end_epoch(loss.item())  # RecBole sums plain floats
    assert (summary["tp_mean_weight"], summary["fp_mean_weight"]) == (1.0, 1.0)
