"""Ranking candidates on validation, with confidence intervals from a two-level bootstrap.

A candidate ran at several seeds; each seed's run scored every validation query (one query per
user under ``eval_protocol: user_first``). Its score is the mean over seeds of the per-seed mean
over queries. The interval resamples both sources of noise: the seeds (training randomness) and the
queries (which users happened to be held out). Where every seed scored the same queries in the same
order, one draw of queries is shared by all drawn seeds (the users are one sample); otherwise each
seed's queries are drawn on their own. Without per-query scores only the seeds are resampled, and
the method says so.

Two candidates are compared seed by seed on the difference of their scores, query by query where
both scored the same queries (the same data split: same seed). The recommendation is the simplest
candidate whose difference to the best has an interval containing 0: the best is always within
noise of itself, so there is always one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

CONFIDENCE = 0.95
DRAWS = 2000
_CHUNK = 250  # bootstrap draws per matrix product (bounds memory on large query sets)


@dataclass
class SeedScore:
    """One run of a candidate: its seed, its mean score, and per-query scores where known."""

    seed: int
    mean: float
    queries: np.ndarray | None = None
    digest: str | None = None  # the queries' users in order: equal digests pair query by query


@dataclass
class Scores:
    """A candidate's runs, one per seed, in seed order."""

    runs: list[SeedScore] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def mean(self) -> float:
        return float(np.mean([run.mean for run in self.runs]))

    @property
    def per_query(self) -> bool:
        return all(run.queries is not None for run in self.runs)


def _rng(seed: int, label: str) -> np.random.Generator:
    """A generator for one comparison: the same seed and label always draw the same numbers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(label.encode())]))


def bootstrap(
    rows: Sequence[np.ndarray], draws: int, rng: np.random.Generator, shared: bool
) -> np.ndarray:
    """``draws`` bootstrap estimates of the mean over seeds of each seed's mean over its queries
    (``rows``: one array of query scores per seed). Each draw takes the seeds with replacement and,
    for each, the queries with replacement: one query draw for all seeds where ``shared`` (every
    row scores the same queries), one per seed otherwise."""
    if not rows or any(len(row) == 0 for row in rows):
        raise ValueError("bootstrap needs at least one seed with at least one query")
    n_seeds = len(rows)
    estimates = np.empty(draws)
    for start in range(0, draws, _CHUNK):
        size = min(_CHUNK, draws - start)
        seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=size) / n_seeds
        if shared:
            matrix = np.vstack(rows)  # [seeds, queries]
            queries = matrix.shape[1]
            query_weights = (
                rng.multinomial(queries, np.full(queries, 1 / queries), size=size) / queries
            )
            per_seed = query_weights @ matrix.T  # [draws, seeds]
        else:
            per_seed = np.column_stack(
                [
                    (
                        rng.multinomial(len(row), np.full(len(row), 1 / len(row)), size=size)
                        / len(row)
                    )
                    @ row
                    for row in rows
                ]
            )
        estimates[start : start + size] = (per_seed * seed_weights).sum(axis=1)
    return estimates


def interval(estimates: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """The percentile interval of bootstrap estimates."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return [float(low), float(high)]


def _rows(scores: Scores) -> tuple[list[np.ndarray], bool, str]:
    """What to resample: per-query rows where every seed has them, else one value per seed."""
    if scores.per_query:
        rows = [np.asarray(run.queries, dtype=float) for run in scores.runs]
        digests = {run.digest for run in scores.runs}
        shared = len(digests) == 1 and None not in digests and len({len(row) for row in rows}) == 1
        return rows, shared, "seeds x queries" + ("" if shared else " (queries drawn per seed)")
    return [np.array([run.mean]) for run in scores.runs], True, "seeds only (no per-query scores)"


def mean_interval(scores: Scores, seed: int, label: str, draws: int = DRAWS) -> dict[str, Any]:
    """A candidate's mean with its interval and how it was resampled."""
    rows, shared, method = _rows(scores)
    estimates = bootstrap(rows, draws, _rng(seed, label), shared)
    return {"mean": scores.mean, "ci": interval(estimates), "method": method}


def difference(a: Scores, b: Scores, seed: int, label: str, draws: int = DRAWS) -> dict[str, Any]:
    """``a - b`` paired by seed (and by query where both runs of a seed scored the same queries),
    with its interval. Both must have run the same seeds."""
    if a.seeds != b.seeds:
        raise ValueError(f"a paired difference needs the same seeds, got {a.seeds} and {b.seeds}")
    paired = (
        a.per_query
        and b.per_query
        and all(
            x.digest is not None and x.digest == y.digest and len(x.queries) == len(y.queries)
            for x, y in zip(a.runs, b.runs)
        )
    )
    runs = [
        SeedScore(
            x.seed,
            x.mean - y.mean,
            np.asarray(x.queries, dtype=float) - np.asarray(y.queries, dtype=float)
            if paired
            else None,
            x.digest if paired else None,
        )
        for x, y in zip(a.runs, b.runs)
    ]
    return mean_interval(Scores(runs), seed, label, draws)


def contains_zero(ci: Sequence[float]) -> bool:
    return ci[0] <= 0 <= ci[1]


def rank(
    scores: dict[str, Scores],
    simplicity: dict[str, tuple[float, int]],
    seed: int,
    draws: int = DRAWS,
    bigger: bool = True,
) -> tuple[list[dict[str, Any]], str]:
    """Candidates ranked by mean score (best first), each with its interval and its difference to
    the best (interval, ``within_noise``), and the recommended candidate: the simplest (lowest
    ``simplicity`` key) whose difference to the best has an interval containing 0."""
    if not scores:
        raise ValueError("nothing to rank: no candidate finished")
    sign = 1.0 if bigger else -1.0
    order = sorted(scores, key=lambda name: (-sign * scores[name].mean, simplicity[name]))
    best = order[0]
    ranking = []
    for position, name in enumerate(order, 1):
        entry = {
            "candidate": name,
            "rank": position,
            **_renamed(mean_interval(scores[name], seed, name, draws)),
        }
        diff = difference(scores[name], scores[best], seed, f"{name}-{best}", draws)
        entry["difference_to_best"] = {
            "mean": diff["mean"],
            "ci": diff["ci"],
            "method": diff["method"],
        }
        entry["within_noise"] = name == best or contains_zero(diff["ci"])
        entry["seeds"] = len(scores[name].runs)
        ranking.append(entry)
    within = [entry["candidate"] for entry in ranking if entry["within_noise"]]
    recommended = min(within, key=lambda name: simplicity[name])
    return ranking, recommended


def _renamed(found: dict[str, Any]) -> dict[str, Any]:
    return {"valid_mean": found["mean"], "ci": found["ci"], "ci_method": found["method"]}
