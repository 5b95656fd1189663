"""Per-user clean-validation rewards for ``controller_credit: user``.

RecBole's GAUC is the mean over users of each user's AUC; its evaluator only returns the mean. The
``user`` credit needs the per-user values, so they are computed here from the same full-sort scores
RecBole's ``Trainer._full_sort_batch_eval`` gives (history and padding already at -inf).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def per_query_auc(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> torch.Tensor:
    """AUC of every (row, positive item) pair against the row's negatives.

    .. math::
        \\mathrm{AUC}_{r,i} = \\frac{|\\{j \\in N_r : s_{rj} < s_{ri}\\}|
            + \\tfrac12 |\\{j \\in N_r : s_{rj} = s_{ri}\\}|}{|N_r|}

    with :math:`N_r` the row's candidates (finite score) that are not among its positives.
    ``scores`` is [rows, items]; returns [pairs], NaN for a row without negatives.
    """
    positive_u = positive_u.to(scores.device)
    positive_i = positive_i.to(scores.device)
    if len(positive_u) == len(scores) and bool(
        (positive_u == torch.arange(len(scores), device=scores.device)).all()
    ):
        return _one_positive_per_row_auc(scores, positive_i)
    return _any_positives_auc(scores, positive_u, positive_i)


def _any_positives_auc(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> torch.Tensor:
    """Several positives per row: from each row sorted once (``_sorted_auc``) where every score is
    finite or -inf (masked) and the pairs are distinct, else by comparing every pair's row."""
    auc = _sorted_auc(scores, positive_u, positive_i)
    return _compared_auc(scores, positive_u, positive_i) if auc is None else auc


BLOCK_ELEMENTS = (
    2**18
)  # scores per block of rows in ``_sorted_auc``: bounds its int64 temporaries (~2 MB each)


def _sorted_auc(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> torch.Tensor | None:
    """``_compared_auc``'s values (the same integer counts, the same division) without a
    [pairs, items] copy: each row is sorted once and its positives are found in it by binary
    search (``_block_auc``). Rows go in blocks of similar numbers of positives (fewest first), so
    a block's padded positives span its own widest row. ``None`` where a row
    holds NaN or +inf, a positive's score is not finite, or a pair repeats (the comparison
    handles those)."""
    rows, items = scores.shape
    own = scores[positive_u, positive_i]
    keys = positive_u * items + positive_i
    if len(own) == 0 or not bool(torch.isfinite(own).all()) or len(torch.unique(keys)) != len(keys):
        return None
    if not bool(scores.amax() < math.inf):  # NaN propagates through amax
        return None
    counts = torch.bincount(positive_u, minlength=rows)
    by_count = torch.argsort(counts, stable=True)
    by_count = by_count[counts[by_count] > 0]
    auc = torch.empty(len(own), dtype=torch.float64, device=scores.device)
    local = torch.full((rows,), -1, dtype=torch.long, device=scores.device)
    for block in by_count.split(max(1, BLOCK_ELEMENTS // max(items, 1))):
        local[block] = torch.arange(len(block), device=scores.device)
        pairs = (local[positive_u] >= 0).nonzero().squeeze(1)
        auc[pairs] = _block_auc(scores[block], local[positive_u[pairs]], positive_i[pairs])
        local[block] = -1
    return auc


def _block_auc(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> torch.Tensor:
    """``_sorted_auc`` on rows that all hold a positive, past its checks. Each row is sorted once;
    two binary searches of its positives in it count the scores below and tied with each, and two
    in the row's sorted positives count the positives among them."""
    rows, items = scores.shape
    own = scores[positive_u, positive_i]
    # the row's positives side by side, sorted, padded with +inf (above every finite score)
    counts = torch.bincount(positive_u, minlength=rows)
    order = torch.argsort(positive_u, stable=True)
    row = positive_u[order]
    slot = torch.arange(len(order), device=scores.device) - (torch.cumsum(counts, 0) - counts)[row]
    padded = torch.full(
        (rows, int(counts.max())), math.inf, dtype=scores.dtype, device=scores.device
    )
    padded[row, slot] = own[order]
    positives = torch.sort(padded, dim=1).values
    below_all, tied_all = _counts_in(sort_rows(scores), positives)
    below_pos, tied_pos = _counts_in(positives, positives)
    rank = torch.searchsorted(positives, padded)[
        row, slot
    ]  # a pair reads its row's first equal positive
    masked = count_per_row(torch.isneginf(scores))  # -inf is below every positive
    below = (below_all[row, rank] - below_pos[row, rank] - masked[row]).double()
    ties = (tied_all[row, rank] - tied_pos[row, rank]).double()
    count = (items - masked - counts)[row].double()
    auc_sorted = torch.where(
        count > 0, (below + 0.5 * ties) / count.clamp(min=1), torch.full_like(count, float("nan"))
    )
    auc = torch.empty_like(auc_sorted)
    auc[order] = auc_sorted
    return auc


def sort_rows(values: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending. On the CPU by NumPy's vectorised sort, faster than
    ``torch.sort`` there; the sorted values, and so every count taken from them, are the same."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.sort(values.detach().numpy(), axis=1))
    return torch.sort(values, dim=1).values


def count_per_row(mask: torch.Tensor) -> torch.Tensor:
    """The number of True entries in each row of a [rows, N] bool mask (int64). On the CPU by
    NumPy's boolean row sum, faster than torch's there; the counts are the same integers."""
    if mask.device.type == "cpu":
        return torch.from_numpy(mask.numpy().sum(1, dtype=np.int64))
    return mask.sum(1)


def _counts_in(ordered: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows ``ordered`` ([rows, N], ascending, no NaN) and ``queries`` ([rows, K]):
    (#values < q, #values == q) per query, by a left and a right binary search."""
    below = torch.searchsorted(ordered, queries)
    return below, torch.searchsorted(ordered, queries, right=True) - below


def _compared_auc(
    scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
) -> torch.Tensor:
    is_positive = torch.zeros_like(scores, dtype=torch.bool)
    is_positive[positive_u, positive_i] = True
    rows = scores[positive_u]  # [pairs, items]
    negative = torch.isfinite(rows) & ~is_positive[positive_u]
    own = scores[positive_u, positive_i].unsqueeze(1)
    below = count_per_row((rows < own) & negative).double()
    ties = count_per_row((rows == own) & negative).double()
    count = count_per_row(negative).double()
    return torch.where(
        count > 0, (below + 0.5 * ties) / count.clamp(min=1), torch.full_like(count, float("nan"))
    )


def _one_positive_per_row_auc(scores: torch.Tensor, positive_i: torch.Tensor) -> torch.Tensor:
    """Row r's only positive is ``positive_i[r]`` (the per-interaction protocol, sequential models):
    no copy of the score matrix and no positive mask; -inf entries (masked) are never candidates."""
    infinite, below, tied = _row_counts(scores, scores.gather(1, positive_i.unsqueeze(1)))
    masked = infinite.double()  # -inf only: history, padding
    below = below.double() - masked  # every -inf is below a finite score
    ties = tied.double() - 1  # the positive itself
    count = scores.shape[1] - masked - 1
    return torch.where(
        count > 0, (below + 0.5 * ties) / count.clamp(min=1), torch.full_like(count, float("nan"))
    )


def _row_counts(
    scores: torch.Tensor, own: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``scores`` ([rows, N]) against ``own`` ([rows, 1]): the numbers of infinite
    entries, of entries below ``own`` and of entries equal to it (int64). On the CPU by NumPy,
    whose comparisons and boolean row sums are faster than torch's there; the counts are the same
    integers."""
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64):
        values, own = scores.detach().numpy(), own.detach().numpy()
        masks = (np.isinf(values), values < own, values == own)
        return tuple(torch.from_numpy(mask.sum(1, dtype=np.int64)) for mask in masks)
    return torch.isinf(scores).sum(1), (scores < own).sum(1), (scores == own).sum(1)


class CleanAUC:
    """Accumulates, batch by batch of full-sort scores, RecBole's GAUC (the mean AUC over (row,
    positive) pairs: RecBole weights each row's AUC by its positives) and each user's mean AUC."""

    def __init__(self, num_users: int, user_field: str, device: torch.device | str = "cpu") -> None:
        self.user_field = user_field
        self.means = UserMeans(num_users, device)
        self.total = torch.zeros(2, dtype=torch.float64, device=device)

    def add(
        self, interaction, scores: torch.Tensor, positive_u: torch.Tensor, positive_i: torch.Tensor
    ) -> None:
        device = self.total.device
        auc = per_query_auc(scores, positive_u, positive_i).to(device)
        self.means.add(interaction[self.user_field].to(device)[positive_u.to(device)], auc)
        finite = torch.isfinite(auc)
        self.total += torch.stack([auc[finite].double().sum(), finite.double().sum()])

    def result(self) -> tuple[float, torch.Tensor]:
        """(GAUC, [num_users] mean AUC per user, NaN where none)."""
        auc_sum, pairs = self.total.tolist()
        return (auc_sum / pairs if pairs else float("nan")), self.means.means()


class UserMeans:
    """Running per-user mean of per-query values (a user's AUC averaged over its clean queries)."""

    def __init__(self, num_users: int, device: torch.device | str = "cpu") -> None:
        self.sums = torch.zeros(num_users, dtype=torch.float64, device=device)
        self.counts = torch.zeros(num_users, dtype=torch.float64, device=device)

    def add(self, users: torch.Tensor, values: torch.Tensor) -> None:
        keep = torch.isfinite(values)
        users, values = users.to(self.sums.device)[keep], values.to(self.sums.device)[keep]
        self.sums.index_add_(0, users, values.double())
        self.counts.index_add_(0, users, torch.ones_like(values, dtype=torch.float64))

    def means(self) -> torch.Tensor:
        """[num_users]; NaN for users without a query."""
        return torch.where(
            self.counts > 0,
            self.sums / self.counts.clamp(min=1),
            torch.full_like(self.sums, float("nan")),
        )
