"""The AutoDenoise controller's policy (paper Sec. 4.3) and its REINFORCE gradient (Eq. 10).

The trunk is an MLP with two ReLU layers of ``controller_hidden_size`` units over the controller's
state (``controller.state``); the heads follow Eq. 12 (hard) and Eqs. 13-16 (soft). The heads
start with zero weights, so every sample starts from the same distribution, chosen so the expected
initial weight is 1 (see ``HardPolicy`` and ``SoftPolicy``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

INV_SOFTPLUS_OF_ONE = math.log(math.e - 1.0)  # the soft mean head's bias as sigma -> 0
_HERMITE = np.polynomial.hermite_e.hermegauss(40)


def _trunk_inputs(trunk: nn.Sequential, state: torch.Tensor) -> list[torch.Tensor]:
    """The input of every layer of ``trunk`` and, last, its output (the same calls as
    ``trunk(state)``)."""
    values = [state]
    for layer in trunk:
        values.append(layer(values[-1]))
    return values


def _trunk_backward(
    trunk: nn.Sequential, values: list[torch.Tensor], grad: torch.Tensor
) -> list[torch.Tensor]:
    """Sum over rows of d(sum_j grad_j . out_j) / d parameters of a Linear / ReLU trunk, in
    ``trunk.parameters()`` order, from ``_trunk_inputs``' values."""
    grads: list[torch.Tensor] = []
    for index in range(len(trunk) - 1, -1, -1):
        layer, given, output = trunk[index], values[index], values[index + 1]
        if isinstance(layer, nn.ReLU):
            grad = torch.ops.aten.threshold_backward(
                grad, output, 0
            )  # autograd's own ReLU backward
        elif isinstance(layer, nn.Linear):
            grads[:0] = [grad.t() @ given, grad.sum(0)]
            if index > 0:
                grad = grad @ layer.weight
        else:
            raise TypeError(
                f"no hand-written backward for {type(layer).__name__} in the controller's trunk"
            )
    return grads


def _linear_score(hidden: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
    """Sum over rows of d(grad . head(hidden)) / d (head.weight, head.bias); ``grad`` is
    [B, out]."""
    return [grad.t() @ hidden, grad.sum(0)]


class Policy(nn.Module):
    """Trunk shared by both controllers: Linear -> ReLU -> Linear -> ReLU."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
        )

    def sample(
        self, state: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample an action per row; return (action, weight), both detached."""
        with torch.no_grad():
            return self._draw(self._heads(self.trunk(state)), generator)

    def sample_scored(
        self, state: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``sample`` (the same draws from the same generator) plus sum_j grad_phi log pi(a_j | s_j)
        over the rows, one tensor per parameter in ``parameters()`` order, from the sampling
        forward pass itself: the heads' score has a closed form in their outputs and the trunk is
        back-propagated by hand (no autograd graph, no second forward)."""
        with torch.no_grad():
            inputs = _trunk_inputs(self.trunk, state)
            hidden = inputs[-1]
            outputs = self._heads(hidden)
            action, weight = self._draw(outputs, generator)
            head_grads, grad_hidden = self._head_score(hidden, outputs, action)
            grads = _trunk_backward(self.trunk, inputs, grad_hidden) + head_grads
        return action, weight, grads

    def _heads(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _draw(
        self, outputs: tuple[torch.Tensor, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _head_score(
        self, hidden: torch.Tensor, outputs: tuple[torch.Tensor, ...], action: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(sum over rows of d log pi / d head parameters, in order; d log pi / d hidden per
        row)."""
        raise NotImplementedError

    def log_prob(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def meta_weights(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Weights attached to the policy's parameters, for ``controller_credit: meta``."""
        raise NotImplementedError


def _mean_one_tilt(num_actions: int) -> float:
    """theta with sum_k k e^{theta k} / sum_k e^{theta k} = 1 (bisection; theta = 0 for A = 3)."""

    def mean(theta: float) -> float:
        logits = torch.arange(num_actions, dtype=torch.float64) * theta
        probs = torch.softmax(logits, dim=0)
        return float((probs * torch.arange(num_actions, dtype=torch.float64)).sum())

    low, high = -20.0, 20.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if mean(mid) < 1.0 else (low, mid)
    return (low + high) / 2


class HardPolicy(Policy):
    """Categorical over A actions, action k gives weight k (0 drop, 1 keep, 2 duplicate, ...).

    Initial logits are ``theta * k`` with theta chosen so that the expected weight is exactly 1
    (uniform for A = 3). With A = 2 (drop / keep) a mean of 1 would need "keep" for sure; there the
    initial keep probability is 0.9.
    """

    def __init__(self, input_size: int, hidden_size: int, num_actions: int) -> None:
        super().__init__(input_size, hidden_size)
        self.num_actions = num_actions
        self.head = nn.Linear(hidden_size, num_actions)
        theta = math.log(9.0) if num_actions == 2 else _mean_one_tilt(num_actions)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(theta * torch.arange(num_actions, dtype=torch.float32))

    def logits(self, state: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(state))

    def _heads(self, hidden):
        """(logits, their softmax): the draw and the score share one softmax."""
        logits = self.head(hidden)
        return logits, torch.softmax(logits, dim=1)

    def _draw(self, outputs, generator):
        logits, probs = outputs
        action = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return action, action.to(logits.dtype)

    def _head_score(self, hidden, outputs, action):
        """d log softmax(z)_a / d z = onehot(a) - softmax(z)."""
        _, probs = outputs
        grad = -probs
        grad.scatter_add_(1, action.unsqueeze(1), torch.ones_like(grad[:, :1]))
        return _linear_score(hidden, grad), grad @ self.head.weight

    def log_prob(self, state, action):
        return (
            torch.log_softmax(self.logits(state), dim=1).gather(1, action.unsqueeze(1)).squeeze(1)
        )

    def meta_weights(self, state, generator):
        """E_pi[k | s]: no pathwise gradient through a categorical sample, and since the
        first-order clean-loss change is linear in each weight, the gradient of this expectation is
        the expected per-sample REINFORCE gradient with no sampling noise (draws nothing)."""
        probs = torch.softmax(self.logits(state), dim=1)
        return probs @ torch.arange(self.num_actions, dtype=probs.dtype, device=probs.device)


def _softplus_mean(mu: float, std: float) -> float:
    """E[softplus(w)], w ~ N(mu, std^2), by 40-point Gauss-Hermite quadrature."""
    nodes, weights = _HERMITE
    return float((weights * np.logaddexp(0.0, mu + std * nodes)).sum() / weights.sum())


class SoftPolicy(Policy):
    """w ~ N(mu, sigma^2) with a mean head and a softplus variance head; weight = softplus(w).

    Initially sigma = ``init_std`` and mu solves E[softplus(w)] = 1 (mu = log(e - 1) when
    sigma -> 0).
    """

    def __init__(self, input_size: int, hidden_size: int, init_std: float) -> None:
        super().__init__(input_size, hidden_size)
        self.mean_head = nn.Linear(hidden_size, 1)
        self.var_head = nn.Linear(hidden_size, 1)
        low, high = -10.0, 10.0
        for _ in range(100):
            mid = (low + high) / 2
            low, high = (mid, high) if _softplus_mean(mid, init_std) < 1.0 else (low, mid)
        variance = init_std**2
        for head, bias in (
            (self.mean_head, (low + high) / 2),
            (self.var_head, math.log(math.expm1(variance))),
        ):
            nn.init.zeros_(head.weight)
            nn.init.constant_(head.bias, bias)

    MIN_VARIANCE = 1e-12  # softplus underflows to 0 once a row's variance collapses

    def distribution(self, state: torch.Tensor) -> torch.distributions.Normal:
        mean, _, std = self._heads(self.trunk(state))
        return torch.distributions.Normal(mean, std)

    def _heads(self, hidden):
        """(mean, raw variance-head output, std)."""
        mean = self.mean_head(hidden).squeeze(1)
        raw = self.var_head(hidden).squeeze(1)
        # a collapsed (deterministic) row is a legitimate policy state, but Normal needs std > 0
        variance = F.softplus(raw).clamp_min(self.MIN_VARIANCE)
        return mean, raw, variance.sqrt()

    def _draw(self, outputs, generator):
        mean, _, std = outputs
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        action = mean + std * noise
        return action, F.softplus(action)

    def _head_score(self, hidden, outputs, action):
        """log N(a; m, s) = -(a - m)^2 / (2 s^2) - log s - log sqrt(2 pi): d/dm = (a - m) / s^2,
        d/ds = (a - m)^2 / s^3 - 1 / s; s = sqrt(max(softplus(r), MIN)): ds/dr = sigmoid(r) / (2 s)
        where softplus(r) >= MIN (autograd's clamp_min passes the gradient there), else 0."""
        mean, raw, std = outputs
        diff = action - mean
        variance = std * std
        grad_mean = diff / variance
        grad_std = diff * diff / (variance * std) - 1.0 / std
        # softplus' backward: 1 above its threshold (20), sigmoid below
        slope = torch.where(raw > 20.0, torch.ones_like(raw), torch.sigmoid(raw))
        open_clamp = F.softplus(raw) >= self.MIN_VARIANCE
        grad_raw = torch.where(open_clamp, grad_std / (2.0 * std) * slope, torch.zeros_like(raw))
        grads = _linear_score(hidden, grad_mean.unsqueeze(1)) + _linear_score(
            hidden, grad_raw.unsqueeze(1)
        )
        grad_hidden = (
            grad_mean.unsqueeze(1) * self.mean_head.weight
            + grad_raw.unsqueeze(1) * self.var_head.weight
        )
        return grads, grad_hidden

    def log_prob(self, state, action):
        return self.distribution(state).log_prob(action)

    def meta_weights(self, state, generator):
        """Reparameterised softplus(mu + sigma * eps), eps ~ N(0, 1) from ``generator``: the
        pathwise gradient reaches both heads."""
        dist = self.distribution(state)
        noise = torch.randn(
            dist.mean.shape, generator=generator, device=state.device, dtype=state.dtype
        )
        return F.softplus(dist.mean + dist.stddev * noise)


class ReinforceAccumulator:
    """Sum of grad log pi(w|s) over the samples since the last reward, in O(|Phi|) memory.

    Phi is fixed while the recommender trains, so sum_j grad log pi(w_j|s_j) can be added up batch
    by batch and scaled by (R - b) / |D| once the reward is known: identical to Eq. 10 without
    keeping any batch's graph.
    """

    def __init__(self, policy: Policy) -> None:
        self.params = [p for p in policy.parameters()]
        self.sums = [torch.zeros_like(p) for p in self.params]
        self.count = 0

    def add(self, log_probs: torch.Tensor) -> None:
        grads = torch.autograd.grad(log_probs.sum(), self.params, allow_unused=True)
        for total, grad in zip(self.sums, grads):
            if grad is not None:
                total.add_(grad)
        self.count += log_probs.numel()

    def add_grads(self, grads: list[torch.Tensor], rows: int) -> None:
        """Add sum_j grad log pi(w_j|s_j) over ``rows`` samples, already computed
        (``Policy.sample_scored``)."""
        for total, grad in zip(self.sums, grads):
            total.add_(grad)
        self.count += rows

    def sum_over_ranks(self) -> None:
        """Under DDP: the sums and the sample count of every rank (no-op in a single process)."""
        from recbole_autodenoise import distributed

        for total in self.sums:
            total.copy_(distributed.all_reduce_sum(total))
        self.count = int(
            distributed.all_reduce_sum(
                torch.tensor(self.count, dtype=torch.int64, device=self.sums[0].device)
            )
        )

    def policy_gradient(self, advantage: float) -> list[torch.Tensor]:
        """Eq. 10: (R - b) / |D| * sum_j grad log pi(w_j | s_j) (ascent direction)."""
        return [total * (advantage / self.count) for total in self.sums]

    def reset(self) -> None:
        for total in self.sums:
            total.zero_()
        self.count = 0

    def state_dict(self) -> dict:
        return {"sums": [t.clone() for t in self.sums], "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        for total, saved in zip(self.sums, state["sums"]):
            total.copy_(saved)
        self.count = int(state["count"])
