"""Unit tests for the AutoDenoise controller (paper Sec. 4.2-4.3, Algorithm 1).

Policies, the REINFORCE accumulator (Eq. 10), the controller schemes' update, baseline and
checkpoint state, and the reward-metric parser.
"""

from __future__ import annotations

import io
import logging
import math

import pytest
import torch
from torch.nn import functional as F

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
from recbole_autodenoise.config import plugin_defaults
from recbole_autodenoise.controller import (
    INV_SOFTPLUS_OF_ONE,
    HardAutoDenoise,
    HardPolicy,
    ReinforceAccumulator,
    SoftAutoDenoise,
    SoftPolicy,
    controller_state,
    parse_reward_metric,
)
from recbole_autodenoise.schemes import SCHEMES, Batch
from tests.conftest import assert_float_close, float_tolerance

CPU = torch.device("cpu")
TOPK = [10, 20, 50]


class FakeConfig:
    """Just enough of RecBole's Config: ``config[key]`` and ``final_config_dict``; the plugin's
    defaults (``experimental.yaml``'s too once that package is imported)."""

    def __init__(self, **overrides):
        values = plugin_defaults()
        values.update(seed=2020, topk=list(TOPK), metrics=["Recall", "NDCG", "GAUC"])
        values.update(overrides)
        self.values = values
        self.final_config_dict = values

    def __getitem__(self, key):
        return self.values.get(key)


def generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def randomise_heads(policy, seed: int = 0) -> None:
    """Give the zero-initialised heads random weights so the output depends on the state."""
    gen = generator(seed)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "head" in name and name.endswith("weight"):
                param.copy_(torch.randn(param.shape, generator=gen))


def toy_batch(num: int, epoch: int = 0, epoch_fraction: float = 0.0, seed: int = 0) -> Batch:
    gen = generator(seed)
    return Batch(
        losses=torch.rand(num, generator=gen),
        item_ids=torch.zeros(num, dtype=torch.long),
        epoch=epoch,
        epoch_fraction=epoch_fraction,
        user_repr=torch.randn(num, 3, generator=gen),
        item_repr=torch.randn(num, 3, generator=gen),
    )


# --------------------------------------------------------------------------------------------
# state


def test_controller_state_layout():
    user = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    item = torch.tensor([[5.0], [6.0]])
    losses = torch.tensor([0.5, 0.25], requires_grad=True)
    state = controller_state(user, item, losses, 0.75)
    expected = torch.tensor([[1.0, 2.0, 5.0, 0.5, 0.75], [3.0, 4.0, 6.0, 0.25, 0.75]])
    assert torch.equal(state, expected)
    assert not state.requires_grad


# --------------------------------------------------------------------------------------------
# hard policy (Eq. 12)


def test_hard_three_actions_start_uniform():
    policy = HardPolicy(6, 4, 3)
    states = torch.randn(7, 6, generator=generator(1))
    probs = torch.softmax(policy.logits(states), dim=1)
    assert_float_close(probs, torch.full((7, 3), 1 / 3))
    expected_weight = (probs * torch.arange(3.0)).sum(1)
    assert_float_close(expected_weight, torch.ones(7))


@pytest.mark.parametrize("num_actions", [4, 5])
def test_hard_expected_initial_weight_one(num_actions):
    policy = HardPolicy(6, 4, num_actions)
    states = torch.randn(5, 6, generator=generator(2))
    probs = torch.softmax(policy.logits(states).double(), dim=1)
    expected_weight = (probs * torch.arange(num_actions, dtype=torch.float64)).sum(1)
    torch.testing.assert_close(
        expected_weight, torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-4
    )
    # all rows identical (zero head) and dropping is more likely than duplicating
    assert torch.equal(probs, probs[:1].expand_as(probs))
    assert bool((probs[0, 1:] < probs[0, :-1]).all())


def test_hard_two_actions_keep_point_nine():
    policy = HardPolicy(6, 4, 2)
    probs = torch.softmax(policy.logits(torch.randn(3, 6, generator=generator(3))), dim=1)
    assert_float_close(probs, torch.tensor([[0.1, 0.9]] * 3))


def test_hard_sampling_reproducible_and_weight_is_action():
    policy = HardPolicy(6, 4, 3)
    randomise_heads(policy)
    states = torch.randn(200, 6, generator=generator(4))
    action_a, weight_a = policy.sample(states, generator(11))
    action_b, weight_b = policy.sample(states, generator(11))
    action_c, _ = policy.sample(states, generator(12))
    assert torch.equal(action_a, action_b)
    assert torch.equal(weight_a, weight_b)
    assert not torch.equal(action_a, action_c)
    assert action_a.dtype == torch.long
    assert torch.equal(weight_a, action_a.float())
    assert set(action_a.tolist()) == {0, 1, 2}
    assert not weight_a.requires_grad


def test_hard_sampling_frequencies_follow_probabilities():
    policy = HardPolicy(6, 4, 2)  # keep with probability 0.9
    action, _ = policy.sample(torch.zeros(40000, 6), generator(5))
    assert action.float().mean().item() == pytest.approx(0.9, abs=0.01)


def test_hard_log_prob_is_log_softmax_of_chosen():
    torch.manual_seed(0)  # the trunk's initialisation: not left to whatever ran before
    policy = HardPolicy(6, 4, 3)
    randomise_heads(policy)
    states = torch.randn(5, 6, generator=generator(6))
    action = torch.tensor([0, 2, 1, 1, 0])
    logits = policy.logits(states)
    expected = torch.log(torch.softmax(logits, dim=1))[torch.arange(5), action]
    assert_float_close(policy.log_prob(states, action), expected)
    # rows differ, so this would catch a wrong gather axis
    assert not torch.allclose(expected, expected[0].expand(5))


@pytest.mark.parametrize("value", [1, 0, 2.0, True])
def test_hard_scheme_rejects_bad_num_actions(value):
    with pytest.raises(ValueError, match="controller_num_actions"):
        HardAutoDenoise(FakeConfig(controller_num_actions=value), CPU)


# --------------------------------------------------------------------------------------------
# soft policy (Eqs. 13-16)


@pytest.mark.parametrize("init_std", [0.1, 1.0])
def test_soft_initial_mean_weight_one_and_std(init_std):
    policy = SoftPolicy(6, 4, init_std)
    states = torch.randn(200000, 6, generator=generator(7))
    dist = policy.distribution(states[:10])
    assert_float_close(dist.stddev, torch.full((10,), init_std))
    torch.testing.assert_close(dist.mean, dist.mean[:1].expand(10), rtol=0, atol=0)
    action, weight = policy.sample(states, generator(8))
    torch.testing.assert_close(weight, F.softplus(action), rtol=0, atol=0)
    assert weight.double().mean().item() == pytest.approx(1.0, abs=0.01)
    assert action.double().std().item() == pytest.approx(init_std, rel=0.01)
    assert bool((weight > 0).all())


def test_soft_small_std_mean_is_inverse_softplus_of_one():
    policy = SoftPolicy(6, 4, 1e-3)
    mean = policy.distribution(torch.zeros(1, 6)).mean.item()
    assert mean == pytest.approx(INV_SOFTPLUS_OF_ONE, abs=1e-4)
    assert F.softplus(torch.tensor(INV_SOFTPLUS_OF_ONE)).item() == pytest.approx(
        1.0, abs=float_tolerance(torch.float32)
    )


def test_soft_sampling_reproducible():
    policy = SoftPolicy(6, 4, 0.1)
    states = torch.randn(50, 6, generator=generator(9))
    first = policy.sample(states, generator(3))
    second = policy.sample(states, generator(3))
    third = policy.sample(states, generator(4))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], third[0])
    assert not first[0].requires_grad and not first[1].requires_grad


def test_soft_log_prob_by_hand():
    policy = SoftPolicy(6, 4, 0.3)
    randomise_heads(policy)
    states = torch.randn(4, 6, generator=generator(10))
    action = torch.tensor([0.2, -1.0, 0.5, 2.0])
    hidden = policy.trunk(states)
    mu = policy.mean_head(hidden).squeeze(1)
    variance = F.softplus(policy.var_head(hidden).squeeze(1))  # Eq. 14
    expected = (
        -((action - mu) ** 2) / (2 * variance)
        - 0.5 * torch.log(variance)
        - 0.5 * math.log(2 * math.pi)
    )
    got = policy.log_prob(states, action)
    assert_float_close(got, expected)
    reference = torch.distributions.Normal(mu, variance.sqrt()).log_prob(action)
    assert_float_close(got, reference)


@pytest.mark.parametrize("value", [0, -0.1, 0.0])
def test_soft_scheme_rejects_bad_init_std(value):
    with pytest.raises(ValueError, match="controller_init_std"):
        SoftAutoDenoise(FakeConfig(controller_init_std=value), CPU)


# --------------------------------------------------------------------------------------------
# REINFORCE accumulator (Eq. 10)


def make_policy(kind: str):
    torch.manual_seed(0)
    policy = HardPolicy(6, 4, 3) if kind == "hard" else SoftPolicy(6, 4, 0.5)
    randomise_heads(policy, seed=1)
    return policy


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("sizes", [(5, 5, 5), (2, 5, 8)])
def test_accumulated_gradient_equals_naive(kind, sizes):
    policy = make_policy(kind)
    params = list(policy.parameters())
    gen = generator(20)
    states, actions = [], []
    accumulator = ReinforceAccumulator(policy)
    for size in sizes:
        state = torch.randn(size, 6, generator=gen)
        action, _ = policy.sample(state, gen)
        accumulator.add(policy.log_prob(state, action))
        states.append(state)
        actions.append(action)
    total = sum(sizes)
    assert accumulator.count == total
    advantage = 0.37
    naive_loss = (advantage / total) * policy.log_prob(torch.cat(states), torch.cat(actions)).sum()
    naive = torch.autograd.grad(naive_loss, params)
    accumulated = accumulator.policy_gradient(advantage)
    assert len(accumulated) == len(naive)
    for got, expected in zip(accumulated, naive):
        assert_float_close(got, expected)
    # the trunk gets a gradient too (randomised heads): a non-trivial comparison
    assert all(float(g.abs().sum()) > 0 for g in naive)


def test_accumulator_reset_and_state():
    policy = make_policy("soft")
    accumulator = ReinforceAccumulator(policy)
    state = torch.randn(5, 6, generator=generator(21))
    action, _ = policy.sample(state, generator(22))
    accumulator.add(policy.log_prob(state, action))
    saved = accumulator.state_dict()
    assert saved["count"] == 5
    accumulator.reset()
    assert accumulator.count == 0
    assert all(torch.count_nonzero(total) == 0 for total in accumulator.sums)
    accumulator.load_state_dict(saved)
    assert accumulator.count == 5
    for total, expected in zip(accumulator.sums, saved["sums"]):
        assert torch.equal(total, expected)
    # the saved copy is independent of the live sums
    accumulator.reset()
    assert any(torch.count_nonzero(t) > 0 for t in saved["sums"])


# --------------------------------------------------------------------------------------------
# toy policy-gradient problem: the controller learns to down-weight "marked" samples


def run_toy(name: str, reward_sign: float, epochs: int = 30, size: int = 8) -> tuple[float, float]:
    """Half of each batch is "marked" (user feature +1, the rest -1). After each epoch the reward is
    ``reward_sign * (mean weight of the marked samples - 1)``: 0 at the start, where the baseline
    is. Returns the controller's mean weight for a marked and for an unmarked sample afterwards."""
    config = FakeConfig(
        controller_learning_rate=0.02,
        controller_hidden_size=16,
        controller_init_std=1.0,
        baseline_decay=0.5,
    )
    scheme = SCHEMES.get(name)(config, CPU)
    marked = torch.arange(size) % 2 == 0
    batch = Batch(
        losses=torch.zeros(size),
        item_ids=torch.zeros(size, dtype=torch.long),
        epoch=0,
        epoch_fraction=0.0,
        user_repr=torch.where(marked, 1.0, -1.0).unsqueeze(1),
        item_repr=torch.zeros(size, 1),
    )
    for epoch in range(epochs):
        weights = scheme.weights(batch)
        reward = reward_sign * (weights[marked].mean().item() - 1.0)
        logs = scheme.after_evaluation({"gauc": reward}, epoch)
        assert logs["reward"] == reward
    # states (user, item, loss, epoch) of a marked and an unmarked sample, sampled many times
    states = torch.tensor([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]).repeat(20000, 1)
    _, weights = scheme.policy.sample(states, generator(0))
    marked_mean, unmarked_mean = weights.view(20000, 2).mean(0).tolist()
    return marked_mean, unmarked_mean


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_controller_learns_to_down_weight_marked(name):
    marked, unmarked = run_toy(name, reward_sign=-1.0)
    assert marked < 0.8 * unmarked
    assert marked < 0.8  # started at 1


def test_controller_learns_to_up_weight_marked_when_rewarded():
    # soft only: the hard weights saturate at A - 1 = 2, where the marked/unmarked gap closes
    marked, unmarked = run_toy("autodenoise_s", reward_sign=+1.0)
    assert marked > 1.2  # started at 1
    assert marked > unmarked


# --------------------------------------------------------------------------------------------
# ControllerScheme.after_evaluation, baseline and state


def snapshot(scheme):
    return [p.detach().clone() for p in scheme.policy.parameters()]


def test_no_update_before_any_batch():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    assert scheme.after_evaluation({"gauc": 0.5}, 0) == {}
    assert scheme.baseline == 0.0
    assert scheme.policy is None


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
@pytest.mark.parametrize("reward", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_reward_skips_update(name, reward, caplog):
    scheme = SCHEMES.get(name)(FakeConfig(), CPU)
    scheme.weights(toy_batch(6))
    scheme.after_evaluation({"gauc": 0.4}, 0)  # a real update first: baseline 0.04
    scheme.weights(toy_batch(6, seed=1))
    before = snapshot(scheme)
    baseline = scheme.baseline
    assert scheme.accumulator.count == 6
    with caplog.at_level(logging.WARNING, logger="recbole_autodenoise.schemes.autodenoise"):
        logs = scheme.after_evaluation({"gauc": reward}, 3)
    assert logs["skipped"] == 1.0
    assert "not finite" in caplog.text and "epoch 3" in caplog.text
    for got, expected in zip(snapshot(scheme), before):
        assert torch.equal(got, expected)
    assert scheme.baseline == baseline == pytest.approx(0.04)
    assert scheme.accumulator.count == 0
    assert all(torch.count_nonzero(total) == 0 for total in scheme.accumulator.sums)


def test_baseline_moving_average_and_logs():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(baseline_decay=0.9), CPU)
    assert scheme.baseline == 0.0
    expected_baseline = 0.0
    for epoch, reward in enumerate([0.5, 0.2, 0.8]):
        scheme.weights(toy_batch(4, seed=epoch))
        logs = scheme.after_evaluation({"gauc": reward, "ndcg@20": 123.0}, epoch)
        assert logs == {
            "reward": reward,
            "baseline": pytest.approx(expected_baseline, abs=1e-12),
            "advantage": pytest.approx(reward - expected_baseline, abs=1e-12),
        }
        expected_baseline = 0.9 * expected_baseline + 0.1 * reward
        assert scheme.baseline == pytest.approx(expected_baseline, abs=1e-12)
        assert scheme.accumulator.count == 0
    # 0 -> 0.05 -> 0.065 -> 0.1385
    assert scheme.baseline == pytest.approx(0.1385, abs=1e-12)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_update_is_gradient_ascent_on_reward(name):
    """First Adam step moves each parameter by ~lr * sign(policy gradient): ascent, not descent."""
    scheme = SCHEMES.get(name)(FakeConfig(controller_learning_rate=0.01), CPU)
    scheme.weights(toy_batch(6))
    with torch.no_grad():  # make the trunk's gradient non-zero too
        randomise_heads(scheme.policy)
    scheme.accumulator.reset()
    scheme.weights(toy_batch(6, seed=5))
    before = snapshot(scheme)
    reward = 0.3  # baseline 0 -> advantage 0.3
    ascent = scheme.accumulator.policy_gradient(reward)
    scheme.after_evaluation({"gauc": reward}, 0)
    moved = 0
    for old, new, direction in zip(before, snapshot(scheme), ascent):
        clear = direction.abs() > 1e-5
        torch.testing.assert_close(
            (new - old)[clear], 0.01 * direction[clear].sign(), rtol=0, atol=1e-4
        )
        moved += int(clear.sum())
    assert moved > 10


def test_learning_rate_and_weight_decay_reach_optimizer():
    scheme = SCHEMES.get("autodenoise_h")(
        FakeConfig(controller_learning_rate=0.02, controller_weight_decay=0.1), CPU
    )
    scheme.weights(toy_batch(3))
    group = scheme.optimizer.param_groups[0]
    assert group["lr"] == 0.02 and group["weight_decay"] == 0.1
    assert scheme.input_size == 3 + 3 + 2


def test_policy_initialisation_depends_on_seed_only():
    first = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    torch.manual_seed(123)  # the global RNG must not matter
    first.weights(toy_batch(4))
    second = SCHEMES.get("autodenoise_s")(FakeConfig(), CPU)
    torch.manual_seed(456)
    second.weights(toy_batch(4))
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)
    other = SCHEMES.get("autodenoise_s")(FakeConfig(seed=7), CPU)
    other.weights(toy_batch(4))
    assert not torch.equal(next(other.policy.parameters()), next(first.policy.parameters()))


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_state_round_trip_reproduces_next_weights(name):
    scheme = SCHEMES.get(name)(FakeConfig(controller_learning_rate=0.05), CPU)
    for epoch in range(2):
        scheme.weights(toy_batch(8, epoch=epoch, epoch_fraction=epoch / 10, seed=epoch))
        scheme.after_evaluation({"gauc": 0.1 * (epoch + 1)}, epoch)
    scheme.weights(toy_batch(8, seed=7))  # something pending in the accumulator
    buffer = io.BytesIO()
    torch.save(scheme.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)

    resumed = SCHEMES.get(name)(FakeConfig(controller_learning_rate=0.05), CPU)
    resumed.load_state_dict(state)
    assert resumed.baseline == scheme.baseline
    assert resumed.accumulator.count == scheme.accumulator.count == 8
    batch = toy_batch(64, epoch=2, epoch_fraction=0.2, seed=9)
    assert torch.equal(resumed.weights(batch), scheme.weights(batch))
    # and the next update (optimizer moments, pending gradient sums, baseline) matches too
    assert resumed.after_evaluation({"gauc": 0.7}, 2) == scheme.after_evaluation({"gauc": 0.7}, 2)
    for a, b in zip(resumed.policy.parameters(), scheme.policy.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(resumed.weights(batch), scheme.weights(batch))


def test_state_round_trip_before_policy_exists():
    scheme = SCHEMES.get("autodenoise_h")(FakeConfig(), CPU)
    state = scheme.state_dict()
    assert "policy" not in state
    resumed = SCHEMES.get("autodenoise_h")(FakeConfig(seed=99), CPU)
    resumed.load_state_dict(state)
    assert resumed.policy is None
    batch = toy_batch(20)
    assert torch.equal(resumed.generator.get_state(), scheme.generator.get_state())
    first = scheme.weights(batch)
    # the policy is built from config['seed'] (99 vs 2020), so only the sampling stream is shared
    resumed_fresh = SCHEMES.get("autodenoise_h")(FakeConfig(), CPU)
    resumed_fresh.load_state_dict(state)
    assert torch.equal(resumed_fresh.weights(batch), first)


# --------------------------------------------------------------------------------------------
# config checks


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
@pytest.mark.parametrize("value", [0, 0.0, -0.001, "0.01"])
def test_bad_learning_rate_raises(name, value):
    with pytest.raises(ValueError, match="controller_learning_rate"):
        SCHEMES.get(name)(FakeConfig(controller_learning_rate=value), CPU)


@pytest.mark.parametrize(
    "key, value",
    [
        ("baseline_decay", 1.0),
        ("baseline_decay", -0.5),
        ("controller_hidden_size", 0),
        ("controller_hidden_size", 8.0),
        ("controller_weight_decay", -1e-4),
    ],
)
def test_bad_controller_keys_raise(key, value):
    with pytest.raises(ValueError, match=key):
        SCHEMES.get("autodenoise_s")(FakeConfig(**{key: value}), CPU)


def test_bad_reward_metric_raises_at_construction():
    with pytest.raises(ValueError, match="reward_metric"):
        SCHEMES.get("autodenoise_s")(FakeConfig(reward_metric="NDCG@7"), CPU)


# --------------------------------------------------------------------------------------------
# parse_reward_metric


def test_parse_reward_metric_valid():
    assert parse_reward_metric("GAUC", TOPK) == "gauc"
    assert parse_reward_metric("gauc", TOPK) == "gauc"
    assert parse_reward_metric("NDCG@20", TOPK) == "ndcg@20"
    assert parse_reward_metric("Recall@50", TOPK) == "recall@50"
    assert (
        parse_reward_metric("F1@10", TOPK) == "f1@10"
    )  # the plugin's metric is a ranking metric too


def test_parse_reward_metric_normalises_k():
    # RecBole names the result 'ndcg@20'; a key of 'ndcg@020' would never be found
    assert parse_reward_metric("NDCG@020", TOPK) == "ndcg@20"


@pytest.mark.parametrize("value", ["NDCG@7", "NDCG", "NDCG@", "NDCG@k", "NDCG@-10"])
def test_parse_reward_metric_needs_k_in_topk(value):
    with pytest.raises(ValueError, match=r"topk \[10, 20, 50\]"):
        parse_reward_metric(value, TOPK)


def test_parse_reward_metric_unknown_lists_metrics():
    with pytest.raises(ValueError) as info:
        parse_reward_metric("foo", TOPK)
    message = str(info.value)
    for name in ("gauc", "ndcg", "recall", "precision", "f1"):
        assert f"'{name}'" in message


@pytest.mark.parametrize("value", ["MAE", "auc", "LogLoss"])
def test_parse_reward_metric_rejects_value_metrics(value):
    with pytest.raises(ValueError, match="not a ranking metric"):
        parse_reward_metric(value, TOPK)


def test_parse_reward_metric_gauc_takes_no_k():
    with pytest.raises(ValueError, match="takes no '@K'"):
        parse_reward_metric("gauc@10", TOPK)


@pytest.mark.parametrize("value", [None, 5, ["NDCG@20"]])
def test_parse_reward_metric_rejects_non_string(value):
    with pytest.raises(ValueError, match="reward_metric"):
        parse_reward_metric(value, TOPK)


def test_soft_policy_survives_a_collapsed_variance():
    """Found by the benchmark: with controller_credit meta and a large controller learning rate the
    variance head's softplus underflowed to exactly 0 and Normal(mean, 0) raised mid-training."""
    policy = SoftPolicy(4, 8, 0.1)
    with torch.no_grad():
        policy.var_head.bias.fill_(-800.0)  # softplus(-800) == 0 in float32
    state = torch.randn(16, 4, generator=generator(1))
    dist = policy.distribution(state)
    assert torch.all(dist.stddev > 0) and torch.all(dist.stddev <= 1e-5)
    action, weight = policy.sample(state, generator(2))
    assert torch.isfinite(weight).all() and torch.isfinite(policy.log_prob(state, action)).all()
    assert torch.isfinite(policy.meta_weights(state, generator(3))).all()


# --------------------------------------------------------------------------------------------
# Fig. 2 diagnostics: the true-positive flag in the state, and the baseline's start


def test_controller_state_oracle_column():
    user = torch.tensor([[1.0, 2.0], [3.0, 4.0], [7.0, 8.0]])
    item = torch.tensor([[5.0], [6.0], [9.0]])
    losses = torch.tensor([0.5, 0.25, 2.0])
    true_positive = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    state = controller_state(user, item, losses, 0.5, true_positive)
    expected = torch.tensor(
        [
            [1.0, 2.0, 5.0, 0.5, 0.5, 1.0],
            [3.0, 4.0, 6.0, 0.25, 0.5, 0.0],
            [7.0, 8.0, 9.0, 2.0, 0.5, 1.0],
        ]
    )
    assert state.dtype == torch.float32 and torch.equal(state, expected)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_oracle_state_widens_the_controller_input_by_one(name):
    plain = SCHEMES.get(name)(FakeConfig(), CPU)
    oracle = SCHEMES.get(name)(FakeConfig(controller_oracle_state=True), CPU)
    assert (
        not plain.reads_ratings and oracle.reads_ratings
    )  # the trainer fills batch.true_positive only then
    batch = toy_batch(4)
    plain.weights(batch)
    batch.true_positive = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    oracle.weights(batch)
    assert plain.input_size == 3 + 3 + 2 and oracle.input_size == plain.input_size + 1
    assert oracle.policy.trunk[0].in_features == 9


def test_first_reward_baseline_gives_a_zero_first_advantage():
    scheme = SCHEMES.get("autodenoise_s")(
        FakeConfig(baseline_init="first_reward", baseline_decay=0.9), CPU
    )
    scheme.weights(toy_batch(4, seed=0))
    before = snapshot(scheme)
    assert scheme.after_evaluation({"gauc": 0.5}, 0) == {
        "reward": 0.5,
        "baseline": 0.5,
        "advantage": 0.0,
    }
    for got, expected in zip(snapshot(scheme), before):
        assert torch.equal(
            got, expected
        )  # a zero advantage moves nothing (Adam's first step of a zero gradient)
    assert scheme.baseline == 0.5
    scheme.weights(toy_batch(4, seed=1))
    logs = scheme.after_evaluation({"gauc": 0.7}, 1)
    assert logs["baseline"] == 0.5 and logs["advantage"] == pytest.approx(
        0.2, abs=4 * torch.finfo(torch.float64).eps
    )
    assert scheme.baseline == pytest.approx(
        0.9 * 0.5 + 0.1 * 0.7, abs=4 * torch.finfo(torch.float64).eps
    )
    resumed = SCHEMES.get("autodenoise_s")(FakeConfig(baseline_init="first_reward"), CPU)
    resumed.load_state_dict(scheme.state_dict())
    assert resumed.credit.rewarded and resumed.baseline == scheme.baseline


def test_first_reward_baseline_skips_a_non_finite_first_reward():
    scheme = SCHEMES.get("autodenoise_h")(FakeConfig(baseline_init="first_reward"), CPU)
    scheme.weights(toy_batch(4))
    assert scheme.after_evaluation({"gauc": float("nan")}, 0)["skipped"] == 1.0
    scheme.weights(toy_batch(4, seed=1))
    assert scheme.after_evaluation({"gauc": 0.6}, 1)["advantage"] == 0.0


@pytest.mark.parametrize(
    "key, value",
    [
        ("controller_oracle_state", 1),
        ("controller_oracle_state", "true"),
        ("baseline_init", "first"),
        ("baseline_init", None),
        ("baseline_init", 0),
    ],
)
def test_bad_diagnostic_keys_raise_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"'{key}' = {value!r}"):
        SCHEMES.get("autodenoise_s")(FakeConfig(**{key: value}), CPU)


def test_first_reward_baseline_needs_epoch_credit_not_supervised():
    config = FakeConfig(baseline_init="first_reward", controller_credit="supervised")
    with pytest.raises(ValueError) as error:
        SCHEMES.get("autodenoise_s")(config, CPU)
    assert str(error.value) == (
        "config key 'baseline_init' = 'first_reward' applies to "
        "controller_credit 'epoch' only (this run uses 'supervised'); "
        "leave it at 'zero'"
    )
