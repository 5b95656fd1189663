"""``controller_credit: explicit``: the controller fitted to the validation period's explicit
ratings (high and low), then weighting the implicit training rows. A hand-built toy where the
state carries the answer, the refusals, and short runs."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from recbole.data.interaction import Interaction

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.data.bundle import training_data_of
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.base import mean_one
from tests.conftest import GUIDED_TINY
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig

EXPLICIT = {"controller_credit": "explicit", **GUIDED_TINY}  # it learns from the guide part


def signal_repr(good: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """4-d representations whose first column is 3 for good rows, 0 for bad ones."""
    values = torch.randn(len(good), 4, generator=gen)
    values[:, 0] = 3.0 * good
    return values


class FakeGuidance:
    """What the credit reads of ``Batch.guidance``: explicit rows (rating 5 or 1) and their
    state."""

    def __init__(self, seed: int, rows: int = 60) -> None:
        gen = torch.Generator()
        gen.manual_seed(seed)
        self.good = (torch.rand(rows, generator=gen) < 0.7).float()
        self.rows = Interaction({"rating": torch.where(self.good > 0, 5.0, 1.0)})
        self.sample = SimpleNamespace(
            losses=torch.rand(rows, generator=gen),
            user_repr=signal_repr(self.good, gen),
            item_repr=torch.randn(rows, 4, generator=gen),
        )
        self.asked = 0

    def clean_batch(self) -> Interaction:
        return self.rows

    def clean_positives(self) -> Interaction:
        return self.rows

    def sample_loss(self, rows: Interaction, with_representations: bool = False):
        assert rows is self.rows and with_representations
        self.asked += 1
        return self.sample


def training_batch(seed: int, guidance=None, rows: int = 40) -> tuple[Batch, torch.Tensor]:
    gen = torch.Generator()
    gen.manual_seed(10_000 + seed)
    good = (torch.arange(rows) % 4 != 0).float()
    batch = Batch(
        losses=torch.rand(rows, generator=gen),
        item_ids=torch.arange(rows),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=signal_repr(good, gen),
        item_repr=torch.randn(rows, 4, generator=gen),
        guidance=guidance,
    )
    return batch, good


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_a_controller_taught_by_explicit_rows_down_weights_bad_training_rows(name):
    scheme = SCHEMES.get(name)(FakeConfig(**EXPLICIT, controller_learning_rate=0.01), CPU)
    assert (
        scheme.reads_ratings is False and scheme.needs_guidance and scheme.guide_rows == "explicit"
    )
    gaps = []
    for step in range(150):
        guidance = FakeGuidance(step)
        batch, good = training_batch(step, guidance)
        weights = scheme.weights(batch)
        assert guidance.asked == 1 and batch.true_positive is None
        assert weights.mean().item() == pytest.approx(1.0, abs=1e-5)
        gaps.append((weights[good > 0].mean() - weights[good == 0].mean()).item())
    assert abs(sum(gaps[:3]) / 3) < 0.3  # blind at first
    assert min(gaps[-10:]) > 0.5, gaps[
        -10:
    ]  # the training rows' weights follow what the explicit rows taught
    assert scheme.after_evaluation({}, 0)["fit_mse"] < 0.1


def test_the_prior_multiplies_the_fitted_weights():
    scheme = SCHEMES.get("autodenoise_s")(
        FakeConfig(**EXPLICIT, controller_prior="adt_rl", adt_beta=0.5, controller_init_std=1e-6),
        CPU,
    )
    batch, _ = training_batch(0, FakeGuidance(0))
    weights = scheme.weights(batch)
    # one small fitting step from an expected weight of 1 everywhere: close to ADT-RL's weights
    torch.testing.assert_close(weights, mean_one(torch.exp(-0.5 * batch.losses)), rtol=0, atol=0.05)


def test_on_labelled_batches_sampled_negatives_keep_weight_one():
    """Pointwise models: the fit sees rated interactions only, so each sampled negative (label 0)
    of a training batch keeps weight 1 and the positives are rescaled to mean 1 among them."""
    scheme = SCHEMES.get("autodenoise_s")(
        FakeConfig(**EXPLICIT, controller_learning_rate=0.01), CPU
    )
    for step in range(40):
        batch, good = training_batch(step, FakeGuidance(step))
        batch.labels = (torch.arange(len(good)) % 2 == 0).float()
        weights = scheme.weights(batch)
        negatives = batch.labels == 0
        assert torch.equal(weights[negatives], torch.ones(int(negatives.sum())))
        assert weights[~negatives].mean().item() == pytest.approx(1.0, abs=1e-5)
    positives = ~negatives
    # what the explicit rows taught still separates the positives
    assert (weights[positives & (good > 0)].mean() - weights[positives & (good == 0)].mean()) > 0.3


def test_without_guidance_it_fails_clearly():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT), CPU)
    with pytest.raises(
        ValueError, match="controller_credit 'explicit' needs the explicit rows' batches"
    ):
        scheme.weights(training_batch(0)[0])


@pytest.mark.slow
def test_a_short_run_learns_from_the_explicit_rows(tmp_path):
    """(The explicit rows under a guide/select split: tests/data/test_noise_and_guide.py.)"""
    trainer, train, valid = tiny_trainer(
        tmp_path,
        denoise_scheme="autodenoise_s",
        epochs=2,
        controller_learning_rate=0.01,
        guide_batch_size=16,
        **EXPLICIT,
    )
    explicit = training_data_of(train).explicit_rows
    assert trainer.scheme.reads_ratings is False
    trainer.fit(train, valid, saved=False)
    assert trainer.clean_batches.num_rows == len(explicit)
    assert (explicit.inter_feat["rating"] < 3).any() and (explicit.inter_feat["rating"] >= 3).any()
    logged = [r for r in trainer.history if "controller_fit_mse" in r]
    assert len(logged) == 2 and all(0 <= r["controller_fit_mse"] < 1.5 for r in logged)
    record = trainer.history[-1]
    assert math.isfinite(record["tp_mean_weight"]) and math.isfinite(record["fp_mean_weight"])


class FakeStream:
    """``CleanBatches.unobserved`` stand-in: ``copies`` copies of the rows, rated 5 (a rating the
    credit must not read: stray rows are labelled 0 whatever they carry)."""

    def unobserved(self, rows: Interaction, copies: int) -> Interaction:
        self.copies = copies
        return Interaction({"rating": torch.full((len(rows) * copies,), 5.0)})


def test_explicit_negatives_join_the_fit_labelled_zero():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_negatives=2), CPU)
    guidance = FakeGuidance(0, rows=5)
    guidance.clean_batches = FakeStream()
    seen = {}

    def sample_loss(rows, with_representations=False):
        seen["rows"] = len(rows)
        gen = torch.Generator().manual_seed(1)
        return SimpleNamespace(
            losses=torch.rand(len(rows), generator=gen),
            user_repr=torch.randn(len(rows), 4, generator=gen),
            item_repr=torch.randn(len(rows), 4, generator=gen),
        )

    guidance.sample_loss = sample_loss
    state, labels = scheme.credit.examples(None, training_batch(0, guidance)[0])
    assert guidance.clean_batches.copies == 2 and seen["rows"] == 15 and state.shape == (15, 10)
    torch.testing.assert_close(labels, torch.cat([guidance.good, torch.zeros(10)]))


@pytest.mark.parametrize("value", [-1, 1.5, True, "1"])
def test_explicit_negatives_must_be_a_count(value):
    with pytest.raises(
        ValueError,
        match=f"config key 'explicit_negatives' = {value!r} is invalid: expected an integer >= 0",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_negatives=value), CPU)


def test_explicit_negatives_belong_to_explicit_credit():
    with pytest.raises(
        ValueError,
        match="'explicit_negatives' = 1 applies to controller_credit 'explicit' only "
        "\\(this run uses 'epoch'\\); leave it at 0",
    ):
        SCHEMES.get("autodenoise_h")(FakeConfig(explicit_negatives=1), CPU)


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["rating", "observed"])
def test_a_short_run_with_stray_rows(tmp_path, labels):
    trainer, train, valid = tiny_trainer(
        tmp_path,
        denoise_scheme="autodenoise_s",
        epochs=1,
        explicit_negatives=1,
        controller_learning_rate=0.01,
        guide_batch_size=16,
        explicit_labels=labels,
        **EXPLICIT,
    )
    trainer.fit(train, valid, saved=False)
    assert 0 <= trainer.history[-1]["controller_fit_mse"] < 1.5
    assert math.isfinite(trainer.history[-1]["tp_mean_weight"])


def test_observed_labels_make_every_rated_row_one_and_only_the_stray_rows_zero():
    config = FakeConfig(**EXPLICIT, explicit_negatives=1, explicit_labels="observed")
    scheme = SCHEMES.get("autodenoise_s")(config, CPU)
    guidance = FakeGuidance(0, rows=6)
    guidance.clean_batches = FakeStream()
    assert guidance.good.min() == 0  # low-rated rows present: labelled 1 all the same

    def sample_loss(rows, with_representations=False):
        gen = torch.Generator().manual_seed(1)
        return SimpleNamespace(
            losses=torch.rand(len(rows), generator=gen),
            user_repr=torch.randn(len(rows), 4, generator=gen),
            item_repr=torch.randn(len(rows), 4, generator=gen),
        )

    guidance.sample_loss = sample_loss
    _, labels = scheme.credit.examples(None, training_batch(0, guidance)[0])
    assert labels.tolist() == [1.0] * 6 + [0.0] * 6


def test_observed_labels_teach_the_controller_to_down_weight_stray_looking_rows():
    """A toy where stray clicks' user representation carries a mark (first column 3) and rated rows,
    liked or not, do not: training rows with the mark lose weight, low-rated ones do not."""

    class MarkedStream:
        def unobserved(self, rows, copies):
            return Interaction({"rating": torch.full((len(rows) * copies,), 5.0)})

    scheme = SCHEMES.get("autodenoise_s")(
        FakeConfig(
            **EXPLICIT,
            explicit_negatives=1,
            explicit_labels="observed",
            controller_learning_rate=0.01,
        ),
        CPU,
    )
    gaps = []
    for step in range(150):
        guidance = FakeGuidance(step, rows=30)
        guidance.clean_batches = MarkedStream()
        gen = torch.Generator().manual_seed(step)
        stray = torch.cat([torch.zeros(30), torch.ones(30)])
        guidance.sample_loss = lambda rows, with_representations=False, gen=gen, stray=stray: (
            SimpleNamespace(
                losses=torch.rand(60, generator=gen),
                user_repr=signal_repr(stray, gen),
                item_repr=torch.randn(60, 4, generator=gen),
            )
        )
        batch, marked = training_batch(step, guidance)
        weights = scheme.weights(batch)
        gaps.append((weights[marked == 0].mean() - weights[marked > 0].mean()).item())
    assert min(gaps[-10:]) > 0.5, gaps[
        -10:
    ]  # rows that look like stray clicks (good == 1 here carries the mark) lose weight


@pytest.mark.parametrize("value", ["liked", None, 1])
def test_explicit_labels_must_be_named(value):
    with pytest.raises(
        ValueError,
        match=f"config key 'explicit_labels' = {value!r} is invalid: expected one of "
        r"\['rating', 'observed'\]",
    ):
        SCHEMES.get("autodenoise_s")(
            FakeConfig(**EXPLICIT, explicit_negatives=1, explicit_labels=value), CPU
        )


def test_observed_labels_need_rows_labelled_zero_without_experimental(main_only):
    with pytest.raises(ValueError) as error:
        SCHEMES.get("autodenoise_s")(FakeConfig(**EXPLICIT, explicit_labels="observed"), CPU)
    assert str(error.value) == (
        "config key 'explicit_labels' = 'observed' labels every rated "
        "row 1, so the fit needs rows labelled 0: set "
        "explicit_negatives >= 1"
    )


@pytest.mark.parametrize("credit", [EXPLICIT, {}])
def test_the_old_interaction_labels_are_refused_naming_observed(credit):
    with pytest.raises(ValueError) as error:
        config = FakeConfig(**credit, explicit_negatives=1, explicit_labels="interaction")
        SCHEMES.get("autodenoise_s")(config, CPU)
    assert str(error.value) == (
        "config key 'explicit_labels' = 'interaction' was renamed "
        "'observed' (every rated row labelled 1: no rating is used); "
        "set explicit_labels: observed"
    )


def test_explicit_labels_belong_to_explicit_credit():
    with pytest.raises(
        ValueError,
        match="'explicit_labels' = 'observed' applies to "
        "controller_credit 'explicit' only \\(this run uses "
        "'epoch'\\); leave it at 'rating'",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(explicit_labels="observed"), CPU)
