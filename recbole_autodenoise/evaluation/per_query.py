"""Per-query test results, kept so two methods can be paired query by query.

The paper's protocol ranks one clean test item per user (604 queries on ml-latest-small), so one
run's NDCG@20 carries a standard error of about a tenth of its value and a test paired by seed
needs many seeds. Pairing by query as well (each user's result averaged over the seeds both
methods ran, then a paired test over users) removes the query sample's share of that noise.

A run keeps, for every test protocol whose queries each hold exactly one positive, the rank of
that positive where it falls within the evaluation's top K (RecBole's ``rec.topk``; K = the largest
``topk``), as ``[query, rank]`` pairs: queries outside the top K score 0 at every cutoff up to K,
so the record is exact and small (a few hundred pairs for 604 queries). The queries' users, in
order, are kept as a digest: two records pair only where the same queries came in the same order.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from recbole.evaluator import Evaluator


def query_ranks(topk: torch.Tensor) -> torch.Tensor | None:
    """1-based rank of each query's positive within the top K, 0 outside it, from RecBole's
    ``rec.topk`` ([queries, K + 1]: a hit flag per rank, then the query's number of positives);
    ``None`` unless every query holds exactly one positive."""
    hits, positives = topk[:, :-1], topk[:, -1]
    if len(topk) == 0 or not bool((positives == 1).all()):
        return None
    found = hits.bool().any(dim=1)
    return torch.where(
        found, hits.int().argmax(dim=1) + 1, torch.zeros_like(positives, dtype=torch.long)
    ).long()


def users_digest(users: torch.Tensor) -> str:
    data = np.ascontiguousarray(users.detach().cpu().numpy().astype(np.int64))
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]


def record(topk: torch.Tensor | None, users: torch.Tensor) -> dict[str, Any] | None:
    """The per-query record of one evaluation, or ``None`` (no top-k result, or several positives
    per query, as under the ``user`` protocol)."""
    ranks = None if topk is None else query_ranks(topk)
    if ranks is None or len(users) != len(ranks):
        return None
    hit = ranks.nonzero().squeeze(1)
    return {
        "queries": len(ranks),
        "top_k": int(topk.shape[1] - 1),
        "users_digest": users_digest(users),
        "hits": [[int(q), int(ranks[q])] for q in hit],
    }


def metric_per_query(found: dict[str, Any], metric: str) -> np.ndarray:
    """``ndcg@k`` or ``recall@k`` of every query of a record (one positive each, k <= its top_k)."""
    name, _, cut = metric.partition("@")
    k = int(cut) if cut.isdigit() else 0
    if name not in ("ndcg", "recall") or not 0 < k <= found["top_k"]:
        raise ValueError(
            f"metric {metric!r}: per-query values exist for ndcg@k and recall@k "
            f"with k <= {found['top_k']}"
        )
    values = np.zeros(found["queries"])
    for query, rank in found["hits"]:
        if rank <= k:
            values[query] = 1.0 / np.log2(rank + 1) if name == "ndcg" else 1.0
    return values


class RecordingEvaluator(Evaluator):
    """RecBole's ``Evaluator``, keeping the last evaluation's ``rec.topk`` and, between ``begin``
    and ``end``, the users of its queries (``add_users``, in order) for ``record``."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.last_topk: torch.Tensor | None = None
        self.users: list[torch.Tensor] | None = None

    def begin(self) -> None:
        self.last_topk, self.users = None, []

    def add_users(self, users: torch.Tensor) -> None:
        if self.users is not None:
            self.users.append(users.cpu())

    def end(self) -> dict[str, Any] | None:
        """The per-query ``record`` of the evaluation since ``begin``."""
        users, self.users = self.users, None
        return record(self.last_topk, torch.cat(users) if users else torch.empty(0))

    def evaluate(self, dataobject):
        self.last_topk = dataobject.get("rec.topk") if "rec.topk" in dataobject else None
        return super().evaluate(dataobject)
