"""``benchmarks.compare``: study variants paired with reference schemes, by seed, from hand-built
rows."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from benchmarks import compare

PROTOCOLS = ("user_first", "interaction")


def row(
    scheme: str,
    seed: int,
    ndcg: float,
    overrides: dict | None = None,
    tp: float = 1.0,
    fp: float = 1.0,
) -> dict:
    """A finished cell: NDCG@20 = ``ndcg`` under user_first, half of it under interaction."""
    overrides = {"show_progress": False, "gpu_id": "", **(overrides or {})}
    results = {
        p: {"ndcg@20": ndcg * (1 if p == "user_first" else 0.5), "recall@20": 2 * ndcg}
        for p in PROTOCOLS
    }
    return {
        "key": f"d|BPR|{scheme}|{seed}|{sorted(overrides.items())}",
        "dataset": "d",
        "model": "BPR",
        "scheme": scheme,
        "seed": seed,
        "overrides": overrides,
        "status": "ok",
        "results": {
            "test_by_protocol": results,
            "weight_study": {"tp_mean_weight": tp, "fp_mean_weight": fp},
        },
    }


EXPLICIT = {"controller_credit": "explicit"}
DEFAULT = [0.040, 0.042, 0.041, 0.039]
MINE = [0.044, 0.043, 0.045, 0.041]


def rows() -> list[dict]:
    found = [
        row("default", 2020 + i, v, EXPLICIT) for i, v in enumerate(DEFAULT)
    ]  # ignored key: still Default
    found += [
        row("autodenoise_s", 2020 + i, v, EXPLICIT, tp=1.02, fp=0.86) for i, v in enumerate(MINE)
    ]
    found += [
        row("autodenoise_s", 2020, 0.05, {**EXPLICIT, "noise_kind": "foreign", "noise_rate": 0.2})
    ]
    found += [
        row("default", 2020, 0.01, {"clean_valid_guide_ratio": 0.5}),
        row("default", 2021, 0.02, {"clean_valid_guide_ratio": 0.5}),
    ]
    found += [
        row("autodenoise_s", 2020 + i, v, {**EXPLICIT, "clean_valid_guide_ratio": 0.5})
        for i, v in enumerate((0.03, 0.05))
    ]
    found.append(
        {**row("autodenoise_s", 2030, 0.9, EXPLICIT), "status": "failed"}
    )  # failed cells stay out
    return found


def test_variants_keep_the_keys_a_scheme_reads_and_split_by_noise():
    found = compare.groups(rows())
    split = (("clean_valid_guide_ratio", 0.5),)
    assert set(found) == {
        ("BPR", (), "Default"),
        ("BPR", (), "AutoDenoise-S controller_credit=explicit"),
        (
            "BPR",
            (("noise_kind", "foreign"), ("noise_rate", 0.2)),
            "AutoDenoise-S controller_credit=explicit",
        ),
        ("BPR", split, "Default"),
        ("BPR", split, "AutoDenoise-S controller_credit=explicit"),
    }
    assert sorted(found[("BPR", (), "Default")]) == [2020, 2021, 2022, 2023]
    assert sorted(found[("BPR", (), "AutoDenoise-S controller_credit=explicit")]) == [
        2020,
        2021,
        2022,
        2023,
    ]


def test_rows_under_other_settings_never_merge():
    tuned = [
        {
            **row("autodenoise_s", 2020 + i, v, EXPLICIT),
            "overrides_hash": "b",
            "key": f"tuned{i}",
            "settings": {"controller_learning_rate": 0.01, "seed": 2020 + i},
        }
        for i, v in enumerate((0.05, 0.06))
    ]
    base = [
        {
            **r,
            "overrides_hash": "a",
            "settings": {"controller_learning_rate": 0.001, "seed": r["seed"]},
        }
        for r in rows()
    ]
    found = compare.groups(base + tuned)
    label = "AutoDenoise-S controller_credit=explicit"
    assert sorted(found[("BPR", (), f"{label} controller_learning_rate=0.001")]) == [
        2020,
        2021,
        2022,
        2023,
    ]
    assert sorted(found[("BPR", (), f"{label} controller_learning_rate=0.01")]) == [2020, 2021]
    assert ("BPR", (), label) not in found and (
        "BPR",
        (),
        "Default",
    ) in found  # Default has one hash


def test_the_table_holds_the_paired_change_and_p():
    text = compare.render(rows(), None, ["default"])
    line = next(
        entry
        for entry in text.splitlines()
        if entry.startswith("| AutoDenoise-S controller_credit=explicit | 4 |")
    )
    p = stats.ttest_rel([100 * v for v in MINE], [100 * v for v in DEFAULT]).pvalue
    change = (sum(MINE) / sum(DEFAULT) - 1) * 100
    mean_pct = 100 * sum(MINE) / 4
    assert f"{mean_pct:.3f} ± " in line and f"({change:+.1f} %, p = {p:.3f})" in line
    assert f"{mean_pct / 2:.3f} ± " in line  # the interaction column
    assert line.endswith("| 1.020 / 0.860 |")
    default = next(entry for entry in text.splitlines() if entry.startswith("| Default | 4 |"))
    assert "%" not in default  # the reference itself carries no change
    assert (
        "noise_kind=foreign, noise_rate=0.2" not in text
    )  # no reference under that noise: no table
    # under the guide/select split the explicit rows pair with Default under the same split:
    # 3 / 1, 5 / 2
    assert (
        "| AutoDenoise-S controller_credit=explicit | 2 | 4.000 ± 1.414 (+166.7 %, p = 0.126) |"
        in text
    )
    single = compare.render(
        rows() + [row("default", 2020, 0.05, {"noise_kind": "foreign", "noise_rate": 0.2})],
        None,
        ["default"],
    )
    assert (
        "| AutoDenoise-S controller_credit=explicit | 1 | 5.000 (+0.0 %, p = n/a) |" in single
    )  # one seed: no std


def test_no_reference_fails_clearly():
    with pytest.raises(ValueError, match="no finished rows with a reference scheme"):
        compare.render(rows(), None, ["dcf"])
    assert math.isfinite(compare.mean([1.0]))


def with_ranks(found: dict, ranks: list[int], digest: str = "q") -> dict:
    """``found`` plus a user_first per-query record: query i's positive at rank ranks[i] (0: outside
    the top 50)."""
    record = {
        "queries": len(ranks),
        "top_k": 50,
        "users_digest": digest,
        "hits": [[q, r] for q, r in enumerate(ranks) if r],
    }
    return {**found, "results": {**found["results"], "per_query": {"user_first": record}}}


MY_RANKS = {2020: [1, 3, 0, 2, 25], 2021: [1, 1, 8, 0, 2]}
THEIR_RANKS = {2020: [2, 4, 0, 9, 1], 2021: [3, 0, 8, 0, 40]}


def ndcg20(ranks: list[int]) -> list[float]:
    return [1 / math.log2(r + 1) if 0 < r <= 20 else 0.0 for r in ranks]


def test_per_query_p_pairs_each_querys_mean_over_the_common_seeds():
    mine = [with_ranks(row("autodenoise_s", s, 0.05), r) for s, r in MY_RANKS.items()]
    theirs = [with_ranks(row("default", s, 0.04), r) for s, r in THEIR_RANKS.items()]
    theirs.append(
        with_ranks(row("default", 2022, 0.04), [1, 1, 1, 1, 1])
    )  # no partner seed: left out
    line = next(
        entry
        for entry in compare.render(mine + theirs, None, ["default"]).splitlines()
        if entry.startswith("| AutoDenoise-S |")
    )
    means = [
        [sum(v) / 2 for v in zip(*(ndcg20(r) for r in side.values()))]
        for side in (MY_RANKS, THEIR_RANKS)
    ]
    p = stats.ttest_rel(*means).pvalue
    assert f"; per query p = {p:.3f}, 5 × 2)" in line
    assert (
        line.count("per query") == 2
    )  # NDCG@20 and Recall@20 under user_first; interaction kept none


def test_no_per_query_p_where_a_side_lacks_records_or_other_queries_were_ranked():
    mine = [with_ranks(row("autodenoise_s", s, 0.05), r) for s, r in MY_RANKS.items()]
    older = [row("default", s, 0.04) for s in MY_RANKS]
    other = [with_ranks(row("default", s, 0.04), r, digest="other") for s, r in THEIR_RANKS.items()]
    for theirs in (older, other):
        assert "per query" not in compare.render(mine + theirs, None, ["default"])
