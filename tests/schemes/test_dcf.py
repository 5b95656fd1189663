"""DCF (``denoise_scheme: dcf``): the damped running mean and its concentration bound against a
direct re-computation of the authors' ``PLC_uncertain_discard`` on hand-built losses, which rows a
batch drops, the store through checkpoint and resume, ML-100K runs, and bad values."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.quick_start import run
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.dcf import confidence_bound, damped, dcf_selection
from tests.conftest import FAST, assert_float_close
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig
from tests.controller.test_controller_prior import FakeTrainSet

KEYS = {
    "adt_max_drop_rate",
    "adt_num_gradual",
    "adt_gradual_unit",
    "dcf_co_lambda",
    "dcf_lambda_horizon",
    "dcf_time_step",
    "dcf_relabel_ratio",
}


def dcf(**overrides):
    return SCHEMES.get("dcf")(FakeConfig(**overrides), CPU)


def batch_of(rows, losses, epoch) -> Batch:
    return Batch(
        losses=torch.tensor(losses, dtype=torch.float32),
        item_ids=torch.zeros(len(rows), dtype=torch.long),
        epoch=epoch,
        epoch_fraction=0.0,
        row_ids=torch.tensor(rows),
    )


# --- the pieces -------------------------------------------------------------------------------
def test_damping_and_bound_formulas():
    losses = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    assert torch.equal(
        damped(losses), torch.tensor([0.0, math.log(2.5), math.log(5.0)], dtype=torch.float64)
    )
    counts = torch.tensor([1.0, 3.0], dtype=torch.float64)
    lam, s = 0.5, 3  # epoch 2
    expected = [lam * (s + lam * math.log(2 * s) / (s * s)) / (n + 1 - lam) for n in (1.0, 3.0)]
    assert_float_close(confidence_bound(counts, 2, lam), expected)
    assert torch.equal(confidence_bound(counts, 7, 0.0), torch.zeros(2, dtype=torch.float64))


def test_selection_edge_cases_first():
    one = torch.tensor([5.0])
    weights, below = dcf_selection(one, 0.9, 0.0)  # at least one sample stays
    assert torch.equal(weights, torch.ones(1)) and torch.equal(below, torch.tensor([True]))
    ties = torch.zeros(4)
    weights, below = dcf_selection(ties, 0.5, 0.0)  # ties: the batch's order decides (stable)
    assert torch.equal(weights, torch.tensor([2.0, 2.0, 0.0, 0.0])) and bool(below.all())
    weights, below = dcf_selection(torch.tensor([3.0, 1.0, 2.0]), 0.0, 0.05)
    assert torch.equal(weights, torch.ones(3)) and bool(
        below.all()
    )  # no drop rate yet: every row stays


def test_which_rows_a_hand_built_batch_drops():
    """10 samples, r = 0.3, rho = 0.5: keep int(0.7 * 10) = 7 lowest, relabel from int(8.5) = 8 on:
    the 8th lowest is dropped, the two highest stay ("relabelled"); weights 10 / 9."""
    lower = torch.tensor([0.9, 0.1, 0.5, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.05])
    weights, below = dcf_selection(lower, 0.3, 0.5)
    dropped = lower == 0.7  # rank 8 of 10
    assert torch.equal(weights, torch.where(dropped, 0.0, 10 / 9))
    assert torch.equal(below, lower < 0.8)  # the 8 lowest count towards n
    weights, _ = dcf_selection(lower, 0.3, 0.0)  # without relabelling the 3 highest drop
    assert torch.equal(weights, torch.where(lower >= 0.7, 0.0, 10 / 7))


# --- against the authors' computation -----------------------------------------------------------
def authors_dcf(batches, epochs, time_step, co_lambda, max_drop, num_gradual, relabel):
    """A direct transcription of their main.py / PLC_uncertain_discard, one batch per epoch, in
    plain Python floats, with each sample's state looked up by its row (not its batch position):
    per epoch the lower bounds and weights, and the final mean and count per row."""
    lambdas = co_lambda * np.linspace(1, 0, epochs)
    schedule = np.linspace(0, max_drop, num_gradual)
    means, counts, all_lower, all_weights = {}, {}, [], []
    for epoch, (rows, losses) in enumerate(batches):
        if epoch % time_step == 0:
            means, counts = {row: 0.0 for row in rows}, {row: 1.0 for row in rows}
        drop = schedule[epoch] if epoch < num_gradual else max_drop
        s, lam = epoch + 1.0, float(lambdas[epoch])
        mean = [
            (means[r] * s + math.log(1 + x + x * x / 2)) / (s + 1) for r, x in zip(rows, losses)
        ]
        bound = [
            lam * (s + lam * math.log(2 * s) / (s * s)) / ((counts[r] + 1) - lam) for r in rows
        ]
        lower = [max(m - b, 0.0) for m, b in zip(mean, bound)]
        order = sorted(range(len(rows)), key=lambda i: lower[i])
        keep = int((1 - drop) * len(rows))
        cut = int(((1 - relabel) + relabel * (1 - drop)) * len(rows))
        final = set(order[cut:]) | set(order[:keep])
        all_lower.append(lower)
        all_weights.append(
            [len(rows) / len(final) if i in final else 0.0 for i in range(len(rows))]
        )
        for i in order[:cut]:
            counts[rows[i]] += 1
        for r, m in zip(rows, mean):
            means[r] = m
    return all_lower, all_weights, means, counts


def test_running_mean_bound_and_drops_against_the_authors_computation():
    """6 rows over 6 epochs (cycles of 4), shuffled each epoch; row 5 has a steady high loss
    (noise), row 4 one spike (a hard sample). The running mean ranks rows unlike the current loss in
    epochs 3 and 5, and the relabelled (highest) rows are not counted, so the counts differ."""
    per_row = [
        [0.3, 0.2, 0.25, 0.2, 0.15, 0.1],
        [0.5, 0.45, 0.4, 0.35, 0.3, 0.3],
        [0.2, 0.3, 0.2, 0.1, 0.2, 0.1],
        [0.7, 0.6, 0.5, 0.5, 0.4, 0.4],
        [0.4, 0.3, 0.3, 0.35, 1.0, 0.25],
        [1.2, 1.1, 1.3, 1.0, 1.2, 1.1],
    ]
    gen = torch.Generator().manual_seed(3)
    batches = []
    for epoch in range(6):
        rows = torch.randperm(6, generator=gen).tolist()
        batches.append((rows, [per_row[r][epoch] for r in rows]))
    settings = dict(epochs=6, time_step=4, co_lambda=0.05, max_drop=0.4, num_gradual=3, relabel=0.5)
    expected_lower, expected_weights, expected_means, expected_counts = authors_dcf(
        batches, **settings
    )
    scheme = dcf(
        dcf_lambda_horizon=6,
        dcf_time_step=4,
        dcf_co_lambda=0.05,
        adt_max_drop_rate=0.4,
        adt_num_gradual=3,
        dcf_relabel_ratio=0.5,
    )
    scheme.setup(FakeTrainSet([0] * 6, list(range(6)), 1, 6))
    unlike_the_loss = []
    for epoch, (rows, losses) in enumerate(batches):
        scheme.store.begin(epoch, 4)
        lam = scheme.co_lambda_at(epoch)
        _, lower = scheme.store.lower_bounds(torch.tensor(rows), torch.tensor(losses), epoch, lam)
        assert_float_close(lower, expected_lower[epoch])
        weights = scheme.weights(batch_of(rows, losses, epoch))
        assert torch.equal(weights, torch.tensor(expected_weights[epoch], dtype=torch.float32))
        by_loss, _ = dcf_selection(torch.tensor(losses), min(0.2 * epoch, 0.4), 0.5)
        if not torch.equal(weights, by_loss):
            unlike_the_loss.append(epoch)
    assert unlike_the_loss == [3, 5]
    rows = list(range(6))
    assert torch.equal(scheme.store.count, torch.tensor([expected_counts[r] for r in rows]))
    assert scheme.store.count.tolist() == [
        3.0,
        3.0,
        3.0,
        3.0,
        1.0,
        1.0,
    ]  # 4 and 5 were relabelled in epochs 4-5
    assert_float_close(scheme.store.mean, [expected_means[r] for r in rows])


def test_lambda_falls_to_zero_over_its_horizon_and_stays_there():
    """linspace(1, 0, H)[e] for H = dcf_lambda_horizon, then 0; the run's epochs play no part."""
    scheme = dcf(dcf_co_lambda=0.01, dcf_lambda_horizon=10, epochs=300)
    assert scheme.co_lambda_at(0) == 0.01
    assert scheme.co_lambda_at(5) == pytest.approx(0.01 * (1 - 5 / 9), rel=1e-12)  # horizon / 2
    assert scheme.co_lambda_at(9) == 0.0  # the horizon's last epoch, as linspace's last entry
    assert [scheme.co_lambda_at(e) for e in (10, 11, 299)] == [0.0, 0.0, 0.0]  # beyond: stays 0
    their_plan = list(0.01 * np.linspace(1, 0, 10))  # their co_lambda_plan for 10 epochs
    assert [scheme.co_lambda_at(e) for e in range(10)] == pytest.approx(their_plan, abs=1e-15)
    one = dcf(dcf_co_lambda=0.01, dcf_lambda_horizon=1)  # linspace(1, 0, 1) is [1]
    assert (one.co_lambda_at(0), one.co_lambda_at(1)) == (0.01, 0.0)


def test_lambda_horizon_reaches_the_bound():
    """The same losses and counts get the full bound at epoch 0 and none from the horizon on."""
    scheme = dcf(dcf_co_lambda=0.5, dcf_lambda_horizon=4, dcf_time_step=100, adt_max_drop_rate=0.0)
    scheme.setup(FakeTrainSet([0, 0], [0, 1], 1, 2))
    losses = torch.tensor([1.0, 2.0])
    _, early = scheme.store.lower_bounds(torch.tensor([0, 1]), losses, 0, scheme.co_lambda_at(0))
    _, late = scheme.store.lower_bounds(torch.tensor([0, 1]), losses, 4, scheme.co_lambda_at(4))
    s = 5  # epoch 4
    damped_losses = [math.log(1 + x + x * x / 2) for x in (1.0, 2.0)]
    assert_float_close(late, [f / (s + 1) for f in damped_losses])  # the mean, no bound
    bound = 0.5 * (1 + 0.5 * math.log(2)) / (1 + 1 - 0.5)  # epoch 0, n = 1
    assert_float_close(early, [max(f / 2 - bound, 0.0) for f in damped_losses])


def test_cycle_restarts_the_store():
    scheme = dcf(dcf_time_step=2, adt_max_drop_rate=0.0)  # nothing dropped: every row counts
    scheme.setup(FakeTrainSet([0, 0], [0, 1], 1, 2))
    scheme.weights(batch_of([0, 1], [1.0, 2.0], 0))
    scheme.weights(batch_of([1, 0], [1.0, 2.0], 1))
    assert bool((scheme.store.mean > 0).all()) and torch.equal(
        scheme.store.count, torch.tensor([3.0, 3.0])
    )
    scheme.weights(batch_of([0], [0.5], 2))  # epoch 2 starts a cycle: every row restarts
    assert scheme.store.mean[1].item() == 0.0 and scheme.store.count.tolist() == [2.0, 1.0]
    assert_float_close(
        scheme.store.mean[:1], [math.log(1 + 0.5 + 0.125) * 1 / 4]
    )  # (0 * 3 + f) / 4
    scheme.weights(batch_of([1], [0.5], 2))  # a later batch of the same epoch does not restart
    assert scheme.store.count.tolist() == [2.0, 2.0]


def test_without_row_ids_it_fails_clearly():
    scheme = dcf()
    with pytest.raises(ValueError, match="denoise_scheme 'dcf' needs the training rows' ids"):
        scheme.weights(
            Batch(losses=torch.ones(2), item_ids=torch.zeros(2), epoch=0, epoch_fraction=0.0)
        )


# --- checkpoints ----------------------------------------------------------------------------
def test_store_state_round_trip_is_exact():
    scheme = dcf(adt_num_gradual=2)
    scheme.setup(FakeTrainSet([0, 0, 1], [0, 1, 1], 2, 2))
    scheme.weights(batch_of([0, 1, 2], [1.0, 2.0, 3.0], 0))
    scheme.weights(batch_of([2, 0, 1], [0.25, 0.5, 4.0], 1))
    buffer = io.BytesIO()
    torch.save(scheme.state_dict(), buffer)
    buffer.seek(0)
    resumed = dcf(adt_num_gradual=2)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))  # before setup, as on resume
    resumed.setup(FakeTrainSet([0, 0, 1], [0, 1, 1], 2, 2))
    assert resumed.iteration == scheme.iteration == 2
    for name, value in scheme.store.state_dict().items():
        saved = resumed.store.state_dict()[name]
        assert torch.equal(saved, value) if torch.is_tensor(value) else saved == value
    batch = batch_of([1, 2, 0], [0.7, 0.9, 5.0], 2)
    assert torch.equal(resumed.weights(batch), scheme.weights(batch))
    with pytest.raises(ValueError, match="the saved DCF store's mean has shape"):
        resumed.store.load_state_dict({**scheme.store.state_dict(), "mean": torch.zeros(5)})


@pytest.mark.slow
def test_store_survives_checkpoint_and_resume_exactly(tmp_path):
    settings = {
        "denoise_scheme": "dcf",
        "stopping_step": 5,
        "adt_num_gradual": 1,
        "adt_gradual_unit": "epoch",
        "dcf_co_lambda": 0.1,
    }
    straight, train, valid = tiny_trainer(tmp_path, epochs=3, **settings)
    straight.fit(train, valid)
    assert straight.scheme.store.count.shape == (len(train._dataset.inter_feat),)
    assert bool((straight.scheme.store.mean > 0).all())  # every row's id reached the store

    first, train, valid = tiny_trainer(tmp_path, epochs=2, **settings)
    first.fit(train, valid)
    again, train, valid = tiny_trainer(tmp_path, epochs=3, **settings)
    again.resume_checkpoint(first.latest_model_file)
    again.fit(train, valid)
    assert again.scheme.iteration == straight.scheme.iteration
    for name, value in straight.scheme.store.state_dict().items():
        resumed = again.scheme.store.state_dict()[name]
        assert torch.equal(resumed, value) if torch.is_tensor(value) else resumed == value
    assert [r["train_loss"] for r in again.history] == [r["train_loss"] for r in straight.history]


# --- end to end -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["BPR", "SoftmaxMF", "GRU4Rec", "SASRec"])
def test_one_epoch_on_ml100k(model):
    """BPR's pairwise loss and the CE losses; the drop rate at its maximum from the third batch."""
    settings = {**FAST, "epochs": 1, "denoise_scheme": "dcf", "adt_num_gradual": 2}
    if model != "BPR":
        settings["user_inter_num_interval"] = "[10,60]"  # fewer users: a shorter CPU run
    results = run(model, "ml-100k", config_dict=settings, saved=False)
    assert all(math.isfinite(value) for value in results["test"].values())
    assert results["test"]["ndcg@20"] > 0
    assert math.isfinite(results["epochs"][0]["train_loss"])
    assert results["plugin_config"]["dcf_time_step"] == 3


# --- keys -----------------------------------------------------------------------------------
def test_keys_are_declared_with_defaults():
    assert SCHEMES.get("dcf").read_keys() >= KEYS
    scheme = dcf()
    assert (scheme.co_lambda, scheme.time_step, scheme.relabel_ratio) == (0.0001, 3, 0.05)
    assert (scheme.max_drop_rate, scheme.num_gradual, scheme.gradual_unit) == (
        0.2,
        30000,
        "iteration",
    )
    assert scheme.lambda_horizon == 10  # the epochs the authors' main.py trains by default


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("dcf_co_lambda", 1.0, "a number in [0, 1)"),
        ("dcf_co_lambda", -0.1, "a number in [0, 1)"),
        ("dcf_co_lambda", "1e-4", "a number in [0, 1)"),
        ("dcf_time_step", 0, "a positive integer"),
        ("dcf_lambda_horizon", 0, "a positive integer"),
        ("dcf_lambda_horizon", 2.5, "a positive integer"),
        ("dcf_time_step", 2.5, "a positive integer"),
        ("dcf_relabel_ratio", 1.5, "a number in [0, 1]"),
        ("dcf_relabel_ratio", None, "a number in [0, 1]"),
        ("adt_max_drop_rate", 1.0, "a number in [0, 1)"),
        ("adt_gradual_unit", "batch", "one of ['iteration', 'epoch']"),
    ],
)
def test_bad_values_name_key_value_and_allowed(key, value, allowed):
    with pytest.raises(ValueError) as error:
        dcf(**{key: value})
    assert str(error.value) == f"config key '{key}' = {value!r} is invalid: expected {allowed}"


def test_bad_value_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"config key 'dcf_time_step' = 0 is invalid"):
        tiny_trainer(tmp_path, denoise_scheme="dcf", dcf_time_step=0)
