"""benchmarks.rerun_cell: what a re-run must reproduce, and its refusal of a folder that is no
cell."""

from __future__ import annotations

import pytest

from benchmarks import rerun_cell


def test_times_paths_and_commits_are_not_compared_but_every_score_is():
    row = {
        "best_valid_score": 0.5,
        "valid_per_query": {"hits": [[0, 1]]},
        "commit": "a",
        "checkpoint_name": "x.pth",
        "timing": {"total_seconds": 3.0},
        "epochs": [{"epoch": 0, "valid_score": 0.4, "train_seconds": 1.0, "valid_seconds": 0.2}],
        "stopping": {"best_epoch": 0},
        "weight_study": {"fp_mean_weight": 0.9},
    }
    again = {
        **row,
        "commit": "b",
        "checkpoint_name": "y.pth",
        "timing": {"total_seconds": 9.0},
        "epochs": [{"epoch": 0, "valid_score": 0.4, "train_seconds": 7.0, "valid_seconds": 0.1}],
    }
    assert rerun_cell.computed(row) == rerun_cell.computed(again)
    moved = {**again, "epochs": [{"epoch": 0, "valid_score": 0.4000001, "train_seconds": 7.0}]}
    assert rerun_cell.computed(row) != rerun_cell.computed(moved)
    assert rerun_cell.computed(row) != rerun_cell.computed(
        {**row, "weight_study": {"fp_mean_weight": 0.8}}
    )


def test_a_folder_that_is_no_finished_cell_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rerun_cell.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is not a finished select train cell" in capsys.readouterr().err
