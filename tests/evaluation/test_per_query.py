"""``evaluation.per_query``: per-query ranks from RecBole's ``rec.topk``, on hand-built tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.metrics import NDCG, Recall

from recbole_autodenoise.evaluation import per_query

# four queries, top 4, one positive each: ranks 2, none, 1, 4
TOPK = torch.tensor(
    [
        [0, 1, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [0, 0, 0, 1, 1],
    ]
)
USERS = torch.tensor([7, 3, 9, 4])


@pytest.fixture(autouse=True)
def recbole_numpy_aliases(monkeypatch):
    """RecBole's metrics read ``np.float``, which its ``Config`` restores on construction; none is
    built here."""
    monkeypatch.setattr(np, "float", np.float64, raising=False)


def test_ranks_of_each_querys_positive():
    assert per_query.query_ranks(TOPK).tolist() == [2, 0, 1, 4]


def test_no_ranks_where_a_query_holds_several_positives_or_none():
    several = TOPK.clone()
    several[0, -1] = 2
    assert per_query.query_ranks(several) is None
    assert per_query.query_ranks(TOPK[:0]) is None


def test_record_is_exact_and_pairs_only_the_same_queries():
    found = per_query.record(TOPK, USERS)
    assert found["queries"] == 4 and found["top_k"] == 4
    assert found["hits"] == [[0, 2], [2, 1], [3, 4]]
    assert found["users_digest"] == per_query.record(TOPK, USERS.clone())["users_digest"]
    assert found["users_digest"] != per_query.record(TOPK, USERS.flip(0))["users_digest"]
    assert per_query.record(None, USERS) is None
    assert per_query.record(TOPK, USERS[:3]) is None  # users and queries must line up


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_per_query_values_are_recboles_per_row_metrics(k):
    config = {"topk": [k], "metric_decimal_place": 12}
    pos_index, pos_len = TOPK[:, :-1].bool().numpy(), TOPK[:, -1].numpy()
    found = per_query.record(TOPK, USERS)
    ndcg = NDCG(config).metric_info(pos_index, pos_len)[:, k - 1]
    recall = Recall(config).metric_info(pos_index, pos_len)[:, k - 1]
    np.testing.assert_allclose(
        per_query.metric_per_query(found, f"ndcg@{k}"), ndcg, rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(
        per_query.metric_per_query(found, f"recall@{k}"), recall, rtol=0, atol=0
    )


@pytest.mark.parametrize("metric", ["ndcg@5", "ndcg@0", "precision@2", "ndcg"])
def test_metrics_without_per_query_values_are_named(metric):
    with pytest.raises(ValueError, match="ndcg@k and recall@k with k <= 4"):
        per_query.metric_per_query(per_query.record(TOPK, USERS), metric)


def test_recording_evaluator_keeps_the_last_topk_and_still_scores():
    evaluator = per_query.RecordingEvaluator(
        {"metrics": ["NDCG"], "topk": [4], "metric_decimal_place": 12}
    )
    struct = DataStruct()
    struct.set("rec.topk", TOPK)
    result = evaluator.evaluate(struct)
    assert evaluator.last_topk is TOPK
    expected = np.mean([1 / np.log2(3), 0, 1, 1 / np.log2(5)])
    assert result["ndcg@4"] == pytest.approx(expected, abs=1e-12)
