"""Noise whose truth is known: fake training interactions, flagged so a denoiser can be scored.

Real data never says which clicks are noise (low ratings are only a proxy). Injecting fake
interactions into the training split gives a ground truth: every injected row carries
``noise_injected = 1`` and every real row 0. This module only draws *which* rows to inject; the
dataset classes (``dataset.py``) place them in the training split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

INJECTED_FIELD = "noise_injected"
NOISE_KINDS = ("random", "popular", "foreign")

# Independent streams of one seed: the noise and the guide/select split never share draws.
NOISE_STREAM = 0x6E6F6973
GUIDE_STREAM = 0x67756964


def seeded_generator(seed: int, stream: int) -> np.random.Generator:
    """A generator that depends on ``seed`` and on which feature draws (``stream``) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


@dataclass(frozen=True)
class Injection:
    """The injected interactions, sorted by user: internal user/item ids and timestamps."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def draw_noise(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    train_mask: np.ndarray,
    target_mask: np.ndarray,
    item_num: int,
    count: int,
    kind: str,
    rng: np.random.Generator,
    user_name: Callable[[int], str] = str,
) -> Injection:
    """Draw ``count`` fake interactions.

    ``users``/``items``/``timestamps`` hold every real interaction (all splits, internal ids; item
    0 is RecBole's padding and never drawn). ``train_mask`` marks the interactions a model trains
    on: they define each user's time span, the item popularity (``popular``) and the histories
    ``foreign`` borrows from. ``target_mask`` marks the training *rows* (a subset): the user of
    each fake interaction is the user of a uniformly drawn training row, so users get noise in
    proportion to their training activity. A user never gets an item of its own training
    interactions, nor the same fake item twice; where a user lacks enough such items,
    ``ValueError``. Its held-out (validation, test) items may be drawn: real stray clicks can hit
    items a user interacts with later, and avoiding them would make the draw depend on the future.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind={kind!r} is not one of {list(NOISE_KINDS)}")
    user_num = int(users.max()) + 1 if len(users) else 0
    target_rows = np.flatnonzero(target_mask)
    if count > 0 and len(target_rows) == 0:
        raise ValueError("noise injection needs at least one training row")
    trained_pairs = len(
        np.unique(users[train_mask].astype(np.int64) * item_num + items[train_mask])
    )
    free = len(np.unique(users[target_rows])) * (item_num - 1) - trained_pairs
    if count > free:  # before any draw: a huge noise_rate must not allocate count rows first
        raise ValueError(
            f"noise_rate asks for {count} fake interactions, "
            f"more than the {max(free, 0)} (user, item) "
            f"pairs its users have not trained on; use a smaller noise_rate"
        )
    drawn_users = (
        users[rng.choice(target_rows, size=count)] if count > 0 else np.zeros(0, dtype=np.int64)
    )
    per_user = np.bincount(drawn_users, minlength=user_num)

    train = sp.csr_matrix(
        (np.ones(int(train_mask.sum()), dtype=np.int64), (users[train_mask], items[train_mask])),
        shape=(user_num, item_num),
    )
    train.sum_duplicates()
    popularity = np.asarray(train.sum(axis=0)).ravel().astype(np.float64)
    train_has = (
        (train > 0).astype(np.int64).tocsr()
    )  # user x item: 1 where the item is in u's training history
    holders = train_has.tocsc()
    low = np.full(user_num, np.inf)
    high = np.full(user_num, -np.inf)
    np.minimum.at(low, users[train_mask], timestamps[train_mask])
    np.maximum.at(high, users[train_mask], timestamps[train_mask])

    out_users, out_items, out_times = [], [], []
    for user in np.flatnonzero(per_user):
        wanted = int(per_user[user])
        unseen = np.ones(item_num, dtype=bool)
        unseen[0] = False
        unseen[train_has.indices[train_has.indptr[user] : train_has.indptr[user + 1]]] = False
        if kind == "random":
            chosen = _without_replacement(
                rng, np.flatnonzero(unseen), None, wanted, user, user_name, kind
            )
        elif kind == "popular":
            candidates = np.flatnonzero(unseen & (popularity > 0))
            chosen = _without_replacement(
                rng, candidates, popularity[candidates], wanted, user, user_name, kind
            )
        else:
            chosen = _foreign(rng, train_has, holders, unseen, user, wanted, user_name)
        out_users.append(np.full(wanted, user, dtype=np.int64))
        out_items.append(np.asarray(chosen, dtype=np.int64))
        out_times.append(
            rng.uniform(low[user], high[user], size=wanted)
            if high[user] > low[user]
            else np.full(wanted, low[user])
        )
    if not out_users:
        return Injection(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    return Injection(
        np.concatenate(out_users), np.concatenate(out_items), np.concatenate(out_times)
    )


def _shortage(kind: str, user_name: str, wanted: int, available: int, what: str) -> ValueError:
    return ValueError(
        f"noise_rate is too large for noise_kind={kind!r}: user {user_name} was drawn for {wanted} "
        f"fake interactions but only {available} {what} exist; lower noise_rate"
    )


def _without_replacement(
    rng: np.random.Generator,
    candidates: np.ndarray,
    weights: np.ndarray | None,
    wanted: int,
    user: int,
    user_name: Callable[[int], str],
    kind: str,
) -> np.ndarray:
    if len(candidates) < wanted:
        what = (
            "items outside its training history"
            if weights is None
            else ("items outside its training history with training popularity > 0")
        )
        raise _shortage(kind, user_name(user), wanted, len(candidates), what)
    p = None if weights is None else weights / weights.sum()
    return rng.choice(candidates, size=wanted, replace=False, p=p)


def _foreign(
    rng: np.random.Generator,
    train_has: sp.csr_matrix,
    holders: sp.csc_matrix,
    unseen: np.ndarray,
    user: int,
    wanted: int,
    user_name: Callable[[int], str],
) -> list[int]:
    """Each item: another user drawn uniformly among those whose training history still holds an
    item outside ``user``'s training history (not yet given), then one of those items uniformly."""
    remaining = unseen.copy()
    offers = train_has @ remaining.astype(
        np.int64
    )  # per user: usable items in its history (0 for ``user``)
    available = int(np.count_nonzero(remaining & (np.diff(holders.indptr) > 0)))
    if available < wanted:
        raise _shortage(
            "foreign",
            user_name(user),
            wanted,
            available,
            "items outside its training history in other users' training histories",
        )
    chosen = []
    for _ in range(wanted):
        donor = rng.choice(np.flatnonzero(offers > 0))
        history = train_has.indices[train_has.indptr[donor] : train_has.indptr[donor + 1]]
        item = int(rng.choice(history[remaining[history]]))
        chosen.append(item)
        remaining[item] = False
        offers[holders.indices[holders.indptr[item] : holders.indptr[item + 1]]] -= 1
    return chosen
