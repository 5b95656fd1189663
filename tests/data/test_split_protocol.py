"""The evaluation protocol's fixed points: one mask per model type, same-second ties that never
follow file order, noise that avoids only training items, a test split no training object holds,
and the equal-information options of the guide part (``clean_valid_guide_order``,
``clean_valid_guide_as_train``).

Tiny hand-built ``.inter`` files; RecBole's ``RS: [4, 1, 1]`` gives a user with 12 interactions
8 train / 2 validation / 2 test rows (general models) and, over its 11 target rows, 9 / 1 / 1
(sequential models, whose first interaction is history only).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tests.conftest import write_inter
from tests.data.test_noise_and_guide import guide_rows
from recbole.data.dataloader import AbstractDataLoader
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction

import recbole_autodenoise
from recbole_autodenoise import AutoDenoiseTrainer
from recbole_autodenoise.data import (
    INJECTED_FIELD,
    TrainingData,
    create_dataset,
    data_preparation,
    prepare_data,
)
from recbole_autodenoise.data.bundle import training_data_of
from recbole_autodenoise.model import get_model

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}
PROTOCOLS = ("user_first", "interaction", "user")


def config_for(tmp_path: Path, name: str, rows: list[tuple], model: str = "BPR", **overrides):
    if not (tmp_path / name).exists():
        write_inter(tmp_path, name, rows)
    return recbole_autodenoise.make_config(
        model, name, config_dict={"data_path": str(tmp_path), **NO_FILTER, **overrides}
    )


def prepared(tmp_path: Path, name: str, rows: list[tuple], model: str = "BPR", **overrides):
    config = config_for(tmp_path, name, rows, model, **overrides)
    return data_preparation(config, create_dataset(config))


def bundled(tmp_path: Path, name: str, rows: list[tuple], model: str = "BPR", **overrides):
    config = config_for(tmp_path, name, rows, model, **overrides)
    return prepare_data(config, create_dataset(config))


def tokens(dataset, field: str, ids) -> list[str]:
    return [str(t) for t in dataset.field2id_token[field][np.asarray(ids).reshape(-1)]]


def user_rows(user: str, ratings: list[float], times: list[float] | None = None) -> list[tuple]:
    times = times or [float(t) for t in range(1, len(ratings) + 1)]
    return [
        (user, f"{user.lower()}{n}", r, t) for n, (r, t) in enumerate(zip(ratings, times), start=1)
    ]


def items(user: str, numbers) -> set[str]:
    return {f"{user.lower()}{n}" for n in numbers}


# ------------------------------------------------------------------------- one mask per model type

# A: validation a9 low (2), a10 clean; test a11 low (1), a12 clean.
# B: validation b9, b10 clean; test b11 clean, b12 low (2).
# C: every row clean (its items give BPR's sampler negatives to draw).
MASK_ROWS = (
    user_rows("A", [4] * 8 + [2, 5] + [1, 4])
    + user_rows("B", [4] * 8 + [4, 5] + [5, 2])
    + user_rows("C", [4] * 12)
)


def queries(loader) -> dict[tuple[str, frozenset[str]], set[str]]:
    """{(user, its relevant items): masked items} of every query of a general model's loader."""
    dataset = loader._dataset
    out = {}
    for user_df, (hist_row, hist_item), positive_u, positive_i in loader:
        users = tokens(dataset, dataset.uid_field, user_df[dataset.uid_field])
        for row, user in enumerate(users):
            relevant = frozenset(tokens(dataset, dataset.iid_field, positive_i[positive_u == row]))
            assert (user, relevant) not in out
            out[(user, relevant)] = set(
                tokens(dataset, dataset.iid_field, hist_item[hist_row == row])
            )
    return out


def expected_masks(protocol: str, phase: str) -> dict[tuple[str, frozenset[str]], set[str]]:
    """By hand: the user's training items, every validation item (clean or not) and, at test, every
    test item (clean or not), minus the query's relevant items."""
    period = {"valid": range(9, 11), "test": range(11, 13)}[phase]
    masked_pool = {u: items(u, range(1, max(period) + 1)) for u in "ABC"}
    clean = {
        ("valid", "A"): ["a10"],
        ("valid", "B"): ["b9", "b10"],
        ("valid", "C"): ["c9", "c10"],
        ("test", "A"): ["a12"],
        ("test", "B"): ["b11"],
        ("test", "C"): ["c11", "c12"],
    }
    out = {}
    for user in "ABC":
        relevant = clean[(phase, user)]
        if protocol == "user_first":
            groups = [relevant[:1]]
        elif protocol == "interaction":
            groups = [[item] for item in relevant]
        else:
            groups = [relevant]
        for group in groups:
            out[(user, frozenset(group))] = masked_pool[user] - set(group)
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_general_protocol_masks_the_same_items_at_validation(tmp_path, protocol):
    _, valid, _ = prepared(tmp_path, "masks", MASK_ROWS, eval_protocol=protocol)
    found = queries(valid)
    assert found == expected_masks(protocol, "valid")
    assert found[("A", frozenset({"a10"}))] == items("A", range(1, 10))  # the low-rated a9 included


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_general_protocol_masks_the_same_items_at_test(tmp_path, protocol):
    bundle = bundled(tmp_path, "masks", MASK_ROWS)
    found = queries(bundle.test_by_protocol[protocol])
    assert found == expected_masks(protocol, "test")
    # the low-rated validation a9 and test a11 are masked under every protocol
    assert found[("A", frozenset({"a12"}))] == items("A", range(1, 12))


def test_a_guide_split_masks_the_same_items(tmp_path):
    train, valid, test = prepared(
        tmp_path, "masks", MASK_ROWS, eval_protocol="interaction", clean_valid_guide_ratio=0.5
    )
    whole = expected_masks("interaction", "valid")
    select, guide = queries(valid), queries(training_data_of(train).guide)
    assert (
        len(select) == 3 and len(guide) == 2
    )  # B and C each give one of their 2 clean rows to the guide part
    assert {**select, **guide} == whole
    assert queries(test) == expected_masks("interaction", "test")


@pytest.mark.parametrize("phase", ["valid", "test"])
def test_sequential_protocols_mask_nothing(tmp_path, phase):
    bundle = bundled(tmp_path, "masks", MASK_ROWS, "GRU4Rec")
    for loader in bundle.test_by_protocol.values() if phase == "test" else [bundle.select]:
        for batch in loader:
            assert batch[1] is None  # RecBole's sequential full-sort: no history index


# -------------------------------------------------------------------------------- same-second ties

# Per user 12 interactions; rows 7-12 (1-based) share one second, so every split boundary (general:
# after rows 8 and 10; sequential: after rows 10 and 11) and each user_first target fall inside it.
TIE_TIMES = [1.0, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7, 7]
TIE_ROWS = user_rows("P", [4] * 12, TIE_TIMES) + user_rows(
    "Q", [4] * 12, [t + 100 for t in TIE_TIMES]
)


def split_of(loaders) -> tuple:
    """Token rows of train / validation / test and the user_first targets of validation and test."""
    out = []
    for loader in loaders:
        ds = loader._dataset
        feat = ds.inter_feat
        out.append(
            sorted(
                zip(
                    tokens(ds, ds.uid_field, feat[ds.uid_field]),
                    tokens(ds, ds.iid_field, feat[ds.iid_field]),
                )
            )
        )
    return tuple(out)


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_ties_never_follow_file_order(tmp_path, model):
    shuffled = [TIE_ROWS[i] for i in np.random.default_rng(0).permutation(len(TIE_ROWS))]
    results = []
    for name, rows in (
        ("ties", TIE_ROWS),
        ("ties_reversed", TIE_ROWS[::-1]),
        ("ties_shuffled", shuffled),
    ):
        results.append(split_of(prepared(tmp_path, name, rows, model)))
    assert results[0] == results[1] == results[2]
    train, valid, test = results[0]
    assert (
        len(train) == 2 * (9 if model == "SASRec" else 8) and len(valid) == len(test) == 2
    )  # user_first


def test_split_seed_can_move_a_tied_boundary(tmp_path):
    def valid_items(seed: int) -> list:
        _, valid, _ = prepared(
            tmp_path, "ties", TIE_ROWS, split_seed=seed, eval_protocol="interaction"
        )
        return split_of([valid])[0]

    draws = {tuple(valid_items(seed)) for seed in range(4)}
    assert len(draws) > 1
    assert all(
        item in items(user, range(7, 13)) for draw in draws for user, item in draw
    )  # tied rows


@pytest.mark.parametrize("value", [-1, 1.5, "zero", True, None])
def test_bad_split_seed(tmp_path, value):
    with pytest.raises(ValueError) as info:  # make_config refuses it, before any data loads
        config = config_for(tmp_path, "ties", TIE_ROWS, split_seed=value)
        create_dataset(config)
    assert "'split_seed'" in str(info.value) and repr(value) in str(info.value)


# ---------------------------------------------------------------- noise avoids training items only

ONE_USER = user_rows("N", [4] * 12)


@pytest.mark.parametrize(
    ("model", "rate", "held_out"), [("BPR", 0.5, range(9, 13)), ("SASRec", 0.2, range(11, 13))]
)
def test_noise_may_hit_held_out_items_and_nothing_else(tmp_path, model, rate, held_out):
    # One user: the items outside its training history are exactly its held-out ones (4, or 2 for a
    # sequential model), and round(rate * training rows) asks for all of them (0.5 * 8, 0.2 * 9).
    config = config_for(tmp_path, "one", ONE_USER, model, noise_rate=rate)
    train, _, _ = create_dataset(config).build()
    feat = train.inter_feat
    fake = feat[INJECTED_FIELD] == 1
    assert sorted(tokens(train, train.iid_field, feat[train.iid_field][fake])) == sorted(
        items("N", held_out)
    )


def test_noise_beyond_the_items_outside_the_training_history(tmp_path):
    config = config_for(tmp_path, "one", ONE_USER, noise_rate=0.625)  # 5 fake rows, 4 candidates
    with pytest.raises(
        ValueError,
        match=(
            "asks for 5 fake interactions, "
            "more than the 4 .user, item. pairs its users have not trained on"
        ),
    ):
        create_dataset(config).build()


# --------------------------------------------------------------- the test split stays out of reach

# Items s1-s10 are every user's first 10 items; r0t11, r0t12, ... one user's each. The test rows
# (general: the 11th and 12th of each user; sequential: the 12th) hold items no other row has.
REACH_ROWS = [
    (user, f"{user}t{n}" if n > 10 else f"s{n}", 1 + (n + k) % 5, 100 * k + n)
    for k, user in enumerate(("r0", "r1", "r2", "r3"))
    for n in range(1, 13)
]


def holders_of(root, test_items: set[int], item_field: str) -> list[str]:
    """Paths from ``root`` (through attributes, dicts, lists) to an Interaction, Dataset, DataFrame,
    set array (a sampler's used items) or popularity table (a sampler's ``prob``/``alias``, keyed by
    item) holding one of ``test_items``."""
    found, seen = [], set()
    list_fields = (item_field, f"{item_field}_list")

    def holds(value) -> bool:
        if isinstance(value, Dataset):
            value = value.inter_feat
        if isinstance(value, Interaction):
            return any(
                np.isin(value[f].numpy(), list(test_items)).any()
                for f in list_fields
                if f in value.interaction
            )
        if isinstance(value, pd.DataFrame):
            return any(
                np.isin(value[f].to_numpy(), list(test_items)).any()
                for f in list_fields
                if f in value.columns
            )
        if isinstance(value, np.ndarray) and value.dtype == object:
            return any(isinstance(v, set) and v & test_items for v in value.ravel())
        return False

    def walk(value, path: str, depth: int) -> None:
        if id(value) in seen or depth > 8:
            return
        seen.add(id(value))
        if holds(value) or (
            path.endswith((".prob", ".alias"))
            and isinstance(value, dict)
            and {k for k in value if isinstance(k, (int, np.integer))} & test_items
        ):
            found.append(path)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}[{key!r}]", depth + 1)
        elif isinstance(value, (list, tuple)):
            for n, item in enumerate(value):
                walk(item, f"{path}[{n}]", depth + 1)
        elif isinstance(value, (Dataset, AbstractDataLoader, TrainingData, AutoDenoiseTrainer)) or (
            type(value).__module__.startswith("recbole.sampler")
        ):
            for key, item in vars(value).items():
                if key not in ("config", "logger"):
                    walk(item, f"{path}.{key}", depth + 1)

    walk(root, "root", 0)
    return found


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        ("BPR", {}),
        (
            "BPR",
            {
                "eval_protocol": "interaction",
                "train_neg_sample_args": {"distribution": "popularity", "sample_num": 1},
            },
        ),
        ("BPR", {"clean_valid_guide_ratio": 0.5, "clean_valid_guide_as_train": True}),
        ("GRU4Rec", {}),
        (
            "GRU4Rec",
            {
                "loss_type": "BPR",
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            },
        ),
    ],
)
def test_no_training_object_holds_a_test_row(tmp_path, model, overrides):
    config = config_for(tmp_path, "reach", REACH_ROWS, model, **overrides)
    bundle = prepare_data(config, create_dataset(config))
    train, valid, test = bundle.train, bundle.select, bundle.test
    ds = test._dataset
    last = ("t11", "t12") if model == "BPR" else ("t12",)
    test_items = {
        int(ds.token2id(ds.iid_field, item)) for _, item, _, _ in REACH_ROWS if item.endswith(last)
    }
    assert len(test_items) == 4 * len(last)
    assert holders_of(test, test_items, ds.iid_field)  # the walk finds the rows where they are
    assert holders_of(train, test_items, ds.iid_field) == []  # the loader, its dataset, sampler
    assert holders_of(valid, test_items, ds.iid_field) == []  # what fit() and the schemes also read
    # the bundle's whole training side: loaders, guide loader, guide, explicit and validation rows
    assert holders_of(bundle.training, test_items, ds.iid_field) == []
    config["topk"], config["valid_metric"] = [5], "NDCG@5"  # 18 items: fewer than topk's 50
    trainer = AutoDenoiseTrainer(config, get_model(model)(config, train._dataset))
    trainer.set_data(bundle)  # what a trainer keeps of the bundle
    assert holders_of(trainer, test_items, ds.iid_field) == []
    # the training side data_preparation's training loader leads to
    loaders = prepared(tmp_path, "reach", REACH_ROWS, model, **overrides)
    assert holders_of(training_data_of(loaders[0]), test_items, ds.iid_field) == []


# ------------------------------------------------------------------------------- equal information


GUIDE = guide_rows()


def row_set(dataset) -> Counter:
    feat = dataset.inter_feat
    return Counter(
        zip(
            tokens(dataset, dataset.uid_field, feat[dataset.uid_field]),
            tokens(dataset, dataset.iid_field, feat[dataset.iid_field]),
        )
    )


def same_rows(a, b) -> bool:
    """Bit for bit: the same fields and the same tensors, row for row."""
    fa, fb = a.inter_feat, b.inter_feat
    return set(fa.columns) == set(fb.columns) and all(torch.equal(fa[c], fb[c]) for c in fa.columns)


@pytest.mark.parametrize(
    "key, value",
    [("clean_valid_guide_as_train", True), ("clean_valid_guide_order", "chronological")],
)
def test_guide_options_need_a_guide_part(tmp_path, key, value):
    with pytest.raises(ValueError) as info:  # make_config refuses it, before any data loads
        config = config_for(tmp_path, "guide", GUIDE, **{key: value})
        create_dataset(config)
    message = str(info.value)
    assert f"'{key}'" in message and "clean_valid_guide_ratio" in message and repr(value) in message


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("clean_valid_guide_as_train", "yes", "true or false"),
        ("clean_valid_guide_as_train", 1, "true or false"),
        ("clean_valid_guide_order", "newest", "chronological"),
    ],
)
def test_bad_guide_option_values(tmp_path, key, value, allowed):
    with pytest.raises(ValueError) as info:  # make_config refuses it, before any data loads
        config = config_for(tmp_path, "guide", GUIDE, clean_valid_guide_ratio=0.5, **{key: value})
        create_dataset(config)
    message = str(info.value)
    assert f"'{key}'" in message and repr(value) in message and allowed in message


def test_chronological_guide_is_the_older_part_and_selects_on_the_newer_clean_rows(tmp_path):
    train, valid, _ = prepared(
        tmp_path,
        "guide",
        GUIDE,
        clean_valid_guide_ratio=0.5,
        clean_valid_guide_order="chronological",
        eval_protocol="interaction",
    )
    # the older half of each user's validation rows, all ratings: g1 16-17, g2 16-17, g3 8, g4 8
    older = {
        ("g1", "g1i16"),
        ("g1", "g1i17"),
        ("g2", "g2i16"),
        ("g2", "g2i17"),
        ("g3", "g3i8"),
        ("g4", "g4i8"),
    }
    assert (
        set(row_set(training_data_of(train).explicit_rows)) == older
        and len(training_data_of(train).explicit_rows) == 6
    )
    assert set(row_set(training_data_of(train).guide_rows)) == {
        ("g1", "g1i16"),
        ("g1", "g1i17"),
        ("g2", "g2i16"),
    }
    # the newer part's clean rows: g2i19 and g4i9 are rated 1
    assert set(row_set(valid._dataset)) == {
        ("g1", "g1i18"),
        ("g1", "g1i19"),
        ("g2", "g2i18"),
        ("g3", "g3i9"),
    }
    assert len(train._dataset) == 48  # not trained on without clean_valid_guide_as_train


# (model, clean_valid_guide_order) -> (training rows, guide rows). General models: 48 training
# rows; random: the 5 low-rated validation rows and 3 drawn clean ones (g1 2 of 4, g2 1 of 2);
# chronological: the older half of each user's validation rows (6). Sequential: 52 training target
# rows, g1 and g2
# 3 validation rows each (i18-i20), g3 and g4 1; random: g2's low-rated i19 and 3 drawn clean rows
# (g1 2 of 3, g2 1 of 2); chronological: i18 and i19 of g1 and g2.
JOINED = {
    ("BPR", "random"): (48, 8),
    ("BPR", "chronological"): (48, 6),
    ("GRU4Rec", "random"): (52, 4),
    ("GRU4Rec", "chronological"): (52, 4),
}


@pytest.mark.parametrize(("model", "order"), list(JOINED))
def test_guide_rows_join_the_training_set(tmp_path, model, order):
    trained, guide_rows_added = JOINED[(model, order)]
    base_train, base_valid, base_test = prepared(
        tmp_path,
        "guide",
        GUIDE,
        model,
        clean_valid_guide_ratio=0.5,
        clean_valid_guide_order=order,
        eval_protocol="interaction",
    )
    train, valid, test = prepared(
        tmp_path,
        "guide",
        GUIDE,
        model,
        clean_valid_guide_ratio=0.5,
        clean_valid_guide_order=order,
        clean_valid_guide_as_train=True,
        eval_protocol="interaction",
    )
    explicit = training_data_of(train).explicit_rows
    assert len(explicit) == guide_rows_added
    assert len(base_train._dataset) == trained and len(train._dataset) == trained + guide_rows_added
    assert row_set(train._dataset) == row_set(base_train._dataset) + row_set(explicit)
    # the appended rows are the guide rows themselves, histories included
    tail = train._dataset.inter_feat[torch.arange(trained, trained + guide_rows_added)]
    assert all(torch.equal(tail[c], explicit.inter_feat[c]) for c in explicit.inter_feat.columns)
    assert same_rows(valid._dataset, base_valid._dataset)  # selection: the same select rows
    assert same_rows(test._dataset, base_test._dataset)
    if model == "BPR":  # the training negatives avoid the guide rows' items too
        sampler, ds = train._sampler, train._dataset
        feat = explicit.inter_feat
        for user, item in zip(feat[ds.uid_field].tolist(), feat[ds.iid_field].tolist()):
            assert item in sampler.used_ids[user]
        assert queries(test) == queries(base_test)


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_the_test_set_is_the_same_under_every_guide_option(tmp_path, model):
    _, _, base = prepared(tmp_path, "guide", GUIDE, model, eval_protocol="interaction")
    for options in (
        {"clean_valid_guide_order": "chronological"},
        {"clean_valid_guide_as_train": True},
        {"clean_valid_guide_order": "chronological", "clean_valid_guide_as_train": True},
    ):
        _, _, test = prepared(
            tmp_path,
            "guide",
            GUIDE,
            model,
            eval_protocol="interaction",
            clean_valid_guide_ratio=0.5,
            **options,
        )
        assert same_rows(test._dataset, base._dataset), options
        if model == "BPR":
            assert queries(test) == queries(base), options
