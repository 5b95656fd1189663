"""Noise injection where the truth is known (``noise_rate``, ``noise_kind``) and the guide/select
split of the clean validation set (``clean_valid_guide_ratio``).

Hand-built data, split computed by hand: RecBole's ``RS: [4, 1, 1]`` gives a user with 12
interactions 8 train / 2 validation / 2 test rows (general models) and, over its 11 target rows,
9 / 1 / 1 (sequential models, whose first interaction is history only). Timestamps are distinct.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import write_inter
from recbole.data.dataset import Dataset as StockDataset
from recbole.data.dataset import SequentialDataset as StockSequentialDataset

import recbole_autodenoise
from recbole_autodenoise.data import (
    INJECTED_FIELD,
    NOISE_KINDS,
    InteractionFullSortEvalDataLoader,
    create_dataset,
    data_preparation,
)
from recbole_autodenoise.data.bundle import training_data_of
from recbole_autodenoise.data.guide import guide_count

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}

# 6 users x 12 interactions over 40 items: user k rates items 5k .. 5k+11 (mod 40), in that order,
# so neighbours share items (``foreign`` has donors) and every user has 28 unseen items.
USERS, ITEMS, PER_USER = 6, 40, 12
GENERAL_TRAIN, SEQ_TRAIN = 8, 9  # training rows per user (general: rows; sequential: target rows)


def noise_rows() -> list[tuple]:
    rows = []
    for k in range(USERS):
        for j in range(PER_USER):
            rows.append(
                (f"u{k}", f"i{(5 * k + j) % ITEMS}", 1 + (k + j) % 5, 1000 * (k + 1) + 10 * j)
            )
    return rows[::-1]  # file order is not chronological


RAW = noise_rows()
SEEN = {(u, i) for u, i, _, _ in RAW}
BY_USER = {u: sorted((t, i) for uu, i, _, t in RAW if uu == u) for u in {r[0] for r in RAW}}


def train_interactions(user: str, sequential: bool) -> list[tuple[float, str]]:
    """(timestamp, item) of a user's interactions the model trains on, by hand."""
    return BY_USER[user][: SEQ_TRAIN + 1 if sequential else GENERAL_TRAIN]


def make(
    tmp_path: Path,
    model: str = "BPR",
    name: str = "noisy",
    rows: list[tuple] | None = None,
    **overrides,
):
    if not (tmp_path / name).exists():
        write_inter(tmp_path, name, RAW if rows is None else rows)
    config = recbole_autodenoise.make_config(
        model,
        name,
        config_dict={
            "data_path": str(tmp_path),
            **NO_FILTER,
            "eval_protocol": "interaction",
            **overrides,
        },
    )
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return config, dataset, train, valid, test


def tokens(dataset, field: str, ids) -> list[str]:
    return [str(t) for t in dataset.field2id_token[field][np.asarray(ids).reshape(-1)]]


def rows(dataset) -> list[tuple]:
    """(user, item, timestamp, injected flag) of every row of a (split) dataset."""
    feat = dataset.inter_feat
    users = tokens(dataset, dataset.uid_field, feat[dataset.uid_field])
    items = tokens(dataset, dataset.iid_field, feat[dataset.iid_field])
    flags = feat[INJECTED_FIELD].tolist() if INJECTED_FIELD in feat.columns else [0.0] * len(users)
    return list(zip(users, items, feat["timestamp"].tolist(), flags))


def real(dataset) -> set[tuple]:
    return {(u, i, t) for u, i, t, flag in rows(dataset) if flag == 0}


def fake(dataset) -> list[tuple]:
    return [(u, i, t) for u, i, t, flag in rows(dataset) if flag == 1]


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("noise_rate", v, ">= 0")
        for v in (-0.1, "high", True, None, float("nan"), float("inf"), [0.1])
    ]
    # noise_kind is checked even with noise off (noise_rate 0, the default)
    + [("noise_kind", v, "foreign") for v in ("gaussian", "Random", 3, None)],
)
def test_bad_noise_keys(tmp_path, key, value, allowed):
    write_inter(tmp_path, "noisy", RAW)
    with pytest.raises(ValueError) as info:  # make_config refuses it, before any data loads
        config = recbole_autodenoise.make_config(
            "BPR", "noisy", config_dict={"data_path": str(tmp_path), **NO_FILTER, key: value}
        )
        create_dataset(config)
    message = str(info.value)
    assert f"'{key}'" in message and repr(value) in message and allowed in message


@pytest.mark.parametrize("value", [1, 1.0, 1.5, -0.1, "half", True, None, float("nan")])
def test_bad_guide_ratio(tmp_path, value):
    write_inter(tmp_path, "noisy", RAW)
    with pytest.raises(ValueError) as info:  # make_config refuses it, before any data loads
        config = recbole_autodenoise.make_config(
            "BPR",
            "noisy",
            config_dict={"data_path": str(tmp_path), **NO_FILTER, "clean_valid_guide_ratio": value},
        )
        create_dataset(config)
    message = str(info.value)
    assert "'clean_valid_guide_ratio'" in message and repr(value) in message and "[0, 1)" in message


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_rate_beyond_the_unseen_items(tmp_path, kind):
    # 48 training rows x 3 = 144 fake rows fit the 174 untrained pairs, but some user is drawn for
    # more than its unseen items.
    with pytest.raises(ValueError) as info:
        make(tmp_path, noise_rate=3, noise_kind=kind)
    message = str(info.value)
    assert (
        "noise_rate is too large" in message
        and f"noise_kind='{kind}'" in message
        and "user 'u" in message
    )


@pytest.mark.parametrize("rate", [4, 1e9])
def test_noise_rate_beyond_every_untrained_pair_is_refused_before_any_draw(tmp_path, rate):
    # 48 training rows: 4 x 48 = 192 > 174 untrained (user, item) pairs; 1e9 must not allocate
    # 4.8e10 rows
    with pytest.raises(
        ValueError, match=rf"asks for {int(48 * rate)} fake interactions, more than the 174 "
    ):
        make(tmp_path, noise_rate=rate)


def test_noise_needs_the_chronological_per_user_split(tmp_path):
    write_inter(tmp_path, "noisy", RAW)
    split = {"split": {"RS": [4, 1, 1]}, "order": "RO", "group_by": "user", "mode": "full"}
    with pytest.raises(ValueError, match=r"noise_rate=0.1 needs eval_args .*order='RO'"):
        config = recbole_autodenoise.make_config(
            "BPR",
            "noisy",
            config_dict={
                "data_path": str(tmp_path),
                **NO_FILTER,
                "noise_rate": 0.1,
                "eval_args": split,
            },
        )
        create_dataset(config)


def test_keys_are_plugin_keys_with_paper_defaults():
    known = recbole_autodenoise.config.plugin_keys()
    assert {"noise_rate", "noise_kind", "clean_valid_guide_ratio"} <= known
    defaults = recbole_autodenoise.config.plugin_defaults()
    assert (
        defaults["noise_rate"],
        defaults["noise_kind"],
        defaults["clean_valid_guide_ratio"],
    ) == (0.0, "random", 0.0)


# ------------------------------------------------------------------------ noise off: stock RecBole


@pytest.mark.parametrize(
    ("model", "stock"), [("BPR", StockDataset), ("SASRec", StockSequentialDataset)]
)
def test_noise_off_is_stock_recbole_and_has_no_flag(tmp_path, model, stock):
    # noise_kind is ignored at rate 0; the train split must equal stock RecBole's, tensor for
    # tensor.
    config, dataset, train, valid, test = make(
        tmp_path, model, noise_rate=0.0, noise_kind="foreign"
    )
    assert INJECTED_FIELD not in dataset.field2type
    assert INJECTED_FIELD not in train._dataset.inter_feat.columns
    expected = stock(config).build()
    assert train._dataset.inter_feat.columns == expected[0].inter_feat.columns
    for column in expected[0].inter_feat.columns:
        assert torch.equal(train._dataset.inter_feat[column], expected[0].inter_feat[column]), (
            column
        )
    for ours, theirs in zip((valid._dataset, test._dataset), expected[1:]):
        assert real(ours) <= real(theirs)  # the clean filter only removes rows


# --------------------------------------------------------------------------- noise, general models


@pytest.mark.parametrize("rate", [0.01, 0.25, 0.5])
def test_general_injects_exactly_round_rate_times_train(tmp_path, rate):
    _, _, clean_train, clean_valid, clean_test = make(tmp_path, name="clean")
    _, dataset, train, valid, test = make(tmp_path, noise_rate=rate)
    assert len(clean_train._dataset) == USERS * GENERAL_TRAIN == 48
    injected = fake(train._dataset)
    assert len(injected) == round(rate * 48)  # 0, 12, 24 (0.48 rounds to 0)
    assert len(train._dataset) == 48 + len(injected)
    # Real rows keep their split; nothing fake outside train.
    assert real(train._dataset) == real(clean_train._dataset)
    assert real(valid._dataset) == real(clean_valid._dataset) and fake(valid._dataset) == []
    assert real(test._dataset) == real(clean_test._dataset) and fake(test._dataset) == []
    assert dataset.field2type[INJECTED_FIELD].name == "FLOAT"


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_general_injected_rows_are_new_pairs_inside_the_train_span(tmp_path, kind):
    _, _, train, _, _ = make(tmp_path, noise_rate=0.5, noise_kind=kind)
    injected = fake(train._dataset)
    assert len(injected) == 24
    assert len({(u, i) for u, i, _ in injected}) == 24  # no pair twice
    for user, item, timestamp in injected:
        assert item not in {i for _, i in train_interactions(user, sequential=False)}  # nor trained
        span = [t for t, _ in train_interactions(user, sequential=False)]
        assert min(span) <= timestamp <= max(span)
    feat = train._dataset.inter_feat
    assert (feat["rating"][feat[INJECTED_FIELD] == 1] == 0).all()
    # Users are drawn through training rows: with 6 equally active users, no user gets them all.
    assert len(Counter(u for u, _, _ in injected)) > 1


def test_foreign_items_come_from_other_users_training_histories(tmp_path):
    _, _, train, _, _ = make(tmp_path, noise_rate=0.5, noise_kind="foreign")
    history = {u: {i for _, i in train_interactions(u, sequential=False)} for u in BY_USER}
    for user, item, _ in fake(train._dataset):
        assert any(item in items for other, items in history.items() if other != user)


def skewed_rows() -> list[tuple]:
    """Users a0-a9 train on the hot items h0-h3 plus own items; users b0-b9 on own items only.
    For a b user the hot items are unseen with training popularity 10, every other unseen item has
    popularity 1 (someone's training item) or 0 (someone's held-out item)."""
    rows = []
    for k in range(10):
        a_items = ["h0", "h1", "h2", "h3"] + [f"a{k}x{j}" for j in range(8)]
        b_items = [f"b{k}x{j}" for j in range(12)]
        for user, items in ((f"a{k}", a_items), (f"b{k}", b_items)):
            rows += [
                (user, item, 4, 10_000 * (k + 1) + (0 if user[0] == "a" else 500) + j)
                for j, item in enumerate(items)
            ]
    return rows


def test_popular_prefers_popular_items(tmp_path):
    rows = skewed_rows()
    train_items = [
        item
        for user in {r[0] for r in rows}
        for _, item in sorted((r[3], r[1]) for r in rows if r[0] == user)[:8]
    ]
    popularity = Counter(train_items)
    mean_popularity = {}
    for kind in ("random", "popular"):
        _, _, train, _, _ = make(
            tmp_path, name="skewed", rows=rows, noise_rate=0.5, noise_kind=kind
        )
        injected = fake(train._dataset)
        assert len(injected) == 80
        mean_popularity[kind] = np.mean([popularity[item] for _, item, _ in injected])
        if kind == "popular":
            assert all(
                popularity[item] > 0 for _, item, _ in injected
            )  # never a held-out-only item
            hot = sum(item.startswith("h") for user, item, _ in injected if user.startswith("b"))
            assert hot >= 5
        else:
            assert any(popularity[item] == 0 for _, item, _ in injected)
    # Expected per draw: random about 1.1, popular about 2.8 (40 + 112 weight over 152 items).
    assert mean_popularity["popular"] > 2 * mean_popularity["random"]


def test_same_seed_same_noise_other_seed_other_noise(tmp_path):
    def injected(seed: int) -> list[tuple]:
        _, _, train, _, _ = make(tmp_path, noise_rate=0.5, noise_kind="random", seed=seed)
        return sorted(fake(train._dataset))

    first = injected(7)
    assert injected(7) == first
    assert injected(8) != first


# ------------------------------------------------------------------------ noise, sequential models


def test_sequential_injected_rows_are_training_targets_and_heldout_targets_stay(tmp_path):
    _, _, clean_train, clean_valid, clean_test = make(tmp_path, "SASRec", name="clean")
    _, _, train, valid, test = make(tmp_path, "SASRec", noise_rate=0.5)
    assert len(clean_train._dataset) == USERS * SEQ_TRAIN == 54
    injected = fake(train._dataset)
    assert len(injected) == round(0.5 * 54) == 27
    assert len(train._dataset) == 54 + 27
    assert real(train._dataset) == real(clean_train._dataset)
    assert real(valid._dataset) == real(clean_valid._dataset) and fake(valid._dataset) == []
    assert real(test._dataset) == real(clean_test._dataset) and fake(test._dataset) == []
    for user, item, timestamp in injected:
        assert item not in {i for _, i in train_interactions(user, sequential=True)}
        span = [t for t, _ in train_interactions(user, sequential=True)]
        assert min(span) <= timestamp <= max(span)


def test_sequential_fake_clicks_live_in_later_histories(tmp_path):
    _, _, train, valid, test = make(tmp_path, "SASRec", noise_rate=0.5)
    ds = train._dataset
    feat = ds.inter_feat
    flag_lists = feat[INJECTED_FIELD + "_list"]
    lengths = feat["item_length"]
    # Every history is chronological and older than its target, fake clicks included.
    for row in range(len(feat)):
        stamps = feat["timestamp_list"][row][: lengths[row]]
        assert (stamps[1:] >= stamps[:-1]).all() and (stamps <= feat["timestamp"][row]).all()
    # Real targets after a fake click carry it in their history, flagged.
    real_rows = feat[INJECTED_FIELD] == 0
    assert flag_lists[real_rows].sum() > 0
    # A fake row's history is the user's interactions before it, real and fake (last 10).
    fake_rows = torch.nonzero(feat[INJECTED_FIELD] == 1).flatten().tolist()
    all_rows = rows(ds)
    for row in fake_rows:
        user, _, timestamp, _ = all_rows[row]
        # Earlier rows of the user; a real row with the same timestamp also comes first.
        before = sorted(
            (t, i)
            for u, i, t, flag in all_rows
            if u == user and (t < timestamp or (t == timestamp and flag == 0))
        )
        before = BY_USER[user][:1] + before  # the first interaction is history only
        history = tokens(ds, ds.iid_field, feat["item_id_list"][row][: lengths[row]])
        assert history == [i for _, i in before][-10:]
    # Validation histories may now hold fake clicks; their targets never are fake.
    assert (valid._dataset.inter_feat[INJECTED_FIELD] == 0).all() and (
        test._dataset.inter_feat[INJECTED_FIELD] == 0
    ).all()


# --------------------------------------------------------------------------- guide / select split


def guide_rows() -> list[tuple]:
    """g1: 24 interactions, 4 validation rows, all clean. g2: 24, 4 validation rows, 2 clean.
    g3: 12, 2 validation rows, 1 clean. g4: 12, 2 validation rows, none clean."""
    rows = []
    for k, (user, count, valid_ratings) in enumerate(
        (("g1", 24, [5, 5, 5, 5]), ("g2", 24, [5, 1, 4, 1]), ("g3", 12, [1, 3]), ("g4", 12, [2, 1]))
    ):
        valid_start = count * 4 // 6
        for j in range(count):
            offset = j - valid_start
            rating = valid_ratings[offset] if 0 <= offset < len(valid_ratings) else 4
            rows.append((user, f"{user}i{j}", rating, 100_000 * (k + 1) + j))
    return rows


def per_user(dataset) -> Counter:
    return Counter(u for u, _, _, _ in rows(dataset))


def test_guide_count_edge_cases():
    assert [guide_count(n, 0.3) for n in range(6)] == [
        0,
        0,
        1,
        1,
        1,
        2,
    ]  # 0, 1 -> 0; 2 -> at least 1
    assert guide_count(4, 0.9) == 3 and guide_count(2, 0.9) == 1  # select keeps one row
    assert guide_count(10, 0.25) == 3 and guide_count(10, 0.0) == 0  # 2.5 rounds up


def test_ratio_zero_guide_is_the_validation_set(tmp_path):
    _, _, train, valid, _ = make(tmp_path, name="guide", rows=guide_rows())
    assert training_data_of(train).guide_rows is valid._dataset
    assert training_data_of(train).guide is None


@pytest.mark.parametrize(
    ("ratio", "guide_sizes"), [(0.3, {"g1": 1, "g2": 1}), (0.9, {"g1": 3, "g2": 1})]
)
def test_guide_select_per_user_counts(tmp_path, ratio, guide_sizes):
    _, _, _, whole, _ = make(tmp_path, name="guide", rows=guide_rows())
    assert per_user(whole._dataset) == {"g1": 4, "g2": 2, "g3": 1}  # g4 has no clean validation row
    _, _, train, valid, _ = make(
        tmp_path, name="guide", rows=guide_rows(), clean_valid_guide_ratio=ratio
    )
    guide, select = training_data_of(train).guide_rows, valid._dataset
    assert type(guide) is type(select)
    assert per_user(guide) == guide_sizes
    assert per_user(select) == {"g1": 4 - guide_sizes["g1"], "g2": 1, "g3": 1}
    assert real(guide) | real(select) == real(whole._dataset)
    assert not real(guide) & real(select)
    assert len(training_data_of(train).guide._dataset) == len(guide)


def test_guide_split_is_seeded(tmp_path):
    def guide(seed: int) -> set:
        _, _, train, _, _ = make(
            tmp_path, name="guide", rows=guide_rows(), clean_valid_guide_ratio=0.5, seed=seed
        )
        return real(training_data_of(train).guide_rows)

    draws = {frozenset(guide(seed)) for seed in range(6)}
    assert frozenset(guide(0)) in draws and len(draws) > 1


def test_guide_needs_a_user_with_two_clean_rows(tmp_path):
    rows = [row for row in guide_rows() if row[0] in ("g3", "g4")]
    with pytest.raises(
        ValueError, match=r"clean_valid_guide_ratio=0.5 leaves the guide part .* empty"
    ):
        make(tmp_path, name="guide_small", rows=rows, clean_valid_guide_ratio=0.5)


def masked_of(loader) -> dict[tuple[str, str], set[str]]:
    """(user, target) -> items masked from that query's ranking (interaction protocol)."""
    dataset = loader._dataset
    out = {}
    for user_df, (hist_row, hist_item), _, positive_i in loader:
        users = tokens(dataset, dataset.uid_field, user_df[dataset.uid_field])
        targets = tokens(dataset, dataset.iid_field, positive_i)
        for row, (user, target) in enumerate(zip(users, targets)):
            out[(user, target)] = set(
                tokens(dataset, dataset.iid_field, hist_item[hist_row == row])
            )
    return out


def test_guide_and_select_mask_each_other_and_test_masking_is_unchanged(tmp_path):
    _, _, _, _, whole_test = make(tmp_path, name="guide", rows=guide_rows())
    _, _, train, valid, test = make(
        tmp_path, name="guide", rows=guide_rows(), clean_valid_guide_ratio=0.5
    )
    guide_data = training_data_of(train).guide
    assert type(valid) is type(guide_data) is InteractionFullSortEvalDataLoader
    guide_items = {(u, i) for u, i, _ in real(guide_data._dataset)}
    select_items = {(u, i) for u, i, _ in real(valid._dataset)}
    for (user, target), masked in masked_of(valid).items():
        assert target not in masked
        assert {i for u, i in guide_items if u == user} <= masked
    for (user, target), masked in masked_of(guide_data).items():
        assert target not in masked
        assert {i for u, i in select_items if u == user} <= masked
    assert masked_of(test) == masked_of(whole_test)


def test_sequential_guide_rows_keep_their_histories(tmp_path):
    _, _, _, whole, _ = make(tmp_path, "SASRec", name="guide", rows=guide_rows())
    _, _, train, valid, _ = make(
        tmp_path, "SASRec", name="guide", rows=guide_rows(), clean_valid_guide_ratio=0.5
    )
    guide = training_data_of(train).guide_rows
    assert type(guide) is type(valid._dataset)
    history_of = {
        row[:3]: tuple(whole._dataset.inter_feat["item_id_list"][n].tolist())
        for n, row in enumerate(rows(whole._dataset))
    }
    for n, row in enumerate(rows(guide)):
        assert tuple(guide.inter_feat["item_id_list"][n].tolist()) == history_of[row[:3]]
    assert len(guide) + len(valid._dataset) == len(whole._dataset)
    assert training_data_of(train).guide.sample_size == len(guide)  # one query per row


def test_noise_and_guide_together_use_separate_streams(tmp_path):
    _, _, train, _, _ = make(tmp_path, name="guide", rows=guide_rows(), noise_rate=0.2)
    _, _, both, _, _ = make(
        tmp_path, name="guide", rows=guide_rows(), noise_rate=0.2, clean_valid_guide_ratio=0.5
    )
    assert sorted(fake(train._dataset)) == sorted(
        fake(both._dataset)
    )  # the guide split draws nothing from noise's stream


# --------------------------------------------------------------------------- ML-100K end to end


@pytest.mark.slow
def test_guide_loader_evaluates_after_a_short_bpr_run():
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    from tests.conftest import FAST

    overrides = {
        **FAST,
        "epochs": 1,
        "user_inter_num_interval": "[10,60]",
        "clean_valid_guide_ratio": 0.2,
        "noise_rate": 0.1,
    }
    config = recbole_autodenoise.make_config("BPR", "ml-100k", config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    guide_data = training_data_of(train).guide
    assert guide_data.sample_size == len(guide_data._dataset) > 0
    assert len(fake(train._dataset)) > 0
    init_seed(config["seed"], config["reproducibility"])
    trainer = Trainer(config, get_model("BPR")(config, train._dataset))
    trainer.fit(train, valid, saved=False)
    for loader in (guide_data, valid, test):
        result = trainer.evaluate(loader, load_best_model=False)
        assert 0.0 < result["ndcg@20"] < 1.0 and math.isfinite(result["recall@50"])


# --------------------------------------------------------------------------- ties and logging


def tied_rows() -> list[tuple]:
    """RAW, but u0's 12 interactions all share one timestamp: its train span is a single instant
    that ties with its held-out rows, so only the row order tells train from held out."""
    return [(u, i, r, 5000 if u == "u0" else t) for u, i, r, t in RAW]


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_fake_rows_stay_before_heldout_rows_that_share_their_timestamp(tmp_path, model):
    rows_ = tied_rows()
    _, _, clean_train, clean_valid, clean_test = make(tmp_path, model, name="tied", rows=rows_)
    _, _, train, valid, test = make(
        tmp_path, model, name="tied", rows=rows_, noise_rate=0.5, seed=3
    )
    injected = [row for row in fake(train._dataset) if row[0] == "u0"]
    assert injected and all(t == 5000 for _, _, t in injected)
    assert real(train._dataset) == real(clean_train._dataset)
    assert real(valid._dataset) == real(clean_valid._dataset) and real(test._dataset) == real(
        clean_test._dataset
    )
    if model == "SASRec":
        # No training row (fake ones included) has a real held-out interaction of u0 (clean or not)
        # in its history. (A fake click's item may be a held-out item: noise avoids training items
        # only; its flag tells it apart.)
        def u0_train_items(ds) -> set[str]:
            items = set()
            flagged = INJECTED_FIELD in ds.inter_feat.columns
            flag_lists = ds.inter_feat[INJECTED_FIELD + "_list"] if flagged else None
            for n, (user, item, _, flag) in enumerate(rows(ds)):
                if user == "u0":
                    length = int(ds.inter_feat["item_length"][n])
                    history = ds.inter_feat["item_id_list"][n][:length]
                    if flag_lists is not None:
                        history = history[flag_lists[n][:length] == 0]
                    items |= {*([item] if flag == 0 else []), *tokens(ds, ds.iid_field, history)}
            return items

        held_out = {i for u, i, _, _ in rows_ if u == "u0"} - u0_train_items(clean_train._dataset)
        assert len(held_out) == 2
        assert not held_out & u0_train_items(train._dataset)


def test_injection_logs_one_info_line(tmp_path, caplog):
    caplog.set_level("INFO")
    make(tmp_path, noise_rate=0.25, noise_kind="popular")
    lines = [r.getMessage() for r in caplog.records if "noise injection" in r.getMessage()]
    assert len(lines) == 1
    assert "12 'popular' fake interactions" in lines[0] and "48 training rows" in lines[0]


# ---------------------------------------------------- explicit rows (controller_credit: explicit)


def rated(dataset) -> Counter:
    """(user, clean?) -> rows, from a split dataset's ratings (threshold 3)."""
    feat = dataset.inter_feat
    users = tokens(dataset, dataset.uid_field, feat[dataset.uid_field])
    return Counter((u, r >= 3) for u, r in zip(users, feat["rating"].tolist()))


def test_explicit_rows_are_every_rated_validation_row_without_a_guide_split(tmp_path):
    _, _, train, valid, _ = make(tmp_path, name="guide", rows=guide_rows())
    explicit = training_data_of(train).explicit_rows
    assert rated(explicit) == {
        ("g1", True): 4,
        ("g2", True): 2,
        ("g2", False): 2,
        ("g3", True): 1,
        ("g3", False): 1,
        ("g4", False): 2,
    }
    assert real(valid._dataset) < real(explicit)  # the clean validation rows and the low-rated ones


@pytest.mark.parametrize(
    ("ratio", "guide_sizes"), [(0.3, {"g1": 1, "g2": 1}), (0.9, {"g1": 3, "g2": 1})]
)
def test_explicit_rows_with_a_guide_split_are_the_guide_part_and_the_low_rated_rows(
    tmp_path, ratio, guide_sizes
):
    _, _, train, valid, _ = make(
        tmp_path, name="guide", rows=guide_rows(), clean_valid_guide_ratio=ratio
    )
    explicit = training_data_of(train).explicit_rows
    low = {("g2", False): 2, ("g3", False): 1, ("g4", False): 2}
    assert rated(explicit) == {**low, **{(u, True): n for u, n in guide_sizes.items()}}
    assert real(training_data_of(train).guide_rows) < real(explicit)
    assert not real(valid._dataset) & real(explicit)  # validation selects on rows no learner saw


def test_sequential_explicit_rows_keep_their_histories(tmp_path):
    _, _, train, _, _ = make(tmp_path, model="GRU4Rec", name="guide", rows=guide_rows())
    explicit, held_out = training_data_of(train).explicit_rows, training_data_of(train).valid_rows
    assert len(explicit) == len(held_out) == 8  # every validation target row, clean or not
    for field in ("user_id", "item_id", "rating", "item_id_list", "item_length"):
        assert torch.equal(explicit.inter_feat[field], held_out[field])
    assert (explicit.inter_feat["rating"] < 3).sum() == 1 and (
        explicit.inter_feat["item_length"] > 0
    ).all()
