"""``denoise_scheme: udt``: the audit's user- and interaction-level reweighting, on hand-built
batches (two users, four items) and one short run."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.udt import interaction_factors, rank_values
from tests.schemes.test_schemes import FakeConfig

CPU = torch.device("cpu")
# user 1 trains on items 1 and 2, user 2 on item 3 (0 is RecBole's padding id)
USERS = torch.tensor([1, 1, 2, 1, 2])
ITEMS = torch.tensor([1, 2, 3, 3, 1])
LABELS = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])  # the last two: sampled negatives
LOSSES = torch.tensor([0.1, 0.5, 2.0, 0.3, 0.7])


def train_set() -> SimpleNamespace:
    return SimpleNamespace(
        user_num=3,
        item_num=5,
        uid_field="user_id",
        inter_feat={"user_id": torch.tensor([1, 1, 2]), "item_id": torch.tensor([1, 2, 3])},
    )


def scheme(**overrides):
    udt = SCHEMES.get("udt")(FakeConfig(denoise_scheme="udt", **overrides), CPU)
    udt.setup(train_set())
    return udt


def batch(epoch: int, labels=LABELS, losses=LOSSES) -> Batch:
    return Batch(
        losses=losses.clone(),
        item_ids=ITEMS,
        epoch=epoch,
        epoch_fraction=0.0,
        user_ids=USERS,
        labels=labels,
    )


def expected_epoch_two() -> list[float]:
    """User 1: sum 0.1 + 0.5 + 0.3 over 2 positives = 0.45, the lowest: T 0.2, factor 0.5. User 2:
    (2.0 + 0.7) / 1, the highest: T 0.5, factor 0. User 1's positives: 2 * softmax(-[0.1, 0.5] /
    0.2) * 0.5; its negative: 0.5."""
    first = 1 / (1 + math.exp(-2.0))
    return [first, 1 - first, 0.0, 0.5, 0.0]


def test_the_first_two_epochs_are_unweighted():
    udt = scheme()
    assert torch.equal(udt.weights(batch(0)), torch.ones(5))
    assert torch.equal(udt.weights(batch(1)), torch.ones(5))


def test_the_third_epoch_weighs_by_the_last_epochs_losses():
    udt = scheme()
    udt.weights(batch(0, losses=torch.tensor([9.0, 9.0, 0.0, 9.0, 0.0])))  # ranks the other way
    udt.weights(batch(1))
    weights = udt.weights(batch(2))
    assert weights.tolist() == pytest.approx(expected_epoch_two(), abs=1e-6)


def test_every_row_counts_as_a_positive_without_labels():
    """BPR or cross-entropy batches: no negatives; user 1's three rows share the softmax."""
    udt = scheme()
    udt.weights(batch(0, labels=None))
    udt.weights(batch(1, labels=None))
    weights = udt.weights(batch(2, labels=None))
    # user 1: mean (0.1 + 0.5 + 0.3) / 2 positives in training = 0.45, lowest; items 1, 2, 3
    logits = torch.tensor([-0.1, -0.5, -0.3]) / 0.2
    expected = torch.softmax(logits, 0) * 2 * 0.5
    assert weights[[0, 1, 3]].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert weights[[2, 4]].tolist() == [0.0, 0.0]


def test_a_resumed_scheme_gives_the_same_weights():
    udt = scheme()
    udt.weights(batch(0))
    udt.weights(batch(1))
    state = udt.state_dict()
    again = SCHEMES.get("udt")(FakeConfig(denoise_scheme="udt"), CPU)
    again.load_state_dict(state)  # before setup, as a resumed run does
    again.setup(train_set())
    assert torch.equal(again.weights(batch(2)), udt.weights(batch(2)))


def test_rank_values_are_linear_in_the_rank_and_skip_users_without_rows():
    loss = torch.tensor([0.0, 3.0, 1.0, 2.0], dtype=torch.float64)
    has = torch.tensor([False, True, True, True])
    assert rank_values(loss, has, 0.5, 0.0).tolist() == [0.5, 0.0, 0.5, 0.25]


def test_interaction_factors_average_one_over_a_users_positives():
    latest = torch.tensor([[0.2, 1.0, float("inf")], [float("inf")] * 3])
    factors = interaction_factors(latest, torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0]))
    assert factors[0, :2].sum().item() == pytest.approx(2.0)
    assert factors[0, 2].item() == 1.0 and factors[1].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "key, value",
    [
        ("udt_temperatures", [0.2]),
        ("udt_temperatures", [0.0, 0.5]),
        ("udt_temperatures", "0.2,0.5"),
        ("udt_user_factors", [-0.1, 0.0]),
        ("udt_user_factors", [0.5, "x"]),
    ],
)
def test_bad_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"config key '{key}' = .* is invalid: expected a list"):
        SCHEMES.get("udt")(FakeConfig(denoise_scheme="udt", **{key: value}), CPU)


def test_without_setup_it_fails_clearly():
    udt = SCHEMES.get("udt")(FakeConfig(denoise_scheme="udt"), CPU)
    with pytest.raises(ValueError, match="denoise_scheme 'udt' needs each row's user"):
        udt.weights(batch(0))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["BPR", "NeuMF"])
def test_three_epochs_train_with_weights_after_the_warmup(model, tmp_path):
    from tests.test_model_coverage import build

    from recbole_autodenoise.trainer import AutoDenoiseTrainer
    from tests.conftest import write_inter

    rows = [
        (u, 1 + (u * 7 + j * 3) % 30, 1 + (u + j) % 5, 1000 * u + j)
        for u in range(1, 41)
        for j in range(15)
    ]
    write_inter(tmp_path, "tiny", rows)
    config, recommender, (train, valid, _) = build(
        model, "udt", str(tmp_path), epochs=3, stopping_step=10
    )
    trainer = AutoDenoiseTrainer(config, recommender)
    trainer.fit(train, valid, saved=False, verbose=False)
    first, _, third = trainer.history
    assert first["tp_mean_weight"] == first["fp_mean_weight"] == 1.0
    assert 0 <= third["tp_mean_weight"] < 1.0 and 0 <= third["fp_mean_weight"] < 1.0
