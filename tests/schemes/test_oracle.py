"""The ``oracle`` scheme (issue 17): a diagnostic that reads the ratings and drops every false
positive and every injected sample, rescaled to mean 1 per batch."""

from __future__ import annotations

import pytest
import torch
from recbole.data.interaction import Interaction

import recbole_autodenoise as rad
from recbole_autodenoise.data import INJECTED_FIELD
from recbole_autodenoise.diagnostics import sample_groups
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.oracle import OracleScheme, oracle_weights
from tests.schemes.test_schemes import FakeConfig
from tests.test_trainer import build, fresh_model

CPU = torch.device("cpu")


def batch_of(rating, injected) -> Batch:
    """A hand-built batch: the trainer's true-positive mask from ratings and injected flags."""
    interaction = Interaction(
        {"rating": torch.tensor(rating), INJECTED_FIELD: torch.tensor(injected)}
    )
    true_positive = sample_groups(interaction, "rating", 3.0)["tp"]
    size = len(rating)
    return Batch(
        losses=torch.ones(size),
        item_ids=torch.zeros(size, dtype=torch.long),
        epoch=0,
        epoch_fraction=0.0,
        true_positive=true_positive,
    )


def test_all_zero_batch_contributes_nothing():
    assert torch.equal(oracle_weights(torch.zeros(3)), torch.zeros(3))


def test_all_true_positive_batch_is_unweighted():
    assert torch.equal(oracle_weights(torch.ones(4)), torch.ones(4))


def test_rated_unrated_and_injected_samples_exact_weights():
    # ratings 5, 2.5 (false positive), 3 (at the threshold: clean), 4 injected, 1, 4.5
    batch = batch_of([5.0, 2.5, 3.0, 4.0, 1.0, 4.5], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    weights = SCHEMES.get("oracle")(FakeConfig(), CPU).weights(batch)
    # three true positives among six samples: each weighs 6 / 3
    assert weights.dtype == torch.float32
    assert torch.equal(weights, torch.tensor([2.0, 0.0, 2.0, 0.0, 0.0, 2.0]))
    assert weights.mean().item() == 1.0


def test_oracle_reads_ratings_and_fails_without_them():
    scheme = SCHEMES.get("oracle")(FakeConfig(), CPU)
    assert isinstance(scheme, OracleScheme) and scheme.reads_ratings
    batch = batch_of([5.0], [0.0])
    batch.true_positive = None
    with pytest.raises(ValueError, match="oracle"):
        scheme.weights(batch)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["BPR", "GRU4Rec", "SASRec"])
def test_one_epoch_on_ml100k_drops_false_positives_and_injected_rows(model):
    config, train, valid, test = build(
        model,
        epochs=1,
        user_inter_num_interval="[10,60]",
        denoise_scheme="oracle",
        noise_rate=0.1,
        allow_rating_diagnostics=True,
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    assert 0.0 < result["ndcg@20"] < 1.0
    study = trainer.weight_study()
    assert study["fp_samples"] > 0 and study["injected_samples"] > 0
    assert study["fp_mean_weight"] == 0.0 and study["injected_mean_weight"] == 0.0
    assert study["tp_mean_weight"] > 1.0  # mean 1 per batch over fewer kept samples


@pytest.mark.slow
def test_controller_oracle_state_end_to_end_on_bpr():
    """The trainer fills the flag for the controller: BPR's state is e_u, e_v (64 each), loss,
    epoch, flag."""
    config, train, valid, _ = build(
        "BPR",
        epochs=1,
        user_inter_num_interval="[10,60]",
        denoise_scheme="autodenoise_s",
        controller_oracle_state=True,
        allow_rating_diagnostics=True,
        baseline_init="first_reward",
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    assert trainer.scheme.input_size == 2 * config["embedding_size"] + 3
    assert trainer.history[-1]["controller_advantage"] == 0.0
    assert (
        trainer.scheme.batches_per_epoch == sum(1 for _ in train) == 3
    )  # what adt_gradual_unit: epoch counts
