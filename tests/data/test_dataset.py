"""The clean-feedback data protocol: k-core, chronological 4:1:1 per user, clean validation/test.

Every case is a tiny hand-written .inter file whose split is computed by hand below: RecBole's
``RS: [4, 1, 1]`` on a user with 6 interactions gives 4 train / 1 validation / 1 test, in
timestamp order (``order: TO``), whatever the order of the rows in the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.error import URLError

import pytest
from tests.conftest import INTER_HEADER, SHARED_DATA, write_inter

import recbole_autodenoise
from recbole_autodenoise.data import (
    CleanDataset,
    CleanSequentialDataset,
    InteractionFullSortEvalDataLoader,
    create_dataset,
    data_preparation,
)

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}

# Per user: items in chronological order with their ratings. The first 4 are train, the 5th is
# validation, the 6th test. Timestamps are distinct; the file lists the rows shuffled. No user has
# rated every item (i7 is only u2's), so BPR's negative sampler always has a negative.
TINY = {
    "u1": [("i1", 5), ("i2", 1), ("i3", 4), ("i4", 2), ("i5", 2), ("i6", 5)],
    "u2": [("i7", 4), ("i6", 4), ("i5", 4), ("i4", 4), ("i2", 1), ("i1", 3)],
    "u3": [("i1", 1), ("i2", 2), ("i3", 3), ("i4", 4), ("i5", 5), ("i6", 2.5)],
}
TRAIN = {(u, i, float(r)) for u, seq in TINY.items() for i, r in seq[:4]}
VALID_ALL = {(u, seq[4][0], float(seq[4][1])) for u, seq in TINY.items()}
TEST_ALL = {(u, seq[5][0], float(seq[5][1])) for u, seq in TINY.items()}


def tiny_rows() -> list[tuple]:
    rows = []
    for base, (user, seq) in zip((1000, 2000, 3000), TINY.items()):
        for offset, (item, rating) in enumerate(seq):
            rows.append((user, item, rating, base + 10 * offset))
    # Reverse-chronological file order per user and users interleaved: the split must sort by time.
    return sorted(rows, key=lambda row: (-(row[3] % 1000), row[0]))


def tiny_config(tmp_path: Path, model: str = "BPR", name: str = "tiny", **overrides):
    write_inter(tmp_path, name, tiny_rows())
    return recbole_autodenoise.make_config(
        model, name, config_dict={"data_path": str(tmp_path), **NO_FILTER, **overrides}
    )


def tokens(dataset, field: str, ids) -> list[str]:
    return [str(t) for t in dataset.field2id_token[field][ids.numpy().reshape(-1)]]


def as_rows(dataset) -> set[tuple]:
    """(user token, item token, rating) of every row of a (split) dataset."""
    feat = dataset.inter_feat
    users = tokens(dataset, dataset.uid_field, feat[dataset.uid_field])
    items = tokens(dataset, dataset.iid_field, feat[dataset.iid_field])
    return {(str(u), str(i), float(r)) for u, i, r in zip(users, items, feat["rating"].tolist())}


def as_list(dataset) -> list[tuple]:
    feat = dataset.inter_feat
    users = tokens(dataset, dataset.uid_field, feat[dataset.uid_field])
    items = tokens(dataset, dataset.iid_field, feat[dataset.iid_field])
    return sorted(
        (str(u), str(i), float(r)) for u, i, r in zip(users, items, feat["rating"].tolist())
    )


# --------------------------------------------------------------------------- general models


def test_hand_computed_split_sanity():
    # The expectation itself: 4 per user in train (with low ratings), 3 held out each side.
    assert len(TRAIN) == 12
    assert {r for _, _, r in TRAIN} >= {1.0, 2.0}
    assert {row for row in VALID_ALL if row[2] >= 3} == {("u3", "i5", 5.0)}
    assert {row for row in TEST_ALL if row[2] >= 3} == {("u1", "i6", 5.0), ("u2", "i1", 3.0)}


def test_general_train_keeps_low_ratings_and_heldout_is_clean(tmp_path):
    config = tiny_config(tmp_path)
    dataset = create_dataset(config)
    assert type(dataset) is CleanDataset
    assert dataset.inter_num == 18 and dataset.user_num == 4 and dataset.item_num == 8
    train, valid, test = data_preparation(config, dataset)

    assert "rating" in train._dataset.inter_feat.columns
    assert len(train._dataset) == 12
    assert as_rows(train._dataset) == TRAIN  # the low-rated rows (1, 2) are still there
    counts = {}
    for user, _, _ in as_list(train._dataset):
        counts[user] = counts.get(user, 0) + 1
    assert counts == {"u1": 4, "u2": 4, "u3": 4}

    # Threshold 3: validation u1/i5 (2) and u2/i2 (1) dropped; test u3/i6 (2.5) dropped, u2/i1 (3)
    # kept.
    assert as_list(valid._dataset) == [("u3", "i5", 5.0)]
    assert as_list(test._dataset) == [("u1", "i6", 5.0), ("u2", "i1", 3.0)]
    for split in (valid._dataset, test._dataset):
        assert (split.inter_feat["rating"] >= 3).all()
    assert as_rows(valid._dataset) < VALID_ALL and as_rows(test._dataset) < TEST_ALL


def test_threshold_is_configurable(tmp_path):
    config = tiny_config(tmp_path, clean_rating_threshold=4)
    train, valid, test = data_preparation(config, create_dataset(config))
    assert len(train._dataset) == 12
    assert as_list(valid._dataset) == [("u3", "i5", 5.0)]
    assert as_list(test._dataset) == [("u1", "i6", 5.0)]  # u2/i1 (rating 3) is now noisy


def test_threshold_boundary_is_inclusive_and_low_threshold_keeps_all(tmp_path):
    config = tiny_config(tmp_path, clean_rating_threshold=1)
    _, valid, test = data_preparation(config, create_dataset(config))
    assert as_rows(valid._dataset) == VALID_ALL  # rating 1 >= 1 is kept
    assert as_rows(test._dataset) == TEST_ALL


def test_threshold_between_ratings(tmp_path):
    config = tiny_config(tmp_path, clean_rating_threshold=2.5)
    _, valid, test = data_preparation(config, create_dataset(config))
    assert as_list(valid._dataset) == [("u3", "i5", 5.0)]
    assert as_list(test._dataset) == [("u1", "i6", 5.0), ("u2", "i1", 3.0), ("u3", "i6", 2.5)]


# --------------------------------------------------------------------------- sequential models


def test_sequential_filters_targets_but_histories_keep_low_ratings(tmp_path):
    config = tiny_config(tmp_path, model="SASRec")
    dataset = create_dataset(config)
    assert type(dataset) is CleanSequentialDataset
    train, valid, test = data_preparation(config, dataset)

    assert as_list(valid._dataset) == [("u3", "i5", 5.0)]
    assert as_list(test._dataset) == [("u1", "i6", 5.0), ("u2", "i1", 3.0)]
    # RecBole's augmentation: one training row per target item from position 2 to 4, per user.
    assert len(train._dataset) == 9

    rating_of = {(u, i): float(r) for u, seq in TINY.items() for i, r in seq}
    ds = valid._dataset
    feat = ds.inter_feat
    assert len(feat) == 1
    length = int(feat["item_length"][0])
    history = tokens(ds, ds.iid_field, feat["item_id_list"][0][:length])
    assert history == ["i1", "i2", "i3", "i4"]  # u3's whole past, in time order
    assert min(rating_of[("u3", item)] for item in history) < 3  # i1 (1) and i2 (2) are kept

    ds = test._dataset
    feat = ds.inter_feat
    users = tokens(ds, ds.uid_field, feat[ds.uid_field])
    row = users.index("u1")
    length = int(feat["item_length"][row])
    history = tokens(ds, ds.iid_field, feat["item_id_list"][row][:length])
    # u1's test history includes its noisy train items AND its dropped low-rated validation item.
    assert history == ["i1", "i2", "i3", "i4", "i5"]
    assert rating_of[("u1", "i5")] < 3 and rating_of[("u1", "i2")] < 3


# --------------------------------------------------------------------------- k-core


def kcore_rows() -> list[tuple]:
    """Users 1-11 each rate items 1-12 but one (user u skips item u); users 1-9 also rate item 13;
    user 12 rates items 1-8 and 13 (9 items).

    Before filtering item 13 has 10 raters (users 1-9 and 12), so it passes a single 10-core pass;
    only after user 12 (9 < 10) is removed does item 13 drop to 9 raters and go too: the filter is
    iterative. What is left: users 1-11 x 11 items each, items 1-12 with 10 or 11 raters.
    """
    items_of = {
        u: [i for i in range(1, 13) if i != u] + ([13] if u <= 9 else []) for u in range(1, 12)
    }
    items_of[12] = list(range(1, 9)) + [13]
    rows, ts = [], 0
    for user, items in items_of.items():
        for item in items:
            ts += 1
            rows.append((f"u{user}", f"i{item}", 4, ts))
    return rows


def test_kcore_default_is_iterative_10_core(tmp_path):
    rows = kcore_rows()
    assert len(rows) == 11 * 11 + 9 + 9
    write_inter(tmp_path, "kcore", rows)
    config = recbole_autodenoise.make_config(
        "BPR", "kcore", config_dict={"data_path": str(tmp_path), "state": "WARNING"}
    )
    assert config["user_inter_num_interval"] == "[10,inf)"
    dataset = create_dataset(config)
    assert dataset.inter_num == 11 * 11
    assert dataset.user_num == 11 + 1  # + padding id
    assert dataset.item_num == 12 + 1
    assert "u12" not in set(dataset.field2id_token["user_id"].tolist())
    assert "i13" not in set(dataset.field2id_token["item_id"].tolist())
    # 11 interactions per user -> 9 / 1 / 1.
    train, valid, test = data_preparation(config, dataset)
    assert (len(train._dataset), len(valid._dataset), len(test._dataset)) == (99, 11, 11)


def test_kcore_is_configurable(tmp_path):
    write_inter(tmp_path, "kcore", kcore_rows())
    config = recbole_autodenoise.make_config(
        "BPR",
        "kcore",
        config_dict={
            "data_path": str(tmp_path),
            "state": "WARNING",
            "user_inter_num_interval": "[9,inf)",
            "item_inter_num_interval": "[9,inf)",
            "eval_protocol": "interaction",
        },  # loaders over every clean held-out row
    )
    dataset = create_dataset(config)
    assert (dataset.inter_num, dataset.user_num, dataset.item_num) == (
        139,
        13,
        14,
    )  # nothing removed
    train, valid, test = data_preparation(config, dataset)
    # Users 1-9: 12 rows -> 8/2/2; users 10-11: 11 -> 9/1/1; user 12: 9 -> 7/1/1.
    assert (len(train._dataset), len(valid._dataset), len(test._dataset)) == (
        9 * 8 + 2 * 9 + 7,
        9 * 2 + 2 + 1,
        9 * 2 + 2 + 1,
    )


# --------------------------------------------------------------------------- errors before training


def test_missing_rating_column(tmp_path):
    folder = tmp_path / "norating"
    folder.mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\ti{i}\t{10 * u + i}" for u in range(3) for i in range(6)]
    (folder / "norating.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = recbole_autodenoise.make_config(
        "BPR", "norating", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    with pytest.raises(ValueError) as info:
        create_dataset(config)
    message = str(info.value)
    assert "'rating'" in message and "clean_rating_field" in message
    assert "norating.inter" in message


def test_custom_rating_field_that_is_absent(tmp_path):
    config = tiny_config(tmp_path, clean_rating_field="stars")
    with pytest.raises(ValueError, match=r"'stars'.*clean_rating_field"):
        create_dataset(config)


def test_threshold_leaving_validation_empty(tmp_path):
    config = tiny_config(tmp_path, clean_rating_threshold=6)
    dataset = create_dataset(config)
    with pytest.raises(ValueError) as info:
        data_preparation(config, dataset)
    message = str(info.value)
    assert "clean_rating_threshold=6" in message and "validation" in message
    assert "3 rows before filtering" in message


def test_threshold_leaving_test_empty(tmp_path):
    # At 5 only u3/i5 (validation) and u1/i6 (test) are clean; rate u1/i6 4 and test is empty.
    config = tiny_config(tmp_path, clean_rating_threshold=5)
    _, valid, test = data_preparation(config, create_dataset(config))
    assert as_list(valid._dataset) == [("u3", "i5", 5.0)] and as_list(test._dataset) == [
        ("u1", "i6", 5.0)
    ]
    rows = [
        row if not (row[0] == "u1" and row[1] == "i6") else (row[0], row[1], 4, row[3])
        for row in tiny_rows()
    ]
    write_inter(tmp_path, "tiny2", rows)
    config = recbole_autodenoise.make_config(
        "BPR",
        "tiny2",
        config_dict={"data_path": str(tmp_path), **NO_FILTER, "clean_rating_threshold": 5},
    )
    with pytest.raises(ValueError, match=r"clean_rating_threshold=5 leaves the test set"):
        data_preparation(config, create_dataset(config))


@pytest.mark.parametrize("threshold", ["high", True, None, [3]])
def test_non_numeric_threshold(tmp_path, threshold):
    with pytest.raises(  # make_config refuses it, before any data loads
        ValueError,
        match=f"config key 'clean_rating_threshold' = {re.escape(repr(threshold))} is invalid: "
        "expected a number",
    ):
        create_dataset(tiny_config(tmp_path, clean_rating_threshold=threshold))


@pytest.mark.parametrize("field", ["", 3])
def test_bad_rating_field(tmp_path, field):
    with pytest.raises(  # make_config refuses it, before any data loads
        ValueError,
        match=f"config key 'clean_rating_field' = {field!r} is invalid: expected a field name",
    ):
        create_dataset(tiny_config(tmp_path, clean_rating_field=field))


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise URLError("offline (test)")

    monkeypatch.setattr("recbole.data.dataset.dataset.decide_download", refuse)
    monkeypatch.setattr("recbole.utils.url.ur.urlopen", refuse)


@pytest.mark.parametrize("name", ["no-such-dataset", "ml-1m"])
def test_missing_dataset_offline_names_the_file_and_prepare(tmp_path, monkeypatch, name):
    # "ml-1m" is a name RecBole knows how to download; "no-such-dataset" is not.
    _offline(monkeypatch)
    data_path = tmp_path / "nowhere"
    config = recbole_autodenoise.make_config(
        "BPR", name, config_dict={"data_path": str(data_path), **NO_FILTER}
    )
    with pytest.raises(FileNotFoundError) as info:
        create_dataset(config)
    message = str(info.value)
    assert str(data_path / name / f"{name}.inter") in message
    assert "recbole_autodenoise.prepare" in message
    assert not (data_path / name).exists() or not any((data_path / name).iterdir())


def test_header_only_file_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "empty.inter").write_text(INTER_HEADER, encoding="utf-8")
    config = recbole_autodenoise.make_config(
        "BPR", "empty", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    with pytest.raises(ValueError, match="empty"):  # RecBole's own check, before any training
        data_preparation(config, create_dataset(config))


# --------------------------------------------------------------------------- the paper's statistics


ML_LATEST_SMALL = SHARED_DATA / "ml-latest-small" / "ratings.csv"


@pytest.mark.slow
@pytest.mark.skipif(not ML_LATEST_SMALL.is_file(), reason=f"{ML_LATEST_SMALL} is not available")
def test_ml_latest_small_matches_the_paper(tmp_path):
    from recbole_autodenoise.prepare import prepare

    summary = prepare(ML_LATEST_SMALL, "ml-latest-small", data_path=tmp_path)
    assert summary.rows == 100836
    config = recbole_autodenoise.make_config(
        "BPR",
        "ml-latest-small",
        config_dict={
            "data_path": str(tmp_path),
            "state": "WARNING",
            "eval_protocol": "interaction",
        },
    )
    dataset = create_dataset(config)
    # Paper Table 2 (10-core): 81,109 interactions, 609 users and 2,269 items (+1 padding id each).
    assert dataset.inter_num == 81109
    assert dataset.user_num == 610
    assert dataset.item_num == 2270
    train, valid, test = data_preparation(config, dataset)
    assert isinstance(valid, InteractionFullSortEvalDataLoader)
    assert len(train._dataset) + len(valid._dataset) + len(test._dataset) < 81109
    for split in (valid._dataset, test._dataset):
        assert (split.inter_feat["rating"] >= 3).all()
