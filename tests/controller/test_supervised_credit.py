"""``controller_credit: supervised`` (issue 13's diagnostic): the controller fitted to the
ratings. Its step against a direct computation, a toy where the state tells true from false
positives, the refusals, and a short run that reads the ratings."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise import distributed
from recbole_autodenoise.schemes import SCHEMES, Batch
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig

SUPERVISED = {"controller_credit": "supervised"}


def paper_batch(flags: list[float], signal: float = 0.0, seed: int = 0) -> Batch:
    """A batch of the paper's state; the user embedding's first column is ``signal`` * the flag."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    flag = torch.tensor(flags)
    user = torch.randn(len(flags), 4, generator=gen)
    user[:, 0] = signal * flag
    return Batch(
        losses=torch.rand(len(flags), generator=gen),
        item_ids=torch.arange(len(flags)),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=user,
        item_repr=torch.randn(len(flags), 4, generator=gen),
        true_positive=flag,
    )


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_the_scheme_reads_the_ratings_only_with_this_credit(name):
    assert SCHEMES.get(name)(FakeConfig(**SUPERVISED), CPU).reads_ratings is True
    assert SCHEMES.get(name)(FakeConfig(), CPU).reads_ratings is False


def test_one_step_is_adam_on_the_squared_error_of_the_expected_weight():
    """The hard controller's differentiable weight is E[k | s] (no draw), so the step can be
    replayed exactly: Adam on mean((E[k | s] - flag)^2), then weights drawn from the new policy."""
    scheme = SCHEMES.get("autodenoise_h")(
        FakeConfig(**SUPERVISED, controller_learning_rate=0.05), CPU
    )
    batch = paper_batch([1, 0, 1, 1, 0, 1])
    state = scheme._state(batch)
    scheme._build(state.shape[1])
    direct = copy.deepcopy(scheme.policy)
    optimizer = torch.optim.Adam(direct.parameters(), lr=0.05)
    for _ in range(3):
        error = F.mse_loss(direct.meta_weights(state, None), batch.true_positive)
        optimizer.zero_grad()
        error.backward()
        optimizer.step()
        scheme.weights(batch)
        for mine, theirs in zip(scheme.policy.parameters(), direct.parameters()):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
    assert scheme.after_evaluation({}, 0)["fit_mse"] > 0


def test_real_weights_are_the_draws_at_mean_one():
    scheme = SCHEMES.get("autodenoise_h")(FakeConfig(**SUPERVISED), CPU)
    weights = scheme.weights(paper_batch([1, 0, 1, 1, 0, 1, 1, 1]))
    assert weights.mean().item() == pytest.approx(1.0, abs=1e-6)
    steps = weights / weights[weights > 0].min()  # whole drops and duplicates, k / mean(k)
    assert set(steps.round().tolist()) <= {0.0, 1.0, 2.0}
    torch.testing.assert_close(steps, steps.round())


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_a_state_that_holds_the_answer_is_fitted_to_it(name):
    """With the flag in the state, the fitted controller gives false positives far less weight."""
    scheme = SCHEMES.get(name)(FakeConfig(**SUPERVISED, controller_learning_rate=0.01), CPU)
    flags = [float(i % 3 != 0) for i in range(60)]
    for step in range(150):
        scheme.weights(paper_batch(flags, signal=3.0, seed=step))
    batch = paper_batch(flags, signal=3.0, seed=999)
    expected = scheme.policy.meta_weights(scheme._state(batch), scheme.generator).detach()
    tp, fp = expected[batch.true_positive == 1].mean(), expected[batch.true_positive == 0].mean()
    assert tp > 0.8 and fp < 0.2, (tp, fp)
    assert scheme.after_evaluation({}, 0)["fit_mse"] < 0.1


def test_a_state_blind_to_the_answer_learns_the_base_rate():
    """Without the flag in the state the best fit is P(true positive) for every sample: the mean
    weight approaches the share of true positives, the same for both groups."""
    scheme = SCHEMES.get("autodenoise_h")(
        FakeConfig(**SUPERVISED, controller_learning_rate=0.01), CPU
    )
    flags = [float(i % 4 != 0) for i in range(80)]  # 3 of 4 true positives
    for step in range(200):
        scheme.weights(paper_batch(flags, signal=0.0, seed=step))
    batch = paper_batch(flags, seed=999)
    expected = scheme.policy.meta_weights(scheme._state(batch), None).detach()
    assert expected.mean().item() == pytest.approx(0.75, abs=0.08)
    gap = expected[batch.true_positive == 1].mean() - expected[batch.true_positive == 0].mean()
    assert abs(gap.item()) < 0.1


def test_without_ratings_it_fails_clearly():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**SUPERVISED), CPU)
    batch = paper_batch([1, 0])
    batch.true_positive = None
    with pytest.raises(
        ValueError, match="controller_credit 'supervised' needs batch.true_positive"
    ):
        scheme.weights(batch)


def test_the_prior_is_refused():
    with pytest.raises(
        ValueError,
        match="'controller_prior' = 'adt_rl' is not supported with controller_credit "
        "'supervised' \\(it fits the ratings alone\\); allowed there: 'none'",
    ):
        SCHEMES.get("autodenoise_s")(FakeConfig(controller_prior="adt_rl", **SUPERVISED), CPU)


def test_several_processes_are_refused_with_the_reason():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(**SUPERVISED), CPU)
    with pytest.raises(
        ValueError, match="'controller_credit' = 'supervised' is single-process only \\(each rank"
    ):
        distributed.check_supported(
            {"single_spec": False, "denoise_scheme": "autodenoise_s"}, scheme, False
        )
    distributed.check_supported(
        {"single_spec": True, "denoise_scheme": "autodenoise_s"}, scheme, False
    )


@pytest.mark.slow
def test_a_short_run_fits_the_ratings_and_resumes_the_stats(tmp_path):
    trainer, train, valid = tiny_trainer(
        tmp_path,
        denoise_scheme="autodenoise_s",
        epochs=2,
        controller_learning_rate=0.01,
        allow_rating_diagnostics=True,
        **SUPERVISED,
    )
    trainer.fit(train, valid, saved=False)
    record = trainer.history[-1]
    assert math.isfinite(record["tp_mean_weight"]) and math.isfinite(record["fp_mean_weight"])
    assert record["tp_samples"] > 0 and record["fp_samples"] > 0
    logged = [r for r in trainer.history if "controller_fit_mse" in r]
    assert logged and all(0 <= r["controller_fit_mse"] < 1.5 for r in logged)
    state = trainer.scheme.state_dict()
    assert "supervised_stats" in state
    again = SCHEMES.get("autodenoise_s")(trainer.config, CPU)
    again.load_state_dict(state)
    torch.testing.assert_close(again.credit.stats, trainer.scheme.credit.stats)
