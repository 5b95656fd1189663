"""Guide / select split of the clean validation set.

A denoiser that learns from the clean validation set (AutoDenoise's reward) and is also early
stopped and tuned on it overfits that set. With ``clean_valid_guide_ratio`` r > 0 each user's
clean validation rows are split at random: the *guide* part (about r of them) is what denoisers
learn from, the *select* part is what RecBole validates on (early stopping, ``valid_metric``).
``clean_valid_guide_order: chronological`` instead puts each user's *older* validation rows (all
ratings) in the guide part and selects on the clean rows among the newer ones.
"""

from __future__ import annotations

import math

import numpy as np

GUIDE_ORDERS = ("random", "chronological")


def guide_count(rows: int, ratio: float) -> int:
    """How many of a user's ``rows`` clean validation rows go to the guide part.

    round-half-up(r * rows), but at least 1 and at most rows - 1: every user with two or more rows
    contributes to both parts, a user with one row stays in select (so select covers every user).
    """
    if rows < 2 or ratio <= 0:
        return 0
    return min(max(math.floor(ratio * rows + 0.5), 1), rows - 1)


def guide_mask(users: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """True for the rows (of a clean validation set, one entry per row) drawn into the guide part;
    users are visited in ascending id order, so the draw depends on the seed and the data only."""
    mask = np.zeros(len(users), dtype=bool)
    order = np.argsort(users, kind="stable")
    _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)
    for start, rows in zip(starts.tolist(), counts.tolist()):
        wanted = guide_count(rows, ratio)
        if wanted:
            mask[rng.choice(order[start : start + rows], size=wanted, replace=False)] = True
    return mask


def chronological_guide_mask(users: np.ndarray, times: np.ndarray, ratio: float) -> np.ndarray:
    """True for each user's ``guide_count(rows, ratio)`` oldest rows (of a validation set, one entry
    per row, all ratings). Rows with equal times are ranked in their given order (the split's
    chronological order, whose same-second ties the dataset has already ordered)."""
    mask = np.zeros(len(users), dtype=bool)
    order = np.argsort(times, kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)
    for start, rows in zip(starts.tolist(), counts.tolist()):
        mask[order[start : start + guide_count(rows, ratio)]] = True
    return mask
