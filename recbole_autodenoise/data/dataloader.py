"""Dataloaders for the two evaluation protocols.

``eval_protocol: interaction`` (the paper's): every clean held-out interaction (u, v) is one query
with exactly one relevant item v, ranked against all items except u's history and u's *other*
held-out items. Hence P@K = R@K / K and F1@K = 2 R@K / (K + 1), as in every row of the paper's
Table 3. ``eval_protocol: user`` is RecBole's: one query per user with all of its held-out items
relevant. RecBole's sequential evaluation is already one query per target row, so the protocol only
changes general models.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.utils import ModelType

EVAL_PROTOCOLS = ("interaction", "user")


class InteractionFullSortEvalDataLoader(FullSortEvalDataLoader):
    """One query per held-out interaction for general models, on RecBole's full-sort machinery."""

    def _build_queries(self) -> None:
        users, items = [], []
        for uid in self.uid_list.tolist():
            positives = self.uid2positive_item[uid]
            users.extend([uid] * len(positives))
            items.append(positives)
        self._query_uid = np.asarray(users, dtype=np.int64)
        self._query_iid = torch.cat(items) if items else torch.zeros(0, dtype=torch.int64)
        row_of_uid = {uid: row for row, uid in enumerate(self.uid_list.tolist())}
        self._query_user_row = np.asarray([row_of_uid[u] for u in users], dtype=np.int64)

    @property
    def sample_size(self) -> int:
        if not hasattr(self, "_query_uid"):
            self._build_queries()
        return len(self._query_uid)

    @sample_size.setter
    def sample_size(self, _per_user_count: int) -> None:
        """RecBole sets the per-user count; the per-interaction count above replaces it."""

    def collate_fn(self, index):
        index = np.asarray(index)
        user_df = self.user_df[torch.from_numpy(self._query_user_row[index])]
        targets = self._query_iid[index]
        history_u, history_i = [], []
        for row, (uid, target) in enumerate(zip(self._query_uid[index].tolist(), targets.tolist())):
            positives = self.uid2positive_item[uid]
            masked = torch.cat([self.uid2history_item[uid], positives[positives != target]])
            history_u.append(torch.full_like(masked, row))
            history_i.append(masked)
        positive_u = torch.arange(len(index))
        return user_df, (torch.cat(history_u), torch.cat(history_i)), positive_u, targets


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, with per-interaction evaluation for general models when
    ``eval_protocol`` is ``interaction``."""
    protocol = config["eval_protocol"]
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f"eval_protocol={protocol!r} is not one of {list(EVAL_PROTOCOLS)}")
    train_data, valid_data, test_data = recbole_data_preparation(config, dataset)
    if protocol == "interaction" and config["MODEL_TYPE"] == ModelType.GENERAL:
        if not isinstance(valid_data, FullSortEvalDataLoader):
            raise ValueError("eval_protocol=interaction needs full-sort evaluation (eval_args.mode: full)")
        valid_data = InteractionFullSortEvalDataLoader(config, valid_data._dataset, valid_data._sampler)
        test_data = InteractionFullSortEvalDataLoader(config, test_data._dataset, test_data._sampler)
    return train_data, valid_data, test_data
