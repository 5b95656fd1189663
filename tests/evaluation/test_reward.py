"""``evaluation.reward.reward_key``: the metric a scheme's reward reads, and the metric RecBole
must compute for it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recbole_autodenoise.evaluation.reward import reward_key


def config(reward_metric: str) -> dict:
    return {"reward_metric": reward_metric, "topk": [10, 20], "metrics": ["Recall", "NDCG"]}


def test_a_scheme_without_reward_reads_none_and_leaves_the_metrics():
    settings = config("MRR@10")
    assert reward_key(settings, SimpleNamespace(needs_reward=False)) is None
    assert settings["metrics"] == ["Recall", "NDCG"]


@pytest.mark.parametrize(
    "metric, key, metrics",
    [
        ("GAUC", "gauc", ["Recall", "NDCG"]),  # computed by the plugin, not RecBole
        ("NDCG@20", "ndcg@20", ["Recall", "NDCG"]),  # already evaluated
        ("MRR@10", "mrr@10", ["Recall", "NDCG", "mrr"]),  # joins RecBole's metrics
    ],
)
def test_the_reward_metric_is_parsed_and_recbole_computes_it(metric, key, metrics):
    settings = config(metric)
    assert reward_key(settings, SimpleNamespace(needs_reward=True)) == key
    assert settings["metrics"] == metrics


def test_a_bad_reward_metric_names_the_key():
    with pytest.raises(ValueError, match="config key 'reward_metric' = 'NDCG@5' needs '@K'"):
        reward_key(config("NDCG@5"), SimpleNamespace(needs_reward=True))
