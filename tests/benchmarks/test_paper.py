"""The paper's Table 3 as transcribed in benchmarks/paper.py, and the rows breaking its own
identities."""

from __future__ import annotations

from benchmarks.paper import (
    METRICS,
    PAPER_ROWS,
    PAPER_TABLES,
    identity_breaks,
    identity_flags,
    repeated_cells,
)

EXPECTED_FLAGS = {
    ("ml-latest-small", ("SASRec", "autodenoise_s")): ["f1@10", "f1@20", "f1@50"],
    ("ml-1m", ("BPR", "heuristic")): ["f1@10", "f1@50"],
    ("electronics", ("BPR", "autodenoise_s")): [
        "precision@10",
        "precision@20",
        "f1@20",
        "precision@50",
        "precision@20 repeats autodenoise_h",
        "precision@50 repeats autodenoise_h",
        "ndcg@20 repeats autodenoise_h",
    ],
    ("electronics", ("GRU4Rec", "heuristic")): ["f1@20", "f1@50"],
}


def test_three_blocks_of_eighteen_rows():
    assert set(PAPER_TABLES) == {"ml-latest-small", "ml-1m", "electronics"}
    assert PAPER_TABLES["ml-latest-small"] is PAPER_ROWS
    for table in PAPER_TABLES.values():
        assert len(table) == 18 and all(list(row) == list(METRICS) for row in table.values())


def test_spot_values_of_the_new_blocks():
    assert PAPER_TABLES["ml-1m"][("SASRec", "autodenoise_s")]["recall@50"] == 39.090
    assert PAPER_TABLES["ml-1m"][("SASRec", "autodenoise_h")]["ndcg@20"] == 12.111
    assert PAPER_TABLES["electronics"][("BPR", "autodenoise_h")]["ndcg@50"] is None
    assert PAPER_TABLES["electronics"][("SASRec", "default")]["precision@10"] == 0.4854


def test_exactly_the_known_broken_rows_are_flagged():
    flags = {
        (name, key): problems
        for name, table in PAPER_TABLES.items()
        for key, problems in identity_flags(table).items()
    }
    assert flags == EXPECTED_FLAGS


def test_identity_breaks_edges():
    row = dict.fromkeys(METRICS, None)
    assert identity_breaks(row) == []  # nothing legible, nothing to check
    row.update({"recall@10": 9.6880, "precision@10": 0.9688, "f1@10": 0.0176})
    assert identity_breaks(row) == []
    row["precision@10"] = 0.9690  # two units off in the 4th decimal
    assert identity_breaks(row) == ["precision@10"]


def test_a_consistent_equal_precision_is_no_repeat():
    """GRU4Rec ADT-TL and ADT-RL on Electronics print the same P@50 from different R@50, each
    fitting its own."""
    table = PAPER_TABLES["electronics"]
    tl, rl = table[("GRU4Rec", "adt_tl")], table[("GRU4Rec", "adt_rl")]
    assert tl["precision@50"] == rl["precision@50"] and tl["recall@50"] != rl["recall@50"]
    assert repeated_cells(tl, rl, identity_breaks(tl)) == []
