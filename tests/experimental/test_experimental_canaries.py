"""``explicit_canaries`` (``import recbole_autodenoise.experimental``): planted stray clicks,
trained beside their source rows and fitted as 0 against the source's 1. Hand-built rows with exact
expected canaries, the refusals, a short run."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
import recbole_autodenoise.experimental  # noqa: F401  (registers explicit_canaries)
from recbole_autodenoise.diagnostics import sample_groups
from recbole_autodenoise.experimental.canaries import (
    Canaries,
    canary_labels,
    draw_avoiding,
    user_item_keys,
)
from recbole_autodenoise.rows import CANARY_FIELD, ROW_FIELD
from recbole_autodenoise.schemes import SCHEMES
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig
from tests.controller.test_explicit_credit import EXPLICIT, FakeGuidance, training_batch

ITEMS = 12  # ids 0 (padding) .. 11


def toy_dataset(users, items, held_users=(), held_items=()) -> SimpleNamespace:
    feat = Interaction(
        {
            "user_id": torch.tensor(users),
            "item_id": torch.tensor(items),
            "rating": torch.full((len(users),), 4.0),
        }
    )
    held = Interaction(
        {
            "user_id": torch.tensor(held_users, dtype=torch.long),
            "item_id": torch.tensor(held_items, dtype=torch.long),
        }
    )
    return SimpleNamespace(
        inter_feat=feat, uid_field="user_id", iid_field="item_id", item_num=ITEMS, valid_rows=held
    )


def plant(dataset: SimpleNamespace, rate: float, seed: int) -> Canaries:
    """The canaries of a toy dataset, avoiding its validation rows too."""
    return Canaries(dataset, rate, seed, dataset.valid_rows)


def toy() -> SimpleNamespace:
    # user 1 trains on 1-4 and holds out 5; user 2 trains on 5-8 and holds out 1
    return toy_dataset([1, 1, 1, 1, 2, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2], [5, 1])


def test_the_chosen_rows_get_items_no_split_pairs_with_their_user():
    for seed in range(20):
        dataset = toy()
        canaries = plant(dataset, 0.5, seed)
        assert canaries.count == 4 and int(canaries.is_source.sum()) == 4
        sources = canaries.is_source.nonzero().squeeze(1)
        assert (canaries.items[~canaries.is_source] == 0).all()
        for row in sources.tolist():
            user, item = int(dataset.inter_feat["user_id"][row]), int(canaries.items[row])
            forbidden = {1, 2, 3, 4, 5} if user == 1 else {5, 6, 7, 8, 1}
            assert (
                item not in forbidden and 1 <= item <= 8
            )  # a training row's item (popularity), never padding
        assert ROW_FIELD in dataset.inter_feat.interaction  # the rows got their ids


def test_the_canaries_follow_the_seed():
    first, again, other = (plant(toy(), 0.5, seed) for seed in (7, 7, 8))
    assert torch.equal(first.is_source, again.is_source) and torch.equal(first.items, again.items)
    draws = [plant(toy(), 0.5, seed) for seed in range(8, 12)]
    assert any(not torch.equal(first.items, d.items) for d in draws)


def test_the_count_rounds_the_share_of_training_rows():
    assert plant(toy(), 0.1, 0).count == 1  # round(0.8)
    assert plant(toy(), 0.0, 0).count == 0


def test_a_sequential_history_item_is_never_a_canary():
    # user 1's first item (3) is history only: in item_id_list, never a target; user 2 trains on 3
    # and 4
    dataset = toy_dataset([1, 1, 2, 2], [1, 2, 3, 4])
    dataset.inter_feat.interaction["item_id_list"] = torch.tensor([[3, 0], [3, 1], [4, 0], [0, 0]])
    dataset.item_id_list_field = "item_id_list"
    for seed in range(30):
        canaries = plant(dataset, 0.5, seed)
        users = dataset.inter_feat["user_id"][canaries.is_source].tolist()
        for user, item in zip(users, canaries.items[canaries.is_source].tolist()):
            assert (
                item in {1: {4}, 2: {1, 2}}[user]
            )  # user 1 could draw 3 if histories were ignored


def test_a_user_with_every_item_fails_clearly():
    known = user_item_keys(np.array([1, 1]), np.array([1, 2]), ITEMS)
    with pytest.raises(
        ValueError, match=r"explicit_canaries: could not draw an unseen item for user\(s\) \[1\]"
    ):
        draw_avoiding(np.array([1]), np.array([1, 2]), known, ITEMS, np.random.default_rng(0))


def test_augment_appends_each_source_rows_canary():
    canaries = plant(toy(), 0.0, 0)
    canaries.is_source[[2, 5]] = True
    canaries.items[2], canaries.items[5] = 9, 10
    batch = Interaction(
        {
            ROW_FIELD: torch.tensor([5, 0, 2, 7]),
            "user_id": torch.tensor([2, 1, 1, 2]),
            "item_id": torch.tensor([6, 1, 3, 8]),
            "neg_item_id": torch.tensor([11, 10, 9, 3]),
            "rating": torch.tensor([5.0, 4.0, 1.0, 2.0]),
        }
    )
    out = canaries.augment(batch)
    assert out[ROW_FIELD].tolist() == [5, 0, 2, 7, 5, 2]
    assert out["user_id"].tolist() == [2, 1, 1, 2, 2, 1]
    assert out["item_id"].tolist() == [6, 1, 3, 8, 10, 9]
    assert out["neg_item_id"].tolist() == [11, 10, 9, 3, 11, 9]  # the source's negative
    assert out[CANARY_FIELD].tolist() == [0, 0, 0, 0, 1, 1]
    assert CANARY_FIELD not in batch.interaction  # the loader's batch is left as it was


def test_canary_pairs_are_labelled_source_one_canary_zero():
    canary = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])
    row_ids = torch.tensor([5, 0, 2, 5, 2])
    rows, labels = canary_labels(canary, row_ids)
    assert rows.tolist() == [0, 2, 3, 4] and labels.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_no_group_of_the_weight_study_counts_a_canary():
    batch = Interaction(
        {
            "rating": torch.tensor([5.0, 1.0, 5.0, 1.0]),
            CANARY_FIELD: torch.tensor([0.0, 0.0, 1.0, 1.0]),
        }
    )
    groups = sample_groups(batch, "rating", 3)
    assert groups["tp"].tolist() == [1, 0, 0, 0] and groups["fp"].tolist() == [0, 1, 0, 0]
    assert groups["injected"].tolist() == [0, 0, 0, 0]


def test_the_pairs_join_the_explicit_fit_in_the_training_rows_state():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_canaries=0.1), CPU)
    guidance = FakeGuidance(0, rows=5)
    batch, _ = training_batch(0, guidance, rows=6)
    batch.row_ids = torch.tensor([4, 1, 9, 3, 4, 9])
    batch.canary = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    state = torch.arange(60, dtype=torch.float32).view(6, 10)
    examples, labels = scheme.credit.examples(state, batch)
    assert examples.shape == (9, 10)
    torch.testing.assert_close(examples[5:], state[[0, 2, 4, 5]])
    torch.testing.assert_close(
        labels, torch.cat([guidance.good, torch.tensor([1.0, 1.0, 0.0, 0.0])])
    )


@pytest.mark.parametrize("value", [-0.1, 1.0, True, "0.1"])
def test_the_share_must_be_a_fraction(value):
    with pytest.raises(
        ValueError,
        match=(
            f"config key 'explicit_canaries' = {value!r} is invalid: "
            "expected a number in \\[0, 1\\)"
        ),
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_canaries=value), CPU)


def test_canaries_belong_to_explicit_credit():
    with pytest.raises(
        ValueError,
        match="'explicit_canaries' = 0.1 applies to controller_credit 'explicit' only "
        "\\(this run uses 'epoch'\\); leave it at 0",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(explicit_canaries=0.1), CPU)


def test_other_schemes_train_on_the_loaders_batch_itself():
    scheme = SCHEMES.get("adt_rl")(FakeConfig(), CPU)
    batch = Interaction({"item_id": torch.tensor([1, 2])})
    assert scheme.augment(batch) is batch


@pytest.mark.slow
def test_a_short_run_with_canaries(tmp_path):
    trainer, train, valid = tiny_trainer(
        tmp_path,
        denoise_scheme="autodenoise_s",
        epochs=2,
        explicit_canaries=0.3,
        controller_learning_rate=0.01,
        guide_batch_size=16,
        **EXPLICIT,
    )
    trainer.fit(train, valid, saved=False)
    rows = len(train._dataset.inter_feat)
    assert trainer.scheme.credit.canaries.count == round(0.3 * rows)
    record = trainer.history[-1]
    assert record["tp_samples"] + record["fp_samples"] == rows  # canaries are in no group
    assert 0 < record["controller_canary_mean_weight"] < 10 and math.isfinite(
        record["controller_canary_source_mean_weight"]
    )
    state = trainer.scheme.state_dict()
    assert state["canary_stats"].tolist() == [
        0.0,
        0.0,
        0.0,
        0.0,
    ]  # reported and reset at the validation
    resumed = SCHEMES.get("autodenoise_s")(trainer.config, CPU)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.credit.canary_stats, state["canary_stats"].double())
