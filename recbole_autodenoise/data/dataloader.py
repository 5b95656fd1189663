"""Dataloaders for the two evaluation protocols.

``eval_protocol: interaction`` (the paper's): every clean held-out interaction (u, v) is one query
with exactly one relevant item v, ranked against all items except u's history and u's *other*
held-out items. Hence P@K = R@K / K and F1@K = 2 R@K / (K + 1), as in every row of the paper's
Table 3. ``eval_protocol: user`` is RecBole's: one query per user with all of its held-out items
relevant. RecBole's sequential evaluation is already one query per target row, so the protocol only
changes general models.

With ``clean_valid_guide_ratio`` > 0 the validation loader covers the *select* part of the clean
validation set and ``train_data.clean_guide_data`` the *guide* part (see ``guide.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import cat_interactions
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import ModelType

EVAL_PROTOCOLS = ("interaction", "user")
# RecBole's dataset/dataloader caches: pickles (loading one runs whatever it holds) whose
# staleness check ignores the plugin's keys (a changed clean_rating_threshold reused the old split)
CACHE_KEYS = ("save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path")


def check_no_caches(config) -> None:
    """Refuse every RecBole cache setting, before any work: the split is always built afresh."""
    set_keys = {key: config[key] for key in CACHE_KEYS if config[key] not in (None, False)}
    if set_keys:
        raise ValueError(
            f"caches are off: they are pickles and ignore the plugin's keys; got {set_keys}, allowed: "
            "save_dataset and save_dataloaders False, dataset_save_path and dataloaders_save_path unset "
            "(the split is rebuilt on every run and never read from saved/)"
        )


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


def _guide_loaders(config, dataset, train_data, valid_data, test_data):
    """(valid, test, guide) loaders when the clean validation set is split into guide and select.

    RecBole's samplers were built from [train, select, test], so its evaluation would treat the
    guide items as unseen candidates. The samplers are rebuilt from [train, select + guide, test]:
    a select query masks the user's guide items like any other held-out item (and a guide query
    its select items), and the test loader masks exactly what it masks without the split.
    """
    train, select, test = train_data._dataset, valid_data._dataset, test_data._dataset
    guide = train.clean_guide
    whole_valid = select.copy(cat_interactions([select.inter_feat, guide.inter_feat]))
    _, valid_sampler, test_sampler = create_samplers(config, dataset, [train, whole_valid, test])
    valid_data = get_dataloader(config, "valid")(config, select, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, test, test_sampler, shuffle=False)
    guide_data = get_dataloader(config, "valid")(config, guide, valid_sampler, shuffle=False)
    return valid_data, test_data, guide_data


def _build_split(config, dataset):
    """RecBole's ``data_preparation`` without its cache: never reads (unpickles) or writes
    ``saved/<dataset>-for-<model>-dataloader.pth``; the loaders are built from ``dataset``."""
    built = dataset.build()
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    train_data = get_dataloader(config, "train")(config, built[0], train_sampler, shuffle=config["shuffle"])
    valid_data = get_dataloader(config, "valid")(config, built[1], valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, built[2], test_sampler, shuffle=False)
    return train_data, valid_data, test_data


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, with per-interaction evaluation for general models when
    ``eval_protocol`` is ``interaction``.

    Also sets ``train_data.clean_guide_data``: an evaluation loader over the guide part of the
    clean validation set, built like the validation loader (same class, same sampler), or ``None``
    when ``clean_valid_guide_ratio`` is 0 (then the guide part is the validation set itself).
    """
    check_no_caches(config)
    protocol = config["eval_protocol"]
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f"eval_protocol={protocol!r} is not one of {list(EVAL_PROTOCOLS)}")
    train_data, valid_data, test_data = _build_split(config, dataset)
    if not hasattr(train_data._dataset, "clean_guide"):
        raise ValueError(
            f"the training dataset ({type(train_data._dataset).__name__}) has no clean_guide: build the "
            "dataset with recbole_autodenoise.create_dataset"
        )
    guide_data = None
    if dataset.clean_valid_guide_ratio > 0:
        valid_data, test_data, guide_data = _guide_loaders(config, dataset, train_data, valid_data, test_data)
    if protocol == "interaction" and config["MODEL_TYPE"] == ModelType.GENERAL:
        if not isinstance(valid_data, FullSortEvalDataLoader):
            raise ValueError("eval_protocol=interaction needs full-sort evaluation (eval_args.mode: full)")
        valid_data = InteractionFullSortEvalDataLoader(config, valid_data._dataset, valid_data._sampler)
        test_data = InteractionFullSortEvalDataLoader(config, test_data._dataset, test_data._sampler)
        if guide_data is not None:
            guide_data = InteractionFullSortEvalDataLoader(config, guide_data._dataset, guide_data._sampler)
    train_data.clean_guide_data = guide_data
    return train_data, valid_data, test_data
