"""``meta_virtual_step`` (experimental, ``import recbole_autodenoise.experimental``): the meta
credit's virtual step as plain SGD or as the real optimiser's next step. On a hand-built linear
model (4 training samples, float64) the meta-gradient reaching the controller is checked against
central finite differences of the clean loss after a *real* step of a copy of the optimiser, so the
virtual step is checked against torch's own Adam / AdamW / SGD."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import recbole_autodenoise  # noqa: F401  (compat patches, metric registration)
import recbole_autodenoise.experimental  # noqa: F401  (registers the meta credit)
from recbole_autodenoise.experimental.meta_step import (
    meta_step,
    read_virtual_step,
    virtual_parameters,
)
from recbole_autodenoise.schemes import SCHEMES
from recbole_autodenoise.schemes.base import mean_one
from tests.conftest import GUIDED_TINY, float_tolerance
from tests.test_checkpoints import tiny_trainer
from tests.controller.test_controller import CPU, FakeConfig

DOUBLE = torch.float64
TRAIN = {
    "x": torch.tensor(
        [[1.0, 0.5, 0.0], [-0.5, 2.0, 0.0], [1.5, -1.0, 0.0], [0.3, 0.7, 0.0]], dtype=DOUBLE
    ),
    "y": torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=DOUBLE),
}
CLEAN = {
    "x": torch.tensor([[0.8, 0.1, 0.0], [-1.0, 1.2, 0.0], [0.4, 0.4, 0.0]], dtype=DOUBLE),
    "y": torch.tensor([0.5, 1.0, -0.3], dtype=DOUBLE),
}
# the controller's state per training sample: softplus(STATES @ phi) is the weight
STATES = torch.tensor([[1.0, -0.5], [0.2, 0.9], [-0.7, 0.4], [0.5, 0.5]], dtype=DOUBLE)


class Linear(nn.Module):
    """y ~ x . w + b with squared error; x's third column is 0, so w[2] never gets a gradient
    (like an embedding row outside every batch: Adam's v stays 0 there)."""

    def __init__(self, dtype: torch.dtype = DOUBLE) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.3, -0.2, 0.1], dtype=dtype))
        self.b = nn.Parameter(torch.tensor(0.05, dtype=dtype))

    def per_sample(self, interaction) -> torch.Tensor:
        return (
            interaction["x"].to(self.w.dtype) @ self.w + self.b - interaction["y"].to(self.w.dtype)
        ) ** 2

    def calculate_loss(self, interaction) -> torch.Tensor:
        return self.per_sample(interaction).mean()


def controller_weights(phi: torch.Tensor, normalized: bool) -> torch.Tensor:
    weights = F.softplus(STATES @ phi)
    return mean_one(weights) if normalized else weights


def warmed(optimizer_cls, steps: int, **options):
    """A model and its optimiser after ``steps`` real unweighted steps on the training samples."""
    model = Linear()
    optimizer = optimizer_cls(model.parameters(), **options)
    for _ in range(steps):
        optimizer.zero_grad()
        model.calculate_loss(TRAIN).backward()
        optimizer.step()
    return model, optimizer


def clean_loss_after_real_step(model, optimizer, phi, normalized: bool) -> float:
    """The clean loss after a real ``optimizer`` step (on copies) on the weighted training loss."""
    stepped, real = copy.deepcopy(
        (model, optimizer)
    )  # one copy: the optimiser holds the copied parameters
    weights = controller_weights(phi.detach(), normalized)
    real.zero_grad()
    (weights * stepped.per_sample(TRAIN)).mean().backward()
    real.step()
    with torch.no_grad():
        return float(stepped.calculate_loss(CLEAN))


def finite_difference(model, optimizer, phi, normalized: bool) -> torch.Tensor:
    h = torch.finfo(DOUBLE).eps ** (1 / 3)  # balances truncation (h^2) against rounding (eps / h)
    numeric = torch.zeros_like(phi)
    for index in range(phi.numel()):
        step = torch.zeros_like(phi)
        step[index] = h
        up = clean_loss_after_real_step(model, optimizer, phi + step, normalized)
        down = clean_loss_after_real_step(model, optimizer, phi - step, normalized)
        numeric[index] = (up - down) / (2 * h)
    return numeric


# the same optimiser settings for the real step and (through its groups) the virtual one
CASES = {
    "sgd": (torch.optim.SGD, {"lr": 0.05}, None),  # meta_virtual_step sgd: alpha = lr, no optimiser
    "optimizer-adam": (torch.optim.Adam, {"lr": 0.05}, "follow"),
    "optimizer-adamw": (torch.optim.AdamW, {"lr": 0.05, "weight_decay": 0.3}, "follow"),
    "optimizer-adam-l2": (torch.optim.Adam, {"lr": 0.05, "weight_decay": 0.3}, "follow"),
    "optimizer-sgd": (torch.optim.SGD, {"lr": 0.05, "weight_decay": 0.3}, "follow"),
}


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_meta_gradient_equals_finite_differences_of_the_real_step(case, normalized):
    optimizer_cls, options, follow = CASES[case]
    model, optimizer = warmed(optimizer_cls, 3, **options)
    phi = torch.tensor([0.4, -0.3], dtype=DOUBLE, requires_grad=True)
    before = [p.detach().clone() for p in model.parameters()]
    state_before = copy.deepcopy(optimizer.state_dict())
    step = meta_step(
        model,
        None,
        None,
        controller_weights(phi, normalized),
        CLEAN,
        options["lr"],
        [phi],
        train_losses=model.per_sample(TRAIN),
        optimizer=optimizer if follow else None,
    )
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters())
    )  # the step was virtual
    assert str(optimizer.state_dict()) == str(state_before)  # and the optimiser's state untouched
    (grad,) = step.controller_grads
    assert torch.isfinite(grad).all()
    numeric = finite_difference(model, optimizer, phi, normalized)
    scale = float(numeric.abs().max())
    assert scale > 1e-3  # non-zero: the weights move the clean loss
    # central differences at h = eps^(1/3): error ~ eps^(2/3) times the loss's scale; 100 units of
    # slack
    tolerance = 100 * torch.finfo(DOUBLE).eps ** (2 / 3) * max(scale, 1.0)
    torch.testing.assert_close(grad, numeric, rtol=0, atol=tolerance)
    loss = clean_loss_after_real_step(model, optimizer, phi, normalized)
    assert float(step.clean_loss) == pytest.approx(loss, rel=0, abs=float_tolerance(DOUBLE, loss))


def test_follow_and_sgd_differ_under_adam():
    """The two virtual steps are different models of the step: their meta-gradients differ."""
    model, optimizer = warmed(torch.optim.Adam, 3, lr=0.05)
    phi = torch.tensor([0.4, -0.3], dtype=DOUBLE, requires_grad=True)
    grads = [
        meta_step(
            model,
            None,
            None,
            controller_weights(phi, False),
            CLEAN,
            0.05,
            [phi],
            train_losses=model.per_sample(TRAIN),
            optimizer=chosen,
        ).controller_grads[0]
        for chosen in (None, optimizer)
    ]
    assert not torch.allclose(grads[0], grads[1], rtol=0.01)


@pytest.mark.parametrize(
    "optimizer_cls, options",
    [
        (torch.optim.Adam, {"lr": 0.01}),
        (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.5}),
        (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.5, "betas": (0.5, 0.8)}),
        (torch.optim.SGD, {"lr": 0.01, "weight_decay": 0.5}),
    ],
)
@pytest.mark.parametrize("warm_steps", [0, 2])
def test_virtual_parameters_are_the_real_next_step(optimizer_cls, options, warm_steps):
    """With no state yet (0 steps) Adam's virtual step is its first step, lr * g / (|g| + eps)
    per coordinate; after steps, the step from its moments. float32, as models train."""
    model = Linear(torch.float32)
    optimizer = optimizer_cls(model.parameters(), **options)
    for _ in range(warm_steps):
        optimizer.zero_grad()
        model.calculate_loss(TRAIN).backward()
        optimizer.step()
    has_state = (
        warm_steps > 0 and optimizer_cls is not torch.optim.SGD
    )  # SGD without momentum keeps none
    assert bool(optimizer.state) == has_state
    params = list(model.parameters())
    grads = torch.autograd.grad(
        (torch.tensor([2.0, 0.5, 1.0, 0.1]) * model.per_sample(TRAIN)).mean(), params
    )
    virtual = [value.detach().clone() for value in virtual_parameters(optimizer, params, grads)]
    assert bool(optimizer.state) == has_state  # reading the state created none
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    optimizer.step()
    for value, param in zip(virtual, params):
        torch.testing.assert_close(
            value, param.detach(), rtol=0, atol=float_tolerance(torch.float32, 1.0)
        )
    if optimizer_cls is torch.optim.Adam and warm_steps == 0 and "weight_decay" not in options:
        first = params[0].detach()  # the first step: lr * sign(g) up to eps, 0 where g = 0
        expected = torch.tensor([0.3, -0.2, 0.1]) - 0.01 * grads[0].sign() * (
            grads[0].abs() / (grads[0].abs() + 1e-8)
        )
        torch.testing.assert_close(
            first, expected, rtol=0, atol=float_tolerance(torch.float32, 1.0)
        )


def test_adam_first_step_has_a_finite_meta_gradient_where_no_gradient_reached():
    """w[2] has g = 0 and no state: sqrt(v) = 0 there must not turn into 0 * inf = NaN."""
    model = Linear()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    phi = torch.tensor([0.4, -0.3], dtype=DOUBLE, requires_grad=True)
    step = meta_step(
        model,
        None,
        None,
        controller_weights(phi, False),
        CLEAN,
        0.05,
        [phi],
        train_losses=model.per_sample(TRAIN),
        optimizer=optimizer,
    )
    assert (
        torch.isfinite(step.controller_grads[0]).all() and torch.isfinite(step.weight_grads).all()
    )
    numeric = finite_difference(model, optimizer, phi, False)
    tolerance = 100 * torch.finfo(DOUBLE).eps ** (2 / 3)
    torch.testing.assert_close(step.controller_grads[0], numeric, rtol=0, atol=tolerance)


@pytest.mark.parametrize(
    "optimizer, message",
    [
        (lambda p: torch.optim.Adagrad(p), "cannot follow Adagrad"),
        (lambda p: torch.optim.RMSprop(p), "cannot follow RMSprop"),
        (lambda p: torch.optim.Adam(p, amsgrad=True), "without amsgrad"),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "without momentum"),
    ],
)
def test_optimisers_it_cannot_follow_are_refused(optimizer, message):
    model = Linear()
    params = list(model.parameters())
    grads = torch.autograd.grad(model.calculate_loss(TRAIN), params)
    with pytest.raises(ValueError, match=message):
        virtual_parameters(optimizer(params), params, grads)


# --- the key --------------------------------------------------------------------------------
def test_default_is_sgd_and_the_key_is_declared():
    scheme = SCHEMES.get("autodenoise_s")(FakeConfig(controller_credit="meta"), CPU)
    assert scheme.credit.options["meta_virtual_step"] == "sgd"
    assert not scheme.credit.follow_optimizer
    assert "meta_virtual_step" in SCHEMES.get("autodenoise_h").read_keys()
    followed = SCHEMES.get("autodenoise_s")(
        FakeConfig(controller_credit="meta", meta_virtual_step="optimizer", learner="adam"), CPU
    )
    assert followed.credit.follow_optimizer


@pytest.mark.parametrize("value", ["adam", "SGD", None, 1, True])
def test_bad_values_name_key_value_and_allowed(value):
    with pytest.raises(ValueError) as error:
        read_virtual_step(FakeConfig(meta_virtual_step=value, learner="adam"), "meta")
    assert str(error.value) == (
        f"config key 'meta_virtual_step' = {value!r} is invalid: "
        "expected one of ['sgd', 'optimizer']"
    )


@pytest.mark.parametrize("learner", ["adagrad", "rmsprop", "sparse_adam", "lbfgs"])
def test_learners_it_cannot_follow_are_refused_at_construction(learner):
    config = FakeConfig(controller_credit="meta", meta_virtual_step="optimizer", learner=learner)
    with pytest.raises(ValueError) as error:
        SCHEMES.get("autodenoise_s")(config, CPU)
    assert str(error.value) == (
        f"config key 'meta_virtual_step' = 'optimizer' is invalid with learner {learner!r}: "
        "expected 'sgd' (the virtual step follows learner adam | adamw | sgd only)"
    )
    # the learner only matters where the meta credit takes virtual steps
    SCHEMES.get("autodenoise_s")(FakeConfig(meta_virtual_step="optimizer", learner=learner), CPU)


def test_bad_learner_fails_before_training(tmp_path):
    with pytest.raises(
        ValueError, match="'meta_virtual_step' = 'optimizer' is invalid with learner 'adagrad'"
    ):
        tiny_trainer(
            tmp_path,
            denoise_scheme="autodenoise_s",
            controller_credit="meta",
            meta_virtual_step="optimizer",
            learner="adagrad",
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["autodenoise_s", "autodenoise_h"])
def test_training_follows_the_real_adam(tmp_path, name):
    trainer, train, valid = tiny_trainer(
        tmp_path,
        epochs=1,
        denoise_scheme=name,
        controller_credit="meta",
        meta_virtual_step="optimizer",
        **GUIDED_TINY,
    )
    trainer.fit(train, valid)
    record = trainer.history[-1]
    assert record["controller_meta_updates"] == len(train)
    assert math.isfinite(record["controller_clean_loss_after_step"]) and math.isfinite(
        record["train_loss"]
    )
