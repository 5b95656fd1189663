"""Canaries (``explicit_canaries``): stray clicks the method plants itself, trained beside the
real rows.

The explicit credit's stray-click rows (``explicit_negatives``) are held-out rows: the recommender
never trained on them, so their loss and embeddings look unlike those of any training row, and a
controller fitted to them learns "never trained on" as much as "stray click" (injected noise,
which *is* trained on, kept 0.76 of a true positive's weight). A canary is a training row's copy
whose item is replaced by one its user never interacted with in training or validation (the test
split is not reachable from the training dataset), drawn in proportion to the item's
training popularity, as a stray click on the catalogue would be. A fixed share
(``explicit_canaries``) of the training rows each gets one canary with a fixed item, drawn once from
the run's seed; whenever the source row is in a training batch its canary joins that batch, so the
recommender trains on canaries every epoch (with the weights the controller gives them), as on real
noise. The controller is then also fitted to tell each canary (label 0) from its source row
(label 1): same user, same moment, both trained on. The method knows which rows it planted; it
never reads a training row's rating. Canaries are flagged ``CANARY_FIELD`` = 1 (``rows``) and
belong to no group of the weight study (``diagnostics.sample_groups``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from recbole.data.interaction import Interaction, cat_interactions

from recbole_autodenoise.data.noise import seeded_generator
from recbole_autodenoise.guidance import NoFreeItem, redraw_avoiding
from recbole_autodenoise.rows import CANARY_FIELD, ROW_FIELD, add_row_ids

CANARY_STREAM = 0x63616E61
MAX_REDRAWS = 1000


def user_item_keys(users: np.ndarray, items: np.ndarray, item_num: int) -> np.ndarray:
    """Sorted unique keys user * item_num + item."""
    return np.unique(users.astype(np.int64) * item_num + items.astype(np.int64))


def draw_avoiding(
    users: np.ndarray, pool: np.ndarray, known: np.ndarray, item_num: int, rng: np.random.Generator
) -> np.ndarray:
    """Per user, an item of ``pool`` drawn uniformly (so items by their count in it), redrawn
    where (user, item) is in ``known`` (sorted keys)."""
    draw = lambda n: torch.from_numpy(pool[rng.integers(len(pool), size=n)])  # noqa: E731
    try:
        items = redraw_avoiding(
            torch.from_numpy(users),
            draw,
            torch.from_numpy(known),
            item_num,
            max_redraws=MAX_REDRAWS,
        )
    except NoFreeItem as stuck:
        raise ValueError(
            f"explicit_canaries: could not draw an unseen item for user(s) {stuck.users} "
            f"in {MAX_REDRAWS} rounds: they have (almost) every item; lower explicit_canaries or "
            "use 0"
        ) from None
    return items.numpy()


class Canaries:
    """The canary of each chosen training row: ``round(rate * N)`` of the N training rows, chosen
    uniformly without replacement, each with a fixed item that neither the training rows nor the
    validation rows (``held_out``: ``TrainingData.valid_rows``) pair with its user."""

    def __init__(
        self, train_dataset: Any, rate: float, seed: int, held_out: Interaction | None = None
    ) -> None:
        feat = train_dataset.inter_feat
        if ROW_FIELD not in feat.interaction:
            add_row_ids(train_dataset)
        self.user_field, self.item_field = train_dataset.uid_field, train_dataset.iid_field
        item_num = int(train_dataset.item_num)
        users, items = feat[self.user_field].numpy(), feat[self.item_field].numpy().astype(np.int64)
        seen_users, seen_items = [users], [items]
        history = getattr(
            train_dataset, "item_id_list_field", None
        )  # sequential: the first item is history only
        if history is not None and history in feat.interaction:
            lists = feat[history].numpy()
            seen_users.append(np.repeat(users, lists.shape[1])[lists.ravel() > 0])
            seen_items.append(lists.ravel()[lists.ravel() > 0])
        if held_out is not None:  # nor a validation item
            seen_users.append(held_out[self.user_field].numpy())
            seen_items.append(held_out[self.item_field].numpy())
        known = user_item_keys(np.concatenate(seen_users), np.concatenate(seen_items), item_num)
        rng = seeded_generator(int(seed), CANARY_STREAM)
        count = int(round(rate * len(feat)))
        sources = np.sort(rng.choice(len(feat), size=count, replace=False))
        self.count = count
        self.is_source = torch.zeros(len(feat), dtype=torch.bool)
        self.is_source[torch.from_numpy(sources)] = True
        self.items = torch.zeros(len(feat), dtype=feat[self.item_field].dtype)
        drawn = draw_avoiding(users[sources], items, known, item_num, rng)
        self.items[torch.from_numpy(sources)] = torch.from_numpy(drawn).to(self.items.dtype)

    def augment(self, interaction: Interaction) -> Interaction:
        """The batch flagged ``CANARY_FIELD`` = 0, then the canary of each of its source rows (in
        batch order): the row's copy with the canary's item, flagged 1."""
        row_ids = interaction[ROW_FIELD]
        if self.is_source.device != row_ids.device:  # moved once, not per batch
            self.is_source, self.items = (
                self.is_source.to(row_ids.device),
                self.items.to(row_ids.device),
            )
        chosen = self.is_source[row_ids].nonzero().squeeze(1)
        real = Interaction(dict(interaction.interaction))
        real.interaction[CANARY_FIELD] = torch.zeros(len(row_ids), device=row_ids.device)
        copies = real[chosen]
        copies.interaction[self.item_field] = self.items[row_ids[chosen]]
        copies.interaction[CANARY_FIELD] = torch.ones(len(chosen), device=row_ids.device)
        return cat_interactions([real, copies])


def canary_labels(canary: torch.Tensor, row_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, labels) of a batch's canary pairs: every canary (label 0) and every real row that has
    its canary in the batch (its source, label 1)."""
    planted = canary > 0.5
    sources = ~planted & torch.isin(row_ids, row_ids[planted])
    rows = torch.cat([sources.nonzero().squeeze(1), planted.nonzero().squeeze(1)])
    labels = torch.cat(
        [
            torch.ones(int(sources.sum()), device=canary.device),
            torch.zeros(int(planted.sum()), device=canary.device),
        ]
    )
    return rows, labels
