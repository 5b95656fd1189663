"""Dataloaders for the three evaluation protocols.

``eval_protocol: user_first`` (the paper's, the default): one query per user, the user's
chronologically first clean interaction of the held-out period (validation for validation, test
for test); a tie in the first timestamp goes to the earliest row in RecBole's stable order, whose
same-second ties the dataset ordered by a seeded hash (``split_seed``). Hence P@K = R@K / K and
F1@K = 2 R@K / (K + 1), and every recall is a multiple of 1 / #users, as in every row of the
paper's Table 3. ``eval_protocol: interaction``: every clean held-out interaction (u, v) is one
query with exactly one relevant item v (more queries, lower variance). ``eval_protocol: user`` is
RecBole's: one query per user with all of its clean held-out items relevant.

For general models every protocol masks the same items, the user's: training items, every
validation item (clean or not) and, at test, every test item (clean or not), minus the query's
relevant items. The evaluation samplers are built from the held-out sets before the clean filter
(``phase_samplers``), so RecBole's own ``used_ids - positives`` is that mask. RecBole's sequential
evaluation is one query per target row and masks nothing; that is kept: ``interaction`` and
``user`` leave sequential models alone, and ``user_first`` keeps one target row per user (see
``first_rows``).

Pre-split data may give a (user, item) pair to both validation and test (``prepare --split-files
--allow-valid-test-overlap``); such a test item is relevant and unmasked, unless
``presplit_mask_valid_in_test`` masks every validation item at test (``mask_validation_items``):
it then stays relevant but can never be hit, as in the EvalDenoisingRec study's test.

With ``clean_valid_guide_ratio`` > 0 the validation loader covers the *select* part of the clean
validation set and the bundle's ``training.guide`` loader the *guide* part (see ``guide.py`` and
``bundle.py``). The test rows reach the test loaders only: no attribute of the training loader,
its dataset or its sampler, nor any part of ``DataBundle.training``, holds one.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import cat_interactions
from recbole.data.utils import get_dataloader
from recbole.sampler import RepeatableSampler, Sampler
from recbole.utils import ModelType

from recbole_autodenoise import distributed, options
from recbole_autodenoise.data.bundle import DataBundle, TrainingData, remember
from recbole_autodenoise.options import Option, Rule

EVAL_PROTOCOLS = ("user_first", "interaction", "user")
OPTIONS = options.declare(
    Option(
        "presplit_mask_valid_in_test",
        "bool",
        False,
        "pre-split data (benchmark_filename): at test, also mask a user's validation items that "
        "the test file holds (relevant, never hit)",
        check=lambda value: isinstance(value, bool),
        allowed="true or false",
    ),
    Option(
        "eval_protocol",
        "str",
        "user_first",
        "user_first (paper: one query per user, its first clean held-out item) | interaction "
        "(one query per clean held-out interaction) | user (RecBole)",
        choices=EVAL_PROTOCOLS,
    ),
)
# RecBole's dataset/dataloader caches: pickles (loading one runs whatever it holds) whose
# staleness check ignores the plugin's keys (a changed clean_rating_threshold reused the old split)
CACHE_KEYS = ("save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path")


def check_no_caches(config) -> None:
    """Refuse every RecBole cache setting, before any work: the split is always built afresh."""
    set_keys = {key: config[key] for key in CACHE_KEYS if config[key] not in (None, False)}
    if set_keys:
        raise ValueError(
            f"caches are off: they are pickles and ignore the plugin's keys; got {set_keys}, "
            "allowed: save_dataset and save_dataloaders False, dataset_save_path and "
            "dataloaders_save_path unset (the split is rebuilt on every run and never read from "
            "saved/)"
        )


class InteractionFullSortEvalDataLoader(FullSortEvalDataLoader):
    """One query per held-out interaction for general models, on RecBole's full-sort machinery:
    query (u, v) masks u's history (the sampler's used items minus u's positives) and u's other
    positives."""

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

    def user_batches(self):
        """The same (user, item) pairs as RecBole's per-user batches: one score row per user, all
        its held-out items positive, its history masked. A pair's AUC against the non-positive
        candidates is the same as from its own query (whose mask holds the user's other positives),
        so GAUC and the per-user AUCs come from a pass over users, not interactions."""
        for start in range(0, len(self.uid_list), self.step):
            yield FullSortEvalDataLoader.collate_fn(
                self, np.arange(start, min(start + self.step, len(self.uid_list)))
            )


def first_rows(dataset):
    """A copy of ``dataset`` holding each user's chronologically first row (the ``user_first``
    query).

    Timestamps are compared as RecBole stores them; a tie goes to the earliest row in the
    dataset's order, which RecBole's stable sorts keep chronological per user (its split sorts by
    time, its loaders re-sort by user stably). For a sequential dataset the row is the user's first
    target row of the period, whose history RecBole's augmentation built: the
    ``MAX_ITEM_LIST_LENGTH`` items before it.
    """
    time_field = dataset.time_field
    if time_field is None or time_field not in dataset.inter_feat.columns:
        raise ValueError(
            "eval_protocol=user_first needs a timestamp field (load_col inter: timestamp) to find "
            f"each user's first held-out interaction; data set [{dataset.dataset_name}] has time "
            f"field {time_field!r}"
        )
    users = dataset.inter_feat[dataset.uid_field].numpy()
    order = np.argsort(dataset.inter_feat[time_field].numpy(), kind="stable")
    order = order[np.argsort(users[order], kind="stable")]
    sorted_users = users[order]
    first = order[np.r_[True, sorted_users[1:] != sorted_users[:-1]]] if len(order) else order
    return dataset.copy(dataset.inter_feat[torch.from_numpy(np.sort(first))])


class UserFirstFullSortEvalDataLoader(FullSortEvalDataLoader):
    """General models under ``user_first``: RecBole's per-user full-sort loader over each user's
    first clean held-out row (``first_rows``); its sampler's used items mask the rest."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        super().__init__(config, first_rows(dataset), sampler, shuffle=shuffle)


def protocol_loader(protocol: str, config, loader):
    """RecBole's full-sort ``loader`` over a clean held-out set, rebuilt for ``protocol``, on the
    same sampler (whose used items are the mask). Sequential models keep RecBole's full-sort
    evaluation, which masks no history: ``user_first`` only keeps each user's first target row.
    """
    general = config["MODEL_TYPE"] == ModelType.GENERAL
    rebuilt = protocol == "user_first" or (protocol == "interaction" and general)
    if rebuilt and not isinstance(loader, FullSortEvalDataLoader):
        raise ValueError(
            f"eval_protocol={protocol} needs full-sort evaluation (eval_args.mode: full)"
        )
    if protocol == "user_first" and general:
        return UserFirstFullSortEvalDataLoader(config, loader._dataset, loader._sampler)
    if protocol == "user_first":
        return type(loader)(config, first_rows(loader._dataset), loader._sampler, shuffle=False)
    if protocol == "interaction" and general:
        return InteractionFullSortEvalDataLoader(config, loader._dataset, loader._sampler)
    return loader


def phase_samplers(config, train, valid_rated, test_rated) -> list:
    """RecBole's (train, valid, test) samplers, each built from the rows up to its own phase only:
    train from ``train``; valid from ``train`` and every validation row, clean or not; test from
    those and every test row, clean or not (``None`` where the phase's distribution is ``none``).

    RecBole builds all three from [train, clean valid, clean test]: its training sampler then holds
    the test set, and its evaluation masks miss the low-rated held-out items. Here the training
    sampler's used items are RecBole's (training negatives are drawn exactly as there), and an
    evaluation sampler's used items are the user's training items plus every held-out item up to
    its period: the mask of every protocol. ``popularity`` negatives count only those rows (RecBole
    counts every row, future ones included).
    """
    parts = [
        ("train", [train]),
        ("valid", [train, valid_rated]),
        ("test", [train, valid_rated, test_rated]),
    ]
    samplers = []
    for phase, datasets in parts:
        args = config[f"{phase}_neg_sample_args"]
        if args["distribution"] == "none":
            samplers.append(None)
            continue
        phases = ["train", "valid", "test"][: len(datasets)]
        alpha = args.get("alpha", 1.0) if phase == "train" else 1.0
        if config["repeatable"]:  # its rows only give popularity's candidates
            rows = train
            if args["distribution"] == "popularity" and len(datasets) > 1:
                rows = train.copy(cat_interactions([d.inter_feat for d in datasets]))
            sampler = RepeatableSampler(phases, rows, args["distribution"], alpha)
        else:
            sampler = Sampler(phases, datasets, args["distribution"], alpha)
        samplers.append(sampler.set_phase(phase))
    return samplers


def _check_presplit_mask(config) -> None:
    """``presplit_mask_valid_in_test: true`` needs pre-split files and full-sort evaluation of a
    general model."""
    if config["presplit_mask_valid_in_test"] and config["benchmark_filename"] is None:
        raise ValueError(
            "config key 'presplit_mask_valid_in_test' = True needs pre-split files "
            "(benchmark_filename): only a given split can hold a pair in validation and test; "
            "use presplit_mask_valid_in_test: false"
        )
    if config["presplit_mask_valid_in_test"] and config["MODEL_TYPE"] != ModelType.GENERAL:
        raise ValueError(
            f"config key 'presplit_mask_valid_in_test' = True masks a general model's full-sort "
            f"test; model {config['model']} is {config['MODEL_TYPE'].name.lower()}: use "
            "presplit_mask_valid_in_test: false"
        )


RULES = (
    Rule(
        ("presplit_mask_valid_in_test", "benchmark_filename"),
        "true needs pre-split files and a general model",
        _check_presplit_mask,
    ),
)


def mask_validation_items(loader, valid_rows) -> int:
    """Add each user's ``valid_rows`` items that are also its relevant test items to its masked
    history in the full-sort test ``loader`` (every protocol's loader reads
    ``uid2history_item``): they stay relevant, and never rank. Returns the number of pairs."""
    if not isinstance(loader, FullSortEvalDataLoader):
        raise ValueError("presplit_mask_valid_in_test needs full-sort evaluation (eval_args mode)")
    dataset = loader._dataset
    users = valid_rows[dataset.uid_field].numpy()
    items = valid_rows[dataset.iid_field].numpy()
    by_user: dict[int, set[int]] = {}
    for user, item in zip(users.tolist(), items.tolist()):
        by_user.setdefault(user, set()).add(item)
    added = 0
    for uid in loader.uid_list.tolist():
        positives = loader.uid2positive_item[uid]
        if positives is None or uid not in by_user:
            continue
        both = [item for item in positives.tolist() if item in by_user[uid]]
        if both:
            history = loader.uid2history_item[uid]
            extra = torch.tensor(both, dtype=history.dtype)
            loader.uid2history_item[uid] = torch.cat([history, extra])
            added += len(both)
    return added


def test_protocols(config, dataset=None) -> tuple[str, ...]:
    """The protocols ``quick_start.run`` reports on test: ``user`` is ``interaction`` for sequential
    models; without ``dataset``'s time field (pre-split files may lack it) no ``user_first``."""
    general = config["MODEL_TYPE"] == ModelType.GENERAL
    names = EVAL_PROTOCOLS if general else ("user_first", "interaction")
    if dataset is not None and dataset.field2type.get(dataset.time_field) is None:
        names = tuple(name for name in names if name != "user_first")
    return names


def _build_split(config, dataset):
    """RecBole's ``data_preparation`` without its cache: never reads (unpickles) or writes
    ``saved/<dataset>-for-<model>-dataloader.pth``; the loaders are built from ``dataset``'s
    ``build_split``, and the guide loader (``None`` without a guide/select split). Returns the
    split and the train, validation, test and guide loaders."""
    if not hasattr(dataset, "build_split"):
        raise ValueError(
            f"the dataset ({type(dataset).__name__}) has no clean-feedback split: build it with "
            "recbole_autodenoise.create_dataset"
        )
    split = dataset.build_split()
    train_sampler, valid_sampler, test_sampler = phase_samplers(
        config, split.train, split.valid_rated, split.test_rated
    )
    train_data = get_dataloader(config, "train")(
        config, split.train, train_sampler, shuffle=config["shuffle"]
    )
    valid_data = get_dataloader(config, "valid")(config, split.select, valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, split.test, test_sampler, shuffle=False)
    guide_data = None
    if dataset.clean_valid_guide_ratio > 0:
        guide_loader = get_dataloader(config, "valid")
        guide_data = guide_loader(config, split.guide, valid_sampler, shuffle=False)
    return split, train_data, valid_data, test_data, guide_data


def prepare_data(config, dataset) -> DataBundle:
    """RecBole's ``data_preparation`` with the validation and test loaders of ``eval_protocol``,
    as one ``DataBundle`` (``bundle.py``).

    Its ``training.guide`` is the loader the denoisers learn from: the guide part of the clean
    validation set where ``clean_valid_guide_ratio`` > 0, the whole clean validation set (one
    query per interaction) under ``user_first``, whose validation loader sees one interaction per
    user, and ``None`` otherwise (the validation loader covers the whole clean validation set).
    ``test_by_protocol`` maps each of ``test_protocols(config)`` to a test loader (the configured
    one is ``test`` itself), for reporting every protocol; with sampled (not full-sort)
    evaluation it holds the configured protocol only. Under RecBole's multi-process mode only
    the training loader is sharded (``distributed.py``).
    """
    check_no_caches(config)
    protocol = options.read(config, "eval_protocol")
    with distributed.whole_sets(config):  # under DDP every rank evaluates whole sets: exact metrics
        split, train, select, guide, by_protocol = _prepare(config, dataset, protocol)
    training = TrainingData(
        train=distributed.shard_training(config, train),
        select=select,
        guide=guide,
        guide_rows=split.guide,
        explicit_rows=split.explicit,
        valid_rows=split.valid_rated.inter_feat,
    )
    return DataBundle(training, by_protocol[protocol], by_protocol)


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``: the training, validation and test loaders of
    ``prepare_data``. The rest of the bundle's training side stays findable from the training
    loader (``bundle.training_data_of``), so ``AutoDenoiseTrainer.fit`` on these loaders trains
    as with the whole bundle; the other test protocols' loaders are ``prepare_data``'s only."""
    bundle = prepare_data(config, dataset)
    remember(bundle.training)
    return bundle.train, bundle.select, bundle.test


def _prepare(config, dataset, protocol):
    split, train_data, valid_data, test_data, guide_data = _build_split(config, dataset)
    # the reward covers every clean validation interaction, whatever the validation queries are
    guide_protocol = "interaction" if protocol == "user_first" else protocol
    if guide_data is not None:
        guide_data = protocol_loader(guide_protocol, config, guide_data)
    elif protocol == "user_first":
        guide_data = protocol_loader(guide_protocol, config, valid_data)
    full = isinstance(test_data, FullSortEvalDataLoader)
    names = test_protocols(config, dataset) if full else (protocol,)
    by_protocol = {name: protocol_loader(name, config, test_data) for name in names}
    if config["presplit_mask_valid_in_test"]:
        for loader in {id(loader): loader for loader in by_protocol.values()}.values():
            mask_validation_items(loader, split.valid_rated.inter_feat)
    valid_data = protocol_loader(protocol, config, valid_data)
    return split, train_data, valid_data, guide_data, by_protocol
