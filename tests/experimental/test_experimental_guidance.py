"""Experimental guidance (``import recbole_autodenoise.experimental``): the meta step (against
finite differences), the l2rw scheme, the ``meta`` controller credit and its config keys, and
end-to-end runs with resume on ML-100K. Moved from tests/test_guidance.py unchanged."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import recbole_autodenoise as rad
import recbole_autodenoise.experimental  # noqa: F401  (registers l2rw and the meta credit)
from recbole_autodenoise.controller import controller_state
from recbole_autodenoise.data.bundle import training_data_of
from recbole_autodenoise.experimental.l2rw import l2rw_weights
from recbole_autodenoise.experimental.meta_step import meta_step
from recbole_autodenoise.guidance import clean_loss
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.schemes import SCHEMES, Batch
from recbole_autodenoise.schemes.base import effective_fraction, mean_one
from tests.controller.test_controller import FakeConfig
from tests.test_guidance import CPU, SMALL, flipped_problem, guidance_for, perturbed, saved
from tests.test_losses import FakeBPR, FakeSequential, bpr_interaction, seq_interaction
from tests.test_trainer import assert_resume_reproduces, build, fresh_model


# --------------------------------------------------------------------------------------------
# meta step


class TinyController(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.3, -0.7, 0.2]], dtype=torch.float64))
            self.linear.bias.fill_(0.1)

    def forward(self, state):
        return F.softplus(self.linear(state)).squeeze(1)


def clean_loss_after_step(model, controller, states, train, clean, lr) -> float:
    """L_clean(theta - lr * grad mean(w * l)) computed directly on a copy of the model."""
    stepped = copy.deepcopy(model)
    params = [p for p in stepped.parameters() if p.requires_grad]
    with torch.no_grad():
        weights = controller(states)
    losses = PerSampleLoss(stepped)(train).losses
    grads = torch.autograd.grad((weights * losses).mean(), params)
    with torch.no_grad():
        for param, grad in zip(params, grads):
            param.sub_(lr * grad)
        return float(clean_loss(stepped, clean))


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("kind", ["bpr", "ce"])
def test_meta_gradient_equals_finite_differences(kind, normalized):
    """Also through the rescaling to mean 1 (``meta_normalize_weights``)."""
    if kind == "bpr":
        model, train = perturbed(FakeBPR(), 3), bpr_interaction()
        clean = {
            "user_id": torch.tensor([0, 1, 2]),
            "item_id": torch.tensor([1, 3, 2]),
            "neg_item_id": torch.tensor([4, 2, 1]),
        }
    else:
        model, train = perturbed(FakeSequential(), 4), seq_interaction()
        clean = {
            "item_id_list": torch.tensor([[2, 1, 0], [4, 4, 5]]),
            "item_id": torch.tensor([2, 3]),
        }
    size = len(train["item_id"])
    states = torch.randn(size, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tiny = TinyController()
    controller = (lambda state: mean_one(tiny(state))) if normalized else tiny
    lr = 0.3
    params = list(tiny.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    step = meta_step(model, PerSampleLoss(model), train, controller(states), clean, lr, params)
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters())
    )  # the step was virtual
    assert step.clean_loss.item() == pytest.approx(
        clean_loss_after_step(model, controller, states, train, clean, lr)
    )
    h = 1e-6
    for param, grad in zip(params, step.controller_grads):
        numeric = torch.zeros_like(param)
        for index in range(param.numel()):
            flat = param.data.view(-1)
            original = flat[index].item()
            flat[index] = original + h
            up = clean_loss_after_step(model, controller, states, train, clean, lr)
            flat[index] = original - h
            down = clean_loss_after_step(model, controller, states, train, clean, lr)
            flat[index] = original
            numeric.view(-1)[index] = (up - down) / (2 * h)
        torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-9)
        assert float(numeric.abs().max()) > 1e-4
    assert step.weight_grads.shape == (size,)


def test_meta_weight_gradient_is_minus_lr_over_b_times_alignment_at_theta_prime():
    """d L_clean(theta') / d w_i = -(alpha / B) <grad l_i(theta), grad L_clean(theta')>."""
    model, train = perturbed(FakeBPR(), 6), bpr_interaction()
    clean = bpr_interaction()
    weights = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    lr = 0.2
    step = meta_step(model, PerSampleLoss(model), train, weights, clean, lr, [])
    stepped = copy.deepcopy(model)
    losses = PerSampleLoss(stepped)(train).losses
    grads = torch.autograd.grad((weights.detach() * losses).mean(), list(stepped.parameters()))
    with torch.no_grad():
        for param, grad in zip(stepped.parameters(), grads):
            param.sub_(lr * grad)
    clean_grads = torch.autograd.grad(clean_loss(stepped, clean), list(stepped.parameters()))
    per_sample = PerSampleLoss(model)(train).losses
    expected = []
    for i in range(4):
        g = torch.autograd.grad(per_sample[i], list(model.parameters()), retain_graph=True)
        expected.append(-lr / 4 * sum((a * b).sum() for a, b in zip(g, clean_grads)))
    torch.testing.assert_close(
        step.weight_grads, torch.stack(expected).detach(), rtol=1e-6, atol=1e-12
    )


# --------------------------------------------------------------------------------------------
# l2rw


def test_l2rw_weights_relu_mean_one():
    weights = l2rw_weights(torch.tensor([-1.0, 0.0, 2.0, 1.0]))
    torch.testing.assert_close(weights, torch.tensor([0.0, 0.0, 8 / 3, 4 / 3]))
    assert weights.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("values", [[0.0, 0.0, 0.0], [-1.0, -2.0, 0.0]])
def test_l2rw_weights_uniform_when_nothing_aligned(values):
    assert torch.equal(l2rw_weights(torch.tensor(values)), torch.ones(3))


def test_l2rw_down_weights_samples_against_the_clean_gradient():
    model, train, clean, marked = flipped_problem()
    scheme = SCHEMES.get("l2rw")(FakeConfig(), CPU)
    assert scheme.needs_guidance and scheme.learns_from_validation
    guidance = guidance_for(model, train, clean)
    batch = Batch(
        losses=guidance.train_losses.detach(),
        item_ids=train["item_id"],
        epoch=0,
        epoch_fraction=0.0,
        guidance=guidance,
    )
    weights = scheme.weights(batch)
    assert torch.all(weights[marked] == 0) and torch.all(weights[~marked] > 0)
    assert weights.mean().item() == pytest.approx(1.0)
    assert (guidance.alignment()[marked] < 0).all()
    logs = scheme.after_evaluation({}, 0)
    assert logs["kept_fraction"] == 0.5 and logs["mean_alignment"] == pytest.approx(
        float(guidance.alignment().mean())
    )
    assert logs["effective_fraction"] == pytest.approx(float(effective_fraction(weights)))
    assert logs["effective_fraction"] <= 0.5 + 1e-9  # half the batch carries all the weight
    assert scheme.after_evaluation({}, 1) == {}


def test_l2rw_without_guidance_fails_clearly():
    scheme = SCHEMES.get("l2rw")(FakeConfig(), CPU)
    with pytest.raises(ValueError, match="guidance"):
        scheme.weights(
            Batch(
                losses=torch.ones(2),
                item_ids=torch.ones(2, dtype=torch.long),
                epoch=0,
                epoch_fraction=0.0,
            )
        )


# --------------------------------------------------------------------------------------------
# controller_credit: meta


def meta_config(**overrides) -> FakeConfig:
    values = dict(
        controller_credit="meta",
        controller_learning_rate=0.02,
        controller_hidden_size=16,
        controller_init_std=0.5,
    )
    values.update(overrides)
    return FakeConfig(**values)


def toy_meta_batch(model, train, clean, marked) -> Batch:
    guidance = guidance_for(model, train, clean)
    size = len(marked)
    return Batch(
        losses=guidance.train_losses.detach(),
        item_ids=train["item_id"],
        epoch=0,
        epoch_fraction=0.0,
        user_repr=torch.where(marked, 1.0, -1.0).unsqueeze(1).to(torch.float32),
        item_repr=torch.zeros(size, 1),
        guidance=guidance,
    )


def mean_weights(scheme, marked) -> tuple[float, float]:
    states = torch.tensor([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]).repeat(20000, 1)
    _, weights = scheme.policy.sample(states, torch.Generator().manual_seed(0))
    marked_mean, unmarked_mean = weights.view(20000, 2).mean(0).tolist()
    return marked_mean, unmarked_mean


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_meta_credit_learns_to_down_weight_label_flipped_samples(name):
    model, train, clean, marked = flipped_problem()
    scheme = SCHEMES.get(name)(meta_config(), CPU)
    assert scheme.needs_guidance
    for _ in range(30):
        # the toy's state is the marker only (losses are zeroed so the state does not leak them)
        batch = toy_meta_batch(model, train, clean, marked)
        batch.losses = torch.zeros_like(batch.losses)
        weights = scheme.weights(batch)
        assert weights.shape == (len(marked),)
    marked_mean, unmarked_mean = mean_weights(scheme, marked)
    assert marked_mean < 0.8 * unmarked_mean
    assert marked_mean < 0.8  # started at 1
    logs = scheme.after_evaluation({"gauc": 0.5}, 0)
    assert logs["meta_updates"] == 30
    assert logs["aligned_fraction"] == pytest.approx(0.5)
    assert scheme.after_evaluation({"gauc": 0.5}, 1) == {}  # nothing since, no REINFORCE update


def test_meta_interval_updates_every_kth_batch():
    model, train, clean, marked = flipped_problem()
    scheme = SCHEMES.get("autodenoise_s")(meta_config(meta_interval=3), CPU)
    changed = []
    for _ in range(7):
        before = (
            [p.detach().clone() for p in scheme.policy.parameters()]
            if scheme.policy is not None
            else None
        )
        scheme.weights(toy_meta_batch(model, train, clean, marked))
        after = list(scheme.policy.parameters())
        changed.append(before is None or any(not torch.equal(a, b) for a, b in zip(before, after)))
    assert changed == [True, False, False, True, False, False, True]
    assert scheme.after_evaluation({}, 0)["meta_updates"] == 3


def clone(scheme, config):
    copy_ = SCHEMES.get(scheme.name)(config, CPU)
    copy_.load_state_dict(saved(scheme.state_dict()))
    return copy_


def test_real_step_uses_the_updated_controller():
    model, train, clean, marked = flipped_problem()
    config = meta_config(controller_learning_rate=0.5)
    scheme = SCHEMES.get("autodenoise_s")(config, CPU)
    scheme.weights(toy_meta_batch(model, train, clean, marked))  # builds the policy, one update
    replay, stale = clone(scheme, config), clone(scheme, config)
    batch = toy_meta_batch(model, train, clean, marked)
    weights = scheme.weights(batch)
    state = controller_state(batch.user_repr, batch.item_repr, batch.losses, batch.epoch_fraction)
    replay.credit.before_weights(state, toy_meta_batch(model, train, clean, marked))
    after_update = replay.generator.get_state()
    _, expected = replay.policy.sample(state, replay.generator)
    assert torch.equal(weights, mean_one(expected))
    stale.generator.set_state(after_update)
    _, stale_weights = stale.policy.sample(state, stale.generator)
    assert not torch.allclose(mean_one(stale_weights), weights)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_normalized_meta_weights_learn_a_mix_not_a_step_size(name):
    """Every training sample is a clean sample (the batch's gradient is the clean gradient), so
    the clean loss only asks for a larger step: raw weights grow, normalised ones stay at mean 1."""
    model, train, _, marked = flipped_problem()
    clean = {key: value[~marked] for key, value in train.items()}
    train = dict(clean)
    means = {}
    for normalize in (False, True):
        scheme = SCHEMES.get(name)(
            meta_config(meta_normalize_weights=normalize, controller_learning_rate=0.05), CPU
        )
        for _ in range(30):
            batch = toy_meta_batch(
                model, train, clean, torch.zeros(len(train["item_id"]), dtype=torch.bool)
            )
            weights = scheme.weights(batch)
        means[normalize] = float(weights.mean())
        assert scheme.after_evaluation({}, 0)["effective_fraction"] <= 1.0
    assert means[True] == pytest.approx(1.0)
    assert means[False] > 1.2


def test_meta_without_guidance_fails_clearly():
    scheme = SCHEMES.get("autodenoise_h")(meta_config(), CPU)
    batch = toy_meta_batch(*flipped_problem())
    batch.guidance = None
    with pytest.raises(ValueError, match="guidance"):
        scheme.weights(batch)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_meta_state_round_trip(name):
    model, train, clean, marked = flipped_problem()
    scheme = SCHEMES.get(name)(meta_config(meta_interval=2), CPU)
    for _ in range(3):
        scheme.weights(toy_meta_batch(model, train, clean, marked))
    state = saved(scheme.state_dict())
    assert state["credit"] == "meta" and "accumulator" not in state
    resumed = SCHEMES.get(name)(meta_config(meta_interval=2), CPU)
    resumed.load_state_dict(state)
    for _ in range(3):
        a = scheme.weights(toy_meta_batch(model, train, clean, marked))
        b = resumed.weights(toy_meta_batch(model, train, clean, marked))
        assert torch.equal(a, b)
    assert resumed.after_evaluation({}, 0) == scheme.after_evaluation({}, 0)
    epoch_scheme = SCHEMES.get(name)(FakeConfig(), CPU)
    with pytest.raises(ValueError, match="controller_credit='meta'"):
        epoch_scheme.load_state_dict(state)


@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
@pytest.mark.parametrize(
    "key, value",
    [
        ("controller_credit", "bogus"),
        ("controller_credit", None),
        ("meta_interval", 0),
        ("meta_interval", 1.5),
        ("meta_interval", True),
        ("meta_interval", "2"),
        ("meta_normalize_weights", "yes"),
        ("meta_normalize_weights", 1),
        ("meta_normalize_weights", None),
    ],
)
def test_bad_credit_keys_raise(name, key, value):
    with pytest.raises(ValueError, match=key):
        SCHEMES.get(name)(FakeConfig(**{key: value}), CPU)


@pytest.mark.parametrize(
    "model, scheme",
    [
        ("BPR", "autodenoise_s"),
        ("BPR", "autodenoise_h"),
        ("GRU4Rec", "autodenoise_s"),
        ("GRU4Rec", "autodenoise_h"),
        ("SASRec", "autodenoise_s"),
    ],
)
@pytest.mark.slow
def test_meta_credit_trains_end_to_end(model, scheme):
    config, train, valid, test = build(
        model, denoise_scheme=scheme, controller_credit="meta", clean_valid_guide_ratio=0.5, **SMALL
    )
    trainer = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    trainer.fit(train, valid, saved=False)
    result = trainer.evaluate(test, load_best_model=False)
    assert all(math.isfinite(v) for v in result.values())
    assert 0.0 < result["ndcg@20"] < 1.0
    record = trainer.history[-1]
    assert record["controller_meta_updates"] == len(train)
    assert (
        math.isfinite(record["controller_mean_alignment"])
        and 0 <= record["controller_aligned_fraction"] <= 1
    )
    assert "controller_reward" not in record  # no REINFORCE update in meta mode
    study = trainer.weight_study()
    assert math.isfinite(study["tp_mean_weight"]) and math.isfinite(study["fp_mean_weight"])


@pytest.mark.slow
def test_l2rw_draws_clean_batches_from_the_guide_part():
    """(From test_guidance's guide-split test: the same data, then l2rw.)"""
    config, train, valid, test = build(
        "BPR",
        denoise_scheme="autodenoise_s",
        clean_valid_guide_ratio=0.3,
        reward_metric="NDCG@20",
        **SMALL,
    )
    config["denoise_scheme"] = "l2rw"
    l2rw = rad.AutoDenoiseTrainer(config, fresh_model(config, train))
    l2rw.fit(train, valid, saved=False)
    assert l2rw.clean_batches.num_rows == len(training_data_of(train).guide_rows)
    assert "guide_score" not in l2rw.history[-1]  # l2rw needs no reward: no guide evaluation


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["autodenoise_s", "l2rw"])
def test_resume_reproduces_an_uninterrupted_guided_run(scheme):
    assert_resume_reproduces(
        "BPR",
        epochs=3,
        denoise_scheme=scheme,
        controller_credit="meta",
        meta_interval=2,
        stopping_step=10,
        user_inter_num_interval="[10,60]",
        clean_valid_guide_ratio=0.5,
    )
