"""``benchmarks.traces``: injected / FP weight ratios to the true positives', from hand-built
rows."""

from __future__ import annotations

import json

import pytest

from benchmarks import traces

NOISE = {"noise_kind": "foreign", "noise_rate": 0.2}


def row(
    seed: int,
    per_epoch: list[tuple[float, float, float]],
    run: tuple[float, float, float],
    scheme: str = "adt_rl",
) -> dict:
    """A finished noisy cell whose epoch e had weights (TP, FP, injected) = ``per_epoch[e]``."""
    epochs = [
        {"epoch": e, "tp_mean_weight": tp, "fp_mean_weight": fp, "injected_mean_weight": inj}
        for e, (tp, fp, inj) in enumerate(per_epoch)
    ]
    study = {
        "tp_mean_weight": run[0],
        "fp_mean_weight": run[1],
        "injected_mean_weight": run[2],
        "per_epoch": epochs,
    }
    return {
        "key": f"d|GRU4Rec|{scheme}|{seed}",
        "dataset": "d",
        "model": "GRU4Rec",
        "scheme": scheme,
        "seed": seed,
        "overrides": {"show_progress": False, **NOISE},
        "status": "ok",
        "results": {"weight_study": study},
    }


def test_ratios_over_the_run_and_once_settled():
    first = row(2020, [(1.0, 1.0, 1.0), (1.0, 0.9, 0.8), (2.0, 1.0, 0.5)], run=(1.25, 1.0, 0.5))
    assert traces.run_ratio(first, "injected") == pytest.approx(0.4)
    assert traces.run_ratio(first, "fp") == pytest.approx(0.8)
    assert traces.settled_ratio(first, "injected", 1) == pytest.approx((0.8 + 0.25) / 2)
    assert traces.settled_ratio(first, "fp", 2) == pytest.approx(0.5)
    assert traces.settled_ratio(first, "injected", 3) is None  # the run stopped before epoch 3


def test_a_row_without_injected_rows_has_no_injected_ratio():
    clean = row(2020, [(1.0, 0.5, 1.0)], run=(1.0, 0.5, 1.0))
    del clean["results"]["weight_study"]["injected_mean_weight"]
    for epoch in clean["results"]["weight_study"]["per_epoch"]:
        del epoch["injected_mean_weight"]
    assert traces.run_ratio(clean, "injected") is None
    assert traces.settled_ratio(clean, "injected", 0) is None
    assert traces.run_ratio(clean, "fp") == pytest.approx(0.5)


def test_the_table_gives_the_mean_and_range_over_seeds():
    rows = [
        row(2020, [(1.0, 1.0, 0.6)] * 3, run=(1.0, 1.0, 0.6)),
        row(2021, [(1.0, 1.0, 0.8)] * 2, run=(1.0, 1.0, 0.8)),
    ]
    text = traces.render(rows, None, from_epoch=2)
    line = next(entry for entry in text.splitlines() if entry.startswith("| ADT-RL |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "2"
    assert cells[2] == "0.700 (0.600-0.800)"
    assert cells[3] == "0.600"  # seed 2021 never reached epoch 2
    assert cells[4] == "1.000 (1.000-1.000)"
    assert cells[6] == "2-3"
    assert "noise_kind=foreign, noise_rate=0.2" in text


def test_variants_stay_apart_and_models_filter():
    rows = [
        row(2020, [(1.0, 1.0, 0.6)], run=(1.0, 1.0, 0.6)),
        row(2020, [(1.0, 1.0, 1.0)], run=(1.0, 1.0, 1.0), scheme="default"),
    ]
    text = traces.render(rows, ["GRU4Rec"], from_epoch=0)
    assert "| ADT-RL | 1 | 0.600 |" in text and "| Default | 1 | 1.000 |" in text
    with pytest.raises(SystemExit, match="no finished rows with a weight study"):
        traces.render(rows, ["SASRec"], from_epoch=0)


def test_cli_reads_files_and_refuses_a_negative_epoch(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row(2020, [(1.0, 1.0, 0.5)], run=(1.0, 1.0, 0.5))) + "\n")
    assert traces.main([str(path), "--from-epoch", "0"]) == 0
    assert "| ADT-RL | 1 | 0.500 | 0.500 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        traces.main([str(path), "--from-epoch", "-1"])
    assert "--from-epoch must be 0 or more, got -1" in capsys.readouterr().err
