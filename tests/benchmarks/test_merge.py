"""``benchmarks.merge``: a study's rows folded into a results file, with exact counts, from
hand-built rows."""

from __future__ import annotations

import json

import pytest

from benchmarks import merge
from benchmarks.grid import read_rows


def row(scheme: str, seed: int, status: str = "ok", dataset: str = "d", ndcg: float = 0.04) -> dict:
    return {
        "key": f"{dataset}|BPR|{scheme}|{seed}|h",
        "dataset": dataset,
        "model": "BPR",
        "scheme": scheme,
        "seed": seed,
        "status": status,
        "results": {"ndcg@20": ndcg},
    }


def write(path, rows, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def test_takes_only_finished_rows_the_destination_lacks(tmp_path):
    dst, src = tmp_path / "results.jsonl", tmp_path / "study.jsonl"
    write(dst, [row("default", 2020), row("adt_rl", 2020, status="failed")])
    write(
        src,
        [
            row("default", 2020, ndcg=0.9),
            row("adt_rl", 2020),
            row("dcf", 2020, status="failed"),
            row("dcf", 2021),
            row("dcf", 2021, ndcg=0.8),
        ],
        tail='{"key": "d|BPR|x|1|h", "dat',
    )  # a crash mid-write
    assert merge.merge(dst, [src]) == (2, 3)
    rows = read_rows(dst)
    assert [(r["scheme"], r["seed"], r["status"]) for r in rows] == [
        ("default", 2020, "ok"),
        ("adt_rl", 2020, "failed"),
        ("adt_rl", 2020, "ok"),
        ("dcf", 2021, "ok"),
    ]
    assert rows[0]["results"]["ndcg@20"] == 0.04  # the held row is kept, not replaced
    assert rows[3]["results"]["ndcg@20"] == 0.04  # the first of two repeated source rows


def test_merging_twice_adds_nothing_and_leaves_the_file_byte_for_byte(tmp_path):
    dst, src = tmp_path / "results.jsonl", tmp_path / "study.jsonl"
    write(src, [row("default", 2020), row("default", 2021)])
    assert merge.merge(dst, [src]) == (2, 0)  # a missing destination is created
    before = dst.read_bytes()
    assert merge.merge(dst, [src]) == (0, 2)
    assert dst.read_bytes() == before


def test_several_sources_and_a_destination_without_a_final_newline(tmp_path):
    dst, a, b = tmp_path / "results.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    dst.write_text(json.dumps(row("default", 2020)), encoding="utf-8")
    write(a, [row("adt_rl", 2020)])
    write(b, [row("adt_rl", 2020, ndcg=0.5), row("dcf", 2020)])
    assert merge.merge(dst, [a, b]) == (2, 1)
    assert [r["scheme"] for r in read_rows(dst)] == ["default", "adt_rl", "dcf"]
    assert len(dst.read_text(encoding="utf-8").splitlines()) == 3


def test_rows_of_another_data_set_are_refused_and_nothing_is_written(tmp_path):
    dst, src = tmp_path / "results.jsonl", tmp_path / "study.jsonl"
    write(dst, [row("default", 2020)])
    write(src, [row("adt_rl", 2020), row("adt_rl", 2020, dataset="ml-1m")])
    before = dst.read_bytes()
    with pytest.raises(ValueError, match=r"ml-1m.*own file"):
        merge.merge(dst, [src])
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "study.jsonl"]


def test_a_missing_source_is_named_and_the_command_line_says_what_it_took(tmp_path, capsys):
    dst, src = tmp_path / "results.jsonl", tmp_path / "study.jsonl"
    with pytest.raises(FileNotFoundError, match="study.jsonl"):
        merge.merge(dst, [src])
    with pytest.raises(SystemExit) as stop:
        merge.main([str(dst), str(src)])
    assert stop.value.code == 2 and "no such source file" in capsys.readouterr().err
    assert not dst.exists()
    write(src, [row("default", 2020), row("default", 2021, status="failed")])
    assert merge.main([str(dst), str(src)]) == 0
    assert "took 1 finished row(s); left 1" in capsys.readouterr().out
