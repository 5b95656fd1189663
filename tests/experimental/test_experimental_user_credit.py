"""``controller_credit: user`` (per-user rewards; ``import recbole_autodenoise.experimental``):
the credit's gradient on hand-built tensors, then short runs on ML-100K. Moved from
tests/evaluation/test_user_credit_and_diagnostics.py unchanged."""

from __future__ import annotations

import math

import pytest
import torch

import recbole_autodenoise as rad
import recbole_autodenoise.experimental  # noqa: F401  (registers the user credit)
from recbole_autodenoise.schemes import SCHEMES, Batch
from tests.conftest import assert_float_close
from tests.controller.test_controller import CPU, FakeConfig, generator
from tests.test_trainer import assert_resume_reproduces, build, fresh_model
from tests.evaluation.test_user_credit_and_diagnostics import SMALL


# --------------------------------------------------------------------------------------------
# the user credit's gradient


def user_batch(users: list[int], seed: int = 0) -> Batch:
    gen = generator(seed)
    num = len(users)
    return Batch(
        losses=torch.rand(num, generator=gen),
        item_ids=torch.zeros(num, dtype=torch.long),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=torch.randn(num, 3, generator=gen),
        item_repr=torch.randn(num, 3, generator=gen),
        user_ids=torch.tensor(users),
    )


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_user_credit_equals_the_naive_per_sample_sum(name):
    scheme = SCHEMES.get(name)(FakeConfig(controller_credit="user", baseline_decay=0.5), CPU)
    assert scheme.needs_user_rewards and not scheme.needs_guidance
    first = torch.tensor([float("nan"), 0.6, 0.7, 0.8])
    scheme.weights(user_batch([1, 2, 2, 3], seed=1))
    before = [p.detach().clone() for p in scheme.policy.parameters()]
    scheme.observe_user_rewards(first)
    logs = scheme.after_evaluation({}, 0)
    # first rewards only set the baselines: nothing is updated
    assert all(torch.equal(a, b) for a, b in zip(before, scheme.policy.parameters()))
    assert logs["users_rewarded"] == 3 and logs["mean_abs_advantage"] == 0.0
    assert torch.allclose(scheme.credit.baseline[1:], first[1:].double()) and math.isnan(
        scheme.credit.baseline[0]
    )

    batch = user_batch([1, 2, 3, 3, 0, 2], seed=2)
    scheme.weights(batch)
    states, actions = torch.cat(scheme.credit.states), torch.cat(scheme.credit.actions)
    second = torch.tensor(
        [0.9, 0.5, 0.9, float("nan")]
    )  # user 0 has no baseline yet, user 3 no reward
    advantage = {0: 0.0, 1: 0.5 - 0.6, 2: 0.9 - 0.7, 3: 0.0}
    expected = torch.autograd.grad(
        sum(
            advantage[u] * scheme.policy.log_prob(states[j : j + 1], actions[j : j + 1]).sum()
            for j, u in enumerate(batch.user_ids.tolist())
        )
        / len(states),
        list(scheme.policy.parameters()),
        allow_unused=True,
    )
    scheme.optimizer = torch.optim.SGD(
        scheme.policy.parameters(), lr=1.0
    )  # step = the gradient itself
    before = [p.detach().clone() for p in scheme.policy.parameters()]
    scheme.observe_user_rewards(second)
    logs = scheme.after_evaluation({}, 1)
    for old, new, grad in zip(before, scheme.policy.parameters(), expected):
        ascent = torch.zeros_like(old) if grad is None else grad
        assert_float_close(new.detach() - old, ascent)
    assert logs["credited_fraction"] == pytest.approx(3 / 6)  # users 1 and 2's samples
    assert logs["positive_advantage_fraction"] == pytest.approx(0.5)
    baseline = scheme.credit.baseline.tolist()
    assert baseline[0] == pytest.approx(0.9)  # first reward for user 0
    assert (
        baseline[1] == pytest.approx(0.55)
        and baseline[2] == pytest.approx(0.8)
        and baseline[3] == pytest.approx(0.8)
    )
    assert scheme.credit.states == []


def test_user_credit_needs_rewards_and_user_ids():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(controller_credit="user"), CPU)
    batch = user_batch([1, 2])
    batch.user_ids = None
    with pytest.raises(ValueError, match="user id"):
        scheme.weights(batch)
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(controller_credit="user"), CPU)
    scheme.weights(user_batch([1, 2]))
    with pytest.raises(ValueError, match="per-user rewards"):
        scheme.after_evaluation({}, 0)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_user_credit_learns_to_down_weight_marked_samples(name):
    """The trainer issue's toy problem with one reward per user: a user's reward is 1 minus the
    mean weight of its marked samples (user feature +1); 16 users, 4 marked and 4 unmarked each."""
    config = FakeConfig(
        controller_credit="user",
        controller_learning_rate=0.02,
        controller_hidden_size=16,
        controller_init_std=1.0,
        baseline_decay=0.5,
    )
    scheme = SCHEMES.get(name)(config, CPU)
    users = torch.arange(16).repeat_interleave(8)
    marked = torch.arange(len(users)) % 2 == 0
    batch = Batch(
        losses=torch.zeros(len(users)),
        item_ids=torch.zeros(len(users), dtype=torch.long),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=torch.where(marked, 1.0, -1.0).unsqueeze(1),
        item_repr=torch.zeros(len(users), 1),
        user_ids=users,
    )
    for epoch in range(30):
        weights = scheme.weights(batch)
        marked_weight = torch.zeros(16).index_add_(0, users[marked], weights[marked]) / 4
        scheme.observe_user_rewards(1.0 - marked_weight)
        scheme.after_evaluation({}, epoch)
    states = torch.tensor([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]).repeat(20000, 1)
    _, sampled = scheme.policy.sample(states, generator(0))
    marked_mean, unmarked_mean = sampled.view(20000, 2).mean(0).tolist()
    assert marked_mean < 0.8 * unmarked_mean and marked_mean < 0.8


@pytest.mark.slow
@pytest.mark.parametrize("model", ["BPR", "GRU4Rec", "SASRec"])
def test_user_credit_trains_end_to_end(model):
    config, train, valid, test = build(
        model,
        denoise_scheme="autodenoise_s",
        controller_credit="user",
        clean_valid_guide_ratio=0.5,
        **SMALL,
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    assert 0.0 < result["ndcg@20"] < 1.0
    first, second = trainer.history
    users = train._dataset.user_num - 1
    # the reward is the clean validation GAUC of a one-epoch model: near chance, never outside
    # (0, 1)
    assert 0.4 < first["controller_reward"] < 1.0 and first["controller_mean_abs_advantage"] == 0.0
    assert (
        0 < second["controller_users_rewarded"] <= users
        # the samples of users with no row in the select part get no credit (about 13 % here)
        and second["controller_credited_fraction"] > 0.8
    )


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["interaction", "user"])
def test_clean_auc_is_recbole_gauc_and_averages_per_user(protocol):
    """The reward the trainer computes itself equals RecBole's GAUC (which weights each evaluated
    row by its positives), and the per-user values average to it with the same weights."""
    config, train, valid, _ = build(
        "BPR",
        denoise_scheme="autodenoise_s",
        controller_credit="user",
        clean_valid_guide_ratio=0.5,
        eval_protocol=protocol,
        metrics=["NDCG", "GAUC"],
        **SMALL,
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    gauc, per_user = trainer.clean_auc(valid)
    expected = trainer.evaluate(valid, load_best_model=False)["gauc"]
    assert gauc == pytest.approx(expected, abs=1e-6)  # RecBole rounds to metric_decimal_place = 6
    per_user = per_user.cpu()
    positives = torch.bincount(
        valid._dataset.inter_feat["user_id"], minlength=len(per_user)
    ).double()
    has = torch.isfinite(per_user)
    assert has.sum() == (positives > 0).sum()
    assert ((per_user[has] * positives[has]).sum() / positives[has].sum()).item() == pytest.approx(
        gauc, abs=1e-9
    )


@pytest.mark.slow
def test_resume_reproduces_user_credit_with_noise_and_diagnostics():
    assert_resume_reproduces(
        "BPR",
        epochs=3,
        denoise_scheme="autodenoise_s",
        controller_credit="user",
        stopping_step=10,
        noise_rate=0.1,
        denoise_diagnostics=True,
        user_inter_num_interval="[10,60]",
        clean_valid_guide_ratio=0.5,
    )
