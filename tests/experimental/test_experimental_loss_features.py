"""The loss-aware controller state (``controller_state: loss_features``, ``LossStore``) and the
ADT-TL prior (``controller_prior: adt_tl``), both experimental (``import
recbole_autodenoise.experimental``): features against direct computations, the store through
checkpoint and resume, a toy where noisy rows have higher losses, and bad values. The ADT-RL
prior: tests/controller/test_controller_prior.py."""

from __future__ import annotations

import io
import math

import pytest
import torch

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)

# registers loss_features and the adt_tl prior
import recbole_autodenoise.experimental  # noqa: F401
from recbole_autodenoise.experimental.loss_features import (
    NUM_FEATURES,
    LossStore,
    ranks_in_unit,
    standardise_within_users,
)
from recbole_autodenoise.rows import ROW_FIELD
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.schemes.base import mean_one
from tests.conftest import assert_float_close, float_tolerance
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig
from tests.controller.test_controller_prior import (
    FakeTrainSet,
    batch_of,
    replayed_outputs,
    soft_batch,
)

LOSS = {"controller_state": "loss_features"}


# --- features -------------------------------------------------------------------------------
def test_standardise_within_users_edge_cases_first():
    single = standardise_within_users(torch.tensor([7.0]), torch.tensor([3]))
    equal = standardise_within_users(torch.tensor([2.0, 2.0]), torch.tensor([1, 1]))
    assert torch.equal(single, torch.zeros(1)) and torch.equal(equal, torch.zeros(2))
    losses = torch.tensor([1.0, 5.0, 3.0, 2.0, 2.0, 7.0])
    users = torch.tensor([1, 2, 1, 2, 2, 3])
    root2 = math.sqrt(2.0)  # user 2: mean 3, population variance (4 + 1 + 1) / 3 = 2
    assert_float_close(
        standardise_within_users(losses, users), [-1.0, 2 / root2, 1.0, -1 / root2, -1 / root2, 0.0]
    )


def test_ranks_in_unit():
    values = torch.tensor([0.3, 0.1, 0.9, 5.0])
    assert torch.equal(
        ranks_in_unit(values, torch.tensor([True, True, True, False])),
        torch.tensor([0.5, 0.0, 1.0, 0.5]),
    )
    assert torch.equal(
        ranks_in_unit(values, torch.tensor([False, True, False, False])), torch.full((4,), 0.5)
    )


def test_store_ema_and_deviation_with_repeated_rows():
    store = LossStore(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 2, 2, decay=0.5)
    store.update(
        torch.tensor([0, 2, 2]), torch.tensor([2.0, 1.0, 3.0])
    )  # row 2 twice (two negatives): mean 2
    assert torch.equal(store.ema[[0, 2]], torch.tensor([2.0, 2.0])) and torch.isnan(store.ema[1])
    assert torch.equal(store.deviation, torch.zeros(3))
    store.update(torch.tensor([0]), torch.tensor([4.0]))
    assert store.ema[0] == 0.5 * 2 + 0.5 * 4 and store.deviation[0] == 0.5 * (4 - 2) ** 2
    store.update(
        torch.tensor([0]), torch.tensor([1.0])
    )  # ema 3 -> 2, deviation 2 -> 0.5 * 2 + 0.5 * 4
    assert store.ema[0] == 2.0 and store.deviation[0] == 3.0


def test_features_against_a_direct_computation():
    # rows: (user, item) = (0, 0), (0, 1), (1, 1), (2, 2)
    store = LossStore(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), 3, 3, decay=0.5)
    first = store.features(
        torch.tensor([0, 1, 2, 3]),
        torch.tensor([0, 0, 1, 2]),
        torch.tensor([0, 1, 1, 2]),
        torch.tensor([1.0, 3.0, 4.0, 0.5]),
        epoch=0,
        epoch_fraction=0.0,
    )
    assert first.shape == (4, NUM_FEATURES)
    half = torch.full((4,), 0.5)
    expected = torch.stack(
        [
            torch.tensor([1.0, 3.0, 4.0, 0.5]),
            torch.tensor([-1.0, 1.0, 0.0, 0.0]),
            torch.tensor([1.0, 3.0, 4.0, 0.5]),
            torch.zeros(4),
            half,
            half,
            torch.zeros(4),
        ],
        dim=1,
    )
    assert torch.equal(first, expected)
    # epoch 1: ranks from the epoch-0 EMAs. users' means 2, 4, 0.5 -> ranks 0.5, 1, 0;
    # items' means 1, (3 + 4) / 2, 0.5 -> 0.5, 1, 0
    second = store.features(
        torch.tensor([1, 3]),
        torch.tensor([0, 2]),
        torch.tensor([1, 2]),
        torch.tensor([5.0, 0.5]),
        epoch=1,
        epoch_fraction=0.25,
    )
    expected = torch.tensor(
        [[5.0, 0.0, 4.0, 2.0, 0.5, 1.0, 0.25], [0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.25]]
    )
    assert torch.equal(second, expected)


def test_scheme_feeds_the_features_to_the_controller():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**LOSS, loss_ema_decay=0.5), CPU)
    assert not scheme.needs_representations
    dataset = FakeTrainSet([0, 0, 1, 2], [0, 1, 1, 2], 3, 3)
    scheme.setup(dataset)
    assert torch.equal(dataset.inter_feat[ROW_FIELD], torch.arange(4))
    batch = batch_of([0, 1, 2, 3], [0, 0, 1, 2], [0, 1, 1, 2], [1.0, 3.0, 4.0, 0.5])
    scheme.weights(batch)
    assert scheme.input_size == NUM_FEATURES
    assert torch.equal(scheme.features.store.ema, torch.tensor([1.0, 3.0, 4.0, 0.5]))


def test_loss_features_without_row_ids_fail_clearly():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**LOSS), CPU)
    with pytest.raises(
        ValueError, match="controller_state 'loss_features' needs the training rows' ids"
    ):
        scheme.weights(batch_of([0], [0], [0], [1.0]))


def test_resume_refuses_another_controller_state():
    paper = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    with pytest.raises(
        ValueError, match="trained with controller_state='paper', this run uses 'loss_features'"
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(**LOSS), CPU).load_state_dict(paper.state_dict())
    older = {key: value for key, value in paper.state_dict().items() if key != "controller_state"}
    SCHEMES.get("autodenoise_s")(FakeConfig(), CPU).load_state_dict(
        older
    )  # saved before the key: paper


def test_paper_state_leaves_the_store_out():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    dataset = FakeTrainSet([0], [0], 1, 1)
    scheme.setup(dataset)
    assert scheme.needs_representations and getattr(scheme.features, "store", None) is None
    assert ROW_FIELD not in dataset.inter_feat
    assert "loss_store" not in scheme.state_dict()


# --- prior ----------------------------------------------------------------------------------
# ADT-TL's schedule in iterations: 0, 0.25, 0.5 after 3 batches (np.linspace(0, 0.5, 3)), then 0.5
ADT_TL_PRIOR = {
    "controller_prior": "adt_tl",
    "adt_max_drop_rate": 0.5,
    "adt_num_gradual": 3,
    "adt_gradual_unit": "iteration",
}


def test_adt_tl_prior_truncates_on_its_schedule_times_the_controller():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR), CPU)
    start = scheme.generator.get_state()
    losses = [0.1, 3.0, 0.5, 2.0]
    weights = [scheme.weights(soft_batch(losses)) for _ in range(4)]
    # drop rates 0, 0.25 (keep 3 of 4: the loss 3.0 goes), 0.5 (keep 2: 3.0 and 2.0 go), then 0.5
    # again
    for got, output, dropped in zip(
        weights, replayed_outputs(scheme, start, 4, 4), ([], [1], [1, 3], [1, 3])
    ):
        kept = torch.ones(4)
        kept[dropped] = 0.0
        assert torch.equal(got == 0, kept == 0)
        assert_float_close(got, kept * output * 4 / (kept * output).sum())
    assert scheme.state_dict()["prior"] == {"name": "adt_tl", "iteration": 4}


def test_adt_tl_prior_starts_at_adt_tl_as_the_noise_vanishes():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR, controller_init_std=1e-6), CPU)
    reference = SCHEMES.get("adt_tl")(FakeConfig(**ADT_TL_PRIOR), CPU)
    atol = 2 * 1e-5 * 4 + float_tolerance(torch.float32, 4.0)  # as for the ADT-RL prior
    for losses in ([0.1, 3.0, 0.5, 2.0], [1.0, 0.2, 0.3, 0.4], [5.0, 4.0, 0.1, 0.2]):
        batch = soft_batch(losses)
        torch.testing.assert_close(
            scheme.weights(batch), reference.weights(batch), rtol=0, atol=atol
        )


def test_adt_tl_prior_counts_epochs_in_training_batches():
    config = FakeConfig(
        controller_prior="adt_tl",
        adt_max_drop_rate=0.2,
        adt_num_gradual=2,
        adt_gradual_unit="epoch",
    )
    scheme = SCHEMES.get("autodenoise_s")(config, CPU)
    scheme.batches_per_epoch = 7
    scheme.setup(FakeTrainSet([0], [0], 1, 1))
    assert scheme.prior_scheme.gradual_iterations == 14


def test_adt_tl_prior_survives_checkpoint_and_resume_exactly():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR), CPU)
    losses = [0.1, 3.0, 0.5, 2.0]
    scheme.weights(soft_batch(losses))
    buffer = io.BytesIO()
    torch.save(scheme.state_dict(), buffer)
    buffer.seek(0)
    resumed = SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR), CPU)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    assert resumed.prior_scheme.iteration == 1
    batch = soft_batch(losses)
    assert torch.equal(
        resumed.weights(batch), scheme.weights(batch)
    )  # rate 0.25 on both: one row dropped
    assert int((resumed.weights(batch) == 0).sum()) == 2  # and both move on to 0.5


def test_resume_refuses_another_prior():
    tl = SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR), CPU)
    tl.weights(soft_batch([1.0, 2.0]))
    with pytest.raises(
        ValueError, match="trained with controller_prior='adt_tl', this run uses 'adt_rl'"
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(controller_prior="adt_rl"), CPU).load_state_dict(
            tl.state_dict()
        )
    with pytest.raises(
        ValueError, match="trained with controller_prior='adt_tl', this run uses 'none'"
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(), CPU).load_state_dict(tl.state_dict())
    plain = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    plain.weights(soft_batch([1.0, 2.0]))
    with pytest.raises(ValueError, match="has no state for controller_prior='adt_tl'"):
        SCHEMES.get("autodenoise_s")(FakeConfig(**ADT_TL_PRIOR), CPU).load_state_dict(
            plain.state_dict()
        )
    # an ADT-RL prior has no state: a checkpoint without the prior's entry (saved before it had one)
    # loads
    rl = SCHEMES.get("autodenoise_s")(FakeConfig(controller_prior="adt_rl"), CPU)
    rl.weights(soft_batch([1.0, 2.0]))
    older = {key: value for key, value in rl.state_dict().items() if key != "prior"}
    SCHEMES.get("autodenoise_s")(FakeConfig(controller_prior="adt_rl"), CPU).load_state_dict(older)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"controller_prior": "adt_rl"},
            "'controller_prior' = 'adt_rl' is not supported by autodenoise_h",
        ),
        (
            {"controller_prior": "adt_tl"},
            "'controller_prior' = 'adt_tl' is not supported by autodenoise_h",
        ),
    ],
)
def test_hard_controller_refuses_the_prior(overrides, message):
    with pytest.raises(ValueError, match=message):
        SCHEMES.get("autodenoise_h")(FakeConfig(**overrides), CPU)


def test_meta_credit_refuses_the_prior():
    with pytest.raises(
        ValueError,
        match="'controller_prior' = 'adt_rl' is not supported with controller_credit 'meta'",
    ):
        SCHEMES.get("autodenoise_s")(
            FakeConfig(controller_prior="adt_rl", controller_credit="meta"), CPU
        )


# --- bad values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("controller_state", "embeddings", "one of ['paper', 'paper_product', 'loss_features']"),
        ("controller_state", None, "one of ['paper', 'paper_product', 'loss_features']"),
        ("loss_ema_decay", 1.0, "a number in [0, 1)"),
        ("loss_ema_decay", -0.1, "a number in [0, 1)"),
        ("loss_ema_decay", "0.9", "a number in [0, 1)"),
        ("controller_prior", "dcf", "one of ['none', 'adt_rl', 'adt_tl']"),
        ("adt_beta", -1.0, "a number >= 0"),
        ("adt_max_drop_rate", 1.0, "a number in [0, 1)"),
        ("adt_gradual_unit", "batch", "one of ['iteration', 'epoch']"),
    ],
)
@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_bad_values_name_key_value_and_allowed(name, key, value, allowed):
    with pytest.raises(ValueError) as error:
        SCHEMES.get(name)(FakeConfig(**{key: value}), CPU)
    assert str(error.value) == f"config key '{key}' = {value!r} is invalid: expected {allowed}"


def test_bad_value_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"config key 'loss_ema_decay' = 1\.5 is invalid"):
        tiny_trainer(tmp_path, denoise_scheme="autodenoise_s", loss_ema_decay=1.5)


def test_new_keys_are_declared():
    keys = SCHEMES.get("autodenoise_s").read_keys()
    assert {
        "controller_state",
        "loss_ema_decay",
        "controller_prior",
        "adt_beta",
        "adt_max_drop_rate",
        "adt_num_gradual",
        "adt_gradual_unit",
    } <= keys


# --- toy: noisy rows with higher loss histories ------------------------------------------------
def test_controller_with_loss_features_down_weights_noisy_rows():
    """40 rows of 20 users; the 20 noisy rows have losses near 3, the clean near 0.5. The reward
    is the clean rows' mean weight minus the noisy rows', weights rescaled to mean 1 (what a clean
    validation would favour; the rescaling keeps "every weight to 0" from paying)."""
    config = FakeConfig(**LOSS, controller_learning_rate=0.1, baseline_init="first_reward")
    scheme = SCHEMES.get("autodenoise_s")(config, CPU)
    users = [row // 2 for row in range(40)]
    scheme.setup(FakeTrainSet(users, list(range(40)), 20, 40))
    noisy = torch.arange(40) % 2 == 1
    gen = torch.Generator()
    gen.manual_seed(0)
    gaps = []
    for epoch in range(10):
        losses = torch.where(noisy, 3.0, 0.5) + 0.1 * torch.rand(40, generator=gen)
        weights = scheme.weights(
            batch_of(list(range(40)), users, list(range(40)), losses.tolist(), epoch, epoch / 15)
        )
        weights = mean_one(weights)
        gaps.append(float(weights[~noisy].mean() - weights[noisy].mean()))
        scheme.after_evaluation({"gauc": gaps[-1]}, epoch)
    expected = scheme.policy.distribution(
        scheme._state(
            batch_of(
                list(range(40)),
                users,
                list(range(40)),
                torch.where(noisy, 3.0, 0.5).tolist(),
                10,
                1.0,
            )
        )
    ).mean
    assert abs(gaps[0]) < 0.1  # the controller starts blind to the features
    assert expected[noisy].max() < expected[~noisy].min()
    assert min(gaps[-5:]) > 1.5  # of at most 2: the noisy rows' weights near 0 within five updates


# --- checkpoints ----------------------------------------------------------------------------
def test_store_state_round_trip_is_exact():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**LOSS), CPU)
    scheme.setup(FakeTrainSet([0, 0, 1], [0, 1, 1], 2, 2))
    scheme.weights(batch_of([0, 1, 2], [0, 0, 1], [0, 1, 1], [1.0, 2.0, 3.0]))
    scheme.weights(batch_of([0, 2], [0, 1], [0, 1], [0.25, 0.5], epoch=1, epoch_fraction=0.5))
    buffer = io.BytesIO()
    torch.save(scheme.state_dict(), buffer)
    buffer.seek(0)
    resumed = SCHEMES.get("autodenoise_s")(FakeConfig(**LOSS), CPU)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))  # before setup, as on resume
    resumed.setup(FakeTrainSet([0, 0, 1], [0, 1, 1], 2, 2))
    for name, value in scheme.features.store.state_dict().items():
        saved = resumed.features.store.state_dict()[name]
        assert torch.equal(saved, value) if torch.is_tensor(value) else saved == value
    batch = batch_of([1, 2], [0, 1], [1, 1], [0.7, 0.9], epoch=2, epoch_fraction=0.8)
    assert torch.equal(resumed.weights(batch), scheme.weights(batch))
    saved = scheme.features.store.state_dict()
    with pytest.raises(ValueError, match="the saved loss store's ema has shape"):
        resumed.features.store.load_state_dict({**saved, "ema": torch.zeros(5)})


@pytest.mark.slow
def test_store_survives_checkpoint_and_resume_exactly(tmp_path):
    settings = {"denoise_scheme": "autodenoise_s", **LOSS, "stopping_step": 5}
    straight, train, valid = tiny_trainer(tmp_path, epochs=2, **settings)
    straight.fit(train, valid)
    rows = len(train._dataset.inter_feat)
    # every row's id reached the store
    assert not torch.isnan(straight.scheme.features.store.ema).any()
    assert straight.scheme.features.store.ema.shape == (rows,)

    first, train, valid = tiny_trainer(tmp_path, epochs=1, **settings)
    first.fit(train, valid)
    again, train, valid = tiny_trainer(tmp_path, epochs=2, **settings)
    again.resume_checkpoint(first.latest_model_file)
    again.fit(train, valid)
    for name, value in straight.scheme.features.store.state_dict().items():
        resumed = again.scheme.features.store.state_dict()[name]
        assert torch.equal(resumed, value) if torch.is_tensor(value) else resumed == value


@pytest.mark.slow
def test_adt_tl_prior_trains_and_resumes_exactly_end_to_end(tmp_path):
    """A real (tiny) run with the ADT-TL prior on an epoch schedule: the resumed run's schedule,
    controller and recommender end where the uninterrupted run's do."""
    settings = {
        "denoise_scheme": "autodenoise_s",
        "controller_prior": "adt_tl",
        "adt_max_drop_rate": 0.2,
        "adt_num_gradual": 1,
        "adt_gradual_unit": "epoch",
        "stopping_step": 5,
    }
    straight, train, valid = tiny_trainer(tmp_path, epochs=2, **settings)
    straight.fit(train, valid)
    assert straight.scheme.prior_scheme.iteration == 2 * len(train) > 0
    first, train, valid = tiny_trainer(tmp_path, epochs=1, **settings)
    first.fit(train, valid)
    again, train, valid = tiny_trainer(tmp_path, epochs=2, **settings)
    again.resume_checkpoint(first.latest_model_file)
    again.fit(train, valid)
    assert again.scheme.prior_scheme.iteration == straight.scheme.prior_scheme.iteration
    for name, value in straight.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], value), name
