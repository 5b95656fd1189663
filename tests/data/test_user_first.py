"""``eval_protocol: user_first`` (the paper's): one query per user, its first clean held-out item,
ranked against everything else the user has up to that period (noisy held-out rows included).

Edge cases on a tiny hand-built data set first (exact query items and masked sets), then the
reward pass, then ml-latest-small end to end (one query per user with a clean test row).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from tests.conftest import FAST, SHARED_DATA, write_inter
from recbole.data.dataloader import FullSortEvalDataLoader

import recbole_autodenoise as rad
from recbole_autodenoise.data import (
    InteractionFullSortEvalDataLoader,
    UserFirstFullSortEvalDataLoader,
    create_dataset,
    data_preparation,
    prepare_data,
)
from recbole_autodenoise.data.bundle import training_data_of
from recbole.utils import get_model

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}


def _user_rows(
    user: str, ratings: list[float], times: list[float], items: list[str] | None = None
) -> list[tuple]:
    items = items or [f"{user.lower()}{n}" for n in range(1, len(ratings) + 1)]
    return [(user, item, rating, time) for item, rating, time in zip(items, ratings, times)]


# 12 rows per user: RecBole's 4:1:1 gives 8 train / 2 validation / 2 test, in time order.
TIMES = [float(t) for t in range(1, 13)]
ROWS = (
    # A: validation a9 noisy (2), a10 clean; test a11, a12 clean -> queries a10, a11. A's first item
    # is "x", so x's internal id is below y's: the tie below is broken by neither id nor row order.
    _user_rows("A", [4] * 8 + [2, 5] + [4, 5], TIMES, ["x"] + [f"a{n}" for n in range(2, 13)])
    # B: validation b9 noisy, b10 clean (3 = threshold); test tie at t=11, y before x in the file:
    # split_seed 0's hash puts x first, split_seed 2's y
    + _user_rows(
        "B",
        [1] * 8 + [1, 3] + [4, 5],
        TIMES[:10] + [11.0, 11.0],
        [f"b{n}" for n in range(1, 11)] + ["y", "x"],
    )
    # C: validation c9, c10 clean -> c9; test c11 noisy, c12 clean -> c12
    + _user_rows("C", [5] * 8 + [4, 5] + [1, 4], TIMES)
)


def tiny_config(tmp_path, model="BPR", **overrides):
    write_inter(tmp_path, "uf", ROWS)
    return rad.make_config(
        model, "uf", config_dict={"data_path": str(tmp_path), **NO_FILTER, **overrides}
    )


def _tokens(dataset, field, ids) -> list[str]:
    return [str(t) for t in dataset.field2id_token[field][np.asarray(ids).reshape(-1)]]


def _queries(loader) -> dict[str, tuple[str, set[str]]]:
    """{user token: (target token, masked item tokens)} over all batches; one query per user."""
    dataset = loader._dataset
    out = {}
    for user_df, (hist_row, hist_item), positive_u, positive_i in loader:
        assert torch.equal(
            positive_u, torch.arange(len(user_df))
        )  # exactly one relevant item per query
        users = _tokens(dataset, dataset.uid_field, user_df[dataset.uid_field])
        for row, (user, target) in enumerate(
            zip(users, _tokens(dataset, dataset.iid_field, positive_i))
        ):
            assert user not in out
            out[user] = (
                target,
                set(_tokens(dataset, dataset.iid_field, hist_item[hist_row == row])),
            )
    return out


def _items(user: str, numbers) -> set[str]:
    return {"x" if (user, n) == ("A", 1) else f"{user.lower()}{n}" for n in numbers}


def test_user_first_is_the_default():
    assert rad.make_config("BPR", "ml-100k")["eval_protocol"] == "user_first"


def test_user_first_validation_queries_and_masks(tmp_path):
    config = tiny_config(tmp_path)
    _, valid, _ = data_preparation(config, create_dataset(config))
    assert type(valid) is UserFirstFullSortEvalDataLoader and valid.sample_size == 3
    assert _queries(valid) == {
        "A": (
            "a10",
            _items("A", range(1, 10)),
        ),  # training items and the noisy a9; never the test items
        "B": ("b10", _items("B", range(1, 10))),
        "C": ("c9", _items("C", [*range(1, 9), 10])),  # the other (clean) validation item
    }


def test_user_first_test_queries_and_masks(tmp_path):
    config = tiny_config(tmp_path)
    _, _, test = data_preparation(config, create_dataset(config))
    assert type(test) is UserFirstFullSortEvalDataLoader and test.sample_size == 3
    assert _queries(test) == {
        "A": ("a11", _items("A", [*range(1, 11), 12])),  # the noisy validation a9 included
        "B": ("x", _items("B", range(1, 11)) | {"y"}),  # timestamp tie: the seeded hash's first row
        "C": ("c12", _items("C", range(1, 12))),  # the noisy test c11 masked
    }


@pytest.mark.parametrize(("split_seed", "target"), [(0, "x"), (2, "y")])
def test_user_first_tie_follows_split_seed_not_file_order(tmp_path, split_seed, target):
    for name, rows in (("uf", ROWS), ("uf_reversed", ROWS[::-1])):
        write_inter(tmp_path, name, rows)
        config = rad.make_config(
            "BPR",
            name,
            config_dict={"data_path": str(tmp_path), **NO_FILTER, "split_seed": split_seed},
        )
        _, _, test = data_preparation(config, create_dataset(config))
        assert _queries(test)["B"][0] == target, name


def test_test_loaders_of_every_protocol(tmp_path):
    config = tiny_config(tmp_path)
    bundle = prepare_data(config, create_dataset(config))
    test, by_protocol = bundle.test, bundle.test_by_protocol
    assert list(by_protocol) == ["user_first", "interaction", "user"]
    assert by_protocol["user_first"] is test
    assert type(by_protocol["interaction"]) is InteractionFullSortEvalDataLoader
    assert by_protocol["interaction"].sample_size == 5  # a11, a12, y, x, c12
    assert type(by_protocol["user"]) is FullSortEvalDataLoader


def test_the_reward_loader_covers_the_whole_clean_validation_set(tmp_path):
    config = tiny_config(tmp_path)
    bundle = prepare_data(config, create_dataset(config))
    guide, valid = bundle.training.guide, bundle.select
    assert type(guide) is InteractionFullSortEvalDataLoader
    assert guide._dataset is not valid._dataset and len(guide._dataset) == 4  # a10, b10, c9, c10
    assert guide.sample_size == len(guide._dataset)
    assert len(valid._dataset) == 3


def test_interaction_protocol_keeps_no_reward_loader(tmp_path):
    config = tiny_config(tmp_path, eval_protocol="interaction")
    bundle = prepare_data(config, create_dataset(config))
    valid, test, by_protocol = bundle.select, bundle.test, bundle.test_by_protocol
    assert bundle.training.guide is None
    assert type(valid) is InteractionFullSortEvalDataLoader and by_protocol["interaction"] is test


def test_user_first_needs_a_timestamp(tmp_path):
    config = tiny_config(
        tmp_path,
        load_col={"inter": ["user_id", "item_id", "rating"]},
        eval_args={"split": {"RS": [4, 1, 1]}, "order": "RO", "group_by": "user", "mode": "full"},
    )
    with pytest.raises(ValueError, match="user_first needs a timestamp"):
        data_preparation(config, create_dataset(config))


def test_bad_protocol_names_the_allowed_ones(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"'eval_protocol' = 'first' is invalid: expected one of "
        r"\['user_first', 'interaction', 'user'\]",
    ):
        tiny_config(tmp_path, eval_protocol="first")  # make_config refuses it before any data


# --------------------------------------------------------------------------- sequential models

SEQ_TIMES = [float(t) for t in range(1, 25)]
# 24 rows per user: 23 target rows, which RecBole splits 18 / 3 (s19-s21) / 3 (s22-s24); s22 is
# noisy.
SEQ_ROWS = [
    (user, item, 1.0 if item == "s22" else rating, time)
    for user, item, rating, time in _user_rows("S", [4.0] * 24, SEQ_TIMES)
    + _user_rows("T", [4.0] * 24, SEQ_TIMES)
]


@pytest.mark.parametrize(
    "phase, expected", [("valid", {"S": "s19", "T": "t19"}), ("test", {"S": "s23", "T": "t22"})]
)
def test_sequential_user_first_keeps_each_users_first_clean_target_row(tmp_path, phase, expected):
    write_inter(tmp_path, "seq", SEQ_ROWS)
    config = rad.make_config(
        "GRU4Rec",
        "seq",
        config_dict={"data_path": str(tmp_path), **NO_FILTER, "MAX_ITEM_LIST_LENGTH": 10},
    )
    bundle = prepare_data(config, create_dataset(config))
    loader = {"valid": bundle.select, "test": bundle.test}[phase]
    ds = loader._dataset
    assert type(loader) is FullSortEvalDataLoader and loader.sample_size == 2
    users = _tokens(ds, ds.uid_field, ds.inter_feat[ds.uid_field])
    assert dict(zip(users, _tokens(ds, ds.iid_field, ds.inter_feat[ds.iid_field]))) == expected
    for row, user in enumerate(users):
        number = int(expected[user][1:])
        length = int(ds.inter_feat["item_length"][row])
        history = _tokens(ds, ds.iid_field, ds.inter_feat["item_id_list"][row][:length])
        assert history == [
            f"{user.lower()}{n}" for n in range(number - 10, number)
        ]  # RecBole's last 10 items
    assert list(bundle.test_by_protocol) == ["user_first", "interaction"]


# --------------------------------------------------------------------------- the reward pass


@pytest.mark.slow
def test_reward_is_computed_on_the_whole_clean_validation_set(tmp_path):
    config = tiny_config(
        tmp_path,
        denoise_scheme="autodenoise_s",
        epochs=1,
        train_batch_size=64,
        topk=[5],
        valid_metric="NDCG@5",
    )
    train, valid, _ = data_preparation(config, create_dataset(config))
    model = get_model("BPR")(config, train._dataset)
    trainer = rad.AutoDenoiseTrainer(config, model)
    seen = []
    original = trainer.scheme.after_evaluation
    trainer.scheme.after_evaluation = lambda result, epoch: (
        seen.append(dict(result)) or original(result, epoch)
    )
    trainer.fit(train, valid, saved=False)
    guide = training_data_of(train).guide
    whole = InteractionFullSortEvalDataLoader(config, guide._dataset, valid._sampler)
    expected, _ = trainer.clean_auc(whole)
    assert len(whole._dataset) == 4 and seen and seen[-1]["gauc"] == expected
    assert trainer.history[-1]["controller_reward"] == expected
    assert (
        trainer.clean_auc(valid)[0] != expected
    )  # the one-query-per-user pass would give another reward


# ----------------------------------------------------------------------- ml-latest-small end to end


@pytest.fixture(scope="module")
def ml_latest_small(tmp_path_factory):
    ratings = SHARED_DATA / "ml-latest-small" / "ratings.csv"
    if not ratings.exists():
        pytest.skip(f"{ratings} is absent")
    folder = tmp_path_factory.mktemp("mls")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "recbole_autodenoise.prepare",
            str(ratings),
            "--name",
            "ml-latest-small",
            "--data-path",
            str(folder),
        ],
        check=True,
        capture_output=True,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setattr("sys.argv", ["pytest"])
        from recbole_autodenoise.quick_start import run

        config = {
            **FAST,
            "epochs": 1,
            "denoise_scheme": "default",
            "data_path": str(folder),
            "metric_decimal_place": 12,
        }
        return run("BPR", "ml-latest-small", config_dict=config, saved=False)


# 609 users after 10-core filtering; 6 of them rated every test-period item below 3 (with the exact
# chronological split, same-second ties in split_seed 0's hash order), so they have no clean test
# interaction and no query: 603 queries (the paper's recalls are in 609ths).
QUERIES = 603


def test_ml_latest_small_has_one_query_per_user_and_recalls_in_603rds(ml_latest_small):
    results = ml_latest_small
    assert results["eval_protocol"] == "user_first"
    assert results["data"]["users"] == 610  # 609 users + RecBole's padding id
    assert results["data"]["test"] == QUERIES  # one test query (row) per user with a clean test row
    test = results["test"]
    assert results["test_by_protocol"]["user_first"] == test
    # RecBole rounds each metric to metric_decimal_place (12) after averaging in float64
    rounding = 0.5 * 10.0**-12 + np.finfo(np.float64).eps
    for k in (10, 20, 50):
        hits = test[f"recall@{k}"] * QUERIES
        assert abs(hits - round(hits)) <= QUERIES * rounding
        assert abs(test[f"precision@{k}"] - test[f"recall@{k}"] / k) <= 2 * rounding
        assert abs(test[f"f1@{k}"] - 2 * test[f"recall@{k}"] / (k + 1)) <= 3 * rounding
    assert set(results["test_by_protocol"]) == {"user_first", "interaction", "user"}
    for name, values in results["test_by_protocol"].items():
        assert all(np.isfinite(v) and 0 <= v <= 1 for v in values.values()), name
    assert results["test_by_protocol"]["interaction"] != test


def test_per_query_ranks_give_each_protocols_reported_metrics(ml_latest_small):
    """The per-query record of a run's test set is the one RecBole scored: its mean NDCG@20 and
    Recall@20 are the reported ones; ``user`` (several positives per query) keeps none."""
    from recbole_autodenoise.evaluation.per_query import metric_per_query

    results = ml_latest_small
    found = results["per_query"]
    assert set(found) == {"user_first", "interaction"}
    assert found["user_first"]["queries"] == QUERIES and found["user_first"]["top_k"] == 50
    assert found["interaction"]["queries"] > 10 * QUERIES  # one query per clean test interaction
    for name, record in found.items():
        assert all(0 <= q < record["queries"] and 1 <= rank <= 50 for q, rank in record["hits"])
        for metric in ("ndcg@20", "recall@20", "ndcg@50"):
            per_query = metric_per_query(record, metric)
            assert per_query.mean() == pytest.approx(
                results["test_by_protocol"][name][metric], abs=1e-11
            ), (name, metric)
