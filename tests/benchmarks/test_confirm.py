"""benchmarks.confirm: the study's paired two-level bootstrap, Holm's correction and the rank
correlation, on hand-built numbers; a report without every candidate's test is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import confirm


def test_holm_adjusts_step_down_in_the_input_order():
    # sorted 0.01, 0.02, 0.04 over m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert confirm.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert confirm.holm([0.5, 0.9]) == [1.0, 1.0]


def test_equal_arms_differ_by_nothing():
    rng = np.random.default_rng(1)
    scores = rng.random((3, 50))
    found = confirm.relative_difference(scores, scores.copy(), 1000, np.random.default_rng(0))
    assert found["relative"] == 0 and found["ci"] == [0.0, 0.0] and found["p"] == 1.0


def test_a_uniformly_better_arm_is_found_with_its_size():
    rng = np.random.default_rng(2)
    base = 0.2 + rng.random((4, 200))
    found = confirm.relative_difference(1.1 * base, base, 2000, np.random.default_rng(0))
    assert found["relative"] == pytest.approx(0.1)
    assert found["ci"][0] == pytest.approx(0.1) and found["ci"][1] == pytest.approx(0.1)
    assert found["p"] == 0.0


def test_noise_widens_the_interval_around_a_small_gain():
    rng = np.random.default_rng(3)
    base = rng.random((5, 300))
    other = base + rng.normal(0.01, 0.3, size=base.shape)
    found = confirm.relative_difference(other, base, 2000, np.random.default_rng(0))
    assert found["ci"][0] < found["relative"] < found["ci"][1]
    assert found["ci"][0] < 0 < found["ci"][1] and found["p"] > 0.05


def test_paired_draws_share_the_user_draw():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    mean_a, mean_b = confirm.paired_draws(a, a.copy(), 200, np.random.default_rng(0))
    assert np.array_equal(mean_a, mean_b)  # the same weights on both sides
    with pytest.raises(ValueError, match="equal, non-empty shapes"):
        confirm.paired_draws(a, a[:, :1], 10, np.random.default_rng(0))


def test_spearman_on_ranks():
    assert confirm.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert confirm.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert confirm.spearman([1, 2], [1, 2]) is None
    assert confirm.spearman([1, 1, 1], [1, 2, 3]) is None


def test_the_comparisons_are_the_preregistered_ones():
    arms = {name: None for name in ("default", "default_guide", "adt_rl", "explicit")}
    assert confirm.comparisons(arms) == [
        ("default_guide", "default"),
        ("adt_rl", "default"),
        ("explicit", "default"),
        ("adt_rl", "default_guide"),
        ("explicit", "default_guide"),
    ]


def test_a_report_without_every_candidates_test_is_refused(tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"ranking": [], "recommended": {"test": {}}}), encoding="utf-8")
    assert confirm.main([str(report)]) == 2
    assert "--test=all" in capsys.readouterr().err
    assert confirm.main([str(tmp_path / "missing.json")]) == 2


def write_study(tmp_path, hits_by_candidate):
    """A select --test=all report with 2 seeds and 4 users per candidate; ``hits`` are ranks."""
    cells = tmp_path / "ml-x-BPR.json.cells"
    tested, ranking = {}, []
    for name, (valid, ranks) in hits_by_candidate.items():
        per_seed = []
        for seed in (1, 2):
            cell = f"{name}-{seed}"
            (cells / cell).mkdir(parents=True)
            record = {
                "queries": 4,
                "top_k": 50,
                "users_digest": "u4",
                "hits": [[q, r] for q, r in enumerate(ranks) if r],
            }
            (cells / cell / "test.json").write_text(
                json.dumps({"per_query": {"user_first": record}})
            )
            per_seed.append({"seed": seed, "cell": cell})
        tested[name] = {"per_seed": per_seed}
        ranking.append({"candidate": name, "valid_mean": valid})
    report = tmp_path / "ml-x-BPR.json"
    report.write_text(
        json.dumps(
            {
                "ranking": ranking,
                "recommended": {"candidate": "default", "test": {"candidates": tested}},
                "settings": {"args": {"dataset": "ml-x", "model": "BPR"}, "cell_commits": ["abc"]},
            }
        )
    )
    return report


def test_analyse_reads_a_study_report_and_its_cells(tmp_path, capsys):
    report = write_study(
        tmp_path,
        {
            "default": (0.10, [1, 0, 0, 3]),  # ndcg@20 per user: 1, 0, 0, 0.5
            "default_guide": (0.20, [1, 1, 0, 3]),  # 1, 1, 0, 0.5
            "adt_rl": (0.15, [1, 0, 0, 0]),  # 1, 0, 0, 0
        },
    )
    found = confirm.analyse([report], 500)
    cell = found["cells"][0]
    assert cell["test"] == pytest.approx(
        {"default": 1.5 / 4, "default_guide": 2.5 / 4, "adt_rl": 0.25}
    )
    assert cell["spearman_valid_test"] == pytest.approx(0.5) and cell["commits"] == ["abc"]
    pairs = [(r["candidate"], r["against"]) for r in found["comparisons"]]
    assert pairs == [
        ("default_guide", "default"),
        ("adt_rl", "default"),
        ("adt_rl", "default_guide"),
    ]
    assert found["comparisons"][0]["relative"] == pytest.approx(2.5 / 1.5 - 1)
    assert all(r["holm_p"] >= r["p"] for r in found["comparisons"])
    assert confirm.main([str(report), "--draws", "200"]) == 0
    out = capsys.readouterr().out
    assert (
        "### ml-x" in out and "default (select's pick)" in out and "Holm over 3 comparisons" in out
    )
