"""The meta credit's virtual step (Learning to Reweight, Ren et al. 2018): ``meta_step``
differentiates the clean loss after a virtual step of the recommender through the samples' weights
(and so through whatever produced them, the controller). The step is plain SGD or, with
``meta_virtual_step: optimizer``, the step the recommender's real optimiser would take next
(``virtual_parameters``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import torch
from recbole.data.interaction import Interaction
from torch import nn
from torch.func import functional_call

from recbole_autodenoise.guidance import (
    Guidance,
    clean_loss,
    double_backward_safe,
    trainable_parameters,
)
from recbole_autodenoise.losses import PerSampleLoss
from recbole_autodenoise.options import read


class _CleanLossModule(nn.Module):
    """``forward`` = the model's clean loss, so ``functional_call`` can evaluate it at theta'."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, interaction: Interaction) -> torch.Tensor:
        return clean_loss(self.model, interaction)


@dataclass
class MetaStep:
    controller_grads: list[torch.Tensor]  # d L_clean(theta') / d phi, one per controller parameter
    # d L_clean(theta') / d w_i = -alpha / B * <grad l_i(theta), grad L_clean(theta')>
    weight_grads: torch.Tensor
    clean_loss: torch.Tensor  # L_clean(theta'), detached


def meta_step(
    model: nn.Module,
    sample_loss_fn: PerSampleLoss,
    train_interaction: Interaction | None,
    weights: torch.Tensor,
    clean_interaction: Interaction,
    learning_rate: float,
    controller_params: Sequence[torch.Tensor],
    train_losses: torch.Tensor | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> MetaStep:
    """Virtual step theta' = theta - step(grad_theta mean_i(w_i l_i)) (kept differentiable), the
    clean loss at theta' (via ``functional_call``), and its gradient with respect to the
    controller parameters through ``weights``. The recommender and ``optimizer`` are not changed.

    Without ``optimizer`` the step is plain SGD, alpha * g with alpha the recommender's
    ``learning_rate``: Learning-to-Reweight's first-order model of "one step on these weights",
    whatever the real optimiser is. With ``optimizer`` (``meta_virtual_step: optimizer``) it is
    the step that optimiser would take next on g from its current state (``virtual_parameters``).
    ``train_losses`` as in ``per_sample_alignment``; its graph is kept.
    """
    named = trainable_parameters(model)
    params = [param for _, param in named]
    with double_backward_safe(model):
        if train_losses is None:
            train_losses = sample_loss_fn(train_interaction).losses
        inner = (weights * train_losses).mean()
        grads = torch.autograd.grad(inner, params, create_graph=True, allow_unused=True)
        if optimizer is None:
            stepped = [
                param if grad is None else param - learning_rate * grad
                for param, grad in zip(params, grads)
            ]
        else:
            stepped = virtual_parameters(optimizer, params, grads)
        updated = {f"model.{name}": value for (name, _), value in zip(named, stepped)}
        loss = functional_call(_CleanLossModule(model), updated, (clean_interaction,))
        inputs = [weights, *controller_params]
        found = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
    weight_grads = torch.zeros_like(weights) if found[0] is None else found[0]
    controller_grads = [
        torch.zeros_like(p) if g is None else g for p, g in zip(controller_params, found[1:])
    ]
    return MetaStep(controller_grads, weight_grads.detach(), loss.detach())


# --- virtual steps that follow the real optimiser (meta_virtual_step: optimizer) ----------------
VIRTUAL_STEPS = ("sgd", "optimizer")
# RecBole learners (``learner``) whose step ``virtual_parameters`` reproduces
FOLLOWED_LEARNERS = ("adam", "adamw", "sgd")


def read_virtual_step(config: Any, credit_mode: str) -> str:
    """``meta_virtual_step``, checked against the values and, for ``optimizer`` with
    ``controller_credit: meta``, against the run's ``learner``."""
    value = read(config, "meta_virtual_step")
    if credit_mode == "meta":
        check_followed_learner(config)
    return value


def check_followed_learner(config: Any) -> None:
    """``meta_virtual_step: optimizer`` follows learner adam, adamw or sgd only."""
    value = config["meta_virtual_step"]
    learner = config["learner"]
    followed = str(learner).lower() in FOLLOWED_LEARNERS
    if value == "optimizer" and not followed:
        raise ValueError(
            f"config key 'meta_virtual_step' = {value!r} is invalid with learner {learner!r}: "
            f"expected 'sgd' (the virtual step follows learner "
            f"{' | '.join(FOLLOWED_LEARNERS)} only)"
        )


def _sgd_step(param: torch.Tensor, grad: torch.Tensor, group: dict, state: dict) -> torch.Tensor:
    """torch.optim.SGD without momentum: p - lr * (g + weight_decay * p)."""
    if group["momentum"] or group.get("maximize", False):
        raise ValueError(
            "meta_virtual_step 'optimizer' follows SGD without momentum or maximize "
            "(RecBole's 'sgd')"
        )
    if group["weight_decay"]:
        grad = grad + group["weight_decay"] * param
    return param - group["lr"] * grad


def _root(values: torch.Tensor) -> torch.Tensor:
    """sqrt with gradient 0 (not 0 * inf) where the value is 0: entries no gradient ever reached."""
    positive = values > 0
    safe = torch.where(positive, values, torch.ones_like(values))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(values))


def _adam_step(
    param: torch.Tensor, grad: torch.Tensor, group: dict, state: dict, decoupled: bool = False
) -> torch.Tensor:
    """torch.optim.Adam / AdamW's next step on ``grad`` from ``state`` (empty: its first step):
    m, v updated by grad, bias corrections at step + 1, p - lr * m_hat / (sqrt(v_hat) + eps);
    weight decay decoupled (AdamW: p * (1 - lr * decay) first) or added to the gradient (Adam)."""
    if group.get("amsgrad", False) or group.get("maximize", False):
        raise ValueError(
            "meta_virtual_step 'optimizer' follows Adam without amsgrad or maximize "
            "(RecBole's 'adam')"
        )
    beta1, beta2 = group["betas"]
    lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
    step = float(state["step"]) + 1 if state else 1.0
    base = param
    if decay and (decoupled or group.get("decoupled_weight_decay", False)):
        base = param * (1 - lr * decay)
    elif decay:
        grad = grad + decay * param
    first = (1 - beta1) * grad + (beta1 * state["exp_avg"] if state else 0)
    second = (1 - beta2) * grad * grad + (beta2 * state["exp_avg_sq"] if state else 0)
    denom = _root(second) / math.sqrt(1 - beta2**step) + eps
    return base - (lr / (1 - beta1**step)) * first / denom


def _step_rule(optimizer: torch.optim.Optimizer):
    # AdamW subclasses Adam in recent torch only
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return partial(_adam_step, decoupled=isinstance(optimizer, torch.optim.AdamW))
    if type(optimizer) is torch.optim.SGD:
        return _sgd_step
    raise ValueError(
        f"meta_virtual_step 'optimizer' cannot follow {type(optimizer).__name__}: "
        f"supported are the optimisers of learner {' | '.join(FOLLOWED_LEARNERS)}"
    )


def virtual_parameters(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
) -> list[torch.Tensor]:
    """The parameters after the step ``optimizer`` would take next with gradients ``grads``,
    differentiable with respect to the grads (and so to whatever they depend on); the optimiser's
    state is read, never written. A parameter without gradient stays, as the real step skips it.
    RecBole's ``clip_grad_norm`` (off by default) is not applied to the virtual step."""
    rule = _step_rule(optimizer)
    groups = {param: group for group in optimizer.param_groups for param in group["params"]}
    stepped = []
    for param, grad in zip(params, grads):
        if grad is None:
            stepped.append(param)
            continue
        if param not in groups:
            raise ValueError(
                "meta_virtual_step 'optimizer': a trainable parameter is not in the "
                "optimiser's groups"
            )
        stepped.append(rule(param, grad, groups[param], optimizer.state.get(param, {})))
    return stepped


def guided_meta_step(
    guidance: Guidance,
    weights: torch.Tensor,
    controller_params: Sequence[torch.Tensor],
    follow_optimizer: bool = False,
) -> MetaStep:
    """``meta_step`` on ``guidance``'s batch with the given (controller-attached) weights; with
    ``follow_optimizer`` the virtual step is the real optimiser's next step."""
    if follow_optimizer and guidance.optimizer is None:
        raise ValueError(
            "meta_virtual_step 'optimizer' needs the recommender's optimiser: "
            "train with AutoDenoiseTrainer (it hands its optimiser to Guidance)"
        )
    return meta_step(
        guidance.model,
        guidance.sample_loss,
        guidance.interaction,
        weights,
        guidance.clean_batch(),
        guidance.learning_rate,
        controller_params,
        train_losses=guidance.train_losses,
        optimizer=guidance.optimizer if follow_optimizer else None,
    )
