"""F1@K as a RecBole metric, and the paper's per-interaction evaluation protocol.

Hand-built ``pos_index`` / ``pos_len`` matrices as in RecBole's tests/metrics/test_topk_metrics.py,
then the protocol on a tiny data set whose queries are known by hand, then ML-100K end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.conftest import FAST, write_inter
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.evaluator import register
from recbole.evaluator.collector import DataStruct
from recbole.utils import EvaluatorType

import recbole_autodenoise
from recbole_autodenoise.data import (
    InteractionFullSortEvalDataLoader,
    create_dataset,
    data_preparation,
)
from recbole_autodenoise.evaluation.metrics import F1, register_metrics

# --------------------------------------------------------------------------- F1 in the registry


def test_f1_is_registered():
    assert register.metrics_dict["f1"] is F1
    assert register.metric_types["f1"] == EvaluatorType.RANKING
    assert register.metric_information["f1"] == ["rec.topk"]
    assert "f1" not in register.smaller_metrics  # larger is better


def test_register_is_idempotent():
    before = list(register.smaller_metrics)
    register_metrics()
    register_metrics()
    assert register.metrics_dict["f1"] is F1 and register.smaller_metrics == before


def test_config_accepts_f1(tmp_path):
    config = recbole_autodenoise.make_config("BPR", "ml-100k", config_dict={"state": "WARNING"})
    assert [m.lower() for m in config["metrics"]] == ["precision", "recall", "f1", "ndcg"]
    assert config["topk"] == [10, 20, 50]


# --------------------------------------------------------------------------- F1 by hand

# Rows: hits at ranks 1 and 3 of 2 relevant; no hit; a hit at rank 5 of 1; all 5 hits of 5.
POS_INDEX = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [1, 1, 1, 1, 1],
    ],
    dtype=bool,
)
POS_LEN = np.array([2, 3, 1, 5])
# F1@k = 2 hits / (k + |R(u)|), worked out per row.
F1_EXPECTED = np.array(
    [
        [2 / 3, 1 / 2, 4 / 5, 2 / 3, 4 / 7],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1 / 3],
        [1 / 3, 4 / 7, 3 / 4, 8 / 9, 1],
    ]
)


def f1_metric(topk=(1, 3, 5), decimals=6) -> F1:
    return F1({"topk": list(topk), "metric_decimal_place": decimals})


def test_f1_metric_info_exact():
    result = f1_metric().metric_info(POS_INDEX, POS_LEN)
    assert result.shape == (4, 5)
    np.testing.assert_allclose(result, F1_EXPECTED, rtol=0, atol=1e-12)
    assert (result[1] == 0).all() and not np.isnan(result).any()


def test_f1_is_harmonic_mean_of_precision_and_recall_per_row():
    precision = register.metrics_dict["precision"]({"topk": [5], "metric_decimal_place": 6})
    recall = register.metrics_dict["recall"]({"topk": [5], "metric_decimal_place": 6})
    p = precision.metric_info(POS_INDEX)
    r = recall.metric_info(POS_INDEX, POS_LEN)
    f = f1_metric().metric_info(POS_INDEX, POS_LEN)
    hit = (p + r) > 0
    np.testing.assert_allclose(f[hit], (2 * p * r / (p + r))[hit], rtol=0, atol=1e-12)
    assert (f[~hit] == 0).all()


def test_f1_single_target_reduces_to_recall():
    # One relevant item per query (the per-interaction protocol): F1@k = 2 R@k / (k + 1).
    pos_index = np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=bool)
    pos_len = np.ones(4, dtype=int)
    recall = register.metrics_dict["recall"]({"topk": [4], "metric_decimal_place": 6}).metric_info(
        pos_index, pos_len
    )
    f = f1_metric().metric_info(pos_index, pos_len)
    k = np.arange(1, 5)
    np.testing.assert_allclose(
        f.mean(axis=0), 2 * recall.mean(axis=0) / (k + 1), rtol=0, atol=1e-12
    )


def test_f1_calculate_metric_averages_and_rounds():
    data = DataStruct()
    data.set(
        "rec.topk",
        torch.cat(
            [torch.from_numpy(POS_INDEX.astype(np.int64)), torch.from_numpy(POS_LEN).view(-1, 1)],
            dim=1,
        ),
    )
    result = f1_metric(topk=(1, 3, 5), decimals=4).calculate_metric(data)
    assert set(result) == {"f1@1", "f1@3", "f1@5"}
    mean = F1_EXPECTED.mean(axis=0)
    assert result == {
        "f1@1": round(mean[0], 4),
        "f1@3": round(mean[2], 4),
        "f1@5": round(mean[4], 4),
    }
    assert result["f1@1"] == pytest.approx((2 / 3 + 0 + 0 + 1 / 3) / 4, abs=1e-4)


def test_f1_all_queries_without_hits_is_zero():
    pos_index = np.zeros((3, 5), dtype=bool)
    result = f1_metric().metric_info(pos_index, np.array([1, 2, 7]))
    assert (result == 0).all()


# ------------------------------------------------------------------------ the interaction protocol

NO_FILTER = {
    "user_inter_num_interval": "[0,inf)",
    "item_inter_num_interval": "[0,inf)",
    "state": "WARNING",
}

# 12 interactions per user -> RecBole's 4:1:1 gives 8 train / 2 validation / 2 test, in time order.
# Items are tokens "a".."l" for A and "b".."m" for B, so nobody has rated every item.
A_ITEMS = list("abcdefghijkl")
B_ITEMS = list("mlkjihgfedcb")
RATINGS = {
    "A": [4] * 8 + [5, 4] + [3, 1],  # validation i (5), j (4) clean; test k (3) clean, l (1) noisy
    "B": [2] * 8 + [5, 1] + [4, 4],  # validation e (5) clean, d (1) noisy; test c (4), b (4) clean
}
# Whether a user's own *noisy* held-out items are masked is left open here (either is defensible).
NOISY = {"A": {"l"}, "B": {"d"}}


def protocol_rows():
    rows = []
    for user, items in (("A", A_ITEMS), ("B", B_ITEMS)):
        for t, (item, rating) in enumerate(zip(items, RATINGS[user])):
            rows.append((user, item, rating, 100 * t + (1 if user == "B" else 0)))
    return rows


def protocol_config(tmp_path, **overrides):
    write_inter(tmp_path, "proto", protocol_rows())
    return recbole_autodenoise.make_config(
        "BPR",
        "proto",
        config_dict={
            "data_path": str(tmp_path),
            **NO_FILTER,
            "eval_batch_size": 4096,
            "eval_protocol": "interaction",
            **overrides,
        },
    )


def _token(dataset, field, ids):
    return [str(t) for t in dataset.field2id_token[field][np.asarray(ids).reshape(-1)]]


def _queries(loader):
    """(user token, target token, masked item tokens) per query, over all batches."""
    dataset = loader._dataset
    out = []
    for user_df, (hist_row, hist_item), positive_u, positive_i in loader:
        assert torch.equal(positive_u, torch.arange(len(user_df)))
        users = _token(dataset, dataset.uid_field, user_df[dataset.uid_field])
        targets = _token(dataset, dataset.iid_field, positive_i)
        for row, (user, target) in enumerate(zip(users, targets)):
            masked = set(_token(dataset, dataset.iid_field, hist_item[hist_row == row]))
            out.append((user, target, masked))
    return out


def test_interaction_protocol_one_query_per_clean_heldout_interaction(tmp_path):
    config = protocol_config(tmp_path)
    train, valid, test = data_preparation(config, create_dataset(config))
    assert (
        type(valid) is InteractionFullSortEvalDataLoader
        and type(test) is InteractionFullSortEvalDataLoader
    )

    # Validation: A -> i (5), j (4); B -> e (5); B's d (1) is noisy.
    assert len(valid._dataset) == 3
    assert valid.sample_size == 3
    queries = sorted(_queries(valid), key=lambda q: (q[0], q[1]))
    assert [(u, t) for u, t, _ in queries] == [("A", "i"), ("A", "j"), ("B", "e")]
    train_a, train_b = set(A_ITEMS[:8]), set(B_ITEMS[:8])
    for user, target, masked in queries:
        history = train_a if user == "A" else train_b
        others = {"A": {"i", "j"}, "B": {"e"}}[user] - {target}
        assert history <= masked  # the user's training items
        assert others <= masked  # the user's other held-out items
        assert target not in masked
        assert masked - NOISY[user] == history | others

    # Test: A -> k (3) clean, l (1) noisy; B -> c (4), b (4).
    assert test.sample_size == 3
    queries = sorted(_queries(test), key=lambda q: (q[0], q[1]))
    assert [(u, t) for u, t, _ in queries] == [("A", "k"), ("B", "b"), ("B", "c")]
    for user, target, masked in queries:
        assert target not in masked
        assert (train_a if user == "A" else train_b) <= masked
    masked_of = {(u, t): m for u, t, m in queries}
    assert "c" in masked_of[("B", "b")] and "b" in masked_of[("B", "c")]


def test_interaction_protocol_survives_small_batches(tmp_path):
    # eval_batch_size below item_num: one query per batch; the same queries come out.
    config = protocol_config(tmp_path, eval_batch_size=1)
    _, valid, _ = data_preparation(config, create_dataset(config))
    assert sorted((u, t) for u, t, _ in _queries(valid)) == [("A", "i"), ("A", "j"), ("B", "e")]


def test_user_protocol_is_recboles(tmp_path):
    config = protocol_config(tmp_path, eval_protocol="user")
    _, valid, test = data_preparation(config, create_dataset(config))
    assert type(valid) is FullSortEvalDataLoader and type(test) is FullSortEvalDataLoader
    assert valid.sample_size == 2 and test.sample_size == 2  # one query per user


def test_unknown_protocol(tmp_path):
    with pytest.raises(ValueError) as info:  # refused by make_config, before any data loads
        protocol_config(tmp_path, eval_protocol="bogus")
    message = str(info.value)
    assert "bogus" in message and "interaction" in message and "user" in message


def test_sequential_models_keep_recboles_loader(tmp_path):
    config = protocol_config(tmp_path)
    config_seq = recbole_autodenoise.make_config(
        "SASRec", "proto", config_dict={"data_path": str(tmp_path), **NO_FILTER}
    )
    _, valid, _ = data_preparation(config_seq, create_dataset(config_seq))
    assert type(valid) is FullSortEvalDataLoader
    # RecBole splits a sequential user's 11 target rows (items 2-12), not its 12 interactions:
    # 9/1/1, so validation is the 11th item of each user (A: k, rating 3; B: c, rating 4).
    ds = valid._dataset
    rows = sorted(
        zip(
            _token(ds, ds.uid_field, ds.inter_feat[ds.uid_field]),
            _token(ds, ds.iid_field, ds.inter_feat[ds.iid_field]),
        )
    )
    assert rows == [("A", "k"), ("B", "c")]
    assert valid.sample_size == 2  # one query per target row already
    assert config["eval_protocol"] == "interaction"


# --------------------------------------------------------------------------- end to end on ML-100K


def _run(protocol: str) -> dict:
    from recbole_autodenoise.quick_start import run

    config = {**FAST, "epochs": 1, "denoise_scheme": "default", "eval_protocol": protocol}
    return run("BPR", "ml-100k", config_dict=config, saved=False)


@pytest.fixture(scope="module")
def ml100k_interaction(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("ml100k-interaction"))
        mp.setattr("sys.argv", ["pytest"])
        return _run("interaction")


def test_ml100k_interaction_protocol_identities(ml100k_interaction):
    test = ml100k_interaction["test"]
    assert ml100k_interaction["eval_protocol"] == "interaction"
    for k in (10, 20, 50):
        precision, recall, f1 = test[f"precision@{k}"], test[f"recall@{k}"], test[f"f1@{k}"]
        for value in (precision, recall, f1, test[f"ndcg@{k}"]):
            assert math.isfinite(value) and 0 <= value <= 1
        assert precision == pytest.approx(recall / k, abs=1e-5)
        assert f1 == pytest.approx(2 * recall / (k + 1), abs=1e-5)
    assert test["recall@50"] > 0  # a trained model hits something in the top 50
    assert test["recall@10"] <= test["recall@20"] <= test["recall@50"]


@pytest.mark.slow
def test_ml100k_user_protocol_is_different(ml100k_interaction, tmp_path):
    results = _run("user")
    test = results["test"]
    assert results["eval_protocol"] == "user"
    for k in (10, 20, 50):
        for name in ("precision", "recall", "f1", "ndcg"):
            assert math.isfinite(test[f"{name}@{k}"]) and 0 <= test[f"{name}@{k}"] <= 1
    assert test["precision@10"] != pytest.approx(test["recall@10"] / 10, abs=1e-5)
    # Same data, same model: only the number of queries differs.
    assert results["data"] == ml100k_interaction["data"]
