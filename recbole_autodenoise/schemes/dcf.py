"""DCF, Double Correction Framework (He et al., "Double Correction Framework for Denoising
Recommendation", KDD 2024), as its authors' code (github.com/bruno686/DCF, ``loss.py``
``PLC_uncertain_discard`` and ``main.py``) computes it, per training row instead of per batch
position.

Per training interaction i at epoch e (0-based; s = e + 1), with loss l_i of the batch:

- damped loss f(l) = log(1 + l + l^2 / 2), a non-decreasing damping of outliers;
- running mean m_i <- (m_i * s + f(l_i)) / (s + 1), m_i = 0 at the start of each cycle of
  ``dcf_time_step`` epochs (s keeps counting epochs from the start of training, as in their code);
- concentration bound b_i = lam * (s + lam * log(2 s) / s^2) / (n_i + 1 - lam), lam =
  ``dcf_co_lambda`` * max(0, 1 - e / (H - 1)) with H = ``dcf_lambda_horizon`` (their
  ``co_lambda * linspace(1, 0, epochs)`` over the H epochs their ``main.py`` trains by default,
  0 from epoch H - 1 on), n_i = 1 + the epochs of this cycle in which i was not among the
  batch's highest bounds (below);
- lower bound L_i = relu(m_i - b_i); the batch is ranked by L ascending (stable order on ties).

With drop rate r (ADT's schedule and keys: ``adt_max_drop_rate``, ``adt_num_gradual``,
``adt_gradual_unit``, as their ``drop_rate_schedule``) and relabel ratio rho =
``dcf_relabel_ratio``, of B samples the int((1 - r) B) lowest are kept and the highest from
int(((1 - rho) + rho (1 - r)) B) on are "relabelled"; the rest are dropped. The loss is the mean
over kept and relabelled samples (weight B / their number, at least one sample kept). Those below
the relabel cut add 1 to n_i.

Relabelling: the paper relabels the most certain noisy positives as negatives; the released code
keeps them in the loss with their original label (its training matrix is never changed). BPR's
pairwise and the sequential models' cross-entropy losses have no label a weight could flip, so
this scheme does what the code does: the relabelled share stays in the loss, unchanged
(``dcf_relabel_ratio: 0`` drops the whole share instead). Their batches hold one sampled negative
per positive, which never drops (its loss counts as 0), so their r is a fraction of positives and
negatives together; with pairwise or cross-entropy losses every sample is a positive (its negatives
inside its loss), so r is the fraction of positives dropped, as in ADT-TL. Where the batch holds
labelled rows (``Batch.labels``: a pointwise model with sampled negatives) a negative's damped loss
is 0 as in their code: its mean and lower bound are 0, it never drops, and only the positives' rows
(whose id the negatives of that row share) update the store.

Memory: 8 bytes per training interaction (float32 running mean and count) plus the int64 row id
column (``rows.add_row_ids``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from recbole_autodenoise import options
from recbole_autodenoise.checks import fraction, is_number, positive_int
from recbole_autodenoise.options import Option
from recbole_autodenoise.rows import add_row_ids, load_rows, mean_by
from recbole_autodenoise.schemes.adt_tl import TruncatedLossScheme
from recbole_autodenoise.schemes.base import Batch, register_scheme


def damped(losses: torch.Tensor) -> torch.Tensor:
    """log(1 + l + l^2 / 2), DCF's damping function."""
    return torch.log(1 + losses + losses * losses / 2)


def confidence_bound(counts: torch.Tensor, epoch: int, co_lambda: float) -> torch.Tensor:
    """lam * (s + lam * log(2 s) / s^2) / (n + 1 - lam) with s = epoch + 1, per count n."""
    s = epoch + 1
    return co_lambda * (s + co_lambda * math.log(2 * s) / (s * s)) / (counts + 1 - co_lambda)


def dcf_selection(
    lower_bounds: torch.Tensor, drop_rate: float, relabel_ratio: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (B / used on the kept and relabelled samples, 0 on the dropped) and the mask of
    the samples below the relabel cut, from the lower bounds, as their ``PLC_uncertain_discard``."""
    size = lower_bounds.numel()
    order = torch.argsort(lower_bounds, stable=True)
    keep = max(int((1 - drop_rate) * size), 1)
    cut = int(((1 - relabel_ratio) + relabel_ratio * (1 - drop_rate)) * size)
    used = torch.zeros(size, dtype=torch.bool, device=lower_bounds.device)
    used[order[:keep]] = True
    used[order[cut:]] = True
    below = torch.zeros_like(used)
    below[order[:cut]] = True
    count = keep + (size - cut) - max(keep - cut, 0)  # used.sum(), without a device sync
    return used.to(lower_bounds.dtype) * (size / count), below


class DCFStore:
    """Per training row: the damped running mean of this cycle and the count n (1 at a reset)."""

    def __init__(self, rows: int, device: torch.device | str) -> None:
        self.mean = torch.zeros(rows, dtype=torch.float32, device=device)
        self.count = torch.ones(rows, dtype=torch.float32, device=device)
        self.cycle_epoch = -1  # the epoch whose start last reset the store

    def begin(self, epoch: int, time_step: int) -> None:
        """Reset at the first batch of an epoch that starts a cycle."""
        if epoch % time_step == 0 and epoch != self.cycle_epoch:
            self.mean.zero_()
            self.count.fill_(1.0)
            self.cycle_epoch = epoch

    def lower_bounds(
        self, rows: torch.Tensor, losses: torch.Tensor, epoch: int, co_lambda: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's updated running mean and its lower bound relu(mean - bound)."""
        s = epoch + 1
        mean = (self.mean[rows].to(losses.dtype) * s + damped(losses)) / (s + 1)
        bound = confidence_bound(self.count[rows].to(losses.dtype), epoch, co_lambda)
        return mean, torch.relu(mean - bound)

    def update(self, rows: torch.Tensor, mean: torch.Tensor, below: torch.Tensor) -> None:
        """Store the means (copies of a row in one batch averaged); n + 1 for rows below the cut."""
        unique, groups = torch.unique(rows, return_inverse=True)
        row_mean, _ = mean_by(groups, mean.detach().float(), unique.numel())
        self.mean[unique] = row_mean
        self.count[torch.unique(rows[below])] += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.cpu().clone(),
            "count": self.count.cpu().clone(),
            "cycle_epoch": self.cycle_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_rows(self, state, ("mean", "count"), "DCF store")
        self.cycle_epoch = int(state["cycle_epoch"])


@register_scheme("dcf")
class DCFScheme(TruncatedLossScheme):
    OPTIONS = options.declare(
        Option(
            "dcf_co_lambda",
            "float",
            0.0001,
            "DCF: lambda (sigma^2) of the loss bound, in [0, 1)",
            fraction,
            "a number in [0, 1)",
        ),
        Option(
            "dcf_lambda_horizon",
            "int",
            10,
            "DCF: epochs in which lambda falls linearly to 0",
            positive_int,
            "a positive integer",
        ),
        Option(
            "dcf_time_step",
            "int",
            3,
            "DCF: epochs per cycle; each cycle restarts the per-row damped mean loss and counts",
            positive_int,
            "a positive integer",
        ),
        Option(
            "dcf_relabel_ratio",
            "float",
            0.05,
            "DCF: share rho in [0, 1] of the dropped that is kept instead (highest bounds; their "
            "code's 'relabel' keeps the label)",
            lambda v: is_number(v) and 0 <= v <= 1,
            "a number in [0, 1]",
        ),
    )

    def __init__(self, config, device) -> None:
        super().__init__(config, device)
        self.co_lambda = config["dcf_co_lambda"]
        self.time_step = config["dcf_time_step"]
        self.relabel_ratio = config["dcf_relabel_ratio"]
        self.lambda_horizon = config["dcf_lambda_horizon"]
        self.store: DCFStore | None = None
        self._pending_store: dict[str, Any] | None = None

    def setup(self, train_dataset, held_out=None) -> None:
        super().setup(train_dataset, held_out)
        self.store = DCFStore(add_row_ids(train_dataset), self.device)
        if self._pending_store is not None:
            self.store.load_state_dict(self._pending_store)
            self._pending_store = None

    def co_lambda_at(self, epoch: int) -> float:
        """``dcf_co_lambda`` * linspace(1, 0, H)[epoch] for H = ``dcf_lambda_horizon``; 0 after."""
        return self.co_lambda * max(0.0, 1 - epoch / max(self.lambda_horizon - 1, 1))

    def weights(self, batch: Batch) -> torch.Tensor:
        if self.store is None or batch.row_ids is None:
            raise ValueError(
                "denoise_scheme 'dcf' needs the training rows' ids: train with AutoDenoiseTrainer "
                "(the scheme's setup adds them)"
            )
        rows = batch.row_ids.to(self.store.mean.device).long()
        self.store.begin(batch.epoch, self.time_step)
        losses = batch.losses.detach()
        positive = None
        if batch.labels is not None:
            positive = (batch.labels > 0).to(rows.device)
            losses = losses * batch.labels
        mean, lower = self.store.lower_bounds(
            rows, losses, batch.epoch, self.co_lambda_at(batch.epoch)
        )
        if positive is not None:
            mean, lower = mean * positive, lower * positive
        weights, below = dcf_selection(lower, self.next_drop_rate(), self.relabel_ratio)
        if positive is None:
            self.store.update(rows, mean, below)
        else:
            self.store.update(rows[positive], mean[positive], below[positive])
        return weights.to(batch.losses.device)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.store is not None:
            state["dcf_store"] = self.store.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "dcf_store" not in state:
            return
        if self.store is None:  # a resumed run loads before the trainer's setup
            self._pending_store = state["dcf_store"]
        else:
            self.store.load_state_dict(state["dcf_store"])
